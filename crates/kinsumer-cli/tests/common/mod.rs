//! Shared helpers for the CLI's integration tests: the local emulators (kinesalite + dynalite),
//! the `kinsumer` binary with the right environment, and running consumers.
//!
//! [`emulators`] uses `AWS_ENDPOINT_URL_KINESIS` / `AWS_ENDPOINT_URL_DYNAMODB` when they are set
//! (`scripts/test.sh` starts the emulators for the whole run and sets them). Otherwise it starts
//! kinesalite and dynalite once per test process on free loopback ports, the same way as the
//! library's fixture (`crates/kinsumer/tests/common/mod.rs`): `node -r .ci/emulators/loopback.js`,
//! watching this process so that they exit with it.

#![allow(dead_code)] // each test binary uses a different part of these helpers

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_kinesis::config::{Credentials, Region};
use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::types::StreamStatus;

/// The region every test uses.
pub const REGION: &str = "us-east-1";
/// Short timers so that joins, hand-offs and stops take well under a second.
pub const FAST_TIMERS: &[&str] = &[
    "--shard-check-frequency",
    "250ms",
    "--lease-duration",
    "1500ms",
    "--commit-frequency",
    "200ms",
    "--leader-action-frequency",
    "250ms",
    "--throttle-delay",
    "200ms",
];
/// Longest wait for anything a test polls for.
pub const DEADLINE: Duration = Duration::from_secs(30);
const START_WAIT: Duration = Duration::from_secs(30);

/// Where the emulators are.
#[derive(Debug)]
pub struct Emulators {
    pub kinesis: String,
    pub dynamodb: String,
}

/// The emulators for this test process: from the environment, or started on first use.
pub fn emulators() -> &'static Emulators {
    static EMULATORS: OnceLock<Emulators> = OnceLock::new();
    EMULATORS.get_or_init(|| {
        let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Emulators {
            kinesis: from_env("AWS_ENDPOINT_URL_KINESIS")
                .unwrap_or_else(|| start_emulator("kinesalite")),
            dynamodb: from_env("AWS_ENDPOINT_URL_DYNAMODB")
                .unwrap_or_else(|| start_emulator("dynalite")),
        }
    })
}

/// A name no other call returns, in this process or another: `{prefix}-{pid}-{nonce}-{n}`.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static NONCE: OnceLock<u128> = OnceLock::new();
    let nonce = NONCE.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() % 0x10_0000_0000)
            .unwrap_or(0)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{nonce:x}-{n}", std::process::id())
}

/// Runs a future on a fresh single-threaded runtime (SDK clients are built inside it).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

impl Emulators {
    /// A Kinesis client for the emulator (build it inside the runtime that uses it).
    pub fn kinesis_client(&self) -> aws_sdk_kinesis::Client {
        let config = aws_sdk_kinesis::Config::builder()
            .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(test_credentials())
            .endpoint_url(&self.kinesis)
            .build();
        aws_sdk_kinesis::Client::from_conf(config)
    }

