//! Every coordination call under the call timeout, failing with an error that
//! names the operation and the table the call was on.
//!
//! The consumer wraps whatever store it is given in [`Timed`], so that no call
//! site can forget the timeout or the table (design §3.10: every AWS call has a
//! timeout; errors carry the table).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::schema::TableNames;
use super::{CheckpointRow, ClientRow, CoordinationStore, LeaderRow, LeaseWrite, ShardCache};
use crate::config::Billing;
use crate::error::{Error, Result, ServiceError, ServiceErrorKind};
use crate::record::{ClientId, Position, ShardId};

/// A store whose calls give up after `limit`. Creating and deleting tables
/// are not bounded: they wait for DynamoDB on purpose.
pub(crate) struct Timed {
    inner: Arc<dyn CoordinationStore>,
    limit: Duration,
}

impl Timed {
    pub(crate) fn new(inner: Arc<dyn CoordinationStore>, limit: Duration) -> Self {
        Timed { inner, limit }
    }

    async fn bounded<T>(
        &self,
        operation: &'static str,
        table: &str,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.limit, call).await {
            Ok(result) => result,
            Err(_) => Err(Error::Store {
                operation,
                table: table.to_string(),
                source: ServiceError::new(
                    ServiceErrorKind::Transient,
                    format!("no answer within {:?}", self.limit),
                ),
            }),
        }
    }
}

#[async_trait]
impl CoordinationStore for Timed {
    fn tables(&self) -> &TableNames {
        self.inner.tables()
    }

    async fn create_tables(&self, billing: Billing, waiter_delay: Duration) -> Result<()> {
        self.inner.create_tables(billing, waiter_delay).await
    }

    async fn delete_tables(&self, waiter_delay: Duration) -> Result<()> {
        self.inner.delete_tables(waiter_delay).await
    }

    async fn check_tables(&self) -> Result<()> {
        let t = self.tables();
        self.bounded(
            "DescribeTable",
            &t.all().join(", "),
            self.inner.check_tables(),
        )
        .await
    }

    async fn put_client(&self, row: &ClientRow) -> Result<()> {
        let t = &self.tables().clients;
        self.bounded("PutItem", t, self.inner.put_client(row)).await
    }

    async fn delete_client(&self, id: &ClientId) -> Result<()> {
        let t = &self.tables().clients;
        self.bounded("DeleteItem", t, self.inner.delete_client(id))
            .await
    }

    async fn reap_client(&self, id: &ClientId, cutoff: i64) -> Result<bool> {
        let t = &self.tables().clients;
        self.bounded("DeleteItem", t, self.inner.reap_client(id, cutoff))
            .await
    }

    async fn list_clients(&self) -> Result<Vec<ClientRow>> {
        let t = &self.tables().clients;
        self.bounded("Scan", t, self.inner.list_clients()).await
    }

    async fn list_checkpoints(&self) -> Result<Vec<CheckpointRow>> {
        let t = &self.tables().checkpoints;
        self.bounded("Scan", t, self.inner.list_checkpoints()).await
    }

    async fn get_checkpoint(&self, shard: &ShardId) -> Result<Option<CheckpointRow>> {
        let t = &self.tables().checkpoints;
        self.bounded("GetItem", t, self.inner.get_checkpoint(shard))
            .await
    }

    async fn capture_lease(
        &self,
        lease: LeaseWrite<'_>,
        expired_owner: Option<(&ClientId, i64)>,
    ) -> Result<Option<CheckpointRow>> {
        let t = &self.tables().checkpoints;
        self.bounded(
            "UpdateItem",
            t,
            self.inner.capture_lease(lease, expired_owner),
        )
        .await
    }

    async fn commit_lease(
        &self,
        lease: LeaseWrite<'_>,
        position: Option<&Position>,
        finished: bool,
    ) -> Result<bool> {
        let t = &self.tables().checkpoints;
        self.bounded(
            "UpdateItem",
            t,
            self.inner.commit_lease(lease, position, finished),
        )
        .await
    }

    async fn release_lease(
        &self,
        lease: LeaseWrite<'_>,
        position: Option<&Position>,
    ) -> Result<bool> {
        let t = &self.tables().checkpoints;
        self.bounded("UpdateItem", t, self.inner.release_lease(lease, position))
            .await
    }

    async fn get_leader(&self) -> Result<Option<LeaderRow>> {
        let t = &self.tables().metadata;
        self.bounded("GetItem", t, self.inner.get_leader()).await
    }

    async fn claim_leadership(
        &self,
        id: &ClientId,
        name: &str,
        now: i64,
        cutoff: i64,
    ) -> Result<bool> {
        let t = &self.tables().metadata;
        self.bounded(
            "PutItem",
            t,
            self.inner.claim_leadership(id, name, now, cutoff),
        )
        .await
    }

    async fn release_leadership(&self, id: &ClientId, now: i64) -> Result<()> {
        let t = &self.tables().metadata;
        self.bounded("UpdateItem", t, self.inner.release_leadership(id, now))
            .await
    }

    async fn get_shard_cache(&self) -> Result<Option<ShardCache>> {
        let t = &self.tables().metadata;
        self.bounded("GetItem", t, self.inner.get_shard_cache())
            .await
    }

