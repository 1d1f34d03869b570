//! Cluster behaviour on the in-memory backends, in virtual time: sharing,
//! hand-off, restart, crash, resharding and injected faults.

mod harness;

use std::time::Duration;

use harness::{Log, World, STREAM};
use kinsumer::kinesis::memory::Operation;
use kinsumer::store::memory::MemoryStore;
use kinsumer::store::{CheckpointRow, CoordinationStore};
use kinsumer::{AckMode, Config, Position, ServiceErrorKind, ShardId};

fn config() -> Config {
    Config::new()
        .with_shard_check_frequency(Duration::from_millis(500))
        .with_leader_action_frequency(Duration::from_millis(500))
        .with_commit_frequency(Duration::from_millis(200))
        .with_lease_duration(Duration::from_secs(2))
        .with_buffer_size(500)
}

async fn owners(store: &MemoryStore) -> Vec<(String, Option<String>)> {
    store
        .list_checkpoints()
        .await
        .expect("checkpoints")
        .into_iter()
        .map(|c| (c.shard.to_string(), c.owner_name))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn three_clients_share_ten_shards_while_records_flow() {
    let mut w = World::new(10, config()).await;
    let log = Log::default();
    w.put(500);
    let a = w.start("a", &log).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let b = w.start("b", &log).await;
    w.put(500);
    let c = w.start("c", &log).await;
    for _ in 0..10 {
        w.put(100);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        log.wait_distinct(w.expected.len(), Duration::from_secs(30))
            .await
    );
    // Balanced: every client holds 3 or 4 shards.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held = owners(&w.store).await;
    for name in ["a", "b", "c"] {
        let n = held
            .iter()
            .filter(|(_, o)| o.as_deref() == Some(name))
            .count();
        assert!((3..=4).contains(&n), "{name} holds {n}: {held:?}");
    }
    assert!(log.missing(&w.expected).is_empty());
    assert_eq!(
        log.duplicates(),
        0,
        "graceful hand-offs deliver nothing twice"
    );
    assert_eq!(log.order_violations(), 0);
    for r in [a, b, c] {
        r.stop().await;
    }
}

#[tokio::test(start_paused = true)]
async fn graceful_stop_and_restart_resumes_after_the_last_processed_record() {
    let mut w = World::new(3, config()).await;
    let log = Log::default();
    w.put(300);
    let a = w.start("a", &log).await;
    assert!(log.wait_distinct(300, Duration::from_secs(30)).await);
    a.stop().await;
    // Every lease released with its checkpoint.
    assert!(owners(&w.store).await.iter().all(|(_, o)| o.is_none()));
    w.put(200);
    let a = w.start("a-again", &log).await;
    assert!(log.wait_distinct(500, Duration::from_secs(30)).await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(log.len(), 500, "no record delivered twice");
    a.stop().await;
}

#[tokio::test(start_paused = true)]
async fn stop_in_the_middle_of_a_batch_commits_exactly_what_was_handed_out() {
    let mut w = World::new(1, config()).await;
    w.put(100);
    let mut k = w.consumer("a", config()).await;
    let mut first = Vec::new();
    for _ in 0..37 {
        let r = k.next().await.expect("open").expect("record");
        first.push(String::from_utf8_lossy(&r.data).into_owned());
    }
    k.stop().await;
    let mut k = w.consumer("b", config()).await;
    let r = k.next().await.expect("open").expect("record");
    assert_eq!(String::from_utf8_lossy(&r.data), w.expected[37]);
    k.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_crash_loses_nothing_and_repeats_at_most_a_commit_interval() {
    let mut w = World::new(4, config()).await;
    let log = Log::default();
    let a = w.start("a", &log).await;
    let b = w.start("b", &log).await;
    w.put(400);
    assert!(log.wait_distinct(400, Duration::from_secs(30)).await);
    a.crash().await;
    w.put(400);
    assert!(log.wait_distinct(800, Duration::from_secs(30)).await);
    assert!(log.missing(&w.expected).is_empty());
    // All of a's shards moved to b.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(owners(&w.store)
        .await
        .iter()
        .all(|(_, o)| o.as_deref() == Some("b")));
    b.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_record_handed_out_but_not_processed_before_a_crash_comes_again() {
    let mut w = World::new(1, config()).await;
    w.put(10);
    let mut k = w.consumer("a", config()).await;
    for _ in 0..5 {
        k.next().await.expect("open").expect("record");
    }
    // Record 4 (the fifth) is handed out but not processed; let commits happen.
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(k);
    let mut k = w.consumer("b", config()).await;
    let r = k.next().await.expect("open").expect("record");
    assert_eq!(String::from_utf8_lossy(&r.data), w.expected[4]);
    k.stop().await;
}

#[tokio::test(start_paused = true)]
async fn split_and_merge_keep_per_key_order() {
    let mut w = World::new(2, config()).await;
    let log = Log::default();
    let a = w.start("a", &log).await;
    let b = w.start("b", &log).await;
    w.put(300);
    let (l, r) = w
        .kinesis
        .split_shard(STREAM, &ShardId::new("shardId-000000000000"))
        .expect("split");
    w.put(300);
    let merged = w.kinesis.merge_shards(STREAM, &l, &r).expect("merge");
    w.put(300);
    assert!(
        log.wait_distinct(900, Duration::from_secs(60)).await,
        "delivered {}",
        log.distinct()
    );
    assert_eq!(log.order_violations(), 0);
    assert!(log.missing(&w.expected).is_empty());
    // Finished parents are marked; the merged child is being read.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rows = w.store.list_checkpoints().await.expect("rows");
    let finished: Vec<String> = rows
        .iter()
        .filter(|r| r.finished.is_some())
        .map(|r| r.shard.to_string())
        .collect();
    assert!(
        finished.contains(&"shardId-000000000000".to_string()),
        "{finished:?}"
    );
    assert!(
        finished.contains(&l.to_string()) && finished.contains(&r.to_string()),
        "{finished:?}"
    );
    assert!(rows
        .iter()
        .any(|r| r.shard == merged && r.owner_name.is_some()));
    a.stop().await;
    b.stop().await;
}

#[tokio::test(start_paused = true)]
async fn expired_iterators_and_throttling_are_recovered() {
    let mut w = World::new(2, config()).await;
    w.put(200);
    w.kinesis
        .inject_failures(Operation::GetRecords, ServiceErrorKind::ExpiredIterator, 3);
    w.kinesis
        .inject_failures(Operation::GetRecords, ServiceErrorKind::Throttled, 5);
    w.kinesis
        .inject_failures(Operation::GetShardIterator, ServiceErrorKind::Transient, 2);
    w.kinesis
        .inject_failures(Operation::ListShards, ServiceErrorKind::Throttled, 2);
    let log = Log::default();
    let a = w.start("a", &log).await;
    assert!(log.wait_distinct(200, Duration::from_secs(60)).await);
    assert_eq!(log.duplicates(), 0);
    a.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_go_checkpoint_row_is_honoured() {
    let mut w = World::new(1, config()).await;
    w.put(10);
    // The Go library left shard 0 processed up to the 4th record, unowned.
    let fourth = w.sequences[3].clone();
    w.store.put_checkpoint_row(CheckpointRow {
        shard: ShardId::new("shardId-000000000000"),
        position: Some(Position::after(fourth)),
        last_update: 1,
        owner_id: None,
        owner_name: None,
        finished: None,
    });
    let mut k = w.consumer("a", config()).await;
    let r = k.next().await.expect("open").expect("record");
    assert_eq!(String::from_utf8_lossy(&r.data), w.expected[4]);
    k.stop().await;
}

#[tokio::test(start_paused = true)]
async fn manual_ack_commits_only_acknowledged_records() {
    let mut w = World::new(1, config()).await;
    w.put(20);
    let mut k = w
        .consumer("a", config().with_ack_mode(AckMode::Manual))
        .await;
    let mut records = Vec::new();
    for _ in 0..10 {
        records.push(k.next().await.expect("open").expect("record"));
    }
    // Acknowledge the 6th: it and everything before it count as processed.
    records[5].ack();
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(k);
    let mut k = w.consumer("b", config()).await;
    let r = k.next().await.expect("open").expect("record");
    assert_eq!(String::from_utf8_lossy(&r.data), w.expected[6]);
    k.stop().await;
}

#[tokio::test(start_paused = true)]
async fn churn_for_thirty_seconds_loses_nothing_and_never_delivers_twice() {
    let mut w = World::new(8, config()).await;
    let log = Log::default();
    let mut running = vec![w.start("base", &log).await];
    let mut n = 0;
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < end {
        w.put(50);
        n += 1;
        if n % 4 == 0 {
            // A join, and every other time a graceful leave of the oldest.
            running.push(w.start(&format!("c{n}"), &log).await);
            if running.len() > 3 {
                running.remove(0).stop().await;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        log.wait_distinct(w.expected.len(), Duration::from_secs(30))
            .await
    );
    assert!(log.missing(&w.expected).is_empty());
    assert_eq!(
        log.duplicates(),
        0,
        "graceful churn must not overlap two readers of a shard"
    );
    assert_eq!(log.order_violations(), 0);
    for r in running {
        r.stop().await;
    }
}

#[tokio::test(start_paused = true)]
async fn when_the_leader_dies_another_takes_over_and_new_shards_are_read() {
    let mut w = World::new(2, config()).await;
    let log = Log::default();
    let a = w.start("a", &log).await;
    let b = w.start("b", &log).await;
    w.put(100);
    assert!(log.wait_distinct(100, Duration::from_secs(30)).await);
    let leader = w
        .store
        .get_leader()
        .await
        .expect("leader")
        .and_then(|l| l.name);
    let (dead, survivor) = if leader.as_deref() == Some("a") {
        (a, b)
    } else {
        (b, a)
    };
    let survivor_name = survivor.name.clone();
    dead.crash().await;
    // New shards appear while only the non-leader is alive.
    w.kinesis
        .split_shard(STREAM, &ShardId::new("shardId-000000000001"))
        .expect("split");
    w.put(200);
    assert!(
        log.wait_distinct(300, Duration::from_secs(60)).await,
        "delivered {}",
        log.distinct()
    );
    let leader = w
        .store
        .get_leader()
        .await
        .expect("leader")
        .and_then(|l| l.name);
    assert_eq!(leader.as_deref(), Some(survivor_name.as_str()));
    assert_eq!(log.order_violations(), 0);
    survivor.stop().await;
}

#[tokio::test(start_paused = true)]
async fn one_client_reads_children_only_after_their_parent() {
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
    a.stop().await;
}
