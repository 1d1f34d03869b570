//! `kinsumer demo`: in memory, no AWS; a short run must lose nothing and keep every key in order.

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn a_short_demo_delivers_everything_in_order() {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kinsumer"))
        .args(["demo", "--seconds", "4", "--records", "4000"])
        .output()
        .expect("run kinsumer demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    let verdict = stdout
        .lines()
        .find(|l| l.starts_with("verdict: "))
        .unwrap_or_else(|| panic!("no verdict line in:\n{stdout}"));
    assert!(
        verdict.starts_with("verdict: produced 4000, delivered 4000 distinct, duplicates "),
        "{verdict}"
    );
    assert!(
        verdict.ends_with("per-key order violations 0, lost 0 — OK"),
        "{verdict}"
    );
    // Not a terminal: one line per phase, each phase present.
    for phase in [
        "join",
        "client-4 joins",
        "crashes",
        "splits",
        "taken over",
        "drain",
    ] {
        assert!(stdout.contains(phase), "no {phase:?} line in:\n{stdout}");
    }
    assert!(stdout.contains("duplicates are expected only around the crash"));
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the demo took {:?}",
        started.elapsed()
    );
}
