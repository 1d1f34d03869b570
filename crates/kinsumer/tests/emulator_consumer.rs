//! The consumer against kinesalite + dynalite: draining, sharing, restart,
//! crash, Go-layout checkpoints, and the errors for bad input.

mod common;
mod harness;

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use common::Emulators;
use harness::{Log, Running};
use kinsumer::{Config, ConfigError, Error, Kinsumer};

/// Short timers so that the cluster converges in a second or two. The lease
/// is generous: tests run in parallel on a small machine, and a heartbeat held
/// up longer than a lease makes the others take a live client's shards (at
/// least once, but not exactly once — and these tests assert exactly once).
fn config() -> Config {
    Config::new()
        .with_shard_check_frequency(Duration::from_millis(300))
        .with_leader_action_frequency(Duration::from_millis(300))
        .with_commit_frequency(Duration::from_millis(200))
        .with_lease_duration(Duration::from_secs(3))
        .with_throttle_delay(Duration::from_millis(200))
        .with_dynamo_waiter_delay(Duration::from_millis(50))
        .with_handoff_timeout(Duration::from_secs(2))
        .with_on_demand_billing()
}

struct Fixture {
    emu: &'static Emulators,
    stream: String,
    app: String,
    expected: Vec<String>,
    next: usize,
}

impl Fixture {
    async fn new(shards: i32) -> Fixture {
        let emu = common::emulators().await;
        let stream = emu.unique_name("stream");
        emu.create_stream(&stream, shards).await;
        Fixture {
            emu,
            stream,
            app: emu.unique_name("app"),
            expected: Vec::new(),
            next: 0,
        }
    }

    /// Puts `n` records over 25 keys; payload `<key>:<n>`.
    async fn put(&mut self, n: usize) {
        let mut batch = Vec::with_capacity(n);
        for _ in 0..n {
            let i = self.next;
            self.next += 1;
            let key = format!("key-{}", i % 25);
            let data = format!("{key}:{i}");
            self.expected.push(data.clone());
            batch.push((key, Bytes::from(data)));
        }
        self.emu.put_records(&self.stream, batch).await;
    }

    fn consumer(&self, name: &str) -> Kinsumer {
        Kinsumer::new(
            &self.emu.sdk_config(),
            &self.stream,
            &self.app,
            name,
            config(),
        )
        .expect("build")
    }

