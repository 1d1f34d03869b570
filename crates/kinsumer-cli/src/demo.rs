//! `kinsumer demo`: the whole library at work in memory, with nothing to set up.
//!
//! A 4-shard in-memory stream, a producer writing `<key>:<n>` records for 50 keys (`n` counting
//! up per key), three clients sharing the shards, then a fourth joining, one crashing (dropped
//! without `stop()`), and a shard split. Every delivered record is checked: duplicates, per-key
//! order, and at the end anything lost. Prints a live view (redrawn on a terminal, one line per
//! phase otherwise) and a verdict; exits 1 when a record was lost or a key went out of order.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use kinsumer::kinesis::memory::MemoryKinesis;
use kinsumer::kinesis::KinesisTransport;
use kinsumer::store::memory::MemoryStore;
use kinsumer::{ClusterState, Config, Kinsumer, PutEntry, ShardId};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::CliError;
use crate::term;

/// The in-memory stream's name.
const STREAM: &str = "demo";
/// The application's name.
const APP: &str = "demo";
/// Shards at the start.
const SHARDS: usize = 4;
/// Distinct partition keys.
const KEYS: usize = 50;
/// The producer writes a batch this often.
const PRODUCE_EVERY: Duration = Duration::from_millis(20);
/// The live view refreshes this often.
const VIEW_EVERY: Duration = Duration::from_millis(250);
/// Commit interval of the clients (also the bound on duplicates after a crash).
const COMMIT_EVERY: Duration = Duration::from_millis(200);
/// Lease duration of the clients (a crashed client's shards move after about this).
const LEASE: Duration = Duration::from_millis(1500);
/// How long the survivors may take to deliver everything once the producer stops.
const DRAIN_LIMIT: Duration = Duration::from_secs(20);
/// Widest line of the live view (wider lines would wrap on an 80-column terminal).
const FRAME_WIDTH: usize = 79;
/// Event lines kept in the live view.
const EVENTS_SHOWN: usize = 8;

/// `kinsumer demo`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    kinsumer demo\n  \
    kinsumer demo --records 5000 --seconds 6\n\n\
    Timeline (fractions of --seconds): 3 clients start; at 30% a 4th joins; at 50% one \
    crashes; at 70% a shard splits; at 100% the producer stops and the survivors drain.")]
pub struct DemoArgs {
    /// Records the producer writes in total.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    records: u64,
    /// Seconds the producer runs; the phases are spread over this time (the demo ends a few
    /// seconds later, once the survivors have drained).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..=600))]
    seconds: u64,
}

