//! Shared fixture for the integration tests: the local Kinesis and DynamoDB emulators.
//!
//! ```ignore
//! mod common;
//!
//! #[tokio::test]
//! async fn reads_what_was_put() {
//!     let emu = common::emulators().await;
//!     let stream = emu.unique_name("reads");
//!     emu.create_stream(&stream, 2).await;
//!     emu.put_records(&stream, vec![("key".to_string(), bytes::Bytes::from_static(b"x"))]).await;
//!     let config = emu.sdk_config(); // for both aws_sdk_kinesis and aws_sdk_dynamodb
//!     // ...
//!     emu.delete_stream(&stream).await;
//! }
//! ```
//!
//! [`emulators`] uses `AWS_ENDPOINT_URL_KINESIS` / `AWS_ENDPOINT_URL_DYNAMODB` when they are set
//! (`scripts/test.sh` starts the emulators once for the whole run and sets them). Otherwise it
//! starts kinesalite and dynalite itself, once per test process, on free 127.0.0.1 ports, from
//! `.ci/emulators/node_modules` (running `npm ci` there first if needed); they watch this process
//! and exit within half a second of it, so a plain `cargo test` leaves no servers behind.
//!
//! Every test binary's tests run in parallel against the same emulators: give every stream and
//! table a name from [`Emulators::unique_name`].
//!
//! Clients are built fresh on every call and are cheap. Do not keep one in a `static`: each
//! `#[tokio::test]` has its own runtime, and pooled connections die with the runtime that made them.

#![allow(dead_code)] // each test binary uses a different part of the fixture

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, Shard, StreamStatus};
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};
use bytes::Bytes;
use tokio::sync::OnceCell;

/// The region every test uses.
pub const REGION: &str = "us-east-1";

/// How long a stream may take to become ACTIVE, or to disappear, before a helper panics.
const STREAM_WAIT: Duration = Duration::from_secs(30);
/// How long an emulator may take to start listening before the fixture panics.
const START_WAIT: Duration = Duration::from_secs(30);
/// Kinesis limits for one PutRecords request.
const PUT_BATCH_RECORDS: usize = 500;
const PUT_BATCH_BYTES: usize = 5 * 1024 * 1024;
/// Attempts to land a PutRecords entry that the service failed (throttling, internal failure).
const PUT_ATTEMPTS: u32 = 10;

/// Where the emulators are. Found or started once per test process by [`emulators`].
#[derive(Debug)]
pub struct Emulators {
    kinesis_endpoint: String,
    dynamodb_endpoint: String,
}

/// Where one record of [`Emulators::put_records`] landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    pub shard_id: String,
    pub sequence_number: String,
}

/// The emulators for this test process: found through the environment or started on first use.
pub async fn emulators() -> &'static Emulators {
    static EMULATORS: OnceCell<Emulators> = OnceCell::const_new();
    EMULATORS.get_or_init(Emulators::find_or_start).await
}

impl Emulators {
    async fn find_or_start() -> Self {
        let kinesis = std::env::var("AWS_ENDPOINT_URL_KINESIS").ok();
        let dynamodb = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").ok();
        let kinesis_endpoint = match kinesis.filter(|url| !url.is_empty()) {
            Some(url) => url,
            None => start_emulator(Emulator::Kinesalite).await,
        };
        let dynamodb_endpoint = match dynamodb.filter(|url| !url.is_empty()) {
            Some(url) => url,
            None => start_emulator(Emulator::Dynalite).await,
        };
        Emulators {
            kinesis_endpoint,
            dynamodb_endpoint,
        }
    }

    /// The same DynamoDB with another Kinesis (e.g. an emulator with enhanced fan-out).
    pub fn with_kinesis_endpoint(&self, kinesis_endpoint: String) -> Emulators {
        Emulators {
            kinesis_endpoint,
            dynamodb_endpoint: self.dynamodb_endpoint.clone(),
        }
    }

    /// The Kinesis endpoint, e.g. `http://127.0.0.1:40937`.
    pub fn kinesis_endpoint(&self) -> &str {
        &self.kinesis_endpoint
    }

    /// The DynamoDB endpoint, e.g. `http://127.0.0.1:45979`.
    pub fn dynamodb_endpoint(&self) -> &str {
        &self.dynamodb_endpoint
    }