    async fn put_shard_cache(&self, cache: &ShardCache) -> Result<()> {
        let t = &self.tables().metadata;
        self.bounded("PutItem", t, self.inner.put_shard_cache(cache))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store whose every call hangs.
    struct Hung(TableNames);

    async fn hang<T>() -> Result<T> {
        std::future::pending().await
    }

    #[async_trait]
    impl CoordinationStore for Hung {
        fn tables(&self) -> &TableNames {
            &self.0
        }
        async fn create_tables(&self, _: Billing, _: Duration) -> Result<()> {
            hang().await
        }
        async fn delete_tables(&self, _: Duration) -> Result<()> {
            hang().await
        }
        async fn check_tables(&self) -> Result<()> {
            hang().await
        }
        async fn put_client(&self, _: &ClientRow) -> Result<()> {
            hang().await
        }
        async fn delete_client(&self, _: &ClientId) -> Result<()> {
            hang().await
        }
        async fn reap_client(&self, _: &ClientId, _: i64) -> Result<bool> {
            hang().await
        }
        async fn list_clients(&self) -> Result<Vec<ClientRow>> {
            hang().await
        }
        async fn list_checkpoints(&self) -> Result<Vec<CheckpointRow>> {
            hang().await
        }
        async fn get_checkpoint(&self, _: &ShardId) -> Result<Option<CheckpointRow>> {
            hang().await
        }
        async fn capture_lease(
            &self,
            _: LeaseWrite<'_>,
            _: Option<(&ClientId, i64)>,
        ) -> Result<Option<CheckpointRow>> {
            hang().await
        }
        async fn commit_lease(
            &self,
            _: LeaseWrite<'_>,
            _: Option<&Position>,
            _: bool,
        ) -> Result<bool> {
            hang().await
        }
        async fn release_lease(&self, _: LeaseWrite<'_>, _: Option<&Position>) -> Result<bool> {
            hang().await
        }
        async fn get_leader(&self) -> Result<Option<LeaderRow>> {
            hang().await
        }
        async fn claim_leadership(&self, _: &ClientId, _: &str, _: i64, _: i64) -> Result<bool> {
            hang().await
        }
        async fn release_leadership(&self, _: &ClientId, _: i64) -> Result<()> {
            hang().await
        }
        async fn get_shard_cache(&self) -> Result<Option<ShardCache>> {
            hang().await
        }
        async fn put_shard_cache(&self, _: &ShardCache) -> Result<()> {
            hang().await
        }
    }

    /// The text of the error a call ended with; panics if it succeeded.
    fn text<T: std::fmt::Debug>(result: Result<T>) -> String {
        result.expect_err("a hung call times out").to_string()
    }

    #[tokio::test(start_paused = true)]
    async fn a_timed_out_call_names_its_operation_and_table() {
        let store = Timed::new(
            Arc::new(Hung(TableNames::for_app("myapp"))),
            Duration::from_secs(1),
        );
        let me = ClientId::new("me");
        let shard = ShardId::new("shardId-000000000000");
        let lease = || LeaseWrite {
            shard: &shard,
            owner: &me,
            owner_name: "me",
            now: 1,
        };
        let row = ClientRow {
            id: me.clone(),
            name: "me".into(),
            last_update: 1,
            read_mode: None,
        };
        let on = |operation: &str, table: &str| {
            format!(
                "DynamoDB {operation} on table \"{table}\" failed: Transient: no answer within 1s"
            )
        };
        let (clients, checkpoints, metadata) =
            ("myapp_clients", "myapp_checkpoints", "myapp_metadata");
        let cases = [
            (
                text(store.check_tables().await),
                on(
                    "DescribeTable",
                    "myapp_clients, myapp_checkpoints, myapp_metadata",
                ),
            ),
            (text(store.put_client(&row).await), on("PutItem", clients)),
            (
                text(store.delete_client(&me).await),
                on("DeleteItem", clients),
            ),
            (
                text(store.reap_client(&me, 0).await),
                on("DeleteItem", clients),
            ),
            (text(store.list_clients().await), on("Scan", clients)),
            (
                text(store.list_checkpoints().await),
                on("Scan", checkpoints),
            ),
            (
                text(store.get_checkpoint(&shard).await),
                on("GetItem", checkpoints),
            ),
            (
                text(store.capture_lease(lease(), Some((&me, 0))).await),
                on("UpdateItem", checkpoints),
            ),
            (
                text(store.commit_lease(lease(), None, false).await),
                on("UpdateItem", checkpoints),
            ),
            (
                text(store.release_lease(lease(), None).await),
                on("UpdateItem", checkpoints),
            ),
            (text(store.get_leader().await), on("GetItem", metadata)),
            (
                text(store.claim_leadership(&me, "me", 1, 0).await),
                on("PutItem", metadata),
            ),
            (
                text(store.release_leadership(&me, 1).await),
                on("UpdateItem", metadata),
            ),
            (text(store.get_shard_cache().await), on("GetItem", metadata)),
            (
                text(store.put_shard_cache(&ShardCache::default()).await),
                on("PutItem", metadata),
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }
}
