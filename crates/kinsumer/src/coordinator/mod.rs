//! Coordination: heartbeats, membership, leadership, assignment, lease capture
//! and hand-off, and keeping exactly the owned shards' readers running.

pub mod assignment;
pub(crate) mod fence;
mod heartbeat;
pub(crate) mod lease;
pub(crate) mod liveness;
pub mod shards;
pub mod status;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::task::{Id as TaskId, JoinError, JoinSet};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::clock::Clock;
use crate::delivery::{Sender, ShardCursor};
use crate::error::{Error, Result, ServiceError, ServiceErrorKind};
use crate::kinesis::KinesisTransport;
use crate::reader::{read_shard, ReaderContext, ReaderExit};
use crate::record::{ClientId, Position, ShardId};
use crate::store::{CheckpointRow, ClientRow, CoordinationStore, LeaseWrite, ShardCache};
use crate::Config;
use lease::{HeldLease, Phase};
use liveness::Liveness;

/// What every part of a running consumer shares.
pub(crate) struct Shared {
    pub(crate) stream: Arc<str>,
    pub(crate) client_id: ClientId,
    pub(crate) client_name: String,
    pub(crate) config: Arc<Config>,
    pub(crate) transport: Arc<dyn KinesisTransport>,
    pub(crate) store: Arc<dyn CoordinationStore>,
    pub(crate) clock: Clock,
    pub(crate) fence: Arc<fence::Fence>,
    /// The enhanced fan-out consumer's ARN, resolved by `run()` in fan-out mode.
    pub(crate) fan_out_consumer: OnceLock<Arc<str>>,
}

impl Shared {
    /// Runs a Kinesis call under the call timeout.
    pub(crate) async fn kinesis_call<T>(
        &self,
        call: impl Future<Output = std::result::Result<T, ServiceError>>,
    ) -> std::result::Result<T, ServiceError> {
        match tokio::time::timeout(self.config.call_timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(ServiceError::new(
                ServiceErrorKind::Transient,
                format!("no answer within {:?}", self.config.call_timeout),
            )),
        }
    }

    pub(crate) fn client_row(&self) -> ClientRow {
        ClientRow {
            id: self.client_id.clone(),
            name: self.client_name.clone(),
            last_update: self.clock.now_nanos(),
            read_mode: Some(match self.fan_out_consumer.get() {
                Some(arn) => format!("fan-out {arn}"),
                None => "polling".to_string(),
            }),
        }
    }

    /// Rewrites the `LastUpdate` of a lease we hold (if we still do) to a
    /// value other than `seen`, the one last read, so that a capture
    /// conditioned on the row as it was fails. Returns false when the lease is
    /// no longer ours.
    async fn touch_lease(&self, shard: &ShardId, seen: Option<i64>) -> Result<bool> {
        let mut write = self.lease_write(shard);
        if let Some(seen) = seen {
            write.now = write.now.max(seen.saturating_add(1));
        }
        self.store.commit_lease(write, None, false).await
    }

    fn lease_write<'a>(&'a self, shard: &'a ShardId) -> LeaseWrite<'a> {
        LeaseWrite {
            shard,
            owner: &self.client_id,
            owner_name: &self.client_name,
            now: self.clock.now_nanos(),
        }
    }
}

/// The coordinator task of one consumer.
pub(crate) struct Coordinator {
    shared: Arc<Shared>,
    sender: Sender,
    readers: JoinSet<ReaderExit>,
    /// The heartbeat task (aborted with the coordinator on a crash).
    background: JoinSet<()>,
    reader_shards: HashMap<TaskId, ShardId>,
    leases: BTreeMap<ShardId, HeldLease>,
    liveness: Liveness,
    is_leader: bool,
    next_leader_action: Instant,
    next_expiry: Option<Instant>,
    /// Set when a failure cannot heal; the consumer then stops.
    fatal: Option<Error>,
    /// After a failed release, when to try again.
    release_retry_at: Instant,
    /// Whether the last call of each kind failed (to log once per episode).
    failing: HashSet<&'static str>,
}

