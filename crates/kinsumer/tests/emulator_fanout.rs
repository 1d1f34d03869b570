//! Enhanced fan-out against an emulator that implements SubscribeToShard
//! (ferrokinesis, in process; see tests/fanout_emulator) and dynalite:
//! registration, reading from TRIM_HORIZON, re-subscription, a split while
//! subscribed, two clients sharing one consumer, and a restart.

mod common;
mod fanout_emulator;
mod harness;

use std::time::Duration;

use bytes::Bytes;
use common::Emulators;
use harness::{Log, Running};
use kinsumer::{Config, Error, Kinsumer};

/// Short timers, a generous lease (tests run side by side on a small machine).
fn config(consumer: &str) -> Config {
    Config::new()
        .with_shard_check_frequency(Duration::from_millis(300))
        .with_leader_action_frequency(Duration::from_millis(300))
        .with_commit_frequency(Duration::from_millis(200))
        .with_lease_duration(Duration::from_secs(3))
        .with_dynamo_waiter_delay(Duration::from_millis(50))
        .with_handoff_timeout(Duration::from_secs(2))
        .with_on_demand_billing()
        .with_fan_out_consumer_name(consumer)
}

struct Fixture {
    emu: &'static Emulators,
    stream: String,
    app: String,
    consumer: String,
    expected: Vec<String>,
    next: usize,
}

impl Fixture {
    async fn new(shards: i32) -> Fixture {
        let emu = fanout_emulator::emulators().await;
        let stream = emu.unique_name("efo");
        emu.create_stream(&stream, shards).await;
        Fixture {
            emu,
            stream,
            app: emu.unique_name("app"),
            consumer: emu.unique_name("consumer"),
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
            config(&self.consumer),
        )
        .expect("build")
    }

    async fn running(&self, name: &str, log: &Log) -> Running {
        let mut k = self.consumer(name);
        k.create_required_tables().await.expect("tables");
        k.run().await.expect("run");
        Running::start(k, log.clone())
    }