    /// A DynamoDB client for the emulator.
    pub fn dynamodb_client(&self) -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new(REGION))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "kinsumer-test",
                "kinsumer-test",
                None,
                None,
                "kinsumer-cli-tests",
            ))
            .endpoint_url(&self.dynamodb)
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    /// Creates a stream and waits until it is ACTIVE.
    pub fn create_stream(&self, stream: &str, shards: i32) {
        block_on(async {
            let client = self.kinesis_client();
            client
                .create_stream()
                .stream_name(stream)
                .shard_count(shards)
                .send()
                .await
                .unwrap_or_else(|e| panic!("CreateStream {stream}: {}", DisplayErrorContext(e)));
            let deadline = Instant::now() + DEADLINE;
            loop {
                let out = client
                    .describe_stream_summary()
                    .stream_name(stream)
                    .send()
                    .await
                    .unwrap_or_else(|e| {
                        panic!("DescribeStreamSummary {stream}: {}", DisplayErrorContext(e))
                    });
                if out
                    .stream_description_summary()
                    .map(|s| s.stream_status() == &StreamStatus::Active)
                    == Some(true)
                {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "stream {stream} never became ACTIVE"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    }

    /// The ids of the stream's shards.
    pub fn shard_ids(&self, stream: &str) -> Vec<String> {
        block_on(async {
            let out = self
                .kinesis_client()
                .list_shards()
                .stream_name(stream)
                .send()
                .await
                .unwrap_or_else(|e| panic!("ListShards {stream}: {}", DisplayErrorContext(e)));
            out.shards()
                .iter()
                .map(|s| s.shard_id().to_string())
                .collect()
        })
    }

    /// The names of every DynamoDB table.
    pub fn table_names(&self) -> Vec<String> {
        block_on(async {
            let mut names = Vec::new();
            let mut start: Option<String> = None;
            loop {
                let out = self
                    .dynamodb_client()
                    .list_tables()
                    .set_exclusive_start_table_name(start.take())
                    .send()
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "ListTables: {}",
                            aws_sdk_dynamodb::error::DisplayErrorContext(e)
                        )
                    });
                names.extend(out.table_names().iter().cloned());
                match out.last_evaluated_table_name() {
                    Some(last) => start = Some(last.to_string()),
                    None => return names,
                }
            }
        })
    }

    /// `kinsumer <args>` against the emulators, with the endpoints passed as flags (the
    /// `AWS_ENDPOINT_URL*` variables are removed so that the flags are what is tested).
    pub fn kinsumer(&self, args: &[&str]) -> Command {
        let mut cmd = kinsumer_without_endpoints(args);
        cmd.args(["--kinesis-endpoint", &self.kinesis])
            .args(["--dynamodb-endpoint", &self.dynamodb]);
        cmd
    }

    /// `kinsumer <args>` against the emulators, with the endpoints in the standard environment
    /// variables instead of flags.
    pub fn kinsumer_with_env(&self, args: &[&str]) -> Command {
        let mut cmd = kinsumer_without_endpoints(args);
        cmd.env("AWS_ENDPOINT_URL_KINESIS", &self.kinesis)
            .env("AWS_ENDPOINT_URL_DYNAMODB", &self.dynamodb);
        cmd
    }

    /// Writes `lines` to the stream with `kinsumer publish` (stdin) and checks its report.
    pub fn publish(&self, stream: &str, lines: &[String], extra: &[&str]) {
        let mut args = vec!["publish", "--stream", stream];
        args.extend_from_slice(extra);
        let mut child = self
            .kinsumer(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kinsumer publish");
        let mut input = lines.join("\n");
        input.push('\n');
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(input.as_bytes()).expect("write stdin");
        }
        let out = child.wait_with_output().expect("kinsumer publish");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "publish failed: {stderr}");
        assert!(
            stderr.contains(&format!("wrote {} records", lines.len()))
                && stderr.contains("0 failed"),
            "{stderr}"
        );
    }
}

fn test_credentials() -> Credentials {
    Credentials::new(
        "kinsumer-test",
        "kinsumer-test",
        None,
        None,
        "kinsumer-cli-tests",
    )
}

/// The `kinsumer` binary with dummy credentials and a region, and no endpoint, profile or
/// instance-metadata lookups from the surrounding environment.
pub fn kinsumer_without_endpoints(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kinsumer"));
    cmd.args(args)
        .env("AWS_ACCESS_KEY_ID", "kinsumer-test")
        .env("AWS_SECRET_ACCESS_KEY", "kinsumer-test")
        .env("AWS_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_KINESIS")
        .env_remove("AWS_ENDPOINT_URL_DYNAMODB")
        .env_remove("RUST_LOG");
    cmd
}

/// The lines `line-<tag>-<i>` for i in 0..n.
pub fn lines(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("line-{tag}-{i}")).collect()
}

/// How often each line occurs.
pub fn counts<'a>(lines: impl IntoIterator<Item = &'a String>) -> HashMap<&'a str, usize> {
    let mut counts = HashMap::new();
    for line in lines {
        *counts.entry(line.as_str()).or_insert(0) += 1;
    }
    counts
}