    /// One SDK configuration for both services: `BehaviorVersion::latest()`, region us-east-1,
    /// static dummy credentials (no provider chain, so nothing probes instance metadata), and the
    /// Kinesis and DynamoDB endpoints as per-service overrides — the same mechanism as
    /// `AWS_ENDPOINT_URL_KINESIS` / `AWS_ENDPOINT_URL_DYNAMODB`, so
    /// `aws_sdk_kinesis::Client::new(&config)` talks to kinesalite and
    /// `aws_sdk_dynamodb::Client::new(&config)` to dynalite.
    ///
    /// Built fresh on each call (no shared connection pool), so it can be used from any test's
    /// runtime.
    pub fn sdk_config(&self) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "kinsumer-test",
                "kinsumer-test",
                None,
                None,
                "kinsumer-test-fixture",
            )))
            .service_config(EndpointOverrides {
                kinesis: self.kinesis_endpoint.clone(),
                dynamodb: self.dynamodb_endpoint.clone(),
            })
            .build()
    }

    /// A Kinesis client for the emulator (built on [`Emulators::sdk_config`]).
    pub fn kinesis_client(&self) -> aws_sdk_kinesis::Client {
        aws_sdk_kinesis::Client::new(&self.sdk_config())
    }

    /// A DynamoDB client for the emulator (built on [`Emulators::sdk_config`]).
    pub fn dynamodb_client(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk_config())
    }

    /// A name no other call returns, in this process or any other: `{prefix}-{pid}-{nonce}-{n}`.
    /// Valid as a stream, table or application name when `prefix` is (letters, digits, `_.-`).
    pub fn unique_name(&self, prefix: &str) -> String {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        static NONCE: OnceLock<u128> = OnceLock::new();
        assert!(
            !prefix.is_empty()
                && prefix.len() <= 80
                && prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')),
            "unique_name prefix {prefix:?} must be 1-80 characters of [A-Za-z0-9_.-]"
        );
        // The nonce tells apart processes that reuse a pid against long-lived emulators.
        let nonce = NONCE.get_or_init(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_micros() % 0x10_0000_0000)
                .unwrap_or(0)
        });
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}-{}-{nonce:x}-{n}", std::process::id())
    }

    /// Creates a provisioned stream with `shards` shards and waits until it is ACTIVE.
    pub async fn create_stream(&self, stream: &str, shards: i32) {
        self.kinesis_client()
            .create_stream()
            .stream_name(stream)
            .shard_count(shards)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "CreateStream {stream} ({shards} shards): {}",
                    DisplayErrorContext(e)
                )
            });
        self.wait_until_active(stream).await;
    }

    /// Waits until the stream is ACTIVE (after a create, split or merge).
    pub async fn wait_until_active(&self, stream: &str) {
        let client = self.kinesis_client();
        let deadline = Instant::now() + STREAM_WAIT;
        loop {
            let out = client
                .describe_stream_summary()
                .stream_name(stream)
                .send()
                .await
                .unwrap_or_else(|e| {
                    panic!("DescribeStreamSummary {stream}: {}", DisplayErrorContext(e))
                });
            let status = out
                .stream_description_summary()
                .map(|s| s.stream_status().clone());
            if status == Some(StreamStatus::Active) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "stream {stream} not ACTIVE after {STREAM_WAIT:?} (status {status:?})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Puts the records in PutRecords batches of at most 500 records (and 5 MiB), retrying the
    /// entries the service failed, and returns where each landed, in input order. A retried
    /// entry lands after the batch's other records, so per-key order holds only when nothing is
    /// retried (kinesalite never throttles).
    pub async fn put_records<K: Into<String>>(
        &self,
        stream: &str,
        records: impl IntoIterator<Item = (K, Bytes)>,
    ) -> Vec<PutOutcome> {
        let client = self.kinesis_client();
        let entries: Vec<PutRecordsRequestEntry> = records
            .into_iter()
            .map(|(key, data)| {
                PutRecordsRequestEntry::builder()
                    .partition_key(key)
                    .data(Blob::new(data))
                    .build()
                    .expect("PutRecordsRequestEntry has its partition key and data")
            })
            .collect();

        let mut outcomes = Vec::with_capacity(entries.len());
        let mut start = 0;
        while start < entries.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < entries.len() && end - start < PUT_BATCH_RECORDS {
                let size = entries[end].data().as_ref().len()
                    + entries[end].partition_key().map_or(0, str::len);
                if end > start && bytes + size > PUT_BATCH_BYTES {
                    break;
                }
                bytes += size;
                end += 1;
            }
            outcomes.extend(put_batch(&client, stream, &entries[start..end]).await);
            start = end;
        }
        outcomes
    }

    /// All shards of the stream, open and closed, following ListShards pages.
    pub async fn list_shards(&self, stream: &str) -> Vec<Shard> {
        let client = self.kinesis_client();
        let mut shards = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            // A page after the first names the stream only through its token.
            let request = match &next_token {
                None => client.list_shards().stream_name(stream),
                Some(token) => client.list_shards().next_token(token),
            };
            let out = request
                .send()
                .await
                .unwrap_or_else(|e| panic!("ListShards {stream}: {}", DisplayErrorContext(e)));
            shards.extend_from_slice(out.shards());
            match out.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_string()),
                _ => return shards,
            }
        }
    }

    /// Splits `shard_id` at the middle of its hash-key range, waits until the stream is ACTIVE,
    /// and returns the two children (lower half first).
    pub async fn split_shard(&self, stream: &str, shard_id: &str) -> (String, String) {
        let shards = self.list_shards(stream).await;
        let shard = shards
            .iter()
            .find(|s| s.shard_id() == shard_id)
            .unwrap_or_else(|| panic!("split_shard: no shard {shard_id} in stream {stream}"));
        let range = shard
            .hash_key_range()
            .unwrap_or_else(|| panic!("split_shard: shard {shard_id} has no hash-key range"));
        let parse = |key: &str| -> u128 {
            key.parse()
                .unwrap_or_else(|_| panic!("hash key {key:?} of {shard_id} is not a u128"))
        };
        let (low, high) = (
            parse(range.starting_hash_key()),
            parse(range.ending_hash_key()),
        );
        assert!(
            low < high,
            "split_shard: shard {shard_id} covers one hash key"
        );
        let middle = low + (high - low) / 2 + 1;

        self.kinesis_client()
            .split_shard()
            .stream_name(stream)
            .shard_to_split(shard_id)
            .new_starting_hash_key(middle.to_string())
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "SplitShard {stream}/{shard_id} at {middle}: {}",
                    DisplayErrorContext(e)
                )
            });
        self.wait_until_active(stream).await;

        let mut children: Vec<(u128, String)> = self
            .list_shards(stream)
            .await
            .into_iter()
            .filter(|s| {
                s.parent_shard_id() == Some(shard_id) && s.adjacent_parent_shard_id().is_none()
            })
            .map(|s| {
                let start = s
                    .hash_key_range()
                    .map(|r| parse(r.starting_hash_key()))
                    .unwrap_or_default();
                (start, s.shard_id().to_string())
            })
            .collect();
        children.sort();
        match <[(u128, String); 2]>::try_from(children) {
            Ok([(_, lower), (_, upper)]) => (lower, upper),
            Err(children) => panic!("split of {stream}/{shard_id} left children {children:?}"),
        }
    }

    /// Merges the adjacent shards `a` and `b`, waits until the stream is ACTIVE, and returns the
    /// child shard.
    pub async fn merge_shards(&self, stream: &str, a: &str, b: &str) -> String {
        self.kinesis_client()
            .merge_shards()
            .stream_name(stream)
            .shard_to_merge(a)
            .adjacent_shard_to_merge(b)
            .send()
            .await
            .unwrap_or_else(|e| panic!("MergeShards {stream}/{a}+{b}: {}", DisplayErrorContext(e)));
        self.wait_until_active(stream).await;
        self.list_shards(stream)
            .await
            .into_iter()
            .find(|s| s.parent_shard_id() == Some(a) && s.adjacent_parent_shard_id() == Some(b))
            .map(|s| s.shard_id().to_string())
            .unwrap_or_else(|| panic!("merge of {stream}/{a}+{b} left no child shard"))
    }

    /// Deletes the stream (and any consumers) and waits until it is gone.
    pub async fn delete_stream(&self, stream: &str) {
        let client = self.kinesis_client();
        client
            .delete_stream()
            .stream_name(stream)
            .enforce_consumer_deletion(true)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DeleteStream {stream}: {}", DisplayErrorContext(e)));
        let deadline = Instant::now() + STREAM_WAIT;
        loop {
            match client
                .describe_stream_summary()
                .stream_name(stream)
                .send()
                .await
            {
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception()) =>
                {
                    return
                }
                Err(e) => panic!("DescribeStreamSummary {stream}: {}", DisplayErrorContext(e)),
                Ok(_) => {}
            }
            assert!(
                Instant::now() < deadline,
                "stream {stream} still exists {STREAM_WAIT:?} after DeleteStream"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One PutRecords batch, retrying failed entries; outcomes in the batch's order.
async fn put_batch(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    batch: &[PutRecordsRequestEntry],
) -> Vec<PutOutcome> {
    let mut outcomes: Vec<Option<PutOutcome>> = vec![None; batch.len()];
    let mut pending: Vec<usize> = (0..batch.len()).collect();
    for attempt in 1..=PUT_ATTEMPTS {
        let out = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(pending.iter().map(|&i| batch[i].clone()).collect()))
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PutRecords {stream} ({} records): {}",
                    pending.len(),
                    DisplayErrorContext(e)
                )
            });
        assert_eq!(
            out.records().len(),
            pending.len(),
            "PutRecords {stream} answered for a different number of records"
        );
        let mut failed = Vec::new();
        let mut last_error = String::new();
        for (&i, result) in pending.iter().zip(out.records()) {
            match (
                result.error_code(),
                result.shard_id(),
                result.sequence_number(),
            ) {
                (None, Some(shard_id), Some(sequence_number)) => {
                    outcomes[i] = Some(PutOutcome {
                        shard_id: shard_id.to_string(),
                        sequence_number: sequence_number.to_string(),
                    })
                }
                (code, _, _) => {
                    last_error = format!(
                        "{}: {}",
                        code.unwrap_or("no shard or sequence number"),
                        result.error_message().unwrap_or_default()
                    );
                    failed.push(i);
                }
            }
        }
        if failed.is_empty() {
            return outcomes.into_iter().flatten().collect();
        }
        assert!(
            attempt < PUT_ATTEMPTS,
            "PutRecords {stream}: {} records still failing after {PUT_ATTEMPTS} attempts ({last_error})",
            failed.len()
        );
        pending = failed;
        tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
    }
    unreachable!("the last attempt either returns or panics")
}

