//! Command-line usage: bad flags exit with 2, and every subcommand's help has an example.
//! None of these reach AWS.

mod common;

use common::kinsumer_without_endpoints as kinsumer;

/// Runs `kinsumer <args>` and returns (exit code, stderr).
fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = kinsumer(args).output().expect("run kinsumer");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_flags_exit_with_2() {
    let cases: &[&[&str]] = &[
        &["no-such-command"],
        &["consume", "--app", "a"], // no --stream
        &[
            "consume",
            "--stream",
            "s",
            "--app",
            "a",
            "--from",
            "yesterday",
        ],
        &["consume", "--stream", "s", "--app", "a", "--format", "xml"],
        &[
            "consume",
            "--stream",
            "s",
            "--app",
            "a",
            "--lease-duration",
            "soon",
        ],
        &["consume", "--stream", "s", "--app", "bad name"],
        &[
            "publish",
            "--stream",
            "s",
            "--partition-key",
            "k",
            "--random-key",
        ],
        &[
            "tables",
            "create",
            "--app",
            "a",
            "--on-demand",
            "--read-capacity",
            "5",
        ],
        &["tables", "create", "--app", "a", "--read-capacity", "0"],
        &["status", "--stream", "s"], // no --app
        &["demo", "--seconds", "0"],
    ];
    for args in cases {
        let (code, stderr) = run(args);
        assert_eq!(code, Some(2), "kinsumer {args:?}: {stderr}");
        assert!(!stderr.is_empty(), "kinsumer {args:?} explains itself");
    }
}

#[test]
fn values_that_do_not_fit_together_exit_with_2_naming_the_flag() {
    let (code, stderr) = run(&[
        "consume",
        "--stream",
        "s",
        "--app",
        "a",
        "--throttle-delay",
        "100ms",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.starts_with("kinsumer: error: --throttle-delay 100ms"),
        "{stderr}"
    );
    let (code, stderr) = run(&[
        "consume",
        "--stream",
        "s",
        "--app",
        "a",
        "--shard-check-frequency",
        "1s",
        "--leader-action-frequency",
        "500ms",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--leader-action-frequency"), "{stderr}");
}

#[test]
fn fan_out_consumers_that_cannot_be_right_exit_with_2_naming_the_flag() {
    let consume = |extra: &[&str]| {
        let mut args = vec!["consume", "--stream", "s", "--app", "a"];
        args.extend_from_slice(extra);
        run(&args)
    };
    let (code, stderr) = consume(&["--consumer-arn", "billing"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.starts_with(
            "kinsumer: error: --consumer-arn \"billing\" is not a stream consumer ARN"
        ),
        "{stderr}"
    );
    let (code, stderr) = consume(&["--efo-consumer", "has space"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--efo-consumer"), "{stderr}");
    let (code, stderr) = consume(&["--efo-consumer", "x", "--consumer-arn", "arn:x"]);
    assert_eq!(code, Some(2), "one or the other: {stderr}");
}

#[test]
fn every_subcommand_explains_itself_with_an_example() {
    for sub in [
        &["demo"][..],
        &["consume"],
        &["publish"],
        &["tables"],
        &["tables", "create"],
        &["tables", "delete"],
        &["status"],
    ] {
        let mut args = sub.to_vec();
        args.push("--help");
        let out = kinsumer(&args).output().expect("run kinsumer");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "kinsumer {args:?}");
        assert!(help.contains("Example"), "kinsumer {args:?}: {help}");
        assert!(help.contains("kinsumer "), "kinsumer {args:?}: {help}");
    }
    let out = kinsumer(&["consume", "--help"])
        .output()
        .expect("run kinsumer");
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--region",
        "--profile",
        "--endpoint-url",
        "--kinesis-endpoint",
        "--dynamodb-endpoint",
    ] {
        assert!(help.contains(flag), "consume --help lacks {flag}");
    }
}
