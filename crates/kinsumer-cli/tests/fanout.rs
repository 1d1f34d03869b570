//! `kinsumer consume --efo-consumer` end to end: ferrokinesis (enhanced fan-out, in this
//! process) for Kinesis, dynalite for DynamoDB.

mod common;
#[path = "../../kinsumer/tests/fanout_emulator/ferrokinesis.rs"]
mod ferrokinesis;

use std::sync::OnceLock;

use common::{counts, emulators, lines, unique_name, wait_until, Consumer, Emulators, FAST_TIMERS};

/// Dynalite plus ferrokinesis, started once per test process.
fn fan_out_emulators() -> &'static Emulators {
    static FAN_OUT: OnceLock<Emulators> = OnceLock::new();
    FAN_OUT.get_or_init(|| Emulators {
        kinesis: ferrokinesis::start(),
        dynamodb: emulators().dynamodb.clone(),
    })
}

#[test]
fn consume_through_a_fan_out_consumer_prints_every_line_once_and_status_shows_it() {
    let emu = fan_out_emulators();
    let stream = unique_name("cli-efo");
    let app = unique_name("cli-efo");
    let consumer_name = unique_name("efo");
    emu.create_stream(&stream, 2);
    let published = lines("efo", 200);
    emu.publish(&stream, &published, &["--random-key"]);

    let mut args = vec![
        "consume",
        "--stream",
        &stream,
        "--app",
        &app,
        "--create-tables",
        "--efo-consumer",
        &consumer_name,
    ];
    args.extend_from_slice(FAST_TIMERS);
    let consumer = Consumer::spawn(emu.kinsumer(&args));
    wait_until("the consumer to print every line", || {
        consumer.lines().len() >= published.len()
    });

    let out = emu
        .kinsumer(&["status", "--stream", &stream, "--app", &app])
        .output()
        .expect("kinsumer status");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        table.contains(&format!("fan-out {consumer_name}")),
        "status shows the read mode: {table}"
    );

    let stopped = consumer.terminate();
    assert!(
        stopped.status.success(),
        "consume exited with {:?}: {}",
        stopped.status,
        stopped.stderr
    );
    assert_eq!(counts(&stopped.lines), counts(&published));
}
