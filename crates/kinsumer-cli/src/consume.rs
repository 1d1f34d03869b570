//! `kinsumer consume`: join an application's cluster on a stream and print every record.
//!
//! Records are acknowledged (manual mode) only after their line has been flushed to stdout, so
//! a record is checkpointed only once it is out of this process. Stdout is flushed at least every
//! [`FLUSH_EVERY`], and before every acknowledgement. SIGTERM and SIGINT stop gracefully: flush,
//! acknowledge, commit, release the leases, exit 0.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use clap::{Args, ValueEnum};
use kinsumer::{
    AckMode, Config, ConfigError, InitialPosition, Kinsumer, MetricsStats, Record, ShardId,
};
use serde::Serialize;
use tokio::io::{AsyncWriteExt, BufWriter, Stdout};
use tokio::signal::unix::{signal, SignalKind};

use crate::args;
use crate::aws::AwsArgs;
use crate::error::CliError;

/// Longest time a written line waits in the stdout buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Size of the stdout buffer.
const STDOUT_BUFFER: usize = 64 * 1024;
/// How often `--create-tables` checks that new tables are ACTIVE.
const TABLE_WAITER_DELAY: Duration = Duration::from_secs(1);

/// `kinsumer consume`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    kinsumer consume --stream events --app billing --create-tables\n  \
    kinsumer consume --stream events --app billing --format json --from at-timestamp=2024-05-01T12:00:00Z\n  \
    kinsumer consume --stream events --app billing --metrics-addr 127.0.0.1:9898 > records.txt\n\n\
    Run the same command in several processes (or on several hosts) to share the shards.")]
pub struct ConsumeArgs {
    /// Kinesis stream to read.
    #[arg(long)]
    stream: String,
    /// Application name: clients of one application share the stream's shards and checkpoints
    /// (DynamoDB tables <app>_clients, <app>_checkpoints, <app>_metadata).
    #[arg(long, value_parser = args::application)]
    app: String,
    /// This client's name in the cluster (default: <hostname>-<pid>).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "",
        hide_default_value = true
    )]
    client: String,
    /// Create the application's DynamoDB tables if they do not exist.
    #[arg(long)]
    create_tables: bool,
    /// Where shards without a checkpoint start: trim-horizon, latest or at-timestamp=<RFC 3339>.
    #[arg(long, value_name = "POSITION", default_value = "trim-horizon", value_parser = args::initial_position)]
    from: InitialPosition,
    /// Output: raw = the data bytes and a newline; json = one object per record.
    #[arg(long, value_enum, default_value_t = Format::Raw)]
    format: Format,

    /// Time between two GetRecords calls on a shard (at least 200ms; default 250ms).
    #[arg(long, value_name = "DURATION", value_parser = args::duration, help_heading = "Tuning")]
    throttle_delay: Option<Duration>,
    /// How often processed positions are committed; a crash repeats at most about this much
    /// (default 1s).
    #[arg(long, value_name = "DURATION", value_parser = args::duration, help_heading = "Tuning")]
    commit_frequency: Option<Duration>,
    /// How often the client checks membership, leases and shards (default 1s).
    #[arg(long, value_name = "DURATION", value_parser = args::duration, help_heading = "Tuning")]
    shard_check_frequency: Option<Duration>,
    /// How often the leader lists shards and reaps dead clients; at least the shard-check
    /// frequency (default 5s).
    #[arg(long, value_name = "DURATION", value_parser = args::duration, help_heading = "Tuning")]
    leader_action_frequency: Option<Duration>,
    /// Records fetched but not yet printed, across all shards (default 10000).
    #[arg(long, value_name = "RECORDS", help_heading = "Tuning")]
    buffer_size: Option<usize>,
    /// How long leases stay valid without a heartbeat; a crashed client's shards move after
    /// about this (default 2s).
    #[arg(long, value_name = "DURATION", value_parser = args::duration, help_heading = "Tuning")]
    lease_duration: Option<Duration>,
    /// Read through this enhanced fan-out consumer (SubscribeToShard) instead of polling.
    #[arg(
        long,
        value_name = "ARN",
        conflicts_with = "efo_consumer",
        help_heading = "Enhanced fan-out"
    )]
    consumer_arn: Option<String>,
    /// Read through the enhanced fan-out consumer of this name, registering it on the stream if
    /// it does not exist (needs kinesis:RegisterStreamConsumer).
    #[arg(long, value_name = "NAME", help_heading = "Enhanced fan-out")]
    efo_consumer: Option<String>,
    /// Serve Prometheus metrics (kinsumer_*) on http://HOST:PORT/metrics.
    #[arg(long, value_name = "HOST:PORT", value_parser = args::listen_address)]
    metrics_addr: Option<SocketAddr>,

    #[command(flatten)]
    aws: AwsArgs,
}

