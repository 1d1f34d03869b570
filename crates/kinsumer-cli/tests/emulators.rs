//! The `kinsumer` binary against kinesalite and dynalite: publish, consume (alone, restarted,
//! and two at once), status, tables, and the errors for what is missing.

mod common;

use std::collections::HashSet;

use common::{
    counts, emulators, free_port, http_get, lines, unique_name, wait_until, Consumer, FAST_TIMERS,
};

/// `kinsumer consume --stream S --app A --create-tables` with fast timers and `extra` flags.
fn consume(stream: &str, app: &str, extra: &[&str]) -> Consumer {
    let mut args = vec![
        "consume",
        "--stream",
        stream,
        "--app",
        app,
        "--create-tables",
    ];
    args.extend_from_slice(FAST_TIMERS);
    args.extend_from_slice(extra);
    Consumer::spawn(emulators().kinsumer(&args))
}

#[test]
fn consume_prints_exactly_what_was_published_and_a_restart_repeats_nothing() {
    let emu = emulators();
    let stream = unique_name("cli-once");
    let app = unique_name("cli-once");
    emu.create_stream(&stream, 2);

    // 1. Publish N lines, consume them raw, stop with SIGTERM.
    let first = lines("a", 300);
    emu.publish(&stream, &first, &["--random-key"]);
    let consumer = consume(&stream, &app, &["--format", "raw", "--client", "first"]);
    wait_until("the first consumer to print every line", || {
        consumer.lines().len() >= first.len()
    });
    let stopped = consumer.terminate();
    assert!(
        stopped.status.success(),
        "consume exited with {:?}: {}",
        stopped.status,
        stopped.stderr
    );
    let expected = counts(&first);
    assert_eq!(
        counts(&stopped.lines),
        expected,
        "raw output is exactly the published lines, once each"
    );

    // 2. Publish more (one key, from a file) and restart: only the new lines, none twice.
    let second = lines("b", 200);
    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{app}.txt"));
    std::fs::write(&file, second.join("\n") + "\n").expect("write the input file");
    let out = emu
        .kinsumer(&[
            "publish",
            "--stream",
            &stream,
            "--partition-key",
            "one-key",
            "--file",
            file.to_str().expect("a UTF-8 path"),
        ])
        .output()
        .expect("kinsumer publish");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restarted = consume(&stream, &app, &["--format", "json", "--client", "second"]);
    wait_until("the restarted consumer to print the new lines", || {
        restarted.lines().len() >= second.len()
    });
    let stopped = restarted.terminate();
    assert!(stopped.status.success(), "{}", stopped.stderr);
    let mut data = Vec::new();
    for line in &stopped.lines {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON object per line");
        assert_eq!(v["partition_key"], "one-key", "{line}");
        assert!(v["sequence_number"].is_string(), "{line}");
        assert!(v["shard_id"].is_string(), "{line}");
        assert!(v["arrival"].is_string(), "{line}");
        data.push(v["data"].as_str().expect("UTF-8 data").to_string());
    }
    assert_eq!(
        data, second,
        "after a graceful stop the restart prints only new lines, in order (one key)"
    );
    let _ = std::fs::remove_file(&file);
}

#[test]
fn lines_published_aggregated_are_consumed_one_by_one() {
    let emu = emulators();
    let stream = unique_name("cli-agg");
    let app = unique_name("cli-agg");
    emu.create_stream(&stream, 2);
    let published = lines("agg", 400);
    emu.publish(&stream, &published, &["--random-key", "--aggregate"]);
    let consumer = consume(&stream, &app, &["--format", "raw"]);
    wait_until("the consumer to print every line", || {
        consumer.lines().len() >= published.len()
    });
    let stopped = consumer.terminate();
    assert!(stopped.status.success(), "{}", stopped.stderr);
    assert_eq!(counts(&stopped.lines), counts(&published));
}

