//! A read-only view of a cluster for tools: clients, leader, shards, owners
//! and checkpoints.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result, ServiceErrorKind};
use crate::kinesis::{KinesisTransport, ShardDescription};
use crate::record::{ClientId, Position, ShardId};
use crate::store::CoordinationStore;

/// One client of the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientStatus {
    /// Its id.
    pub id: ClientId,
    /// Its name.
    pub name: String,
    /// Its last heartbeat.
    pub last_heartbeat: SystemTime,
    /// How long ago that was (by this machine's clock).
    pub heartbeat_age: Duration,
    /// Whether it holds the leader record.
    pub is_leader: bool,
    /// How many shard leases it holds.
    pub leases: usize,
    /// How it reads: `polling` or `fan-out <consumer ARN>` (`None` for Go clients).
    pub read_mode: Option<String>,
}

/// One shard of the stream with its lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardStatus {
    /// Its id.
    pub id: ShardId,
    /// Parent shard, if it was split or merged from one.
    pub parent: Option<ShardId>,
    /// Second parent of a merge.
    pub adjacent_parent: Option<ShardId>,
    /// Closed (split or merged away) — it gets no new records.
    pub closed: bool,
    /// Owner's client id, if leased.
    pub owner_id: Option<ClientId>,
    /// Owner's name, if leased.
    pub owner_name: Option<String>,
    /// Last committed position.
    pub checkpoint: Option<Position>,
    /// Fully processed (only closed shards finish).
    pub finished: bool,
    /// When its lease row last changed.
    pub last_update: Option<SystemTime>,
    /// How its owner reads it: `polling` or `fan-out <consumer ARN>`.
    pub read_mode: Option<String>,
}

/// The state of one application's cluster on one stream.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ClusterState {
    /// Clients in the clients table, sorted by id (live and not yet reaped).
    pub clients: Vec<ClientStatus>,
    /// Shards, sorted by id.
    pub shards: Vec<ShardStatus>,
}

impl ClusterState {
    /// Reads the state from the store and, when given, the stream's shard list
    /// (without it, from the leader's cached shard list and the lease rows).
    pub async fn read(
        store: &dyn CoordinationStore,
        transport: Option<&dyn KinesisTransport>,
        stream: &str,
    ) -> Result<ClusterState> {
        let clients = store.list_clients().await?;
        let checkpoints = store.list_checkpoints().await?;
        let leader = store.get_leader().await?.and_then(|l| l.id);
        let described: Vec<ShardDescription> = match transport {
            Some(t) => t.list_shards(stream).await.map_err(|source| {
                if source.kind == ServiceErrorKind::NotFound {
                    Error::NoSuchStream {
                        stream: stream.to_string(),
                    }
                } else {
                    Error::Kinesis {
                        operation: "ListShards",
                        stream: stream.to_string(),
                        shard: None,
                        source,
                    }
                }
            })?,
            None => store
                .get_shard_cache()
                .await?
                .map(|c| c.shards)
                .unwrap_or_default(),
        };
        let now = SystemTime::now();
        let at = |nanos: i64| UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).unwrap_or(0));
        let mut leases: HashMap<&ClientId, usize> = HashMap::new();
        for c in &checkpoints {
            if let Some(owner) = &c.owner_id {
                *leases.entry(owner).or_default() += 1;
            }
        }
        let mut by_shard: HashMap<ShardId, ShardStatus> = described
            .into_iter()
            .map(|d| {
                (
                    d.id.clone(),
                    ShardStatus {
                        id: d.id,
                        parent: d.parent,
                        adjacent_parent: d.adjacent_parent,
                        closed: d.ending_sequence.is_some(),
                        owner_id: None,
                        owner_name: None,
                        checkpoint: None,
                        finished: false,
                        last_update: None,
                        read_mode: None,
                    },
                )
            })
            .collect();
        for c in &checkpoints {
            let entry = by_shard
                .entry(c.shard.clone())
                .or_insert_with(|| ShardStatus {
                    id: c.shard.clone(),
                    parent: None,
                    adjacent_parent: None,
                    closed: c.finished.is_some(),
                    owner_id: None,
                    owner_name: None,
                    checkpoint: None,
                    finished: false,
                    last_update: None,
                    read_mode: None,
                });
            entry.owner_id = c.owner_id.clone();
            entry.owner_name = c.owner_name.clone();
            entry.checkpoint = c.position.clone();
            entry.finished = c.finished.is_some();
            entry.last_update = Some(at(c.last_update));
            entry.read_mode = c
                .owner_id
                .as_ref()
                .and_then(|owner| clients.iter().find(|client| &client.id == owner))
                .and_then(|client| client.read_mode.clone());
        }
        let mut shards: Vec<ShardStatus> = by_shard.into_values().collect();
        shards.sort_by(|a, b| a.id.cmp(&b.id));
        let clients = clients
            .iter()
            .map(|c| {
                let last = at(c.last_update);
                ClientStatus {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    last_heartbeat: last,
                    heartbeat_age: now.duration_since(last).unwrap_or_default(),
                    is_leader: leader.as_ref() == Some(&c.id),
                    leases: leases.get(&c.id).copied().unwrap_or(0),
                    read_mode: c.read_mode.clone(),
                }
            })
            .collect();
        Ok(ClusterState { clients, shards })
    }
}