/// How records are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The data bytes verbatim, then a newline.
    Raw,
    /// One JSON object per line with the data and the record's metadata.
    Json,
}

/// Runs `kinsumer consume`.
pub async fn run(args: ConsumeArgs) -> Result<ExitCode, CliError> {
    let app = args.app.clone();
    let kinsumer_error = |e| CliError::consume(e, &app);
    let config = config(&args)?;
    if let Some(addr) = args.metrics_addr {
        serve_metrics(addr)?;
    }
    let clients = args.aws.clients().await?;
    let mut consumer = Kinsumer::from_clients(
        clients.kinesis,
        clients.dynamodb,
        &args.stream,
        &args.app,
        &args.client,
        config,
    )
    .map_err(kinsumer_error)?;
    // Signals are caught from here on: during set-up one ends the command at once, later it
    // stops the consumer gracefully.
    let mut signals = Signals::new()?;
    let setup = async {
        if args.create_tables {
            // Fail before creating anything when the stream is missing or Kinesis unreachable.
            consumer.check_stream().await?;
            consumer.create_required_tables().await?;
        }
        consumer.run().await
    };
    tokio::select! {
        done = setup => done.map_err(kinsumer_error)?,
        name = signals.recv() => {
            tracing::info!("{name} during start-up: exiting");
            return Ok(ExitCode::SUCCESS);
        }
    }

    let mut out = Output::new(args.format);
    let outcome = consume(&mut consumer, &mut out, &mut signals, &app).await;
    // Whatever ended the loop: flush, acknowledge what reached stdout, then stop gracefully.
    let flushed = out.flush_and_ack().await;
    tokio::select! {
        () = consumer.stop() => {}
        name = signals.recv() => {
            return Err(CliError::Failed(format!(
                "{name} again: exited before the graceful stop finished; \
                 this client's leases expire on their own"
            )));
        }
    }
    match (outcome, flushed) {
        (Err(e), _) => Err(e),
        (Ok(()), Err(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        (Ok(()), Err(e)) => Err(CliError::io("writing to stdout", e)),
        (Ok(()), Ok(())) => Ok(ExitCode::SUCCESS),
    }
}

/// The loop: take records, write them, flush and acknowledge on a timer, until a signal, the
/// end of the consumer, a fatal error or a closed stdout.
async fn consume(
    consumer: &mut Kinsumer,
    out: &mut Output,
    signals: &mut Signals,
    app: &str,
) -> Result<(), CliError> {
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            name = signals.recv() => {
                tracing::info!("{name}: stopping");
                return Ok(());
            }
            _ = flush.tick(), if out.has_pending() => {
                if let Err(e) = out.flush_and_ack().await {
                    return stdout_closed(e);
                }
            }
            next = consumer.next() => match next {
                Some(Ok(record)) => {
                    if let Err(e) = out.write(record).await {
                        return stdout_closed(e);
                    }
                }
                Some(Err(e)) if e.is_fatal() => return Err(CliError::consume(e, app)),
                Some(Err(e)) => tracing::warn!("{e}"),
                None => return Ok(()),
            }
        }
    }
}

/// A closed stdout (e.g. `| head`) ends consuming quietly; other write errors are failures.
fn stdout_closed(e: io::Error) -> Result<(), CliError> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        tracing::info!("stdout closed: stopping");
        Ok(())
    } else {
        Err(CliError::io("writing to stdout", e))
    }
}

