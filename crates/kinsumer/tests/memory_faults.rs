//! Faults the emulators cannot produce, on the in-memory backends in virtual
//! time: the coordination store unreachable for several leases, a reader
//! task that panics, and `run()` against a service that never answers (timed
//! exactly, which only virtual time allows).

mod harness;

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use harness::{put_numbered as put, Log, Running};
use kinsumer::kinesis::memory::{MemoryKinesis, Operation};
use kinsumer::kinesis::{
    KinesisTransport, PutEntry, PutOutcome, RecordsPage, ShardDescription, StartingPosition,
};
use kinsumer::store::memory::MemoryStore;
use kinsumer::store::schema::TableNames;
use kinsumer::store::{
    CheckpointRow, ClientRow, CoordinationStore, LeaderRow, LeaseWrite, ShardCache,
};
use kinsumer::{
    Billing, ClientId, Config, Error, Kinsumer, Position, ServiceError, ServiceErrorKind, ShardId,
};
use tokio::time::Instant;

fn config() -> Config {
    Config::new()
        .with_shard_check_frequency(Duration::from_millis(500))
        .with_leader_action_frequency(Duration::from_millis(500))
        .with_commit_frequency(Duration::from_millis(200))
        .with_lease_duration(Duration::from_secs(2))
        .with_call_timeout(Duration::from_secs(1))
}

async fn world(shards: usize) -> (MemoryKinesis, MemoryStore) {
    let kinesis = MemoryKinesis::new();
    kinesis.create_stream("s", shards);
    let store = MemoryStore::new("app");
    store
        .create_tables(Billing::OnDemand, Duration::from_millis(1))
        .await
        .expect("tables");
    (kinesis, store)
}

#[tokio::test(start_paused = true)]
async fn the_cluster_recovers_after_the_store_is_unreachable_for_several_leases() {
    let (kinesis, store) = world(4).await;
    let log = Log::default();
    let mut running = Vec::new();
    for name in ["a", "b"] {
        let mut k = Kinsumer::with_backends(
            Arc::new(kinesis.clone()),
            Arc::new(store.clone()),
            "s",
            name,
            config(),
        )
        .expect("build");
        k.run().await.expect("run");
        running.push(Running::start(k, log.clone()));
    }
    let mut expected = put(&kinesis, 0, 200);
    assert!(log.wait_distinct(200, Duration::from_secs(20)).await);
    store.set_unavailable(true);
    expected.extend(put(&kinesis, 200, 200));
    tokio::time::sleep(Duration::from_secs(10)).await;
    // Heartbeats fail, so the leases lapse by the local clock: nothing more is
    // handed out than what could be delivered while they were valid.
    store.set_unavailable(false);
    expected.extend(put(&kinesis, 400, 200));
    assert!(
        log.wait_distinct(600, Duration::from_secs(30)).await,
        "delivered {} of 600 after the store came back",
        log.distinct()
    );
    assert!(log.missing(&expected).is_empty());
    assert_eq!(log.order_violations(), 0);
    for r in running {
        r.stop().await;
    }
}

/// A transport whose GetRecords panics a given number of times.
struct Panicky {
    inner: MemoryKinesis,
    panics_left: AtomicU32,
}