/// Runs `kinsumer demo`.
pub async fn run(args: DemoArgs) -> Result<ExitCode, CliError> {
    let mut demo = Demo::new(&args);
    let result = demo.play(&args).await;
    demo.shutdown().await;
    let verdict = result?;
    demo.view.finish(&demo.checker, &demo.clients)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", verdict.line())
        .and_then(|()| {
            writeln!(
                out,
                "note: duplicates are expected only around the crash: what {} processed after\n\
                 its last commit (at most ~{} ms of records, one commit interval) is delivered\n\
                 again by the client taking its shards over. Graceful moves (the join, the\n\
                 split, the final stop) duplicate nothing.",
                demo.crashed_name,
                COMMIT_EVERY.as_millis()
            )
        })
        .and_then(|()| out.flush())
        .map_err(|e| CliError::io("writing to stdout", e))?;
    Ok(if verdict.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The running demo: backends, clients, checker and view.
struct Demo {
    kinesis: MemoryKinesis,
    store: MemoryStore,
    checker: Arc<Checker>,
    clients: Vec<DemoClient>,
    view: View,
    crashed_name: String,
}

impl Demo {
    /// The backends with the stream created; no client yet.
    fn new(args: &DemoArgs) -> Self {
        let kinesis = MemoryKinesis::new();
        kinesis.create_stream(STREAM, SHARDS);
        Demo {
            kinesis,
            store: MemoryStore::new(APP),
            checker: Arc::new(Checker::new()),
            clients: Vec::new(),
            view: View::new(args),
            crashed_name: "client-2".to_string(),
        }
    }

    /// The timeline. Returns the verdict once the survivors have drained.
    async fn play(&mut self, args: &DemoArgs) -> Result<Verdict, CliError> {
        let total = Duration::from_secs(args.seconds);
        let at = |fraction: f64| total.mul_f64(fraction);
        let started = tokio::time::Instant::now();
        self.view.started = Instant::now();

        for name in ["client-1", "client-2", "client-3"] {
            self.join(name).await?;
        }
        self.view
            .event("client-1, -2, -3 join; the producer starts: 50 keys, <key>:<n>");

        let stop_producer = CancellationToken::new();
        let producer = tokio::spawn(produce(
            self.kinesis.clone(),
            Arc::clone(&self.checker),
            args.records,
            total,
            stop_producer.clone(),
        ));

        let phases: [(Duration, Phase); 3] = [
            (at(0.30), Phase::Join),
            (at(0.50), Phase::Crash),
            (at(0.70), Phase::Split),
        ];
        let mut next_phase = 0;
        let mut tick = tokio::time::interval(VIEW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut producer = Some(producer);
        let mut drain_started: Option<tokio::time::Instant> = None;
        loop {
            tick.tick().await;
            let elapsed = started.elapsed();
            while next_phase < phases.len() && elapsed >= phases[next_phase].0 {
                let phase = phases[next_phase].1;
                next_phase += 1;
                self.enter(phase).await?;
            }
            if let Some(handle) = producer.as_ref() {
                if handle.is_finished() {
                    if let Some(handle) = producer.take() {
                        match handle.await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => return Err(CliError::kinsumer(e, None)),
                            Err(e) => {
                                return Err(CliError::Failed(format!("the producer failed: {e}")))
                            }
                        }
                    }
                    let produced = self.checker.produced();
                    self.view.event(&format!(
                        "producer stops after {produced} records; survivors drain"
                    ));
                    drain_started = Some(tokio::time::Instant::now());
                }
            }
            self.refresh_view().await?;
            if let Some(since) = drain_started {
                let complete = self.checker.unique() >= self.checker.produced();
                if complete || since.elapsed() >= DRAIN_LIMIT {
                    if !complete {
                        self.view.event(&format!(
                            "gave up waiting after {} s: records are missing",
                            DRAIN_LIMIT.as_secs()
                        ));
                    }
                    break;
                }
            }
        }
        stop_producer.cancel();
        self.view.event("survivors stop gracefully");
        self.stop_survivors().await;
        Ok(self.checker.verdict())
    }

    /// Starts a client that shares the stream with the others.
    async fn join(&mut self, name: &str) -> Result<(), CliError> {
        let config = Config::new()
            .with_throttle_delay(Duration::from_millis(200))
            .with_shard_check_frequency(Duration::from_millis(300))
            .with_leader_action_frequency(Duration::from_millis(500))
            .with_lease_duration(LEASE)
            .with_commit_frequency(COMMIT_EVERY)
            .with_handoff_timeout(Duration::from_secs(1))
            .with_buffer_size(2_000);
        let mut consumer = Kinsumer::with_backends(
            Arc::new(self.kinesis.clone()),
            Arc::new(self.store.clone()),
            STREAM,
            name,
            config,
        )
        .map_err(|e| CliError::kinsumer(e, None))?;
        if self.clients.is_empty() {
            consumer
                .create_required_tables()
                .await
                .map_err(|e| CliError::kinsumer(e, None))?;
        }
        consumer
            .run()
            .await
            .map_err(|e| CliError::kinsumer(e, None))?;
        let delivered = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        let task = tokio::spawn(consume(
            consumer,
            Arc::clone(&self.checker),
            Arc::clone(&delivered),
            stop.clone(),
            self.view.errors.clone(),
        ));
        self.clients.push(DemoClient {
            name: name.to_string(),
            delivered,
            last_count: 0,
            rate: 0.0,
            state: ClientState::Running,
            stop,
            task: Some(task),
        });
        Ok(())
    }

    /// Plays one scripted phase.
    async fn enter(&mut self, phase: Phase) -> Result<(), CliError> {
        match phase {
            Phase::Join => {
                self.join("client-4").await?;
                self.view
                    .event("client-4 joins: shards move to it gracefully");
            }
            Phase::Crash => {
                let name = self.crashed_name.clone();
                if let Some(client) = self.clients.iter_mut().find(|c| c.name == name) {
                    if let Some(task) = client.task.take() {
                        // Aborting the task drops the consumer without stop(): a crash.
                        task.abort();
                        let _ = task.await;
                    }
                    client.state = ClientState::Crashed;
                    self.view.crashed_at = Some(Instant::now());
                }
                self.view.event(&format!(
                    "{name} crashes (dropped, no stop): leases expire in ~{:.1} s",
                    LEASE.as_secs_f64()
                ));
            }
            Phase::Split => {
                let shard = self
                    .kinesis
                    .open_shards(STREAM)
                    .into_iter()
                    .next()
                    .ok_or_else(|| CliError::Failed("the demo stream has no open shard".into()))?;
                let (a, b) = self.kinesis.split_shard(STREAM, &shard).map_err(|source| {
                    CliError::kinsumer(
                        kinsumer::Error::Kinesis {
                            operation: "SplitShard",
                            stream: STREAM.to_string(),
                            shard: Some(shard.clone()),
                            source,
                        },
                        None,
                    )
                })?;
                self.view.split = Some(SplitWatch {
                    parent: shard.clone(),
                    children: [a.clone(), b.clone()],
                    parent_finished: false,
                });
                self.view.event(&format!(
                    "{} splits into {} and {}: children wait until it is finished",
                    short_shard(&shard),
                    short_number(&a),
                    short_number(&b)
                ));
            }
        }
        Ok(())
    }

    /// Reads the cluster state and redraws (or prints the derived events).
    async fn refresh_view(&mut self) -> Result<(), CliError> {
        let transport: &dyn KinesisTransport = &self.kinesis;
        let state = ClusterState::read(&self.store, Some(transport), STREAM)
            .await
            .ok();
        for client in &mut self.clients {
            client.sample(VIEW_EVERY);
        }
        self.view
            .refresh(state.as_ref(), &self.checker, &self.clients)
    }

    /// Stops every running client gracefully (commit, release) and waits for them.
    async fn stop_survivors(&mut self) {
        for client in &self.clients {
            client.stop.cancel();
        }
        for client in &mut self.clients {
            if let Some(task) = client.task.take() {
                let _ = task.await;
                client.state = ClientState::Stopped;
            }
        }
    }

    /// Ends whatever still runs (after an error midway).
    async fn shutdown(&mut self) {
        self.stop_survivors().await;
    }
}

/// The scripted events.
#[derive(Debug, Clone, Copy)]
enum Phase {
    Join,
    Crash,
    Split,
}

/// One client of the demo, seen from outside.
struct DemoClient {
    name: String,
    delivered: Arc<AtomicU64>,
    last_count: u64,
    /// Records per second, smoothed.
    rate: f64,
    state: ClientState,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl DemoClient {
    /// Updates the smoothed rate from the delivered count, sampled every `every`.
    fn sample(&mut self, every: Duration) {
        let count = self.delivered.load(Ordering::Relaxed);
        let now = (count - self.last_count) as f64 / every.as_secs_f64();
        self.last_count = count;
        self.rate = if self.rate == 0.0 {
            now
        } else {
            0.5 * self.rate + 0.5 * now
        };
    }
}

/// Where a demo client is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    Running,
    Crashed,
    Stopped,
}

/// A client's loop: take records, check them, count them; stop gracefully when told.
async fn consume(
    mut consumer: Kinsumer,
    checker: Arc<Checker>,
    delivered: Arc<AtomicU64>,
    stop: CancellationToken,
    errors: Arc<Mutex<Vec<String>>>,
) {
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            next = consumer.next() => match next {
                Some(Ok(record)) => {
                    checker.deliver(&record.data);
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
                Some(Err(e)) => {
                    let fatal = e.is_fatal();
                    lock(&errors).push(format!("{}: {e}", consumer.client_name()));
                    if fatal {
                        break;
                    }
                }
                None => break,
            }
        }
    }
    consumer.stop().await;
}

/// The producer: `records` records over `duration`, in small batches, keys round robin.
async fn produce(
    kinesis: MemoryKinesis,
    checker: Arc<Checker>,
    records: u64,
    duration: Duration,
    stop: CancellationToken,
) -> kinsumer::Result<()> {
    let started = tokio::time::Instant::now();
    let mut next_n = vec![0u64; KEYS];
    let mut written = 0u64;
    let mut tick = tokio::time::interval(PRODUCE_EVERY);
    while written < records {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let fraction = (started.elapsed().as_secs_f64() / duration.as_secs_f64()).min(1.0);
        let due = ((records as f64 * fraction).ceil() as u64).min(records);
        if due <= written {
            continue;
        }
        let mut batch = Vec::with_capacity((due - written) as usize);
        for i in written..due {
            let key = (i % KEYS as u64) as usize;
            let n = next_n[key];
            next_n[key] += 1;
            batch.push(PutEntry {
                partition_key: key_name(key),
                data: Bytes::from(format!("{}:{n}", key_name(key))),
                explicit_hash_key: None,
            });
        }
        let count = batch.len() as u64;
        kinsumer::publish::publish_batch(&kinesis, STREAM, batch).await?;
        written += count;
        checker.produced_up_to(&next_n, written);
    }
    Ok(())
}

/// The partition key of key number `key`.
fn key_name(key: usize) -> String {
    format!("key-{key:02}")
}

/// Checks every delivery against what was produced.
struct Checker {
    state: Mutex<CheckState>,
}

/// The counts behind the verdict.
#[derive(Default)]
struct CheckState {
    produced: u64,
    produced_per_key: Vec<u64>,
    keys: HashMap<String, KeyLog>,
    unique: u64,
    duplicates: u64,
    order_violations: u64,
    malformed: u64,
}

/// What one key has seen.
#[derive(Default)]
struct KeyLog {
    seen: Vec<bool>,
    highest: Option<u64>,
}

/// The outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Verdict {
    produced: u64,
    delivered: u64,
    duplicates: u64,
    order_violations: u64,
    lost: u64,
    malformed: u64,
}