/// The library configuration from the flags, checked with the flags' names in the messages.
fn config(args: &ConsumeArgs) -> Result<Config, CliError> {
    let mut config = Config::new()
        .with_ack_mode(AckMode::Manual)
        .with_initial_position(args.from)
        .with_dynamo_waiter_delay(TABLE_WAITER_DELAY);
    if let Some(d) = args.throttle_delay {
        config = config.with_throttle_delay(d);
    }
    if let Some(d) = args.commit_frequency {
        config = config.with_commit_frequency(d);
    }
    if let Some(d) = args.shard_check_frequency {
        config = config.with_shard_check_frequency(d);
        // Keep the defaults consistent with a shorter shard check unless told otherwise.
        if args.leader_action_frequency.is_none() {
            config = config.with_leader_action_frequency(d.max(Duration::from_secs(5)));
        }
    }
    if let Some(d) = args.leader_action_frequency {
        config = config.with_leader_action_frequency(d);
    }
    if let Some(n) = args.buffer_size {
        config = config.with_buffer_size(n);
    }
    if let Some(d) = args.lease_duration {
        config = config.with_lease_duration(d);
    }
    if let Some(arn) = &args.consumer_arn {
        config = config.with_fan_out_consumer_arn(arn);
    }
    if let Some(name) = &args.efo_consumer {
        config = config.with_fan_out_consumer_name(name);
    }
    if args.metrics_addr.is_some() {
        config = config.with_stats(Arc::new(MetricsStats::new(&args.stream)));
    }
    config
        .validate()
        .map_err(|e| CliError::Usage(flag_message(&e)))?;
    Ok(config)
}

/// A configuration error in terms of the command's flags.
fn flag_message(error: &ConfigError) -> String {
    let ms = |d: &Duration| humantime::format_duration(*d).to_string();
    match error {
        ConfigError::ThrottleDelay(d) => {
            format!("--throttle-delay {} is below the minimum of 200ms (Kinesis allows 5 reads per second per shard)", ms(d))
        }
        ConfigError::CommitFrequency => "--commit-frequency must be greater than zero".into(),
        ConfigError::ShardCheckFrequency => {
            "--shard-check-frequency must be greater than zero".into()
        }
        ConfigError::LeaderActionFrequency {
            leader,
            shard_check,
        } => format!(
            "--leader-action-frequency ({}) must be at least --shard-check-frequency ({})",
            ms(leader),
            ms(shard_check)
        ),
        ConfigError::BufferSize => "--buffer-size must be at least 1".into(),
        ConfigError::LeaseDuration { lease, shard_check } => format!(
            "--lease-duration ({}) must be at least 300ms and at least --shard-check-frequency ({})",
            ms(lease),
            ms(shard_check)
        ),
        ConfigError::FanOutConsumerArn(arn) => format!(
            "--consumer-arn {arn:?} is not a stream consumer ARN \
             (arn:aws:kinesis:REGION:ACCOUNT:stream/STREAM/consumer/NAME:CREATED); \
             see `aws kinesis list-stream-consumers`, or use --efo-consumer NAME"
        ),
        ConfigError::FanOutConsumerName(name) => format!(
            "--efo-consumer {name:?} is not a valid consumer name: use 1 to 128 letters, digits, '_', '.' or '-'"
        ),
        other => other.to_string(),
    }
}

/// Installs the Prometheus recorder with its HTTP listener (bound at once, so a busy port fails
/// here and not later).
fn serve_metrics(addr: SocketAddr) -> Result<(), CliError> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| CliError::Metrics {
            addr: addr.to_string(),
            message: e.to_string(),
        })?;
    tracing::info!("serving Prometheus metrics on http://{addr}/metrics");
    Ok(())
}

/// SIGTERM and SIGINT.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs both handlers.
    fn new() -> Result<Self, CliError> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate())
                .map_err(|e| CliError::io("installing the SIGTERM handler", e))?,
            interrupt: signal(SignalKind::interrupt())
                .map_err(|e| CliError::io("installing the SIGINT handler", e))?,
        })
    }

    /// The name of the next signal received.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

/// Buffered stdout plus, per shard, the last record written but not yet acknowledged.
struct Output {
    format: Format,
    stdout: BufWriter<Stdout>,
    /// Acknowledgements are cumulative per shard: the last written record of each is enough.
    unacked: HashMap<ShardId, Record>,
    line: Vec<u8>,
}

