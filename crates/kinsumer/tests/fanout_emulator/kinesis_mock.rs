//! kinesis-mock (npm `kinesis-local`, see .ci/emulators/package.json), started once per test
//! process by [`super::kinesis_mock_emulators`] on free 127.0.0.1 ports.
//!
//! Started the way tests/common starts kinesalite: `node -r .ci/emulators/loopback.js`, which keeps
//! every listener on 127.0.0.1 and makes the emulator exit within half a second of this process.
//! kinesis-mock opens two listeners (plain http and TLS), so loopback.js is given a directory
//! (`KINSUMER_EMULATOR_PORT_DIR`) rather than a port file: the ports named in the environment
//! below are symbolic and only name the files that receive the ports the kernel chose.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::common;

/// Symbolic ports (kinesis-mock's defaults): loopback.js listens on free ports instead.
const PLAIN_PORT: u16 = 4567;
const TLS_PORT: u16 = 4568;

/// Stream and consumer operations finish at once (the defaults take up to 500 ms each).
const DURATIONS: &[&str] = &[
    "CREATE_STREAM_DURATION",
    "DELETE_STREAM_DURATION",
    "REGISTER_STREAM_CONSUMER_DURATION",
    "DEREGISTER_STREAM_CONSUMER_DURATION",
    "MERGE_SHARDS_DURATION",
    "SPLIT_SHARD_DURATION",
    "UPDATE_SHARD_COUNT_DURATION",
];

/// Starts kinesis-mock, watching this process, and returns its plain-http endpoint once it
/// accepts connections (it takes about 1.5 s).
pub async fn start() -> String {
    tokio::task::spawn_blocking(common::install_node_modules)
        .await
        .expect("installing the emulators' node modules");

    let dir = common::emulators_dir();
    let package = dir.join("node_modules").join("kinesis-local");
    let runs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kinsumer-emulators");
    common::remove_stale_run_dirs(&runs);
    let run_dir = runs.join(format!("{}-kinesis-mock", std::process::id()));
    let _ = std::fs::remove_dir_all(&run_dir);
    let port_dir = run_dir.join("ports");
    std::fs::create_dir_all(&port_dir)
        .unwrap_or_else(|e| panic!("creating {}: {e}", port_dir.display()));
    let log_file = run_dir.join("log");
    let log = std::fs::File::create(&log_file)
        .unwrap_or_else(|e| panic!("creating {}: {e}", log_file.display()));
    let log_err = log
        .try_clone()
        .unwrap_or_else(|e| panic!("duplicating {}: {e}", log_file.display()));

    let mut command = Command::new("node");
    command
        .current_dir(&package)
        .arg("-r")
        .arg(dir.join("loopback.js"))
        .arg("main.js")
        .env("KINESIS_MOCK_PLAIN_PORT", PLAIN_PORT.to_string())
        .env("KINESIS_MOCK_TLS_PORT", TLS_PORT.to_string())
        .env("KINESIS_MOCK_CERT_PATH", package.join("server.json"))
        .env("SHARD_LIMIT", "1000")
        .env("LOG_LEVEL", "WARN")
        .env("KINSUMER_EMULATOR_PORT_DIR", &port_dir)
        .env_remove("KINSUMER_EMULATOR_PORT_FILE")
        .env(
            "KINSUMER_EMULATOR_PARENT_PID",
            std::process::id().to_string(),
        )
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    for duration in DURATIONS {
        command.env(duration, "1ms");
    }
    let mut child = command.spawn().unwrap_or_else(|e| {
        panic!("starting kinesis-mock with node: {e}. Install Node.js and npm (apt-get install nodejs npm)")
    });
    // The child is never waited for: it exits by itself when this process does (loopback.js).

    let port_file = port_dir.join(PLAIN_PORT.to_string());
    common::wait_until_listening("kinesis-mock", &mut child, &port_file, &log_file).await
}