impl Verdict {
    /// OK when nothing was lost, reordered or mangled.
    fn ok(&self) -> bool {
        self.lost == 0 && self.order_violations == 0 && self.malformed == 0
    }

    /// The `verdict: ...` line.
    fn line(&self) -> String {
        let mut line = format!(
            "verdict: produced {}, delivered {} distinct, duplicates {}, per-key order violations {}, lost {}",
            self.produced, self.delivered, self.duplicates, self.order_violations, self.lost
        );
        if self.malformed > 0 {
            let _ = write!(line, ", malformed {}", self.malformed);
        }
        line.push_str(if self.ok() { " — OK" } else { " — FAIL" });
        line
    }
}

impl Checker {
    /// A checker that has seen nothing.
    fn new() -> Self {
        Checker {
            state: Mutex::new(CheckState::default()),
        }
    }

    /// The state, even after a panic elsewhere (the counts stay meaningful).
    fn lock(&self) -> MutexGuard<'_, CheckState> {
        lock(&self.state)
    }

    /// Records how far the producer got, per key and in total.
    fn produced_up_to(&self, per_key: &[u64], total: u64) {
        let mut s = self.lock();
        s.produced_per_key = per_key.to_vec();
        s.produced = total;
    }

    /// Records produced so far.
    fn produced(&self) -> u64 {
        self.lock().produced
    }

    /// Distinct records delivered so far.
    fn unique(&self) -> u64 {
        self.lock().unique
    }

    /// Repeated deliveries so far.
    fn duplicates(&self) -> u64 {
        self.lock().duplicates
    }

    /// Records one delivery of `<key>:<n>`: new, a duplicate, or new but after a later record
    /// of its key (an order violation).
    fn deliver(&self, data: &[u8]) {
        let mut s = self.lock();
        let parsed = std::str::from_utf8(data)
            .ok()
            .and_then(|t| t.rsplit_once(':'))
            .and_then(|(key, n)| Some((key, n.parse::<u64>().ok()?)));
        let Some((key, n)) = parsed else {
            s.malformed += 1;
            return;
        };
        let log = s.keys.entry(key.to_string()).or_default();
        let index = n as usize;
        if log.seen.len() <= index {
            log.seen.resize(index + 1, false);
        }
        if log.seen[index] {
            s.duplicates += 1;
            return;
        }
        log.seen[index] = true;
        let out_of_order = log.highest.is_some_and(|h| n < h);
        log.highest = Some(log.highest.map_or(n, |h| h.max(n)));
        s.unique += 1;
        if out_of_order {
            s.order_violations += 1;
        }
    }

    /// The verdict over everything produced.
    fn verdict(&self) -> Verdict {
        let s = self.lock();
        let mut delivered_of_produced = 0u64;
        for (key, &count) in s.produced_per_key.iter().enumerate() {
            if let Some(log) = s.keys.get(&key_name(key)) {
                delivered_of_produced += log
                    .seen
                    .iter()
                    .take(count as usize)
                    .filter(|&&seen| seen)
                    .count() as u64;
            }
        }
        Verdict {
            produced: s.produced,
            delivered: s.unique,
            duplicates: s.duplicates,
            order_violations: s.order_violations,
            lost: s.produced - delivered_of_produced.min(s.produced),
            malformed: s.malformed,
        }
    }
}