/// Per-service endpoint overrides, answered the way `AWS_ENDPOINT_URL_<SERVICE>` would be.
#[derive(Debug)]
struct EndpointOverrides {
    kinesis: String,
    dynamodb: String,
}

impl LoadServiceConfig for EndpointOverrides {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        if key.env() != "AWS_ENDPOINT_URL" {
            return None;
        }
        match key.service_id() {
            "Kinesis" => Some(self.kinesis.clone()),
            "DynamoDB" => Some(self.dynamodb.clone()),
            _ => None,
        }
    }
}

// --- starting the emulators ------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Emulator {
    Kinesalite,
    Dynalite,
}

impl Emulator {
    fn package(self) -> &'static str {
        match self {
            Emulator::Kinesalite => "kinesalite",
            Emulator::Dynalite => "dynalite",
        }
    }

    fn args(self) -> &'static [&'static str] {
        match self {
            // --port 0 is symbolic: loopback.js picks the free port (KINSUMER_EMULATOR_PORT_FILE).
            Emulator::Kinesalite => &[
                "--port",
                "0",
                "--createStreamMs",
                "1",
                "--deleteStreamMs",
                "1",
                "--updateStreamMs",
                "1",
                "--shardLimit",
                "1000",
            ],
            Emulator::Dynalite => &[
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--createTableMs",
                "1",
                "--deleteTableMs",
                "1",
                "--updateTableMs",
                "1",
            ],
        }
    }
}

