//! KPL aggregates end to end on the in-memory backends: user records come out
//! one by one, and a stop in the middle of an aggregate resumes after the last
//! processed user record.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kinsumer::kinesis::memory::MemoryKinesis;
use kinsumer::store::memory::MemoryStore;
use kinsumer::{Config, Kinsumer};

fn fixture(name: &str) -> Bytes {
    let path = format!("{}/tests/fixtures/kpl/{name}", env!("CARGO_MANIFEST_DIR"));
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}")))
}

fn config() -> Config {
    Config::new()
        .with_shard_check_frequency(Duration::from_millis(500))
        .with_leader_action_frequency(Duration::from_millis(500))
        .with_commit_frequency(Duration::from_millis(200))
}

async fn consumer(kinesis: &MemoryKinesis, store: &MemoryStore, name: &str) -> Kinsumer {
    let mut k = Kinsumer::with_backends(
        Arc::new(kinesis.clone()),
        Arc::new(store.clone()),
        "s",
        name,
        config(),
    )
    .expect("build");
    k.create_required_tables().await.expect("tables");
    k.run().await.expect("run");
    k
}

#[tokio::test(start_paused = true)]
async fn a_stop_inside_an_aggregate_resumes_after_the_last_processed_user_record() {
    let kinesis = MemoryKinesis::new();
    kinesis.create_stream("s", 1);
    kinesis
        .put("s", "before", Bytes::from_static(b"plain-1"))
        .expect("put");
    kinesis
        .put("s", "agg", fixture("many.bin"))
        .expect("put aggregate");
    kinesis
        .put("s", "after", Bytes::from_static(b"plain-2"))
        .expect("put");
    let store = MemoryStore::new("kpl");

    // The first client processes the plain record and 37 user records, then stops.
    let mut k = consumer(&kinesis, &store, "first").await;
    let first = k.next().await.expect("open").expect("record");
    assert_eq!(&first.data[..], b"plain-1");
    assert_eq!(first.sub_sequence_number, None);
    let mut users = Vec::new();
    for _ in 0..37 {
        users.push(k.next().await.expect("open").expect("record"));
    }
    assert!(users.iter().all(|r| r.sub_sequence_number.is_some()));
    assert_eq!(users[36].sub_sequence_number, Some(36));
    // User records carry their own partition keys, not the aggregate's.
    assert!(users.iter().all(|r| r.partition_key != "agg"));
    let aggregate_sequence = users[0].sequence_number.clone();
    k.stop().await;

    // The second resumes at user record 37 of the same aggregate.
    let mut k = consumer(&kinesis, &store, "second").await;
    let next = k.next().await.expect("open").expect("record");
    assert_eq!(next.sequence_number, aggregate_sequence);
    assert_eq!(next.sub_sequence_number, Some(37));
    let mut rest = vec![next];
    loop {
        let r = k.next().await.expect("open").expect("record");
        let done = &r.data[..] == b"plain-2";
        rest.push(r);
        if done {
            break;
        }
    }
    // many.bin holds 100 user records: 37 before the stop, 63 after, then the plain record.
    assert_eq!(rest.len(), 63 + 1);
    k.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_corrupt_aggregate_is_delivered_whole_as_a_plain_record() {
    let kinesis = MemoryKinesis::new();
    kinesis.create_stream("s", 1);
    let bad = fixture("bad_md5.bin");
    kinesis.put("s", "agg", bad.clone()).expect("put");
    let store = MemoryStore::new("kpl");
    let mut k = consumer(&kinesis, &store, "only").await;
    let r = k.next().await.expect("open").expect("record");
    assert_eq!(r.data, bad);
    assert_eq!(r.sub_sequence_number, None);
    k.stop().await;
}