/// Locks a mutex, ignoring poisoning (a panicking client must not hide the verdict).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `shardId-000000000004` → `shard 4`.
fn short_shard(id: &ShardId) -> String {
    format!("shard {}", short_number(id))
}

/// `shardId-000000000004` → `4`.
fn short_number(id: &ShardId) -> String {
    let digits = id
        .as_str()
        .trim_start_matches("shardId-")
        .trim_start_matches('0');
    if digits.is_empty() { "0" } else { digits }.to_string()
}

/// The split being watched: when does the parent finish?
struct SplitWatch {
    parent: ShardId,
    children: [ShardId; 2],
    parent_finished: bool,
}

/// The live view: a redrawn block on a terminal, or one line per event otherwise.
struct View {
    live: bool,
    redraw: term::Redraw,
    started: Instant,
    events: Vec<String>,
    /// Errors the clients reported (shown as events).
    errors: Arc<Mutex<Vec<String>>>,
    owners: BTreeMap<String, Vec<ShardId>>,
    crashed_at: Option<Instant>,
    crash_reported: bool,
    split: Option<SplitWatch>,
    records: u64,
    seconds: u64,
    /// The clients' shards and rates at the last refresh (appended to plain event lines).
    summary: String,
}

impl View {
    /// An empty view; live (redrawn) when stdout is a terminal.
    fn new(args: &DemoArgs) -> Self {
        View {
            live: term::stdout_is_terminal(),
            redraw: term::Redraw::new(),
            started: Instant::now(),
            events: Vec::new(),
            errors: Arc::default(),
            owners: BTreeMap::new(),
            crashed_at: None,
            crash_reported: false,
            split: None,
            records: args.records,
            seconds: args.seconds,
            summary: String::new(),
        }
    }