impl fmt::Display for Emulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.package())
    }
}

/// `.ci/emulators` at the workspace root (two levels above this crate).
pub fn emulators_dir() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir
        .ancestors()
        .nth(2)
        .unwrap_or(crate_dir)
        .join(".ci/emulators")
}

/// Removes the run directories (port file, log) of test processes that are gone.
pub fn remove_stale_run_dirs(runs: &Path) {
    let Ok(entries) = std::fs::read_dir(runs) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some((pid, _)) = name.split_once('-') {
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// Starts one emulator on a free loopback port, watching this process; returns its endpoint URL.
async fn start_emulator(emulator: Emulator) -> String {
    tokio::task::spawn_blocking(install_node_modules)
        .await
        .expect("installing the emulators' node modules");

    let dir = emulators_dir();
    let runs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kinsumer-emulators");
    remove_stale_run_dirs(&runs);
    let run_dir = runs.join(format!("{}-{emulator}", std::process::id()));
    std::fs::create_dir_all(&run_dir)
        .unwrap_or_else(|e| panic!("creating {}: {e}", run_dir.display()));
    let port_file = run_dir.join("port");
    let log_file = run_dir.join("log");
    let _ = std::fs::remove_file(&port_file);
    let log = std::fs::File::create(&log_file)
        .unwrap_or_else(|e| panic!("creating {}: {e}", log_file.display()));
    let log_err = log
        .try_clone()
        .unwrap_or_else(|e| panic!("duplicating {}: {e}", log_file.display()));

    let mut child = Command::new("node")
        .arg("-r")
        .arg(dir.join("loopback.js"))
        .arg(
            dir.join("node_modules")
                .join(emulator.package())
                .join("cli.js"),
        )
        .args(emulator.args())
        .env("KINSUMER_EMULATOR_PORT_FILE", &port_file)
        .env(
            "KINSUMER_EMULATOR_PARENT_PID",
            std::process::id().to_string(),
        )
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "starting {emulator} with node: {e}. Install Node.js and npm \
                 (apt-get install nodejs npm), or run the suite with scripts/test.sh"
            )
        });
    // The child is never waited for: it exits by itself when this process does (loopback.js).
    wait_until_listening(&emulator.to_string(), &mut child, &port_file, &log_file).await
}

