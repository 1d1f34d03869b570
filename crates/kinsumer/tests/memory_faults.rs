//! Faults the emulators cannot produce, on the in-memory backends in virtual
//! time: the coordination store unreachable for several leases, and a reader
//! task that panics.

mod harness;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use harness::{put_numbered as put, Log, Running};
use kinsumer::kinesis::memory::MemoryKinesis;
use kinsumer::kinesis::{
    KinesisTransport, PutEntry, PutOutcome, RecordsPage, ShardDescription, StartingPosition,
};
use kinsumer::store::memory::MemoryStore;
use kinsumer::store::CoordinationStore;
use kinsumer::{Billing, Config, Kinsumer, ServiceError, ShardId};

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