    /// `[  3.2s]`: the time since the demo started.
    fn stamp(&self) -> String {
        format!("[{:5.1}s]", self.started.elapsed().as_secs_f64())
    }

    /// Records an event; without a terminal it is printed at once, with the clients' shards.
    fn event(&mut self, text: &str) {
        let line = format!("{} {text}", self.stamp());
        if !self.live {
            if self.summary.is_empty() {
                // Best effort: a closed stdout shows up when the verdict is written.
                let _ = term::print_line(&line);
            } else {
                let _ = term::print_line(&format!("{line} | {}", self.summary));
            }
        }
        self.events.push(line);
    }

    /// Updates from the cluster state and the checker; derives the takeover and split events.
    fn refresh(
        &mut self,
        state: Option<&ClusterState>,
        checker: &Checker,
        clients: &[DemoClient],
    ) -> Result<(), CliError> {
        let errors: Vec<String> = lock(&self.errors).drain(..).collect();
        for e in errors {
            self.event(&format!("error: {e}"));
        }
        if let Some(state) = state {
            self.owners.clear();
            for shard in &state.shards {
                if let Some(owner) = &shard.owner_name {
                    self.owners
                        .entry(owner.clone())
                        .or_default()
                        .push(shard.id.clone());
                }
            }
            // The crashed client's leases are gone once nobody lists it as owner any more.
            if let (Some(at), false) = (self.crashed_at, self.crash_reported) {
                let crashed: Vec<&DemoClient> = clients
                    .iter()
                    .filter(|c| c.state == ClientState::Crashed)
                    .collect();
                if crashed.iter().all(|c| !self.owners.contains_key(&c.name)) {
                    self.crash_reported = true;
                    let names: Vec<&str> = crashed.iter().map(|c| c.name.as_str()).collect();
                    self.event(&format!(
                        "{}'s shards taken over {:.1} s after the crash",
                        names.join(", "),
                        at.elapsed().as_secs_f64()
                    ));
                }
            }
            let finished = self.split.as_ref().and_then(|split| {
                let parent = state.shards.iter().find(|s| s.id == split.parent)?;
                (parent.finished && !split.parent_finished).then(|| {
                    format!(
                        "{} finished: shards {} and {} are read now",
                        short_shard(&split.parent),
                        short_number(&split.children[0]),
                        short_number(&split.children[1])
                    )
                })
            });
            if let Some(text) = finished {
                if let Some(split) = self.split.as_mut() {
                    split.parent_finished = true;
                }
                self.event(&text);
            }
        }
        self.summary = self.summary_of(clients);
        if self.live {
            let frame = self.frame(checker, clients);
            let mut out = std::io::stdout().lock();
            self.redraw
                .draw(&mut out, &frame)
                .map_err(|e| CliError::io("writing to stdout", e))?;
        }
        Ok(())
    }

