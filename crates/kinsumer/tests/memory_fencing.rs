//! A client frozen past its lease (its coordination calls hang, its caller
//! stops asking) must, once it resumes, hand out nothing from the shards
//! another client took over meanwhile — nor from a shard whose takeover was
//! decided while it looked dead and lands after it came back. A client whose
//! heartbeats hang on dead connections, but would land on a fresh one, keeps
//! its leases.

mod harness;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use harness::{put_numbered as put, Log, Running};
use kinsumer::kinesis::memory::MemoryKinesis;
use kinsumer::record::{ClientId, Position, ShardId};
use kinsumer::store::memory::MemoryStore;
use kinsumer::store::schema::TableNames;
use kinsumer::store::{
    CheckpointRow, ClientRow, CoordinationStore, LeaderRow, LeaseWrite, ShardCache,
};
use kinsumer::{AckMode, Billing, Config, Kinsumer, Record, Result};

/// A view of a shared store whose calls hang while frozen, and whose lease
/// captures, once decided, wait while captures are held.
#[derive(Clone)]
struct Freezable {
    inner: MemoryStore,
    frozen: Arc<AtomicBool>,
    hold_captures: Arc<AtomicBool>,
    /// Captures waiting while held.
    held: Arc<AtomicUsize>,
    /// Whether each capture that reached the store took the lease.
    captured: Arc<Mutex<Vec<bool>>>,
    /// While above zero, each client write takes one and never answers (a
    /// request on a pooled connection a middlebox silently forgot).
    dead_puts: Arc<AtomicUsize>,
}

impl Freezable {
    fn new(inner: MemoryStore) -> Self {
        Freezable {
            inner,
            frozen: Arc::default(),
            hold_captures: Arc::default(),
            held: Arc::default(),
            captured: Arc::default(),
            dead_puts: Arc::default(),
        }
    }