#[async_trait]
impl KinesisTransport for Panicky {
    async fn describe_stream(&self, stream: &str) -> Result<(), ServiceError> {
        self.inner.describe_stream(stream).await
    }
    async fn list_shards(&self, stream: &str) -> Result<Vec<ShardDescription>, ServiceError> {
        self.inner.list_shards(stream).await
    }
    async fn shard_iterator(
        &self,
        stream: &str,
        shard: &ShardId,
        from: &StartingPosition,
    ) -> Result<String, ServiceError> {
        self.inner.shard_iterator(stream, shard, from).await
    }
    async fn get_records(&self, iterator: &str, limit: u32) -> Result<RecordsPage, ServiceError> {
        let left = self.panics_left.load(Ordering::SeqCst);
        if left > 0
            && self
                .panics_left
                .compare_exchange(left, left - 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            panic!("injected reader panic");
        }
        self.inner.get_records(iterator, limit).await
    }
    async fn put_records(
        &self,
        stream: &str,
        entries: Vec<PutEntry>,
    ) -> Result<Vec<PutOutcome>, ServiceError> {
        self.inner.put_records(stream, entries).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_reader_that_panics_is_restarted_and_its_shard_fully_delivered() {
    let (kinesis, store) = world(2).await;
    let expected = put(&kinesis, 0, 300);
    let transport = Panicky {
        inner: kinesis.clone(),
        panics_left: AtomicU32::new(3),
    };
    let mut k = Kinsumer::with_backends(
        Arc::new(transport),
        Arc::new(store.clone()),
        "s",
        "a",
        config(),
    )
    .expect("build");
    k.run().await.expect("run");
    let log = Log::default();
    let a = Running::start(k, log.clone());
    assert!(
        log.wait_distinct(300, Duration::from_secs(30)).await,
        "delivered {}",
        log.distinct()
    );
    assert!(log.missing(&expected).is_empty());
    assert_eq!(log.duplicates(), 0);
    a.stop().await;
}

// --- run() against a service that never answers -----------------------------------------------

/// A call that never answers: a connection accepted and never served.
async fn silence<T>() -> T {
    std::future::pending().await
}

/// A transport whose DescribeStreamSummary never answers.
struct SilentKinesis(MemoryKinesis);

#[async_trait]
impl KinesisTransport for SilentKinesis {
    async fn describe_stream(&self, _: &str) -> Result<(), ServiceError> {
        silence().await
    }
    async fn list_shards(&self, stream: &str) -> Result<Vec<ShardDescription>, ServiceError> {
        self.0.list_shards(stream).await
    }
    async fn shard_iterator(
        &self,
        stream: &str,
        shard: &ShardId,
        from: &StartingPosition,
    ) -> Result<String, ServiceError> {
        self.0.shard_iterator(stream, shard, from).await
    }
    async fn get_records(&self, iterator: &str, limit: u32) -> Result<RecordsPage, ServiceError> {
        self.0.get_records(iterator, limit).await
    }
    async fn put_records(
        &self,
        stream: &str,
        entries: Vec<PutEntry>,
    ) -> Result<Vec<PutOutcome>, ServiceError> {
        self.0.put_records(stream, entries).await
    }
}

/// A store that never answers the operations named in `silent` (by trait method) and passes
/// the others to a memory store.
struct SilentStore {
    inner: MemoryStore,
    silent: &'static [&'static str],
}

impl SilentStore {
    async fn call<T>(
        &self,
        method: &str,
        call: impl Future<Output = kinsumer::Result<T>>,
    ) -> kinsumer::Result<T> {
        if self.silent.contains(&method) {
            silence().await
        } else {
            call.await
        }
    }
}

#[async_trait]
impl CoordinationStore for SilentStore {
    fn tables(&self) -> &TableNames {
        self.inner.tables()
    }
    async fn create_tables(&self, billing: Billing, delay: Duration) -> kinsumer::Result<()> {
        self.call("create_tables", self.inner.create_tables(billing, delay))
            .await
    }
    async fn delete_tables(&self, delay: Duration) -> kinsumer::Result<()> {
        self.call("delete_tables", self.inner.delete_tables(delay))
            .await
    }
    async fn check_tables(&self) -> kinsumer::Result<()> {
        self.call("check_tables", self.inner.check_tables()).await
    }
    async fn put_client(&self, row: &ClientRow) -> kinsumer::Result<()> {
        self.call("put_client", self.inner.put_client(row)).await
    }
    async fn delete_client(&self, id: &ClientId) -> kinsumer::Result<()> {
        self.call("delete_client", self.inner.delete_client(id))
            .await
    }
    async fn reap_client(&self, id: &ClientId, cutoff: i64) -> kinsumer::Result<bool> {
        self.call("reap_client", self.inner.reap_client(id, cutoff))
            .await
    }
    async fn list_clients(&self) -> kinsumer::Result<Vec<ClientRow>> {
        self.call("list_clients", self.inner.list_clients()).await
    }
    async fn list_checkpoints(&self) -> kinsumer::Result<Vec<CheckpointRow>> {
        self.call("list_checkpoints", self.inner.list_checkpoints())
            .await
    }
    async fn get_checkpoint(&self, shard: &ShardId) -> kinsumer::Result<Option<CheckpointRow>> {
        self.call("get_checkpoint", self.inner.get_checkpoint(shard))
            .await
    }
    async fn capture_lease(
        &self,
        lease: LeaseWrite<'_>,
        expired_owner: Option<(&ClientId, i64)>,
    ) -> kinsumer::Result<Option<CheckpointRow>> {
        self.call(
            "capture_lease",
            self.inner.capture_lease(lease, expired_owner),
        )
        .await
    }
    async fn commit_lease(
        &self,
        lease: LeaseWrite<'_>,
        position: Option<&Position>,
        finished: bool,
    ) -> kinsumer::Result<bool> {
        self.call(
            "commit_lease",
            self.inner.commit_lease(lease, position, finished),
        )
        .await
    }
    async fn release_lease(
        &self,
        lease: LeaseWrite<'_>,
        position: Option<&Position>,
    ) -> kinsumer::Result<bool> {
        self.call("release_lease", self.inner.release_lease(lease, position))
            .await
    }
    async fn get_leader(&self) -> kinsumer::Result<Option<LeaderRow>> {
        self.call("get_leader", self.inner.get_leader()).await
    }
    async fn claim_leadership(
        &self,
        id: &ClientId,
        name: &str,
        now: i64,
        cutoff: i64,
    ) -> kinsumer::Result<bool> {
        self.call(
            "claim_leadership",
            self.inner.claim_leadership(id, name, now, cutoff),
        )
        .await
    }
    async fn release_leadership(&self, id: &ClientId, now: i64) -> kinsumer::Result<()> {
        self.call("release_leadership", self.inner.release_leadership(id, now))
            .await
    }
    async fn get_shard_cache(&self) -> kinsumer::Result<Option<ShardCache>> {
        self.call("get_shard_cache", self.inner.get_shard_cache())
            .await
    }
    async fn put_shard_cache(&self, cache: &ShardCache) -> kinsumer::Result<()> {
        self.call("put_shard_cache", self.inner.put_shard_cache(cache))
            .await
    }
}

/// Runs a consumer over `transport` and `store`; returns how long (in virtual time) `run()`
/// took and what it failed with.
async fn failed_run(
    transport: Arc<dyn KinesisTransport>,
    store: Arc<dyn CoordinationStore>,
    config: Config,
) -> (Duration, Error) {
    let mut k = Kinsumer::with_backends(transport, store, "s", "a", config).expect("build");
    let started = Instant::now();
    let result = k.run().await;
    let took = started.elapsed();
    k.stop().await;
    match result {
        Ok(()) => panic!("run() succeeded against a service that never answers"),
        Err(e) => (took, e),
    }
}

/// Each pre-flight check of `run()` (the stream, the tables, this client's first row) gives up
/// on a silent service after min(call timeout, 4 s), not after the whole call timeout, with an
/// error that names the service, the call and what to check.
#[tokio::test(start_paused = true)]
async fn run_fails_within_the_preflight_bound_when_a_service_never_answers() {
    let (kinesis, store) = world(1).await;
    let memory = || -> Arc<dyn KinesisTransport> { Arc::new(kinesis.clone()) };
    let silent_store = |silent| -> Arc<dyn CoordinationStore> {
        Arc::new(SilentStore {
            inner: store.clone(),
            silent,
        })
    };
    let default = Config::new();
    // The default call timeout is 10 s.
    let short = Config::new().with_call_timeout(Duration::from_secs(2));
    // (case, transport, store, config, service, operation, bound)
    let cases = [
        (
            "Kinesis silent, default call timeout",
            Arc::new(SilentKinesis(kinesis.clone())) as Arc<dyn KinesisTransport>,
            silent_store(&[]),
            default.clone(),
            "Kinesis",
            "DescribeStreamSummary",
            Duration::from_secs(4),
        ),
        (
            "DynamoDB tables check silent, default call timeout",
            memory(),
            silent_store(&["check_tables"]),
            default.clone(),
            "DynamoDB",
            "DescribeTable",
            Duration::from_secs(4),
        ),
        (
            "DynamoDB client row silent, default call timeout",
            memory(),
            silent_store(&["put_client"]),
            default.clone(),
            "DynamoDB",
            "PutItem",
            Duration::from_secs(4),
        ),
        // A call timeout shorter than 4 s is the bound (the store's own timeout fires at the
        // same instant and comes out as the same error).
        (
            "Kinesis silent, 2 s call timeout",
            Arc::new(SilentKinesis(kinesis.clone())) as Arc<dyn KinesisTransport>,
            silent_store(&[]),
            short.clone(),
            "Kinesis",
            "DescribeStreamSummary",
            Duration::from_secs(2),
        ),
        (
            "DynamoDB tables check silent, 2 s call timeout",
            memory(),
            silent_store(&["check_tables"]),
            short.clone(),
            "DynamoDB",
            "DescribeTable",
            Duration::from_secs(2),
        ),
    ];
    for (case, transport, store, config, want_service, want_operation, bound) in cases {
        let (took, error) = failed_run(transport, store, config).await;
        assert_eq!(took, bound, "{case}: run() failed after {took:?}: {error}");
        let text = error.to_string();
        match error {
            Error::Unreachable {
                service,
                operation,
                source,
                ..
            } => {
                assert_eq!(
                    (service, operation),
                    (want_service, want_operation),
                    "{case}: {text}"
                );
                assert_eq!(source.kind, ServiceErrorKind::Transient, "{case}: {text}");
            }
            other => panic!("{case}: expected Error::Unreachable, got {other:?}"),
        }
        assert_eq!(text.lines().count(), 1, "{case}: one line: {text}");
        for what in [
            "check the endpoint URL, the region",
            "network",
            want_service,
        ] {
            assert!(
                text.contains(what),
                "{case}: {text:?} does not mention {what:?}"
            );
        }
    }
    // The stream check names the stream; a table check names the tables.
    let (_, e) = failed_run(
        Arc::new(SilentKinesis(kinesis.clone())),
        silent_store(&[]),
        Config::new(),
    )
    .await;
    assert!(e.to_string().contains("stream \"s\""), "{e}");
    let (_, e) = failed_run(memory(), silent_store(&["put_client"]), Config::new()).await;
    assert!(e.to_string().contains("table \"app_clients\""), "{e}");
}

/// A service that answers at once with a connection-level failure is reported the same way,
/// at once; one that answers "not found" keeps its own error.
#[tokio::test(start_paused = true)]
async fn run_reports_a_failing_connection_as_unreachable_and_a_missing_stream_as_missing() {
    let (kinesis, store) = world(1).await;
    kinesis.inject_failures(Operation::DescribeStream, ServiceErrorKind::Transient, 1);
    let (took, e) = failed_run(
        Arc::new(kinesis.clone()),
        Arc::new(store.clone()),
        Config::new(),
    )
    .await;
    assert_eq!(took, Duration::ZERO, "{e}");
    assert!(
        matches!(
            e,
            Error::Unreachable {
                service: "Kinesis",
                ..
            }
        ),
        "{e:?}"
    );

    store.set_unavailable(true);
    let (took, e) = failed_run(
        Arc::new(kinesis.clone()),
        Arc::new(store.clone()),
        Config::new(),
    )
    .await;
    store.set_unavailable(false);
    assert_eq!(took, Duration::ZERO, "{e}");
    assert!(
        matches!(
            e,
            Error::Unreachable {
                service: "DynamoDB",
                operation: "DescribeTable",
                ..
            }
        ),
        "{e:?}"
    );

    kinesis.delete_stream("s");
    let (_, e) = failed_run(Arc::new(kinesis), Arc::new(store), Config::new()).await;
    assert!(matches!(e, Error::NoSuchStream { .. }), "{e:?}");
}
