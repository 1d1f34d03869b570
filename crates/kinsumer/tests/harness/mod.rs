//! Running consumers in tests and checking what they delivered.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kinsumer::kinesis::memory::MemoryKinesis;
use kinsumer::{Kinsumer, Record};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

mod world;
#[allow(unused_imports)] // not every test binary uses it
pub use world::{World, STREAM};

/// One delivered record as a test sees it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub client: String,
    pub key: String,
    pub data: String,
    pub shard: String,
}

/// Everything delivered, by every consumer of a test, in delivery order.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Seen>>>);

impl Log {
    pub fn push(&self, client: &str, r: &Record) {
        self.0.lock().expect("log").push(Seen {
            client: client.to_string(),
            key: r.partition_key.clone(),
            data: String::from_utf8_lossy(&r.data).into_owned(),
            shard: r.shard_id.to_string(),
        });
    }

    pub fn snapshot(&self) -> Vec<Seen> {
        self.0.lock().expect("log").clone()
    }

    pub fn len(&self) -> usize {
        self.0.lock().expect("log").len()
    }

    /// Distinct payloads delivered.
    pub fn distinct(&self) -> usize {
        let mut v: Vec<String> = self.snapshot().into_iter().map(|s| s.data).collect();
        v.sort();
        v.dedup();
        v.len()
    }

    /// How many deliveries were repeats of an earlier one.
    pub fn duplicates(&self) -> usize {
        self.len() - self.distinct()
    }

    /// Payloads of `expected` never delivered.
    pub fn missing(&self, expected: &[String]) -> Vec<String> {
        let seen: std::collections::HashSet<String> =
            self.snapshot().into_iter().map(|s| s.data).collect();
        expected
            .iter()
            .filter(|e| !seen.contains(*e))
            .cloned()
            .collect()
    }

    /// Per-key order violations: for each key, payloads are expected as
    /// `<key>:<n>` with n increasing; a delivery of n after a larger m of the
    /// same key (not counting re-deliveries of already seen n) is a violation.
    pub fn order_violations(&self) -> usize {
        let mut highest: HashMap<String, u64> = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        let mut violations = 0;
        for s in self.snapshot() {
            let n: u64 = s
                .data
                .rsplit(':')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if !seen.insert(s.data.clone()) {
                continue;
            }
            let h = highest.entry(s.key.clone()).or_insert(0);
            if n < *h {
                violations += 1;
            }
            *h = (*h).max(n);
        }
        violations
    }

    /// Waits (polling, with a deadline) until `distinct()` reaches `n`.
    pub async fn wait_distinct(&self, n: usize, deadline: Duration) -> bool {
        let end = tokio::time::Instant::now() + deadline;
        while tokio::time::Instant::now() < end {
            if self.distinct() >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.distinct() >= n
    }
}

/// A consumer running in its own task, delivering into a log.
pub struct Running {
    pub name: String,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    /// Runs `k` (already `run()`) until stopped or crashed.
    pub fn start(mut k: Kinsumer, log: Log) -> Running {
        let stop = CancellationToken::new();
        let name = k.client_name().to_string();
        let token = stop.clone();
        let client = name.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = k.next() => match r {
                        Some(Ok(r)) => log.push(&client, &r),
                        Some(Err(e)) => panic!("consumer {client} failed: {e}"),
                        None => break,
                    },
                    _ = token.cancelled() => {
                        k.stop().await;
                        break;
                    }
                }
            }
        });
        Running { name, stop, task }
    }

    /// Graceful stop; waits until done.
    pub async fn stop(self) {
        self.stop.cancel();
        self.task.await.expect("consumer task");
    }

    /// A crash: the task is aborted; nothing is committed or released.
    pub async fn crash(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Puts records `from..from + n` into stream `s` of an in-memory Kinesis, over
/// 10 keys, with payloads `k<key>:<n>`; returns the payloads.
pub fn put_numbered(kinesis: &MemoryKinesis, from: usize, n: usize) -> Vec<String> {
    (from..from + n)
        .map(|i| {
            let data = format!("k{}:{i}", i % 10);
            kinesis
                .put("s", &format!("k{}", i % 10), Bytes::from(data.clone()))
                .expect("put");
            data
        })
        .collect()
}