    /// The last frame (on a terminal) or a closing summary line (otherwise).
    fn finish(&mut self, checker: &Checker, clients: &[DemoClient]) -> Result<(), CliError> {
        let mut out = std::io::stdout().lock();
        let written = if self.live {
            let frame = self.frame(checker, clients);
            self.redraw.draw(&mut out, &frame)
        } else {
            writeln!(out, "{} {}", self.stamp(), self.clients_line(clients))
        };
        written.map_err(|e| CliError::io("writing to stdout", e))
    }

    /// The live view's text.
    fn frame(&self, checker: &Checker, clients: &[DemoClient]) -> String {
        let mut f = String::new();
        let _ = writeln!(
            f,
            "kinsumer demo: in-memory stream, {SHARDS} shards, {KEYS} keys, {} records in {} s",
            self.records, self.seconds
        );
        let _ = writeln!(
            f,
            "{} produced {}, delivered {}, duplicates {}",
            self.stamp(),
            checker.produced(),
            checker.unique(),
            checker.duplicates()
        );
        for c in clients {
            let delivered = c.delivered.load(Ordering::Relaxed);
            let line = match c.state {
                ClientState::Running => format!(
                    "  {:<9} running  {:>5.0} rec/s  {:>7} delivered  shards {}",
                    c.name,
                    c.rate,
                    delivered,
                    self.shards_of(&c.name)
                ),
                ClientState::Crashed if self.owners.contains_key(&c.name) => format!(
                    "  {:<9} CRASHED  {:>11}  {:>7} delivered  leases expire: shards {}",
                    c.name,
                    "",
                    delivered,
                    self.shards_of(&c.name)
                ),
                ClientState::Crashed => format!(
                    "  {:<9} CRASHED  {:>11}  {:>7} delivered  shards taken over",
                    c.name, "", delivered
                ),
                ClientState::Stopped => {
                    format!(
                        "  {:<9} stopped  {:>11}  {:>7} delivered",
                        c.name, "", delivered
                    )
                }
            };
            f.push_str(&line);
            f.push('\n');
        }
        f.push_str("events:\n");
        let skip = self.events.len().saturating_sub(EVENTS_SHOWN);
        for e in &self.events[skip..] {
            let _ = writeln!(f, "  {e}");
        }
        // Lines that wrap would break the redraw, which counts lines: keep them within 79 columns.
        f.lines()
            .map(|line| line.chars().take(FRAME_WIDTH).collect::<String>() + "\n")
            .collect()
    }