impl Coordinator {
    pub(crate) fn new(shared: Arc<Shared>, sender: Sender) -> Self {
        Coordinator {
            shared,
            sender,
            readers: JoinSet::new(),
            background: JoinSet::new(),
            reader_shards: HashMap::new(),
            leases: BTreeMap::new(),
            liveness: Liveness::default(),
            is_leader: false,
            next_leader_action: Instant::now(),
            next_expiry: None,
            fatal: None,
            release_retry_at: Instant::now(),
            failing: HashSet::new(),
        }
    }

    /// Runs until `stop` is cancelled or a failure cannot heal, then gives
    /// everything up gracefully.
    pub(crate) async fn run(mut self, stop: CancellationToken) {
        let config = Arc::clone(&self.shared.config);
        // Heartbeats run on their own, so that slow coordination calls never delay them.
        let (heartbeat_failures, mut heartbeat_failed) = tokio::sync::mpsc::channel(1);
        let heartbeat_stop = CancellationToken::new();
        self.background
            .spawn(tracing::Instrument::in_current_span(heartbeat::beat(
                Arc::clone(&self.shared),
                heartbeat_failures,
                heartbeat_stop.clone(),
            )));
        let mut next_commit = Instant::now() + config.commit_frequency;
        let mut next_check = Instant::now();
        info!(client = %self.shared.client_id, name = %self.shared.client_name, stream = %self.shared.stream, "joined the cluster");
        let shared = Arc::clone(&self.shared);
        while self.fatal.is_none() {
            let check_at = match self.next_expiry {
                Some(expiry) if expiry < next_check => expiry + Duration::from_millis(5),
                _ => next_check,
            };
            let releasing = self
                .leases
                .values()
                .any(|l| matches!(l.phase, Phase::Releasing { .. }));
            let release_poll =
                (Instant::now() + Duration::from_millis(20)).max(self.release_retry_at);
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                Some(joined) = self.readers.join_next_with_id(), if !self.readers.is_empty() => {
                    self.on_reader_exit(joined).await;
                }
                Some(error) = heartbeat_failed.recv() => self.fatal = Some(error),
                _ = shared.fence.closed.notified() => {
                    // A stall or lost heartbeats: re-validate the leases now.
                    warn!("lease validity lapsed by the local clock; holding records back until the leases are re-validated");
                    self.shard_check().await;
                    self.reconcile_readers();
                }
                _ = sleep_until(next_commit) => {
                    self.commit_all().await;
                    self.reconcile_readers();
                    next_commit = Instant::now() + config.commit_frequency;
                }
                _ = sleep_until(check_at) => {
                    self.shard_check().await;
                    self.reconcile_readers();
                    next_check = Instant::now() + config.shard_check_frequency;
                }
                _ = sleep_until(release_poll), if releasing => {
                    self.progress_releases(false).await;
                }
            }
        }
        if let Some(error) = self.fatal.take() {
            warn!(%error, "stopping: the failure cannot heal by retrying");
            self.sender.report(error).await;
        }
        heartbeat_stop.cancel();
        while self.background.join_next().await.is_some() {}
        self.shutdown().await;
    }

    /// Notes a failed call; failures that cannot heal stop the consumer.
    fn failed(&mut self, what: &'static str, error: Error) {
        if error.is_fatal() {
            self.fatal = Some(error);
            return;
        }
        self.shared.config.stats.retried(what, None);
        if self.failing.insert(what) {
            warn!(%error, "{what} failed; retrying");
        }
    }

    fn succeeded(&mut self, what: &'static str) {
        if self.failing.remove(what) {
            info!("{what} works again");
        }
    }

    /// Writes every lease's processed position, finishes ended shards, and
    /// notices leases taken by others.
    async fn commit_all(&mut self) {
        let shards: Vec<ShardId> = self.leases.keys().cloned().collect();
        for shard in shards {
            let Some(lease) = self.leases.get(&shard) else {
                continue;
            };
            if matches!(lease.phase, Phase::Releasing { .. }) {
                continue;
            }
            let ended = lease.phase == Phase::Ended && lease.cursor.is_drained();
            let position = lease.cursor.watermark();
            if position == lease.committed && !ended {
                continue;
            }
            let store = Arc::clone(&self.shared.store);
            let write = self.shared.lease_write(&shard);
            let result = store.commit_lease(write, position.as_ref(), ended).await;
            match result {
                Ok(true) => {
                    self.succeeded("commit");
                    self.shared.config.stats.checkpoint(&shard);
                    if let Some(lease) = self.leases.get_mut(&shard) {
                        lease.committed = position.clone();
                    }
                    if ended {
                        self.finish(&shard, position).await;
                    }
                }
                Ok(false) => self.lost(&shard),
                Err(e) => self.failed("commit", e),
            }
        }
    }

    /// A finished shard: its `Finished` mark is written; give the lease up.
    async fn finish(&mut self, shard: &ShardId, position: Option<Position>) {
        info!(shard = %shard, "shard read to its end and processed; marked finished");
        self.shared.config.stats.shard_finished(shard);
        let store = Arc::clone(&self.shared.store);
        let write = self.shared.lease_write(shard);
        if let Err(e) = store.release_lease(write, position.as_ref()).await {
            // Finished is written; a lingering owner only matters for display.
            debug!(shard = %shard, error = %e, "could not clear the owner of a finished shard");
        }
        self.leases.remove(shard);
    }

    /// Another client holds a lease we thought ours: stop at once.
    fn lost(&mut self, shard: &ShardId) {
        if let Some(mut lease) = self.leases.remove(shard) {
            lease.stop_reading();
            warn!(shard = %shard, "lease taken by another client; stopped reading the shard");
            self.shared.config.stats.lease_lost(shard);
        }
    }

    /// Releases leases being given up once the caller is through their records
    /// (or the hand-off timeout passed). With `force`, releases them all now.
    async fn progress_releases(&mut self, force: bool) {
        let now = Instant::now();
        let ready: Vec<ShardId> = self
            .leases
            .iter()
            .filter(|(_, l)| match l.phase {
                Phase::Releasing { deadline } => {
                    force || now >= deadline || l.cursor.is_quiescent()
                }
                _ => false,
            })
            .map(|(s, _)| s.clone())
            .collect();
        for shard in ready {
            let Some(lease) = self.leases.get(&shard) else {
                continue;
            };
            let position = lease.cursor.watermark();
            let store = Arc::clone(&self.shared.store);
            let write = self.shared.lease_write(&shard);
            match store.release_lease(write, position.as_ref()).await {
                Ok(true) => {
                    info!(shard = %shard, "lease released");
                    self.shared.config.stats.checkpoint(&shard);
                    self.shared.config.stats.lease_released(&shard);
                    self.leases.remove(&shard);
                }
                Ok(false) => self.lost(&shard),
                Err(e) => {
                    if force {
                        self.leases.remove(&shard);
                    }
                    self.release_retry_at = Instant::now() + self.shared.config.commit_frequency;
                    self.failed("release", e);
                }
            }
        }
    }

    fn begin_release(&mut self, shard: &ShardId) {
        if let Some(lease) = self.leases.get_mut(shard) {
            if lease.phase == Phase::Ended {
                // Nearly finished: let it finish rather than hand the tail over.
                return;
            }
            lease.stop_reading();
            lease.phase = Phase::Releasing {
                deadline: Instant::now() + self.shared.config.handoff_timeout,
            };
            debug!(shard = %shard, "giving the lease up to rebalance");
        }
    }

    /// Re-reads membership, leases and shards; rebalances.
    async fn shard_check(&mut self) {
        // Set again by a successful check; a failed one must not leave an
        // expiry in the past behind (that would re-run checks back to back).
        self.next_expiry = None;
        match self.try_shard_check().await {
            Ok(()) => self.succeeded("shard check"),
            Err(e) => {
                // What we saw before cannot be compared with what we see after.
                self.liveness.forget();
                self.failed("shard check", e);
            }
        }
    }

    async fn try_shard_check(&mut self) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        let check = shared.fence.check_started();
        let revalidating = shared.fence.is_revalidating();
        let store = &shared.store;
        let me = &shared.client_id;
        if revalidating {
            // Our leases lapsed by our own clock. Heartbeat before touching
            // them below, so that whoever reads our touched rows reads our
            // fresh heartbeat after them.
            let sent = shared.fence.now_ms();
            store.put_client(&shared.client_row()).await?;
            shared.fence.heartbeat(sent);
        }
        // The lease rows are read before the clients: a capture of a dead
        // owner's lease is conditioned on the row as read here, so any write
        // to it after this read (a commit, or the touch of an owner that came
        // back; it heartbeats first, so it cannot look dead in the clients read
        // below unless that touch came after this read) makes the capture fail.
        let checkpoints = store.list_checkpoints().await?;
        let rows = store.list_clients().await?;
        if !rows.iter().any(|r| &r.id == me) {
            // Reaped or lost (e.g. a long stall): register again.
            store.put_client(&shared.client_row()).await?;
        }
        let verdict = self.liveness.judge(
            &rows,
            shared.clock.now_nanos(),
            Instant::now(),
            shared.config.lease_duration,
        );
        self.next_expiry = verdict.next_expiry;
        let mut alive = verdict.alive.clone();
        if !alive.contains(me) {
            alive.push(me.clone());
            alive.sort();
        }

        let mut cache = store.get_shard_cache().await?;
        let leader_candidate = alive.first() == Some(me);
        if leader_candidate && (Instant::now() >= self.next_leader_action || cache.is_none()) {
            if let Some(fresh) = self.leader_actions(&rows, &verdict.dead).await? {
                cache = Some(fresh);
            }
            self.next_leader_action = Instant::now() + shared.config.leader_action_frequency;
        } else if !leader_candidate && self.is_leader {
            self.is_leader = false;
            store
                .release_leadership(me, shared.clock.now_nanos())
                .await?;
            info!("no longer the leader");
        }
        let Some(cache) = cache else {
            return Ok(());
        };

        let finished: HashSet<ShardId> = checkpoints
            .iter()
            .filter(|c| c.finished.is_some())
            .map(|c| c.shard.clone())
            .collect();
        let rows_by_shard: HashMap<&ShardId, &CheckpointRow> =
            checkpoints.iter().map(|c| (&c.shard, c)).collect();
        let eligible = shards::eligible_shards(&cache.shards, &finished);
        let alive_set: HashSet<&ClientId> = alive.iter().collect();
        let owners: HashMap<ShardId, ClientId> = eligible
            .iter()
            .filter_map(|s| {
                let owner = rows_by_shard.get(s)?.owner_id.as_ref()?;
                alive_set
                    .contains(owner)
                    .then(|| (s.clone(), owner.clone()))
            })
            .collect();
        let assignment = assignment::assign(&alive, &eligible, &owners);

        // Leases someone else took (e.g. after we stalled), and leases to give up.
        let held: Vec<ShardId> = self.leases.keys().cloned().collect();
        for shard in held {
            let taken = rows_by_shard
                .get(&shard)
                .is_some_and(|row| row.owner_id.as_ref() != Some(me));
            if taken {
                self.lost(&shard);
                continue;
            }
            if revalidating {
                // A takeover decided while we looked dead may still be on its
                // way: change the row it is conditioned on, so that it fails,
                // before handing anything out again.
                let seen = rows_by_shard.get(&shard).map(|row| row.last_update);
                if !shared.touch_lease(&shard, seen).await? {
                    self.lost(&shard);
                    continue;
                }
            }
            if assignment.get(&shard) != Some(me)
                && !finished.contains(&shard)
                && matches!(
                    self.leases.get(&shard).map(|l| l.phase),
                    Some(Phase::Reading)
                )
            {
                self.begin_release(&shard);
            }
        }

        // Leases to take.
        for (shard, owner) in &assignment {
            if owner != me || self.leases.contains_key(shard) {
                continue;
            }
            let row = rows_by_shard.get(shard);
            let expired_owner = match row.and_then(|r| r.owner_id.as_ref()) {
                None => None,
                Some(o) if o == me => None,
                Some(o) if !alive_set.contains(o) => row.map(|r| (o, r.last_update)),
                // A live owner gives it up on its own; take it once released.
                Some(_) => continue,
            };
            let write = shared.lease_write(shard);
            let captured = store.capture_lease(write, expired_owner).await?;
            if let Some(row) = captured {
                info!(shard = %shard, from = ?expired_owner.map(|(o, _)| o.to_string()), "lease taken");
                shared.config.stats.lease_acquired(shard);
                let cursor = Arc::new(ShardCursor::new(shard.clone(), row.position.clone()));
                self.leases
                    .insert(shard.clone(), HeldLease::new(cursor, row.position));
            }
        }
        // Every lease held now was confirmed ours by rows read after `check` began.
        shared.fence.check_finished(check);
        Ok(())
    }

    /// The leader's duties: keep the shard cache, reap long-dead clients.
    async fn leader_actions(
        &mut self,
        rows: &[ClientRow],
        dead: &[ClientId],
    ) -> Result<Option<ShardCache>> {
        let shared = Arc::clone(&self.shared);
        let store = &shared.store;
        let now = shared.clock.now_nanos();
        let lease_nanos =
            i64::try_from(shared.config.lease_duration.as_nanos()).unwrap_or(i64::MAX);
        let claimed = store
            .claim_leadership(
                &shared.client_id,
                &shared.client_name,
                now,
                now.saturating_sub(lease_nanos.saturating_mul(2)),
            )
            .await?;
        if !claimed {
            return Ok(None);
        }
        if !self.is_leader {
            info!("became the leader");
            self.is_leader = true;
        }
        let listed = match shared
            .kinesis_call(shared.transport.list_shards(&shared.stream))
            .await
        {
            Ok(listed) => listed,
            Err(e) if e.kind == ServiceErrorKind::NotFound => {
                return Err(Error::NoSuchStream {
                    stream: shared.stream.to_string(),
                })
            }
            Err(source) => {
                return Err(Error::Kinesis {
                    operation: "ListShards",
                    stream: shared.stream.to_string(),
                    shard: None,
                    source,
                })
            }
        };
        let checkpoints = store.list_checkpoints().await?;
        let finished: HashSet<ShardId> = checkpoints
            .iter()
            .filter(|c| c.finished.is_some())
            .map(|c| c.shard.clone())
            .collect();
        let shards = shards::cached_shards(&listed, &finished);
        let current = store.get_shard_cache().await?;
        let cache = ShardCache {
            shards,
            last_update: now,
        };
        if current.as_ref().map(|c| &c.shards) != Some(&cache.shards) {
            store.put_shard_cache(&cache).await?;
            info!(
                shards = cache.shards.len(),
                "shard list changed; cache updated"
            );
        }

        // Rows of clients dead for a long time only clutter the table.
        let reap_after = lease_nanos.saturating_mul(30).max(60 * 1_000_000_000);
        for row in rows.iter().filter(|r| dead.contains(&r.id)) {
            if now.saturating_sub(row.last_update) > reap_after {
                store
                    .reap_client(&row.id, now.saturating_sub(reap_after))
                    .await?;
            }
        }
        Ok(Some(cache))
    }

    /// Starts a reader for every held lease that should be read and has none.
    fn reconcile_readers(&mut self) {
        let now = Instant::now();
        let shards: Vec<ShardId> = self
            .leases
            .iter()
            .filter(|(_, l)| {
                l.phase == Phase::Reading
                    && l.reader.is_none()
                    && l.restart_at.is_none_or(|at| at <= now)
            })
            .map(|(s, _)| s.clone())
            .collect();
        for shard in shards {
            let Some(lease) = self.leases.get_mut(&shard) else {
                continue;
            };
            let cancel = CancellationToken::new();
            let ctx = ReaderContext {
                stream: Arc::clone(&self.shared.stream),
                transport: Arc::clone(&self.shared.transport),
                config: Arc::clone(&self.shared.config),
                sender: self.sender.clone(),
                fan_out_consumer: self.shared.fan_out_consumer.get().cloned(),
            };
            // In the consumer's span, so that the reader's events name the stream and client.
            let handle = self
                .readers
                .spawn(tracing::Instrument::in_current_span(read_shard(
                    ctx,
                    Arc::clone(&lease.cursor),
                    cancel.clone(),
                )));
            self.reader_shards.insert(handle.id(), shard.clone());
            lease.reader = Some(cancel);
            lease.restart_at = None;
            debug!(shard = %shard, "reader started");
        }
    }

    async fn on_reader_exit(
        &mut self,
        joined: std::result::Result<(TaskId, ReaderExit), JoinError>,
    ) {
        let (id, exit) = match joined {
            Ok((id, exit)) => (id, Some(exit)),
            Err(e) => (e.id(), None),
        };
        let Some(shard) = self.reader_shards.remove(&id) else {
            return;
        };
        let Some(lease) = self.leases.get_mut(&shard) else {
            return;
        };
        if lease.phase != Phase::Reading {
            return;
        }
        lease.reader = None;
        match exit {
            Some(ReaderExit::ShardEnd) => {
                debug!(shard = %shard, "read to the end of the closed shard");
                lease.phase = Phase::Ended;
            }
            Some(ReaderExit::Cancelled) => {}
            Some(ReaderExit::Failed(error)) => {
                let first = lease.restarts.attempts() == 0;
                lease.restart_at = Some(Instant::now() + lease.restarts.next_delay());
                warn!(shard = %shard, %error, "reader failed; restarting it with backoff");
                if first {
                    self.sender.report(error).await;
                }
            }
            None => {
                lease.restart_at = Some(Instant::now() + lease.restarts.next_delay());
                warn!(shard = %shard, "reader task panicked; restarting it with backoff");
            }
        }
    }

    /// Gives everything up: stops readers, lets the caller finish what it has
    /// (bounded), commits, releases leases and leadership, deregisters.
    async fn shutdown(&mut self) {
        for lease in self.leases.values_mut() {
            lease.stop_reading();
        }
        let deadline = Instant::now() + self.shared.config.handoff_timeout;
        while let Ok(Some(_)) = tokio::time::timeout_at(deadline, self.readers.join_next()).await {}
        self.readers.abort_all();
        while Instant::now() < deadline && !self.leases.values().all(|l| l.cursor.is_quiescent()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let ended: Vec<ShardId> = self
            .leases
            .iter()
            .filter(|(_, l)| l.phase == Phase::Ended && l.cursor.is_drained())
            .map(|(s, _)| s.clone())
            .collect();
        for shard in ended {
            let position = self.leases.get(&shard).and_then(|l| l.cursor.watermark());
            let store = Arc::clone(&self.shared.store);
            let write = self.shared.lease_write(&shard);
            if let Ok(true) = store.commit_lease(write, position.as_ref(), true).await {
                self.finish(&shard, position).await;
            }
        }
        let deadline = Instant::now() + self.shared.config.handoff_timeout;
        for lease in self.leases.values_mut() {
            lease.phase = Phase::Releasing { deadline };
        }
        self.progress_releases(true).await;
        let shared = Arc::clone(&self.shared);
        if self.is_leader {
            let _ = shared
                .store
                .release_leadership(&shared.client_id, shared.clock.now_nanos())
                .await;
        }
        if let Err(e) = shared.store.delete_client(&shared.client_id).await {
            warn!(error = %e, "could not deregister from the clients table; the row expires on its own");
        }
        info!(client = %shared.client_id, "left the cluster");
    }
}
