//! The consumer end to end on the in-memory backends (virtual time).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kinsumer::kinesis::memory::MemoryKinesis;
use kinsumer::store::memory::MemoryStore;
use kinsumer::{Config, Kinsumer};

fn config() -> Config {
    Config::new()
        .with_shard_check_frequency(Duration::from_millis(500))
        .with_leader_action_frequency(Duration::from_millis(500))
        .with_commit_frequency(Duration::from_millis(200))
        .with_lease_duration(Duration::from_secs(2))
}

#[tokio::test(start_paused = true)]
async fn one_client_drains_every_record_once() {
    let kinesis = MemoryKinesis::new();
    kinesis.create_stream("s", 4);
    for i in 0..1000 {
        kinesis
            .put("s", &format!("key-{}", i % 37), Bytes::from(format!("{i}")))
            .expect("put");
    }
    let store = MemoryStore::new("app");
    let mut k = Kinsumer::with_backends(
        Arc::new(kinesis.clone()),
        Arc::new(store.clone()),
        "s",
        "one",
        config(),
    )
    .expect("build");
    k.create_required_tables().await.expect("tables");
    k.run().await.expect("run");
    let mut seen: HashMap<String, usize> = HashMap::new();
    while seen.len() < 1000 {
        let r = tokio::time::timeout(Duration::from_secs(30), k.next())
            .await
            .expect("records keep coming")
            .expect("not stopped")
            .expect("no error");
        *seen
            .entry(String::from_utf8_lossy(&r.data).into_owned())
            .or_default() += 1;
    }
    assert!(seen.values().all(|&n| n == 1));
    k.stop().await;
    assert!(k.next().await.is_none());
}