/// A running `kinsumer consume` whose stdout lines are collected as they arrive.
pub struct Consumer {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    stdout: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<String>>,
}

/// What a stopped consumer printed.
#[derive(Debug)]
pub struct Stopped {
    pub status: ExitStatus,
    pub lines: Vec<String>,
    pub stderr: String,
}

impl Consumer {
    /// Spawns `cmd` with stdout and stderr captured.
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kinsumer consume");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let sink = Arc::clone(&lines);
        let stdout = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(line) => sink.lock().expect("lines").push(line),
                    Err(_) => break,
                }
            }
        });
        let mut stderr_pipe = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr_pipe.read_to_string(&mut text);
            text
        });
        Consumer {
            child: Some(child),
            lines,
            stdout: Some(stdout),
            stderr: Some(stderr),
        }
    }

    /// The lines printed so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }

    /// True once the process has exited (e.g. after an error).
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_some())
    }

    /// Sends SIGTERM and waits for the exit and the rest of the output.
    pub fn terminate(mut self) -> Stopped {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("kinsumer consume did not exit within {DEADLINE:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(stdout) = self.stdout.take() {
            let _ = stdout.join();
        }
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        Stopped {
            status,
            lines: self.lines(),
            stderr,
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The body of `GET http://127.0.0.1:<port><path>` (HTTP/1.0, no keep-alive), or `None` when
/// nothing answers yet.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
}

/// Polls `condition` every 20 ms until it holds; panics with `what` after [`DEADLINE`].
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// --- starting the emulators (as crates/kinsumer/tests/common/mod.rs does) ---------------------

/// `.ci/emulators` at the workspace root.
fn emulators_dir() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir
        .ancestors()
        .nth(2)
        .unwrap_or(crate_dir)
        .join(".ci/emulators")
}

fn emulator_args(name: &str) -> &'static [&'static str] {
    // --port 0 is symbolic: loopback.js picks a free port and writes it to the port file.
    match name {
        "kinesalite" => &[
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
        _ => &[
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

/// Starts one emulator on a free loopback port, watching this process; returns its endpoint.
fn start_emulator(name: &str) -> String {
    install_node_modules();
    let dir = emulators_dir();
    let run_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("kinsumer-cli-emulators")
        .join(format!("{}-{name}", std::process::id()));
    std::fs::create_dir_all(&run_dir).expect("create the emulator run directory");
    let port_file = run_dir.join("port");
    let log_file = run_dir.join("log");
    let _ = std::fs::remove_file(&port_file);
    let log = std::fs::File::create(&log_file).expect("create the emulator log");
    let log_err = log.try_clone().expect("clone the emulator log");
    let mut child = Command::new("node")
        .arg("-r")
        .arg(dir.join("loopback.js"))
        .arg(dir.join("node_modules").join(name).join("cli.js"))
        .args(emulator_args(name))
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
            panic!("starting {name} with node: {e}; install Node.js or run scripts/test.sh")
        });
    // Never waited for: it exits by itself once this process is gone (loopback.js).
    let deadline = Instant::now() + START_WAIT;
    loop {
        if let Some(status) = child.try_wait().ok().flatten() {
            panic!(
                "{name} exited during start-up ({status}): {}",
                std::fs::read_to_string(&log_file).unwrap_or_default()
            );
        }
        if let Some(port) = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|s| s.trim().parse::<u16>().ok())
        {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return format!("http://127.0.0.1:{port}");
            }
        }
        assert!(
            Instant::now() < deadline,
            "{name} did not start listening within {START_WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `npm ci` in .ci/emulators unless every emulator package is installed (under a file lock).
fn install_node_modules() {
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
    let lock = std::fs::File::create(&lock_path).expect("create the npm lock file");
    lock.lock().expect("lock the npm lock file");
    if installed() {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .status()
        .expect("run npm ci in .ci/emulators (install Node.js and npm)");
    assert!(status.success(), "npm ci in {} failed", dir.display());
}