    /// The consumers registered on the stream, by name.
    async fn registered_consumers(&self) -> Vec<String> {
        let client = self.emu.kinesis_client();
        let arn = client
            .describe_stream_summary()
            .stream_name(&self.stream)
            .send()
            .await
            .expect("DescribeStreamSummary")
            .stream_description_summary
            .map(|s| s.stream_arn)
            .expect("a summary");
        client
            .list_stream_consumers()
            .stream_arn(arn)
            .send()
            .await
            .expect("ListStreamConsumers")
            .consumers
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.consumer_name)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_consumer_delivers_every_record_from_trim_horizon_once() {
    let mut f = Fixture::new(4).await;
    f.put(2000).await;
    let log = Log::default();
    let a = f.running("solo", &log).await;
    assert!(
        log.wait_distinct(2000, Duration::from_secs(60)).await,
        "delivered {}",
        log.distinct()
    );
    assert!(log.missing(&f.expected).is_empty());
    assert_eq!(log.duplicates(), 0);
    assert_eq!(log.order_violations(), 0);
    assert_eq!(f.registered_consumers().await, vec![f.consumer.clone()]);
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_the_service_ends_are_renewed_without_loss_or_repeats() {
    let mut f = Fixture::new(2).await;
    let log = Log::default();
    let a = f.running("solo", &log).await;
    // Waves over four subscription lifetimes: each shard is re-subscribed at least three times.
    let waves = 8;
    for _ in 0..waves {
        f.put(100).await;
        tokio::time::sleep(fanout_emulator::SESSION / 2).await;
    }
    assert!(
        log.wait_distinct(waves * 100, Duration::from_secs(60))
            .await,
        "delivered {}",
        log.distinct()
    );
    assert!(log.missing(&f.expected).is_empty());
    assert_eq!(
        log.duplicates(),
        0,
        "a renewed subscription repeats nothing"
    );
    assert_eq!(log.order_violations(), 0);
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_while_subscribed_delivers_the_children_after_the_parent() {
    let mut f = Fixture::new(1).await;
    let log = Log::default();
    let a = f.running("solo", &log).await;
    f.put(300).await;
    let parent = f
        .emu
        .list_shards(&f.stream)
        .await
        .first()
        .map(|s| s.shard_id.clone())
        .expect("a shard");
    let (left, right) = f.emu.split_shard(&f.stream, &parent).await;
    f.put(300).await;
    assert!(
        log.wait_distinct(600, Duration::from_secs(60)).await,
        "delivered {}",
        log.distinct()
    );
    assert!(log.missing(&f.expected).is_empty());
    assert_eq!(log.duplicates(), 0);
    assert_eq!(
        log.order_violations(),
        0,
        "a key's records in order across the split"
    );
    let shards: Vec<String> = log.snapshot().into_iter().map(|s| s.shard).collect();
    let last_of_parent = shards.iter().rposition(|s| *s == parent);
    let first_of_child = shards.iter().position(|s| *s == left || *s == right);
    assert!(
        last_of_parent < first_of_child,
        "every record of the parent before any of its children"
    );
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_share_one_consumers_shards() {
    let mut f = Fixture::new(6).await;
    let log = Log::default();
    let a = f.running("a", &log).await;
    let b = f.running("b", &log).await;
    for _ in 0..5 {
        f.put(200).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        log.wait_distinct(1000, Duration::from_secs(60)).await,
        "delivered {}",
        log.distinct()
    );
    assert!(log.missing(&f.expected).is_empty());
    assert_eq!(log.duplicates(), 0);
    assert_eq!(log.order_violations(), 0);
    let clients: std::collections::HashSet<String> =
        log.snapshot().into_iter().map(|s| s.client).collect();
    assert_eq!(clients.len(), 2, "both clients read: {clients:?}");
    assert_eq!(
        f.registered_consumers().await.len(),
        1,
        "registered once, shared"
    );
    a.stop().await;
    b.stop().await;
}

/// ferrokinesis starts every subscription at TRIM_HORIZON whatever the request says, so this
/// checks end to end that a restart hands out nothing already processed (the reader skips what
/// the service re-sends); that AFTER_SEQUENCE_NUMBER is requested is checked in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_hands_out_nothing_already_processed() {
    let mut f = Fixture::new(2).await;
    f.put(400).await;
    let first = Log::default();
    let a = f.running("a", &first).await;
    assert!(first.wait_distinct(400, Duration::from_secs(60)).await);
    a.stop().await;
    f.put(200).await;
    let second = Log::default();
    let b = f.running("b", &second).await;
    assert!(
        second.wait_distinct(200, Duration::from_secs(60)).await,
        "delivered {}",
        second.distinct()
    );
    // Anything wrongly repeated would come with the first events: give it a subscription's time.
    tokio::time::sleep(fanout_emulator::SESSION).await;
    assert_eq!(second.len(), 200, "only the records put after the stop");
    assert!(second.missing(&f.expected[400..]).is_empty());
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_shows_the_fan_out_consumer_for_each_leased_shard() {
    let mut f = Fixture::new(2).await;
    f.put(10).await;
    let mut k = f.consumer("solo");
    k.create_required_tables().await.expect("tables");
    k.run().await.expect("run");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let state = loop {
        let state = k.cluster_state().await.expect("state");
        if state.shards.iter().all(|s| s.owner_id.is_some()) {
            break state;
        }
        assert!(tokio::time::Instant::now() < deadline, "{state:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for shard in &state.shards {
        let mode = shard.read_mode.as_deref().unwrap_or_default();
        assert!(
            mode.starts_with("fan-out arn:") && mode.contains(&format!("/consumer/{}", f.consumer)),
            "{} read as {mode:?}",
            shard.id
        );
    }
    k.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_consumer_arn_fails_run_with_the_fix() {
    let f = Fixture::new(1).await;
    let arn = format!(
        "arn:aws:kinesis:us-east-1:000000000000:stream/{}/consumer/nobody:1",
        f.stream
    );
    let mut k = Kinsumer::new(
        &f.emu.sdk_config(),
        &f.stream,
        &f.app,
        "solo",
        config("unused").with_fan_out_consumer_arn(arn),
    )
    .expect("build");
    k.create_required_tables().await.expect("tables");
    let err = k.run().await.expect_err("an unknown consumer");
    assert!(matches!(err, Error::FanOutConsumer { .. }), "{err:?}");
    assert!(err.to_string().contains("register"), "{err}");
}