    async fn running(&self, name: &str, log: &Log) -> Running {
        let mut k = self.consumer(name);
        k.create_required_tables().await.expect("tables");
        k.run().await.expect("run");
        Running::start(k, log.clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_drains_a_ten_shard_stream_exactly_once() {
    let mut f = Fixture::new(10).await;
    f.put(4321).await;
    let log = Log::default();
    let a = f.running("solo", &log).await;
    assert!(
        log.wait_distinct(4321, Duration::from_secs(60)).await,
        "delivered {}",
        log.distinct()
    );
    assert!(log.missing(&f.expected).is_empty());
    assert_eq!(log.duplicates(), 0);
    assert_eq!(log.order_violations(), 0);
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_clients_share_a_ten_shard_stream_while_records_are_put() {
    let mut f = Fixture::new(10).await;
    let log = Log::default();
    let a = f.running("a", &log).await;
    f.put(500).await;
    let b = f.running("b", &log).await;
    f.put(500).await;
    let c = f.running("c", &log).await;
    for _ in 0..5 {
        f.put(200).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        log.wait_distinct(2000, Duration::from_secs(60)).await,
        "delivered {}",
        log.distinct()
    );
    assert!(log.missing(&f.expected).is_empty());
    assert_eq!(
        log.duplicates(),
        0,
        "graceful hand-offs deliver nothing twice"
    );
    let clients: std::collections::HashSet<String> =
        log.snapshot().into_iter().map(|s| s.client).collect();
    assert_eq!(clients.len(), 3, "every client consumed: {clients:?}");
    for r in [a, b, c] {
        r.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_redelivers_nothing_and_a_crash_redelivers_the_unprocessed() {
    let mut f = Fixture::new(2).await;
    f.put(200).await;
    let log = Log::default();
    let a = f.running("first", &log).await;
    assert!(log.wait_distinct(200, Duration::from_secs(30)).await);
    a.stop().await;
    f.put(100).await;
    let b = f.running("second", &log).await;
    assert!(log.wait_distinct(300, Duration::from_secs(30)).await);
    // Give a re-delivery every chance to show up.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(log.len(), 300, "graceful restart re-delivered something");
    b.stop().await;

    // A record handed out but not processed when the client dies comes again.
    f.put(10).await;
    let mut k = f.consumer("crashing");
    k.run().await.expect("run");
    let handed = k.next().await.expect("open").expect("record");
    tokio::time::sleep(Duration::from_millis(600)).await; // commits happen meanwhile
    drop(k);
    let mut k = f.consumer("after-crash");
    k.run().await.expect("run");
    // The unprocessed record's shard is taken over; it comes again (the other shard's
    // records may come first).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen_again = false;
    while !seen_again && Instant::now() < deadline {
        if let Ok(Some(Ok(r))) = tokio::time::timeout(Duration::from_secs(1), k.next()).await {
            seen_again = r.data == handed.data;
        }
    }
    assert!(
        seen_again,
        "the record handed out before the crash was not delivered again"
    );
    k.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_written_by_the_go_library_is_honoured() {
    let mut f = Fixture::new(1).await;
    f.put(20).await;
    let mut k = f.consumer("go-compat");
    k.create_required_tables().await.expect("tables");
    // What the Go library writes after processing the 7th record and releasing the lease.
    let shard = f.emu.list_shards(&f.stream).await[0].shard_id().to_string();
    let kinesis = f.emu.kinesis_client();
    let it = kinesis
        .get_shard_iterator()
        .stream_name(&f.stream)
        .shard_id(&shard)
        .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("iterator");
    let records = kinesis
        .get_records()
        .shard_iterator(it.shard_iterator().expect("iterator"))
        .send()
        .await
        .expect("records");
    let seventh = records.records()[6].sequence_number().to_string();
    f.emu
        .dynamodb_client()
        .put_item()
        .table_name(format!("{}_checkpoints", f.app))
        .item("Shard", AttributeValue::S(shard.clone()))
        .item("SequenceNumber", AttributeValue::S(seventh))
        .item(
            "LastUpdate",
            AttributeValue::N("1600000000000000000".into()),
        )
        .item(
            "LastUpdateRFC",
            AttributeValue::S("Sun, 13 Sep 2020 12:26:40 +0000".into()),
        )
        .item("OwnerID", AttributeValue::Null(true))
        .item("OwnerName", AttributeValue::Null(true))
        .send()
        .await
        .expect("go row");
    k.run().await.expect("run");
    let r = k.next().await.expect("open").expect("record");
    assert_eq!(String::from_utf8_lossy(&r.data), f.expected[7]);
    k.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_fails_fast_with_an_error_that_names_the_fix() {
    let emu = common::emulators().await;
    let sdk = emu.sdk_config();

    let err = Kinsumer::new(
        &sdk,
        "s",
        "a",
        "c",
        Config::new().with_throttle_delay(Duration::from_millis(10)),
    )
    .err()
    .expect("invalid throttle delay");
    assert!(
        matches!(err, Error::Config(ConfigError::ThrottleDelay(_))),
        "{err}"
    );
    assert!(matches!(
        Kinsumer::new(&sdk, "", "a", "c", Config::new()),
        Err(Error::NoStreamName)
    ));
    assert!(matches!(
        Kinsumer::new(&sdk, "s", "", "c", Config::new()),
        Err(Error::NoApplicationName)
    ));

    // Missing tables.
    let f = Fixture::new(1).await;
    let mut k = f.consumer("no-tables");
    let started = Instant::now();
    let err = k.run().await.expect_err("tables are missing");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(err, Error::TablesMissing { .. }), "{err}");
    assert!(err.to_string().contains("create_required_tables"), "{err}");

    // Missing stream.
    let mut k =
        Kinsumer::new(&sdk, &emu.unique_name("nostream"), &f.app, "x", config()).expect("build");
    k.create_required_tables().await.expect("tables");
    let started = Instant::now();
    let err = k.run().await.expect_err("stream is missing");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(err, Error::NoSuchStream { .. }), "{err}");

    // Run twice.
    let mut k = f.consumer("twice");
    k.run().await.expect("first run");
    assert!(matches!(k.run().await, Err(Error::RunTwice)));
    k.stop().await;
    k.delete_tables().await.expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_and_merge_while_records_flow_keep_per_key_order_with_two_clients() {
    let mut f = Fixture::new(2).await;
    let log = Log::default();
    let a = f.running("a", &log).await;
    let b = f.running("b", &log).await;
    f.put(300).await;
    let shards = f.emu.list_shards(&f.stream).await;
    let first = shards[0].shard_id().to_string();
    let (low, high) = f.emu.split_shard(&f.stream, &first).await;
    f.put(300).await;
    f.emu.merge_shards(&f.stream, &low, &high).await;
    f.put(300).await;
    assert!(
        log.wait_distinct(900, Duration::from_secs(90)).await,
        "delivered {}",
        log.distinct()
    );
    assert!(log.missing(&f.expected).is_empty());
    assert_eq!(
        log.order_violations(),
        0,
        "a child was read before its parent finished"
    );
    assert_eq!(log.duplicates(), 0);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_clients_shards_are_taken_over_with_bounded_duplicates() {
    let mut f = Fixture::new(4).await;
    let log = Log::default();
    let a = f.running("a", &log).await;
    let b = f.running("b", &log).await;
    f.put(400).await;
    assert!(log.wait_distinct(400, Duration::from_secs(60)).await);
    a.crash().await;
    f.put(400).await;
    assert!(
        log.wait_distinct(800, Duration::from_secs(60)).await,
        "delivered {}",
        log.distinct()
    );
    assert!(log.missing(&f.expected).is_empty());
    // At most what a processed since its last commit (200 ms) comes again; with
    // everything caught up before the crash, that is at most one batch per shard.
    assert!(log.duplicates() <= 400, "duplicates {}", log.duplicates());
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpl_aggregates_from_kinesalite_resume_inside_the_aggregate() {
    let f = Fixture::new(1).await;
    let path = format!("{}/tests/fixtures/kpl/many.bin", env!("CARGO_MANIFEST_DIR"));
    let aggregate = Bytes::from(std::fs::read(&path).expect("fixture"));
    f.emu
        .put_records(&f.stream, vec![("agg".to_string(), aggregate)])
        .await;
    let mut k = f.consumer("kpl-first");
    k.create_required_tables().await.expect("tables");
    k.run().await.expect("run");
    let mut subs = Vec::new();
    for _ in 0..50 {
        let r = k.next().await.expect("open").expect("record");
        subs.push(r.sub_sequence_number);
    }
    assert_eq!(subs, (0..50).map(Some).collect::<Vec<_>>());
    k.stop().await;
    let mut k = f.consumer("kpl-second");
    k.run().await.expect("run");
    let r = k.next().await.expect("open").expect("record");
    assert_eq!(
        r.sub_sequence_number,
        Some(50),
        "resumed after the last processed user record"
    );
    k.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_published_aggregated_come_out_one_by_one_in_order() {
    let f = Fixture::new(4).await;
    let publisher = f.consumer("publisher");
    let entries: Vec<kinsumer::PutEntry> = (0..1000)
        .map(|i| kinsumer::PutEntry {
            partition_key: format!("key-{}", i % 25),
            data: Bytes::from(format!("key-{}:{i}", i % 25)),
            explicit_hash_key: None,
        })
        .collect();
    let expected: Vec<String> = entries
        .iter()
        .map(|e| String::from_utf8_lossy(&e.data).into_owned())
        .collect();
    let positions = publisher
        .publish_aggregated(entries)
        .await
        .expect("published");
    assert_eq!(positions.len(), 1000);
    let aggregates: std::collections::HashSet<_> =
        positions.iter().map(|(_, p)| p.sequence.clone()).collect();
    assert!(
        aggregates.len() <= 8,
        "1000 small records in a few aggregates per shard, not {}",
        aggregates.len()
    );
    let log = Log::default();
    let a = f.running("reader", &log).await;
    assert!(
        log.wait_distinct(1000, Duration::from_secs(60)).await,
        "delivered {}",
        log.distinct()
    );
    assert!(log.missing(&expected).is_empty());
    assert_eq!(log.duplicates(), 0);
    assert_eq!(log.order_violations(), 0);
    // Each record keeps its own partition key.
    assert!(log
        .snapshot()
        .iter()
        .all(|s| s.data.starts_with(&format!("{}:", s.key))));
    a.stop().await;
}
