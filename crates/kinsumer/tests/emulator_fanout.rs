//! Enhanced fan-out against an emulator that implements SubscribeToShard
//! (ferrokinesis, in process; see tests/fanout_emulator) and dynalite:
//! registration, reading from TRIM_HORIZON, re-subscription, a split while
//! subscribed, two clients sharing one consumer, and a restart. The tests named
//! `kinesis_mock_*` run on kinesis-mock instead, which honours the requested
//! starting position and refuses a second subscription to a held shard.

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
        Fixture::on(fanout_emulator::emulators().await, shards).await
    }

    async fn on(emu: &'static Emulators, shards: i32) -> Fixture {
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
/// the service re-sends, and says so); that the service is asked for AFTER_SEQUENCE_NUMBER is
/// shown by `kinesis_mock_a_restart_subscribes_after_the_checkpoint`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_hands_out_nothing_already_processed() {
    resent::install();
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
    // The control for the kinesis-mock test below: the warning is seen when the service re-sends.
    assert!(
        resent::warnings(&f.stream) > 0,
        "ferrokinesis re-sends from TRIM_HORIZON and the reader reports the records it skips"
    );
    b.stop().await;
}

/// kinesis-mock honours AFTER_SEQUENCE_NUMBER: a new client of the application resumes each shard
/// right after the checkpoint the stopped one committed, and the service itself sends nothing
/// older (the reader's warning about records before the requested start never fires).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinesis_mock_a_restart_subscribes_after_the_checkpoint() {
    resent::install();
    let mut f = Fixture::on(fanout_emulator::kinesis_mock_emulators().await, 2).await;
    f.put(60).await;
    let first = Log::default();
    let a = f.running("a", &first).await;
    assert!(
        first.wait_distinct(60, Duration::from_secs(60)).await,
        "delivered {}",
        first.distinct()
    );
    a.stop().await;
    assert_eq!(first.duplicates(), 0);

    f.put(40).await;
    let second = Log::default();
    let b = f.running("b", &second).await;
    assert!(
        second.wait_distinct(40, Duration::from_secs(60)).await,
        "delivered {}",
        second.distinct()
    );
    // A shard's records arrive in order, so anything re-sent from before the checkpoint would
    // have come (and been reported) before the new records now delivered.
    assert!(second.missing(&f.expected[60..]).is_empty());
    assert_eq!(second.len(), 40, "only the records put after the stop");
    assert_eq!(
        resent::warnings(&f.stream),
        0,
        "the service started each subscription after the checkpoint"
    );
    assert_eq!(f.registered_consumers().await, vec![f.consumer.clone()]);
    b.stop().await;
    f.emu.delete_stream(&f.stream).await;
}

/// Two clients of one application share one consumer on kinesis-mock, which refuses a
/// subscription to a shard another subscription holds (and holds it for ~2 s after the holder
/// lets go): a shard handed from the first client to the second is read on without loss or
/// repeats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinesis_mock_two_clients_hand_a_shard_over_without_loss_or_repeats() {
    let mut f = Fixture::on(fanout_emulator::kinesis_mock_emulators().await, 2).await;
    let log = Log::default();
    let a = f.running("a", &log).await;
    f.put(20).await;
    assert!(
        log.wait_distinct(20, Duration::from_secs(60)).await,
        "delivered {}",
        log.distinct()
    );
    // `a` holds both shards' subscriptions; `b` must take one over.
    let b = f.running("b", &log).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !log.snapshot().iter().any(|s| s.client == b.name) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "b read nothing; delivered {} of {}",
            log.distinct(),
            f.expected.len()
        );
        f.put(10).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    f.put(20).await;
    let total = f.expected.len();
    assert!(
        log.wait_distinct(total, Duration::from_secs(60)).await,
        "delivered {} of {total}",
        log.distinct()
    );
    assert!(log.missing(&f.expected).is_empty());
    assert_eq!(log.duplicates(), 0, "a hand-off repeats nothing");
    assert_eq!(log.order_violations(), 0);
    assert_eq!(
        f.registered_consumers().await.len(),
        1,
        "registered once, shared"
    );
    a.stop().await;
    b.stop().await;
    f.emu.delete_stream(&f.stream).await;
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

/// Counts, per stream, the reader's warning that a subscription sent records from before the
/// requested start (a service that ignores AT/AFTER_SEQUENCE_NUMBER does), through a tracing layer
/// installed for the whole test process.
mod resent {
    use std::collections::HashMap;
    use std::fmt;
    use std::sync::{Mutex, OnceLock};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id};
    use tracing::{Event, Level, Subscriber};
    use tracing_subscriber::filter::filter_fn;
    use tracing_subscriber::layer::{Context, SubscriberExt};
    use tracing_subscriber::registry::LookupSpan;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    /// The start of the reader's warning (crates/kinsumer/src/reader/fanout.rs).
    const WARNING: &str = "the subscription sent records before the requested start";

    fn counts() -> &'static Mutex<HashMap<String, usize>> {
        static COUNTS: OnceLock<Mutex<HashMap<String, usize>>> = OnceLock::new();
        COUNTS.get_or_init(Mutex::default)
    }

    /// Installs the counting layer as the process's subscriber (once).
    pub fn install() {
        static INSTALLED: OnceLock<()> = OnceLock::new();
        INSTALLED.get_or_init(|| {
            // Warnings, and the consumer's span that names the stream; nothing else is built.
            let filter = filter_fn(|meta| {
                *meta.level() <= Level::WARN || (meta.is_span() && meta.name() == "kinsumer")
            });
            tracing_subscriber::registry()
                .with(Counter.with_filter(filter))
                .try_init()
                .expect("the test process's tracing subscriber");
        });
    }

    /// How many times the warning was logged for `stream` since [`install`].
    pub fn warnings(stream: &str) -> usize {
        counts()
            .lock()
            .expect("counts")
            .get(stream)
            .copied()
            .unwrap_or(0)
    }

    struct Counter;

    /// The consumer span's `stream` field, kept in the span's extensions.
    struct StreamName(String);

    #[derive(Default)]
    struct Fields {
        stream: Option<String>,
        message: Option<String>,
    }

    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            match field.name() {
                "stream" => self.stream = Some(format!("{value:?}")),
                "message" => self.message = Some(format!("{value:?}")),
                _ => {}
            }
        }

        fn record_str(&mut self, field: &Field, value: &str) {
            self.record_debug(field, &format_args!("{value}"));
        }
    }

    impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Counter {
        fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
            let mut fields = Fields::default();
            attrs.record(&mut fields);
            if let (Some(stream), Some(span)) = (fields.stream, ctx.span(id)) {
                span.extensions_mut().insert(StreamName(stream));
            }
        }

        fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
            let mut fields = Fields::default();
            event.record(&mut fields);
            if !fields.message.is_some_and(|m| m.starts_with(WARNING)) {
                return;
            }
            let stream = ctx.event_scope(event).and_then(|scope| {
                scope
                    .into_iter()
                    .find_map(|span| span.extensions().get::<StreamName>().map(|s| s.0.clone()))
            });
            let stream = stream.unwrap_or_else(|| "(no stream span)".to_string());
            *counts().lock().expect("counts").entry(stream).or_default() += 1;
        }
    }
}