    async fn gate(&self) {
        while self.frozen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn captured(&self) -> Vec<bool> {
        self.captured.lock().expect("captured").clone()
    }
}

#[async_trait]
impl CoordinationStore for Freezable {
    fn tables(&self) -> &TableNames {
        self.inner.tables()
    }
    async fn create_tables(&self, b: Billing, d: Duration) -> Result<()> {
        self.gate().await;
        self.inner.create_tables(b, d).await
    }
    async fn delete_tables(&self, d: Duration) -> Result<()> {
        self.gate().await;
        self.inner.delete_tables(d).await
    }
    async fn check_tables(&self) -> Result<()> {
        self.gate().await;
        self.inner.check_tables().await
    }
    async fn put_client(&self, row: &ClientRow) -> Result<()> {
        self.gate().await;
        let dead = self
            .dead_puts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if dead.is_ok() {
            std::future::pending::<()>().await;
        }
        self.inner.put_client(row).await
    }
    async fn delete_client(&self, id: &ClientId) -> Result<()> {
        self.gate().await;
        self.inner.delete_client(id).await
    }
    async fn reap_client(&self, id: &ClientId, cutoff: i64) -> Result<bool> {
        self.gate().await;
        self.inner.reap_client(id, cutoff).await
    }
    async fn list_clients(&self) -> Result<Vec<ClientRow>> {
        self.gate().await;
        self.inner.list_clients().await
    }
    async fn list_checkpoints(&self) -> Result<Vec<CheckpointRow>> {
        self.gate().await;
        self.inner.list_checkpoints().await
    }
    async fn get_checkpoint(&self, shard: &ShardId) -> Result<Option<CheckpointRow>> {
        self.gate().await;
        self.inner.get_checkpoint(shard).await
    }
    async fn capture_lease(
        &self,
        lease: LeaseWrite<'_>,
        expired: Option<(&ClientId, i64)>,
    ) -> Result<Option<CheckpointRow>> {
        self.gate().await;
        if self.hold_captures.load(Ordering::SeqCst) {
            self.held.fetch_add(1, Ordering::SeqCst);
            while self.hold_captures.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            self.held.fetch_sub(1, Ordering::SeqCst);
        }
        let result = self.inner.capture_lease(lease, expired).await;
        if let Ok(row) = &result {
            self.captured.lock().expect("captured").push(row.is_some());
        }
        result
    }
    async fn commit_lease(
        &self,
        lease: LeaseWrite<'_>,
        p: Option<&Position>,
        finished: bool,
    ) -> Result<bool> {
        self.gate().await;
        self.inner.commit_lease(lease, p, finished).await
    }
    async fn release_lease(&self, lease: LeaseWrite<'_>, p: Option<&Position>) -> Result<bool> {
        self.gate().await;
        self.inner.release_lease(lease, p).await
    }
    async fn get_leader(&self) -> Result<Option<LeaderRow>> {
        self.gate().await;
        self.inner.get_leader().await
    }
    async fn claim_leadership(&self, id: &ClientId, n: &str, now: i64, cut: i64) -> Result<bool> {
        self.gate().await;
        self.inner.claim_leadership(id, n, now, cut).await
    }
    async fn release_leadership(&self, id: &ClientId, now: i64) -> Result<()> {
        self.gate().await;
        self.inner.release_leadership(id, now).await
    }
    async fn get_shard_cache(&self) -> Result<Option<ShardCache>> {
        self.gate().await;
        self.inner.get_shard_cache().await
    }
    async fn put_shard_cache(&self, c: &ShardCache) -> Result<()> {
        self.gate().await;
        self.inner.put_shard_cache(c).await
    }
}

fn config() -> Config {
    Config::new()
        .with_shard_check_frequency(Duration::from_millis(500))
        .with_leader_action_frequency(Duration::from_millis(500))
        .with_commit_frequency(Duration::from_millis(200))
        .with_lease_duration(Duration::from_secs(2))
        .with_call_timeout(Duration::from_secs(30))
}

#[tokio::test(start_paused = true)]
async fn a_frozen_client_delivers_nothing_from_shards_lost_while_frozen() {
    let kinesis = MemoryKinesis::new();
    kinesis.create_stream("s", 4);
    let shared = MemoryStore::new("app");
    shared
        .create_tables(Billing::OnDemand, Duration::from_millis(1))
        .await
        .expect("tables");
    let frozen = Arc::new(AtomicBool::new(false));
    let store_a = Freezable {
        frozen: Arc::clone(&frozen),
        ..Freezable::new(shared.clone())
    };
    let mut a = Kinsumer::with_backends(
        Arc::new(kinesis.clone()),
        Arc::new(store_a),
        "s",
        "a",
        config(),
    )
    .expect("build");
    a.run().await.expect("run");
    let log = Log::default();
    let mut b = Kinsumer::with_backends(
        Arc::new(kinesis.clone()),
        Arc::new(shared.clone()),
        "s",
        "b",
        config(),
    )
    .expect("build");
    b.run().await.expect("run");
    let b = Running::start(b, log.clone());

    let mut expected = put(&kinesis, 0, 200);
    // a consumes its share until everything so far is delivered.
    let mut a_before = Vec::new();
    while log.distinct() + a_before.len() < 200 {
        if let Ok(Some(Ok(r))) = tokio::time::timeout(Duration::from_millis(50), a.next()).await {
            a_before.push(String::from_utf8_lossy(&r.data).into_owned());
        }
    }
    assert!(!a_before.is_empty(), "a held shards before freezing");

    // Freeze a: its coordination calls hang and its caller stops asking. Its
    // readers keep fetching new records into its buffer meanwhile.
    frozen.store(true, Ordering::SeqCst);
    expected.extend(put(&kinesis, 200, 200));
    tokio::time::sleep(Duration::from_secs(8)).await;
    // b took every shard over meanwhile.
    let rows = shared.list_checkpoints().await.expect("rows");
    assert!(
        rows.iter().all(|r| r.owner_name.as_deref() == Some("b")),
        "{rows:?}"
    );

    // Thaw a and let it run: it must hand out nothing more.
    frozen.store(false, Ordering::SeqCst);
    let mut a_after = Vec::new();
    let end = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < end {
        if let Ok(Some(Ok(r))) = tokio::time::timeout(Duration::from_millis(100), a.next()).await {
            a_after.push(String::from_utf8_lossy(&r.data).into_owned());
        }
    }
    assert!(
        a_after.is_empty(),
        "a delivered {} records from lost shards after thawing",
        a_after.len()
    );

    assert!(
        log.wait_distinct(400 - a_before.len(), Duration::from_secs(20))
            .await
    );
    let delivered: HashSet<String> = log
        .snapshot()
        .into_iter()
        .map(|s| s.data)
        .chain(a_before.iter().cloned())
        .collect();
    let missing: Vec<&String> = expected
        .iter()
        .filter(|e| !delivered.contains(*e))
        .collect();
    assert!(missing.is_empty(), "lost {} records", missing.len());
    a.stop().await;
    b.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_store_call_that_never_answers_fails_naming_its_table() {
    let kinesis = MemoryKinesis::new();
    kinesis.create_stream("s", 1);
    let shared = MemoryStore::new("myapp");
    shared
        .create_tables(Billing::OnDemand, Duration::from_millis(1))
        .await
        .expect("tables");
    let store = Freezable::new(shared);
    store.frozen.store(true, Ordering::SeqCst);
    let mut k = Kinsumer::with_backends(
        Arc::new(kinesis),
        Arc::new(store),
        "s",
        "a",
        config().with_call_timeout(Duration::from_secs(2)),
    )
    .expect("build");
    let error = k.run().await.expect_err("the store never answers");
    assert_eq!(
        error.to_string(),
        "cannot reach DynamoDB: DescribeTable on table \"myapp_clients, myapp_checkpoints, \
         myapp_metadata\" failed (Transient: no answer within 2s); check the endpoint URL, the \
         region, and that the network (proxy, firewall, VPC endpoint) lets this host reach \
         DynamoDB"
    );
    // Calls made through the consumer's store are bounded and named alike.
    let error = k
        .store()
        .list_checkpoints()
        .await
        .expect_err("the store never answers");
    assert_eq!(
        error.to_string(),
        "DynamoDB Scan on table \"myapp_checkpoints\" failed: Transient: no answer within 2s"
    );
}

/// The next record `k` hands out within `limit`, if any.
async fn next_within(k: &mut Kinsumer, limit: Duration) -> Option<Record> {
    match tokio::time::timeout(limit, k.next()).await {
        Ok(Some(Ok(record))) => Some(record),
        _ => None,
    }
}

/// Waits until `done` holds, checking every 10 ms; panics after `limit`.
async fn until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// b judges a dead and decides to take its shard over; before b's capture
/// reaches the store, a comes back and re-validates its lease. The capture was
/// decided on rows that no longer hold, so it must not land: otherwise a hands
/// out records of a shard b owns until a's next shard check.
#[tokio::test(start_paused = true)]
async fn a_takeover_decided_before_the_owner_came_back_does_not_land() {
    let kinesis = MemoryKinesis::new();
    kinesis.create_stream("s", 1);
    let shared = MemoryStore::new("app");
    shared
        .create_tables(Billing::OnDemand, Duration::from_millis(1))
        .await
        .expect("tables");
    // Manual acks, and a acks nothing: it never commits, so only captures
    // (and whatever re-validation writes) change the lease row.
    let config = || config().with_ack_mode(AckMode::Manual);
    let store_a = Freezable::new(shared.clone());
    let mut a = Kinsumer::with_backends(
        Arc::new(kinesis.clone()),
        Arc::new(store_a.clone()),
        "s",
        "a",
        config(),
    )
    .expect("build");
    a.run().await.expect("run");
    put(&kinesis, 0, 100);
    let first = next_within(&mut a, Duration::from_secs(10))
        .await
        .expect("a takes the shard and hands a record out");
    let shard = first.shard_id.clone();

    let store_b = Freezable::new(shared.clone());
    store_b.hold_captures.store(true, Ordering::SeqCst);
    let mut b = Kinsumer::with_backends(
        Arc::new(kinesis.clone()),
        Arc::new(store_b.clone()),
        "s",
        "b",
        config(),
    )
    .expect("build");
    b.run().await.expect("run");

    // Freeze a until b has judged it dead and decided to take its shard.
    store_a.frozen.store(true, Ordering::SeqCst);
    until(
        "b decides to take the shard",
        Duration::from_secs(20),
        || store_b.held.load(Ordering::SeqCst) > 0,
    )
    .await;
    assert!(
        next_within(&mut a, Duration::from_millis(100))
            .await
            .is_none(),
        "a's lease lapsed by its own clock"
    );

    // a comes back: it heartbeats, re-validates its lease (still its own by
    // the table: b's capture has not landed) and hands out records again.
    store_a.frozen.store(false, Ordering::SeqCst);
    next_within(&mut a, Duration::from_secs(10))
        .await
        .expect("a re-validated its lease");

    // Only now does b's capture, decided while a looked dead, reach the store.
    store_b.hold_captures.store(false, Ordering::SeqCst);
    until(
        "b's capture reaches the store",
        Duration::from_secs(5),
        || !store_b.captured().is_empty(),
    )
    .await;

    // From here on, a may hand out a record only while the lease row names it.
    let mut foreign = 0;
    let end = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < end {
        if next_within(&mut a, Duration::from_millis(50))
            .await
            .is_some()
        {
            let row = shared
                .get_checkpoint(&shard)
                .await
                .expect("row")
                .expect("the shard has a lease row");
            if row.owner_id.as_ref() != Some(a.client_id()) {
                foreign += 1;
            }
        }
    }
    assert_eq!(
        foreign,
        0,
        "a handed out {foreign} records of a shard b had taken (b's captures: {:?})",
        store_b.captured()
    );
    a.stop().await;
    b.stop().await;
}

/// Four heartbeat requests of a go out on pooled connections that a middlebox
/// silently forgot: they never answer, while a request on a fresh connection
/// would. a is healthy, so b must not take its shards over.
#[tokio::test(start_paused = true)]
async fn heartbeats_hanging_on_dead_connections_do_not_move_a_healthy_clients_shards() {
    let kinesis = MemoryKinesis::new();
    kinesis.create_stream("s", 4);
    let shared = MemoryStore::new("app");
    shared
        .create_tables(Billing::OnDemand, Duration::from_millis(1))
        .await
        .expect("tables");
    let store_a = Freezable::new(shared.clone());
    let mut a = Kinsumer::with_backends(
        Arc::new(kinesis.clone()),
        Arc::new(store_a.clone()),
        "s",
        "a",
        config(),
    )
    .expect("build");
    a.run().await.expect("run");
    let a_id = a.client_id().clone();
    let log = Log::default();
    let a = Running::start(a, log.clone());
    let mut b = Kinsumer::with_backends(
        Arc::new(kinesis.clone()),
        Arc::new(shared.clone()),
        "s",
        "b",
        config(),
    )
    .expect("build");
    b.run().await.expect("run");
    let b = Running::start(b, log.clone());
    put(&kinesis, 0, 200);
    assert!(log.wait_distinct(200, Duration::from_secs(20)).await);
    let owned_by_a = |rows: &[CheckpointRow]| -> Vec<ShardId> {
        rows.iter()
            .filter(|r| r.owner_id.as_ref() == Some(&a_id))
            .map(|r| r.shard.clone())
            .collect()
    };
    let a_shards = owned_by_a(&shared.list_checkpoints().await.expect("rows"));
    assert_eq!(a_shards.len(), 2, "a and b share the four shards");

    store_a.dead_puts.store(4, Ordering::SeqCst);
    let end = tokio::time::Instant::now() + Duration::from_secs(6);
    while tokio::time::Instant::now() < end {
        let rows = shared.list_checkpoints().await.expect("rows");
        assert_eq!(
            owned_by_a(&rows),
            a_shards,
            "a healthy client lost shards (dead puts left: {})",
            store_a.dead_puts.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store_a.dead_puts.load(Ordering::SeqCst), 0, "all four hung");
    put(&kinesis, 200, 200);
    assert!(log.wait_distinct(400, Duration::from_secs(20)).await);
    assert_eq!(log.duplicates(), 0);
    a.stop().await;
    b.stop().await;
}
