//! An in-memory coordination store with the same conditional semantics as the
//! DynamoDB one: for the embedded demo and for tests. Clones share the state,
//! as processes share DynamoDB.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use super::schema::TableNames;
use super::{CheckpointRow, ClientRow, CoordinationStore, LeaderRow, LeaseWrite, ShardCache};
use crate::config::Billing;
use crate::error::{Error, Result, ServiceError, ServiceErrorKind};
use crate::record::{ClientId, Position, ShardId};

/// The in-memory store of one application.
#[derive(Clone)]
pub struct MemoryStore {
    tables: TableNames,
    inner: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    exists: bool,
    unavailable: bool,
    clients: BTreeMap<ClientId, ClientRow>,
    checkpoints: BTreeMap<ShardId, CheckpointRow>,
    leader: Option<LeaderRow>,
    cache: Option<ShardCache>,
}

impl MemoryStore {
    /// An empty store for application `app` (its tables do not exist yet).
    pub fn new(app: &str) -> Self {
        MemoryStore {
            tables: TableNames::for_app(app),
            inner: Arc::default(),
        }
    }

    /// While `true`, every call fails as if DynamoDB were unreachable.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.lock().unavailable = unavailable;
    }

    /// Writes a checkpoint row as is (e.g. one left by the Go library).
    pub fn put_checkpoint_row(&self, row: CheckpointRow) {
        self.lock().checkpoints.insert(row.shard.clone(), row);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn open(&self, operation: &'static str, table: &str) -> Result<MutexGuard<'_, State>> {
        let state = self.lock();
        if state.unavailable {
            return Err(Error::Store {
                operation,
                table: table.to_string(),
                source: ServiceError::new(ServiceErrorKind::Transient, "store unavailable"),
            });
        }
        if !state.exists {
            return Err(Error::TablesMissing {
                tables: self.tables.all().iter().map(|t| t.to_string()).collect(),
            });
        }
        Ok(state)
    }
}

fn set_position(row: &mut CheckpointRow, position: Option<&Position>) {
    if let Some(p) = position {
        row.position = Some(p.clone());
    }
}

#[async_trait]
impl CoordinationStore for MemoryStore {
    fn tables(&self) -> &TableNames {
        &self.tables
    }

    async fn create_tables(&self, _billing: Billing, _waiter_delay: Duration) -> Result<()> {
        self.lock().exists = true;
        Ok(())
    }

    async fn delete_tables(&self, _waiter_delay: Duration) -> Result<()> {
        let mut state = self.lock();
        *state = State::default();
        Ok(())
    }

    async fn check_tables(&self) -> Result<()> {
        self.open("DescribeTable", &self.tables.clients).map(|_| ())
    }

    async fn put_client(&self, row: &ClientRow) -> Result<()> {
        let mut state = self.open("PutItem", &self.tables.clients)?;
        state.clients.insert(row.id.clone(), row.clone());
        Ok(())
    }

    async fn delete_client(&self, id: &ClientId) -> Result<()> {
        let mut state = self.open("DeleteItem", &self.tables.clients)?;
        state.clients.remove(id);
        Ok(())
    }

    async fn reap_client(&self, id: &ClientId, cutoff: i64) -> Result<bool> {
        let mut state = self.open("DeleteItem", &self.tables.clients)?;
        if state
            .clients
            .get(id)
            .is_some_and(|c| c.last_update < cutoff)
        {
            state.clients.remove(id);
            return Ok(true);
        }
        Ok(false)
    }

    async fn list_clients(&self) -> Result<Vec<ClientRow>> {
        let state = self.open("Scan", &self.tables.clients)?;
        Ok(state.clients.values().cloned().collect())
    }

    async fn list_checkpoints(&self) -> Result<Vec<CheckpointRow>> {
        let state = self.open("Scan", &self.tables.checkpoints)?;
        Ok(state.checkpoints.values().cloned().collect())
    }

    async fn get_checkpoint(&self, shard: &ShardId) -> Result<Option<CheckpointRow>> {
        let state = self.open("GetItem", &self.tables.checkpoints)?;
        Ok(state.checkpoints.get(shard).cloned())
    }

    async fn capture_lease(
        &self,
        lease: LeaseWrite<'_>,
        expired_owner: Option<(&ClientId, i64)>,
    ) -> Result<Option<CheckpointRow>> {
        let mut state = self.open("UpdateItem", &self.tables.checkpoints)?;
        let row = state
            .checkpoints
            .entry(lease.shard.clone())
            .or_insert_with(|| CheckpointRow {
                shard: lease.shard.clone(),
                position: None,
                last_update: lease.now,
                owner_id: None,
                owner_name: None,
                finished: None,
            });
        let free = match &row.owner_id {
            None => true,
            Some(owner) if owner == lease.owner => true,
            Some(owner) => expired_owner.is_some_and(|(o, lu)| o == owner && lu == row.last_update),
        };
        if !free || row.finished.is_some() {
            return Ok(None);
        }
        row.owner_id = Some(lease.owner.clone());
        row.owner_name = Some(lease.owner_name.to_string());
        row.last_update = lease.now;
        Ok(Some(row.clone()))
    }

    async fn commit_lease(
        &self,
        lease: LeaseWrite<'_>,
        position: Option<&Position>,
        finished: bool,
    ) -> Result<bool> {
        let mut state = self.open("UpdateItem", &self.tables.checkpoints)?;
        match state.checkpoints.get_mut(lease.shard) {
            Some(row) if row.owner_id.as_ref() == Some(lease.owner) => {
                set_position(row, position);
                row.last_update = lease.now;
                if finished {
                    row.finished = Some(lease.now);
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_lease(
        &self,
        lease: LeaseWrite<'_>,
        position: Option<&Position>,
    ) -> Result<bool> {
        let mut state = self.open("UpdateItem", &self.tables.checkpoints)?;
        match state.checkpoints.get_mut(lease.shard) {
            Some(row) if row.owner_id.as_ref() == Some(lease.owner) => {
                set_position(row, position);
                row.last_update = lease.now;
                row.owner_id = None;
                row.owner_name = None;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn get_leader(&self) -> Result<Option<LeaderRow>> {
        let state = self.open("GetItem", &self.tables.metadata)?;
        Ok(state.leader.clone())
    }

    async fn claim_leadership(
        &self,
        id: &ClientId,
        name: &str,
        now: i64,
        cutoff: i64,
    ) -> Result<bool> {
        let mut state = self.open("PutItem", &self.tables.metadata)?;
        let may = match &state.leader {
            None => true,
            Some(l) => l.id.is_none() || l.id.as_ref() == Some(id) || l.last_update <= cutoff,
        };
        if may {
            state.leader = Some(LeaderRow {
                id: Some(id.clone()),
                name: Some(name.to_string()),
                last_update: now,
            });
        }
        Ok(may)
    }

    async fn release_leadership(&self, id: &ClientId, now: i64) -> Result<()> {
        let mut state = self.open("UpdateItem", &self.tables.metadata)?;
        if let Some(l) = state.leader.as_mut() {
            if l.id.as_ref() == Some(id) {
                l.id = None;
                l.last_update = now;
            }
        }
        Ok(())
    }

    async fn get_shard_cache(&self) -> Result<Option<ShardCache>> {
        let state = self.open("GetItem", &self.tables.metadata)?;
        Ok(state.cache.clone())
    }

    async fn put_shard_cache(&self, cache: &ShardCache) -> Result<()> {
        let mut state = self.open("PutItem", &self.tables.metadata)?;
        state.cache = Some(cache.clone());
        Ok(())
    }
}