/// Waits until the emulator `child` has written its port to `port_file` (loopback.js) and accepts
/// connections there; returns its endpoint URL. Panics with its log if it exits or takes longer
/// than [`START_WAIT`].
pub async fn wait_until_listening(
    name: &str,
    child: &mut std::process::Child,
    port_file: &Path,
    log_file: &Path,
) -> String {
    let deadline = Instant::now() + START_WAIT;
    loop {
        if let Some(status) = child.try_wait().ok().flatten() {
            panic!(
                "{name} exited during start-up ({status}); its log ({}):\n{}",
                log_file.display(),
                read_to_string_lossy(log_file)
            );
        }
        if let Some(port) = std::fs::read_to_string(port_file)
            .ok()
            .and_then(|s| s.trim().parse::<u16>().ok())
        {
            // Written once the server listens; connect once to be sure it accepts.
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return format!("http://127.0.0.1:{port}");
            }
        }
        assert!(
            Instant::now() < deadline,
            "{name} did not start listening within {START_WAIT:?}; its log ({}):\n{}",
            log_file.display(),
            read_to_string_lossy(log_file)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `npm ci` in .ci/emulators unless every emulator package is installed, under a file lock so that
/// test processes running side by side install once.
pub fn install_node_modules() {
    let dir = emulators_dir();
    let installed = || {
        [
            ("kinesalite", "cli.js"),
            ("dynalite", "cli.js"),
            // kinesis-mock, for the fan-out tests (tests/fanout_emulator/kinesis_mock.rs).
            ("kinesis-local", "main.js"),
        ]
        .iter()
        .all(|(package, entry)| dir.join("node_modules").join(package).join(entry).is_file())
    };
    if installed() {
        return;
    }
    let lock_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kinsumer-emulators-npm.lock");
    let lock = std::fs::File::create(&lock_path)
        .unwrap_or_else(|e| panic!("creating {}: {e}", lock_path.display()));
    lock.lock()
        .unwrap_or_else(|e| panic!("locking {}: {e}", lock_path.display()));
    if installed() {
        return;
    }
    let output = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "running npm ci in {}: {e}. Install Node.js and npm (apt-get install nodejs npm), \
                 or run the suite with scripts/test.sh",
                dir.display()
            )
        });
    assert!(
        output.status.success(),
        "npm ci in {} failed ({}):\n{}{}",
        dir.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The lock is released when `lock` is dropped.
}

fn read_to_string_lossy(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}