#[test]
fn two_consumers_share_the_shards_and_print_every_line_once() {
    let emu = emulators();
    let stream = unique_name("cli-pair");
    let app = unique_name("cli-pair");
    emu.create_stream(&stream, 4);
    // Half before the consumers start, half once they share the shards.
    let published = lines("p", 400);
    emu.publish(&stream, &published[..200], &[]);

    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let a = consume(
        &stream,
        &app,
        &["--client", "pair-a", "--metrics-addr", &metrics_addr],
    );
    let b = consume(&stream, &app, &["--client", "pair-b"]);

    // While both run, `status --json` shows both clients and every shard, each leased by one.
    let shards: HashSet<String> = emu.shard_ids(&stream).into_iter().collect();
    let mut last_status = String::new();
    wait_until("status to show both clients sharing every shard", || {
        let out = emu
            .kinsumer_with_env(&["status", "--stream", &stream, "--app", &app, "--json"])
            .output()
            .expect("kinsumer status");
        if !out.status.success() {
            last_status = String::from_utf8_lossy(&out.stderr).into_owned();
            return false;
        }
        last_status = String::from_utf8_lossy(&out.stdout).into_owned();
        let Ok(state) = serde_json::from_str::<serde_json::Value>(&last_status) else {
            return false;
        };
        let names: HashSet<&str> = state["clients"]
            .as_array()
            .map(|c| c.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default();
        let owners: Vec<(&str, Option<&str>)> = state["shards"]
            .as_array()
            .map(|s| {
                s.iter()
                    .map(|s| (s["id"].as_str().unwrap_or(""), s["owner_name"].as_str()))
                    .collect()
            })
            .unwrap_or_default();
        let listed: HashSet<String> = owners.iter().map(|(id, _)| id.to_string()).collect();
        let per_client = |name: &str| owners.iter().filter(|(_, o)| *o == Some(name)).count();
        names == HashSet::from(["pair-a", "pair-b"])
            && listed == shards
            && per_client("pair-a") == 2
            && per_client("pair-b") == 2
    });
    emu.publish(&stream, &published[200..], &[]);
    wait_until("every line to arrive at one of the two", || {
        a.lines().len() + b.lines().len() >= published.len()
    });

    // pair-a serves Prometheus metrics about its leases.
    let mut metrics = String::new();
    wait_until("pair-a's metrics", || {
        metrics = http_get(metrics_port, "/metrics").unwrap_or_default();
        metrics.contains("kinsumer_leases_acquired_total{")
    });
    assert!(
        metrics.contains(&format!("stream=\"{stream}\"")),
        "{metrics}"
    );

    let (a, b) = (a.terminate(), b.terminate());
    assert!(a.status.success(), "pair-a: {}", a.stderr);
    assert!(b.status.success(), "pair-b: {}", b.stderr);
    let all: Vec<String> = a.lines.iter().chain(&b.lines).cloned().collect();
    assert_eq!(
        counts(&all),
        counts(&published),
        "every line exactly once across both consumers (pair-a printed {}, pair-b {}); last status: {last_status}",
        a.lines.len(),
        b.lines.len()
    );
}

#[test]
fn a_missing_stream_fails_at_once_naming_it() {
    let emu = emulators();
    let stream = unique_name("cli-missing");
    let app = unique_name("cli-missing");

    let out = emu
        .kinsumer(&[
            "consume",
            "--stream",
            &stream,
            "--app",
            &app,
            "--create-tables",
        ])
        .output()
        .expect("kinsumer consume");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("kinsumer: error:"), "{stderr}");
    assert!(
        stderr.contains(&format!("{stream:?} does not exist")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("aws kinesis create-stream --stream-name {stream}")),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    let tables = emu.table_names();
    assert!(
        !tables.iter().any(|t| t.starts_with(&app)),
        "no tables are created for a missing stream: {tables:?}"
    );

    let out = emu
        .kinsumer(&["publish", "--stream", &stream])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("kinsumer publish");
    // Nothing to write: nothing fails, even for a missing stream.
    assert!(out.status.success());

    let mut publish = emu
        .kinsumer(&["publish", "--stream", &stream])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kinsumer publish");
    {
        use std::io::Write;
        let mut stdin = publish.stdin.take().expect("stdin");
        stdin.write_all(b"hello\n").expect("write stdin");
    }
    let out = publish.wait_with_output().expect("kinsumer publish");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&stream), "{stderr}");
}

#[test]
fn tables_create_and_delete() {
    let emu = emulators();
    let app = unique_name("cli-tables");
    let stream = unique_name("cli-tables");
    emu.create_stream(&stream, 1);
    let expected = [
        format!("{app}_clients"),
        format!("{app}_checkpoints"),
        format!("{app}_metadata"),
    ];

    // Without the tables, consume says how to create them.
    let out = emu
        .kinsumer(&["consume", "--stream", &stream, "--app", &app])
        .output()
        .expect("kinsumer consume");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--create-tables"), "{stderr}");
    assert!(
        stderr.contains(&format!("kinsumer tables create --app {app}")),
        "{stderr}"
    );

    let out = emu
        .kinsumer(&["tables", "create", "--app", &app, "--on-demand"])
        .output()
        .expect("kinsumer tables create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tables = emu.table_names();
    for table in &expected {
        assert!(tables.contains(table), "{table} missing from {tables:?}");
    }

    // The status of an idle application: no clients, the stream's one shard.
    let out = emu
        .kinsumer(&["status", "--stream", &stream, "--app", &app])
        .output()
        .expect("kinsumer status");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("0 client(s); 1 shard(s): 1 open"),
        "{stdout}"
    );

    let out = emu
        .kinsumer(&["tables", "delete", "--app", &app])
        .output()
        .expect("kinsumer tables delete");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tables = emu.table_names();
    for table in &expected {
        assert!(!tables.contains(table), "{table} still exists");
    }
}