    /// The short ids of the shards `name` holds leases on, e.g. `0,3`, or `-`.
    fn shards_of(&self, name: &str) -> String {
        match self.owners.get(name) {
            Some(shards) if !shards.is_empty() => shards
                .iter()
                .map(short_number)
                .collect::<Vec<_>>()
                .join(","),
            _ => "-".to_string(),
        }
    }

    /// `client-1 0,3 412/s; client-2 crashed; ...`
    fn summary_of(&self, clients: &[DemoClient]) -> String {
        clients
            .iter()
            .map(|c| match c.state {
                ClientState::Running => {
                    format!(
                        "{} shards {} {:.0}/s",
                        c.name,
                        self.shards_of(&c.name),
                        c.rate
                    )
                }
                ClientState::Crashed => format!("{} crashed", c.name),
                ClientState::Stopped => format!("{} stopped", c.name),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// `client-1 delivered 812; ...` for the closing line.
    fn clients_line(&self, clients: &[DemoClient]) -> String {
        clients
            .iter()
            .map(|c| {
                format!(
                    "{} delivered {}",
                    c.name,
                    c.delivered.load(Ordering::Relaxed)
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checker_with(per_key: &[u64]) -> Checker {
        let checker = Checker::new();
        checker.produced_up_to(per_key, per_key.iter().sum());
        checker
    }

    #[test]
    fn in_order_deliveries_are_clean() {
        let c = checker_with(&[3]);
        for n in 0..3 {
            c.deliver(format!("key-00:{n}").as_bytes());
        }
        let v = c.verdict();
        assert_eq!(
            (v.delivered, v.duplicates, v.order_violations, v.lost),
            (3, 0, 0, 0)
        );
        assert!(v.ok());
        assert!(v.line().ends_with("lost 0 — OK"), "{}", v.line());
    }

    #[test]
    fn redeliveries_count_as_duplicates_not_violations() {
        let c = checker_with(&[3]);
        for n in [0, 1, 2, 1, 2] {
            c.deliver(format!("key-00:{n}").as_bytes());
        }
        let v = c.verdict();
        assert_eq!((v.duplicates, v.order_violations, v.lost), (2, 0, 0));
    }

    #[test]
    fn a_late_earlier_record_is_an_order_violation() {
        let c = checker_with(&[3]);
        for n in [0, 2, 1] {
            c.deliver(format!("key-00:{n}").as_bytes());
        }
        let v = c.verdict();
        assert_eq!(v.order_violations, 1);
        assert!(!v.ok());
    }

    #[test]
    fn missing_records_are_lost() {
        let c = checker_with(&[3, 2]);
        for data in ["key-00:0", "key-00:1", "key-01:0"] {
            c.deliver(data.as_bytes());
        }
        let v = c.verdict();
        assert_eq!(v.lost, 2);
        assert!(v.line().ends_with("— FAIL"), "{}", v.line());
    }

    #[test]
    fn shard_names_are_shortened() {
        assert_eq!(
            short_shard(&ShardId::new("shardId-000000000004")),
            "shard 4"
        );
        assert_eq!(
            short_shard(&ShardId::new("shardId-000000000000")),
            "shard 0"
        );
    }
}