impl Output {
    /// An empty output in `format`.
    fn new(format: Format) -> Self {
        Output {
            format,
            stdout: BufWriter::with_capacity(STDOUT_BUFFER, tokio::io::stdout()),
            unacked: HashMap::new(),
            line: Vec::new(),
        }
    }

    /// Whether records were written that are not yet acknowledged.
    fn has_pending(&self) -> bool {
        !self.unacked.is_empty()
    }

    /// Writes one record's line into the buffer; it is acknowledged at the next flush.
    async fn write(&mut self, record: Record) -> io::Result<()> {
        self.line.clear();
        format_record(self.format, &record, &mut self.line)?;
        self.stdout.write_all(&self.line).await?;
        self.unacked.insert(record.shard_id.clone(), record);
        Ok(())
    }

    /// Flushes stdout, then acknowledges every record written so far. On a failed flush nothing
    /// is acknowledged: those records will be delivered again.
    async fn flush_and_ack(&mut self) -> io::Result<()> {
        self.stdout.flush().await?;
        for (_, record) in self.unacked.drain() {
            record.ack();
        }
        Ok(())
    }
}

/// The `--format json` object of one record.
#[derive(Debug, Serialize)]
struct JsonRecord<'a> {
    /// The data as text, when it is valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a str>,
    /// The data in standard base64, when it is not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    data_base64: Option<String>,
    partition_key: &'a str,
    sequence_number: &'a str,
    sub_sequence_number: Option<u64>,
    shard_id: &'a str,
    arrival: Option<String>,
}

/// Appends one record's output line (with its `\n`) to `buf`.
fn format_record(format: Format, record: &Record, buf: &mut Vec<u8>) -> io::Result<()> {
    match format {
        Format::Raw => buf.extend_from_slice(&record.data),
        Format::Json => {
            let text = std::str::from_utf8(&record.data).ok();
            let json = JsonRecord {
                data: text,
                data_base64: match text {
                    Some(_) => None,
                    None => Some(base64::engine::general_purpose::STANDARD.encode(&record.data)),
                },
                partition_key: &record.partition_key,
                sequence_number: record.sequence_number.as_str(),
                sub_sequence_number: record.sub_sequence_number,
                shard_id: record.shard_id.as_str(),
                arrival: record
                    .approximate_arrival
                    .map(|t| humantime::format_rfc3339_millis(t).to_string()),
            };
            serde_json::to_writer(&mut *buf, &json)?;
        }
    }
    buf.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kinsumer::SequenceNumber;

    fn record(data: &'static [u8]) -> Record {
        Record::new(
            ShardId::new("shardId-000000000001"),
            SequenceNumber::new("4900000000000000000001"),
            "key-7",
            Bytes::from_static(data),
        )
    }

    #[test]
    fn raw_is_the_data_and_a_newline() {
        let mut buf = Vec::new();
        format_record(Format::Raw, &record(b"hello"), &mut buf).unwrap();
        assert_eq!(buf, b"hello\n");
    }

    #[test]
    fn json_carries_text_data_and_metadata() {
        let mut buf = Vec::new();
        format_record(Format::Json, &record(b"hello"), &mut buf).unwrap();
        assert!(buf.ends_with(b"}\n"));
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["data"], "hello");
        assert!(v.get("data_base64").is_none());
        assert_eq!(v["partition_key"], "key-7");
        assert_eq!(v["sequence_number"], "4900000000000000000001");
        assert_eq!(v["shard_id"], "shardId-000000000001");
        assert!(v["sub_sequence_number"].is_null());
        assert!(v["arrival"].is_null());
    }

    #[test]
    fn json_encodes_binary_data_in_base64() {
        let mut buf = Vec::new();
        format_record(Format::Json, &record(b"\xff\x00"), &mut buf).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert!(v.get("data").is_none());
        assert_eq!(v["data_base64"], "/wA=");
    }

    #[test]
    fn config_errors_name_the_flags() {
        let e = ConfigError::ThrottleDelay(Duration::from_millis(100));
        assert!(flag_message(&e).starts_with("--throttle-delay 100ms"));
    }
}
