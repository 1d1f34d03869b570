//! `kinsumer consume` against an endpoint that accepts connections and never answers (a
//! black-holed network, a wrong port behind a proxy): it ends by itself with exit code 1 and a
//! one-line message that says what to check. No emulator needed: a loopback listener that never
//! accepts is answered by the kernel (the connection is made) and never by a server.

mod common;

use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::kinsumer_without_endpoints as kinsumer;

/// Far above the few seconds it takes: only there so that a regression fails instead of hanging.
const SANITY: Duration = Duration::from_secs(60);

#[test]
fn consume_against_a_silent_kinesis_endpoint_exits_with_one_line_naming_what_to_check() {
    let hole = TcpListener::bind("127.0.0.1:0").expect("bind a loopback listener");
    let endpoint = format!("http://{}", hole.local_addr().expect("its address"));
    for create_tables in [false, true] {
        let mut args = vec![
            "consume",
            "--stream",
            "events",
            "--app",
            "billing",
            "--kinesis-endpoint",
            &endpoint,
            "--dynamodb-endpoint",
            &endpoint,
        ];
        if create_tables {
            args.push("--create-tables");
        }
        let mut child = kinsumer(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kinsumer consume");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for kinsumer") {
                break Some(status);
            }
            if started.elapsed() > SANITY {
                let _ = child.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let took = started.elapsed();
        let out = child.wait_with_output().expect("kinsumer output");
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("create_tables={create_tables}: exited after {took:?} with {status:?}: {stderr}");
        let status = status.unwrap_or_else(|| panic!("still running after {SANITY:?}: {stderr}"));
        assert_eq!(status.code(), Some(1), "{stderr}");
        assert!(out.stdout.is_empty());
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("kinsumer: error:"))
            .collect();
        assert_eq!(errors.len(), 1, "one error line: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "nothing else: {stderr}"
        );
        for what in [
            "cannot reach Kinesis",
            "DescribeStreamSummary on stream \"events\"",
            "no answer within 4s",
            "--kinesis-endpoint",
            "--region",
        ] {
            assert!(
                errors[0].contains(what),
                "{stderr:?} does not mention {what:?}"
            );
        }
    }
    drop(hole);
}
