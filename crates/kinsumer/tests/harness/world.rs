//! An in-memory Kinesis stream and coordination store for cluster tests in virtual time.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kinsumer::kinesis::memory::MemoryKinesis;
use kinsumer::store::memory::MemoryStore;
use kinsumer::store::CoordinationStore;
use kinsumer::{Config, Error, Kinsumer, SequenceNumber, ShardId};

use super::{Log, Running};

/// The stream every [`World`] has.
pub const STREAM: &str = "events";

/// A stream, the application's tables, and every record put so far.
pub struct World {
    pub kinesis: MemoryKinesis,
    pub store: MemoryStore,
    /// Payloads put, in order.
    pub expected: Vec<String>,
    /// Their sequence numbers.
    pub sequences: Vec<SequenceNumber>,
    next_value: usize,
    /// The configuration of clients started with [`World::start`].
    config: Config,
}

impl World {
    /// A stream of `shards` shards and created tables; `config` for [`World::start`].
    pub async fn new(shards: usize, config: Config) -> World {
        let kinesis = MemoryKinesis::new();
        kinesis.create_stream(STREAM, shards);
        let store = MemoryStore::new("app");
        store
            .create_tables(kinsumer::Billing::OnDemand, Duration::from_millis(1))
            .await
            .expect("tables");
        World {
            kinesis,
            store,
            expected: Vec::new(),
            sequences: Vec::new(),
            next_value: 0,
            config,
        }
    }

    /// Puts `n` records over 20 keys; payloads are `<key>:<n>`, increasing per key.
    pub fn put(&mut self, n: usize) {
        for _ in 0..n {
            let i = self.next_value;
            self.next_value += 1;
            let key = format!("key-{}", i % 20);
            let data = format!("{key}:{i}");
            let (_, seq) = self
                .kinesis
                .put(STREAM, &key, Bytes::from(data.clone()))
                .expect("put");
            self.expected.push(data);
            self.sequences.push(seq);
        }
    }

    /// Splits the first shard, splits its left child, merges that child's upper half with the
    /// right child, putting 200 records before and after each step (800 in all): four shards
    /// end closed.
    pub fn reshard_while_putting(&mut self) {
        self.put(200);
        let (left, right) = self
            .kinesis
            .split_shard(STREAM, &ShardId::new("shardId-000000000000"))
            .expect("split");
        self.put(200);
        let (_, upper_of_left) = self
            .kinesis
            .split_shard(STREAM, &left)
            .expect("split again");
        self.put(200);
        // The upper quarter of the left half is adjacent to the right half.
        self.kinesis
            .merge_shards(STREAM, &upper_of_left, &right)
            .expect("merge");
        self.put(200);
    }

    /// A client, built and running, or why it could not be.
    pub async fn try_consumer(&self, name: &str, config: Config) -> Result<Kinsumer, Error> {
        let mut k = Kinsumer::with_backends(
            Arc::new(self.kinesis.clone()),
            Arc::new(self.store.clone()),
            STREAM,
            name,
            config,
        )?;
        k.run().await?;
        Ok(k)
    }

    /// A client, built and running.
    pub async fn consumer(&self, name: &str, config: Config) -> Kinsumer {
        self.try_consumer(name, config).await.expect("run")
    }

    /// A client with the world's configuration, delivering into `log`.
    pub async fn start(&self, name: &str, log: &Log) -> Running {
        Running::start(self.consumer(name, self.config.clone()).await, log.clone())
    }
}
