//! Enhanced fan-out on the in-memory backends, in virtual time: the same
//! delivery, checkpoint and cluster rules as polling, through SubscribeToShard.

mod harness;

use std::time::Duration;

use harness::{Log, World, STREAM};
use kinsumer::kinesis::memory::Operation;
use kinsumer::store::CoordinationStore;
use kinsumer::{Config, Error, ServiceErrorKind};

const CONSUMER: &str = "billing";

fn config() -> Config {
    Config::new()
        .with_shard_check_frequency(Duration::from_millis(500))
        .with_leader_action_frequency(Duration::from_millis(500))
        .with_commit_frequency(Duration::from_millis(200))
        .with_lease_duration(Duration::from_secs(2))
        .with_buffer_size(500)
        .with_fan_out_consumer_name(CONSUMER)
}

#[tokio::test(start_paused = true)]
async fn a_named_consumer_is_registered_and_every_record_arrives_once_without_polling() {
    let mut w = World::new(4, config()).await;
    w.put(1000);
    let log = Log::default();
    let a = w.start("a", &log).await;
    assert!(
        log.wait_distinct(1000, Duration::from_secs(30)).await,
        "delivered {}",
        log.distinct()
    );
    w.put(500);
    assert!(log.wait_distinct(1500, Duration::from_secs(30)).await);
    assert_eq!(log.duplicates(), 0);
    assert_eq!(log.order_violations(), 0);
    assert!(log.missing(&w.expected).is_empty());
    assert_eq!(w.kinesis.consumers(STREAM).len(), 1);
    assert_eq!(w.kinesis.calls(Operation::GetRecords), 0, "no polling");
    assert!(w.kinesis.calls(Operation::SubscribeToShard) >= 4);
    a.stop().await;
    assert_eq!(
        w.kinesis.open_subscriptions(),
        0,
        "subscriptions closed on stop"
    );
}

#[tokio::test(start_paused = true)]
async fn a_restart_resumes_after_the_checkpoint_with_nothing_repeated() {
    let mut w = World::new(2, config()).await;
    w.put(400);
    let first = Log::default();
    let a = w.start("a", &first).await;
    assert!(first.wait_distinct(400, Duration::from_secs(30)).await);
    a.stop().await;
    w.put(300);
    let second = Log::default();
    let b = w.start("b", &second).await;
    assert!(
        second.wait_distinct(300, Duration::from_secs(30)).await,
        "delivered {}",
        second.distinct()
    );
    // Let anything wrongly re-sent arrive before judging.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(second.len(), 300, "only the records put after the stop");
    assert!(second.missing(&w.expected[400..]).is_empty());
    b.stop().await;
}

#[tokio::test(start_paused = true)]
async fn ended_subscriptions_are_renewed_from_where_they_stopped() {
    let mut w = World::new(3, config()).await;
    w.kinesis.set_subscription_lifetime(Duration::from_secs(2));
    let log = Log::default();
    let a = w.start("a", &log).await;
    for round in 1..=10 {
        w.put(100);
        if round % 3 == 0 {
            w.kinesis.end_subscriptions();
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    assert!(
        log.wait_distinct(1000, Duration::from_secs(30)).await,
        "delivered {}",
        log.distinct()
    );
    assert_eq!(log.duplicates(), 0);
    assert_eq!(log.order_violations(), 0);
    let subscriptions = w.kinesis.calls(Operation::SubscribeToShard);
    assert!(
        subscriptions >= 3 * 4,
        "renewed: {subscriptions} subscriptions"
    );
    a.stop().await;
}

#[tokio::test(start_paused = true)]
async fn subscribe_failures_are_retried_with_backoff() {
    let mut w = World::new(2, config()).await;
    w.put(200);
    w.kinesis.inject_failures(
        Operation::SubscribeToShard,
        ServiceErrorKind::ResourceInUse,
        3,
    );
    w.kinesis
        .inject_failures(Operation::SubscribeToShard, ServiceErrorKind::Throttled, 2);
    let log = Log::default();
    let a = w.start("a", &log).await;
    assert!(log.wait_distinct(200, Duration::from_secs(30)).await);
    assert_eq!(log.duplicates(), 0);
    assert!(w.kinesis.calls(Operation::SubscribeToShard) >= 2 + 5);
    a.stop().await;
}

#[tokio::test(start_paused = true)]
async fn splits_and_merges_while_subscribed_deliver_children_after_parents() {
    let mut w = World::new(1, config()).await;
    let log = Log::default();
    let a = w.start("solo", &log).await;
    w.reshard_while_putting();
    assert!(
        log.wait_distinct(800, Duration::from_secs(60)).await,
        "delivered {}",
        log.distinct()
    );
    assert_eq!(log.order_violations(), 0);
    assert_eq!(log.duplicates(), 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let finished = w
        .store
        .list_checkpoints()
        .await
        .expect("rows")
        .into_iter()
        .filter(|c| c.finished.is_some())
        .count();
    // Closed and read to their end: the first shard, its left child, and the merged pair.
    assert_eq!(finished, 4);
    a.stop().await;
}

#[tokio::test(start_paused = true)]
async fn two_clients_share_the_consumers_shards_and_survive_a_crash() {
    let mut w = World::new(6, config()).await;
    let log = Log::default();
    let a = w.start("a", &log).await;
    let b = w.start("b", &log).await;
    w.put(600);
    assert!(log.wait_distinct(600, Duration::from_secs(30)).await);
    let clients: std::collections::HashSet<String> =
        log.snapshot().into_iter().map(|s| s.client).collect();
    assert_eq!(clients.len(), 2, "both clients read: {clients:?}");
    assert_eq!(log.duplicates(), 0);
    assert_eq!(w.kinesis.consumers(STREAM).len(), 1, "one consumer shared");
    a.crash().await;
    w.put(600);
    assert!(
        log.wait_distinct(1200, Duration::from_secs(60)).await,
        "delivered {}",
        log.distinct()
    );
    assert!(log.missing(&w.expected).is_empty());
    assert_eq!(log.order_violations(), 0);
    // The crash re-delivers at most what was not committed (one commit interval).
    assert!(log.duplicates() <= 600, "duplicates {}", log.duplicates());
    b.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_unknown_consumer_arn_fails_run_with_the_fix() {
    let w = World::new(1, config()).await;
    let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/events/consumer/nobody:1";
    let err = w
        .try_consumer("a", config().with_fan_out_consumer_arn(arn))
        .await
        .err()
        .expect("run fails");
    assert!(matches!(err, Error::FanOutConsumer { .. }), "{err:?}");
    assert!(err.to_string().contains("register"), "{err}");
}
