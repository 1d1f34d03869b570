//! `kinsumer status`: an application's clients and the stream's shards with their leases and
//! checkpoints, as a table, redrawn with `--watch`, or as JSON.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Args;
use kinsumer::kinesis::KinesisTransport;
use kinsumer::{ClusterState, Position};
use serde::Serialize;
use tokio::signal::unix::{signal, SignalKind};

use crate::args;
use crate::aws::AwsArgs;
use crate::error::CliError;
use crate::term;

/// How often `--watch` refreshes.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// `kinsumer status`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    kinsumer status --stream events --app billing\n  \
    kinsumer status --stream events --app billing --watch\n  \
    kinsumer status --stream events --app billing --json | jq '.shards[] | select(.owner_name == null)'")]
pub struct StatusArgs {
    /// Kinesis stream.
    #[arg(long)]
    stream: String,
    /// Application name (the DynamoDB tables' prefix).
    #[arg(long, value_parser = args::application)]
    app: String,
    /// Refresh every second until interrupted (with --json: one object per line).
    #[arg(long)]
    watch: bool,
    /// Print the state as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    aws: AwsArgs,
}

/// Runs `kinsumer status`.
pub async fn run(args: StatusArgs) -> Result<ExitCode, CliError> {
    let clients = args.aws.clients().await?;
    let store = clients.store(&args.app);
    let transport = clients.transport();
    let read = || async {
        let transport: &dyn KinesisTransport = &transport;
        ClusterState::read(&store, Some(transport), &args.stream)
            .await
            .map_err(|e| CliError::kinsumer(e, Some(&args.app)))
    };
    if !args.watch {
        let state = read().await?;
        print(&args, &state, false)?;
        return Ok(ExitCode::SUCCESS);
    }

    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| CliError::io("installing the SIGINT handler", e))?;
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| CliError::io("installing the SIGTERM handler", e))?;
    let redraw = term::stdout_is_terminal() && !args.json;
    let mut tick = tokio::time::interval(WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            _ = tick.tick() => {}
        }
        match read().await {
            Ok(state) => print(&args, &state, redraw)?,
            Err(e @ CliError::Kinsumer { .. }) if !is_fatal(&e) => {
                // Keep watching through a transient failure; say so in place of the table.
                tracing::warn!("{e}");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether watching cannot go on after `error`.
fn is_fatal(error: &CliError) -> bool {
    match error {
        CliError::Kinsumer { source, .. } => source.is_fatal(),
        _ => true,
    }
}

/// Prints one snapshot.
fn print(args: &StatusArgs, state: &ClusterState, redraw: bool) -> Result<(), CliError> {
    let text = if args.json {
        let mut json = serde_json::to_string(&JsonState::new(&args.stream, &args.app, state))
            .map_err(|e| CliError::io("encoding JSON", e.into()))?;
        json.push('\n');
        json
    } else {
        table(&args.stream, &args.app, state, SystemTime::now())
    };
    let mut out = std::io::stdout().lock();
    let written = if redraw {
        term::clear_screen(&mut out).and_then(|()| out.write_all(text.as_bytes()))
    } else {
        out.write_all(text.as_bytes())
    };
    written
        .and_then(|()| out.flush())
        .map_err(|e| CliError::io("writing to stdout", e))
}

/// The human-readable report.
fn table(stream: &str, app: &str, state: &ClusterState, now: SystemTime) -> String {
    let totals = Totals::of(state);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "stream {stream}, application {app}, at {}",
        humantime::format_rfc3339_seconds(now)
    );
    let _ = writeln!(
        out,
        "{} client(s); {} shard(s): {} open, {} closed, {} finished; {} leased",
        totals.clients, totals.shards, totals.open, totals.closed, totals.finished, totals.leased
    );
    out.push('\n');

    let mut rows = vec![vec![
        "CLIENT".to_string(),
        "ID".to_string(),
        "HEARTBEAT".to_string(),
        "LEADER".to_string(),
        "LEASES".to_string(),
        "MODE".to_string(),
    ]];
    for c in &state.clients {
        rows.push(vec![
            c.name.clone(),
            short_id(c.id.as_str()),
            format!("{} ago", age(c.heartbeat_age)),
            if c.is_leader { "*" } else { "" }.to_string(),
            c.leases.to_string(),
            short_mode(c.read_mode.as_deref()),
        ]);
    }
    if state.clients.is_empty() {
        out.push_str("no clients\n");
    } else {
        push_rows(&mut out, &rows);
    }
    out.push('\n');

    let mut rows = vec![vec![
        "SHARD".to_string(),
        "PARENTS".to_string(),
        "OWNER".to_string(),
        "CHECKPOINT".to_string(),
        "MODE".to_string(),
        "STATE".to_string(),
    ]];
    for s in &state.shards {
        let parents: Vec<&str> = s
            .parent
            .iter()
            .chain(s.adjacent_parent.iter())
            .map(|p| p.as_str())
            .collect();
        rows.push(vec![
            s.id.to_string(),
            if parents.is_empty() {
                "-".to_string()
            } else {
                parents.join("+")
            },
            s.owner_name.clone().unwrap_or_else(|| "-".to_string()),
            s.checkpoint
                .as_ref()
                .map(short_position)
                .unwrap_or_else(|| "-".to_string()),
            if s.owner_id.is_some() {
                short_mode(s.read_mode.as_deref())
            } else {
                "-".to_string()
            },
            shard_state(s.closed, s.finished).to_string(),
        ]);
    }
    if state.shards.is_empty() {
        out.push_str("no shards\n");
    } else {
        push_rows(&mut out, &rows);
    }
    out
}

/// Left-aligned columns, two spaces apart.
fn push_rows(out: &mut String, rows: &[Vec<String>]) {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// A shard's state in words.
fn shard_state(closed: bool, finished: bool) -> &'static str {
    match (closed, finished) {
        (_, true) => "finished",
        (true, false) => "closed, draining",
        (false, false) => "open",
    }
}

/// A read mode for the table: `polling`, or `fan-out <consumer name>` (not the whole ARN);
/// `?` for a client that does not say (the Go library).
fn short_mode(mode: Option<&str>) -> String {
    match mode {
        None => "?".to_string(),
        Some(mode) => match mode.strip_prefix("fan-out ") {
            Some(arn) => {
                let name = arn
                    .split_once("/consumer/")
                    .map_or(arn, |(_, rest)| rest.split(':').next().unwrap_or(rest));
                format!("fan-out {name}")
            }
            None => mode.to_string(),
        },
    }
}

/// The first 8 characters of a client id.
fn short_id(id: &str) -> String {
    id.chars().take(8).collect()
}

/// A checkpoint shortened to its last 10 digits (sequence numbers share long prefixes).
fn short_position(p: &Position) -> String {
    let seq = p.sequence.as_str();
    let tail = if seq.len() > 10 {
        format!("…{}", &seq[seq.len() - 10..])
    } else {
        seq.to_string()
    };
    match p.sub_sequence {
        Some(sub) => format!("{tail}/{sub}"),
        None => tail,
    }
}

/// An age such as `0.4s`, `12s` or `3m05s`.
fn age(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 10 {
        format!("{:.1}s", d.as_secs_f64())
    } else if secs < 120 {
        format!("{secs}s")
    } else {
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

/// Counts shown above the tables and in the JSON.
#[derive(Debug, Serialize, PartialEq, Eq)]
struct Totals {
    clients: usize,
    shards: usize,
    open: usize,
    closed: usize,
    finished: usize,
    leased: usize,
}

impl Totals {
    /// Counts the state's clients and shards.
    fn of(state: &ClusterState) -> Self {
        Totals {
            clients: state.clients.len(),
            shards: state.shards.len(),
            open: state.shards.iter().filter(|s| !s.closed).count(),
            closed: state.shards.iter().filter(|s| s.closed).count(),
            finished: state.shards.iter().filter(|s| s.finished).count(),
            leased: state.shards.iter().filter(|s| s.owner_id.is_some()).count(),
        }
    }
}

/// `--json`: the state with times as RFC 3339 and ages in milliseconds.
#[derive(Debug, Serialize)]
struct JsonState {
    stream: String,
    application: String,
    at: String,
    clients: Vec<JsonClient>,
    shards: Vec<JsonShard>,
    totals: Totals,
}

/// One client in `--json`.
#[derive(Debug, Serialize)]
struct JsonClient {
    id: String,
    name: String,
    last_heartbeat: String,
    heartbeat_age_ms: u128,
    leader: bool,
    leases: usize,
    read_mode: Option<String>,
}

/// One shard in `--json`.
#[derive(Debug, Serialize)]
struct JsonShard {
    id: String,
    parent: Option<String>,
    adjacent_parent: Option<String>,
    closed: bool,
    finished: bool,
    owner_id: Option<String>,
    owner_name: Option<String>,
    checkpoint: Option<JsonPosition>,
    last_update: Option<String>,
    read_mode: Option<String>,
}

/// A checkpoint in `--json`.
#[derive(Debug, Serialize)]
struct JsonPosition {
    sequence_number: String,
    sub_sequence_number: Option<u64>,
}

impl JsonState {
    /// The JSON view of `state`.
    fn new(stream: &str, app: &str, state: &ClusterState) -> Self {
        JsonState {
            stream: stream.to_string(),
            application: app.to_string(),
            at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            clients: state
                .clients
                .iter()
                .map(|c| JsonClient {
                    id: c.id.to_string(),
                    name: c.name.clone(),
                    last_heartbeat: humantime::format_rfc3339_millis(c.last_heartbeat).to_string(),
                    heartbeat_age_ms: c.heartbeat_age.as_millis(),
                    leader: c.is_leader,
                    leases: c.leases,
                    read_mode: c.read_mode.clone(),
                })
                .collect(),
            shards: state
                .shards
                .iter()
                .map(|s| JsonShard {
                    id: s.id.to_string(),
                    parent: s.parent.as_ref().map(ToString::to_string),
                    adjacent_parent: s.adjacent_parent.as_ref().map(ToString::to_string),
                    closed: s.closed,
                    finished: s.finished,
                    owner_id: s.owner_id.as_ref().map(ToString::to_string),
                    owner_name: s.owner_name.clone(),
                    checkpoint: s.checkpoint.as_ref().map(|p| JsonPosition {
                        sequence_number: p.sequence.to_string(),
                        sub_sequence_number: p.sub_sequence,
                    }),
                    last_update: s
                        .last_update
                        .map(|t| humantime::format_rfc3339_millis(t).to_string()),
                    read_mode: s.read_mode.clone(),
                })
                .collect(),
            totals: Totals::of(state),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinsumer::{ClientId, ClientStatus, SequenceNumber, ShardId, ShardStatus};

    const CONSUMER_ARN: &str =
        "arn:aws:kinesis:us-east-1:123456789012:stream/events/consumer/billing-efo:1700000000";

    fn sample() -> ClusterState {
        let id = ClientId::new("0123456789abcdef");
        ClusterState {
            clients: vec![ClientStatus {
                id: id.clone(),
                name: "worker-1".into(),
                last_heartbeat: SystemTime::UNIX_EPOCH,
                heartbeat_age: Duration::from_millis(400),
                is_leader: true,
                leases: 1,
                read_mode: Some(format!("fan-out {CONSUMER_ARN}")),
            }],
            shards: vec![
                ShardStatus {
                    id: ShardId::new("shardId-000000000000"),
                    parent: None,
                    adjacent_parent: None,
                    closed: true,
                    owner_id: None,
                    owner_name: None,
                    checkpoint: None,
                    finished: true,
                    last_update: None,
                    read_mode: None,
                },
                ShardStatus {
                    id: ShardId::new("shardId-000000000001"),
                    parent: Some(ShardId::new("shardId-000000000000")),
                    adjacent_parent: None,
                    closed: false,
                    owner_id: Some(id),
                    owner_name: Some("worker-1".into()),
                    checkpoint: Some(Position::after(SequenceNumber::new(
                        "49000000000000000000000000000000001234567890",
                    ))),
                    finished: false,
                    last_update: Some(SystemTime::UNIX_EPOCH),
                    read_mode: Some(format!("fan-out {CONSUMER_ARN}")),
                },
            ],
        }
    }

    #[test]
    fn the_table_shows_clients_shards_and_totals() {
        let text = table("events", "billing", &sample(), SystemTime::UNIX_EPOCH);
        assert!(text.contains("1 client(s); 2 shard(s): 1 open, 1 closed, 1 finished; 1 leased"));
        assert!(
            text.contains("worker-1  01234567  0.4s ago   *       1       fan-out billing-efo"),
            "{text}"
        );
        assert!(text.contains("shardId-000000000000  -"), "{text}");
        assert!(text.contains("…1234567890"), "{text}");
        assert!(text.contains("finished"), "{text}");
        assert!(
            text.contains("…1234567890  fan-out billing-efo  open"),
            "the owner's read mode per shard: {text}"
        );
    }

    #[test]
    fn read_modes_are_shortened_to_the_consumer_name() {
        assert_eq!(short_mode(Some("polling")), "polling");
        assert_eq!(
            short_mode(Some(&format!("fan-out {CONSUMER_ARN}"))),
            "fan-out billing-efo"
        );
        assert_eq!(short_mode(None), "?");
    }

    #[test]
    fn the_json_has_every_client_and_shard() {
        let json = serde_json::to_value(JsonState::new("events", "billing", &sample())).unwrap();
        assert_eq!(json["clients"][0]["name"], "worker-1");
        assert_eq!(json["clients"][0]["leader"], true);
        assert_eq!(json["shards"].as_array().map(Vec::len), Some(2));
        assert_eq!(json["shards"][1]["parent"], "shardId-000000000000");
        assert_eq!(json["totals"]["leased"], 1);
        assert_eq!(
            json["shards"][1]["read_mode"],
            format!("fan-out {CONSUMER_ARN}")
        );
    }
}
