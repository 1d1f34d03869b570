//! `kinsumer publish`: lines from stdin or a file become records, written with PutRecords in
//! chunks; the library retries the entries Kinesis fails.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use kinsumer::PutEntry;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};

use crate::aws::AwsArgs;
use crate::error::CliError;
use crate::term;

/// Records per `publish_batch` call (one PutRecords request each).
const CHUNK: usize = 500;
/// Input that takes longer than this to publish gets a progress line (on a terminal).
const PROGRESS_AFTER: Duration = Duration::from_secs(1);
/// How often the progress line is redrawn at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// `kinsumer publish`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    seq 1 1000 | kinsumer publish --stream events\n  \
    kinsumer publish --stream events --partition-key customer-42 --file orders.jsonl")]
pub struct PublishArgs {
    /// Kinesis stream to write to.
    #[arg(long)]
    stream: String,
    /// One partition key for every record (records keep their order in one shard).
    #[arg(long, value_name = "KEY", conflicts_with = "random_key")]
    partition_key: Option<String>,
    /// A random partition key per record, spreading records over all shards (the default).
    #[arg(long)]
    random_key: bool,
    /// Read lines from this file instead of stdin.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Pack the lines into KPL aggregated records (per shard, up to 50 KiB each), as the Kinesis
    /// Producer Library does; kinsumer and KCL consumers de-aggregate them.
    #[arg(long)]
    aggregate: bool,
    #[command(flatten)]
    aws: AwsArgs,
}

/// What was written so far.
#[derive(Debug, Default)]
struct Tally {
    read: usize,
    written: usize,
    failed: usize,
    first_failure: Option<String>,
}

/// Runs `kinsumer publish`.
pub async fn run(args: PublishArgs) -> Result<ExitCode, CliError> {
    let transport = args.aws.clients().await?.transport();
    let source = match &args.file {
        Some(path) => path.display().to_string(),
        None => "stdin".to_string(),
    };
    let mut input: Box<dyn AsyncBufRead + Unpin + Send> = match &args.file {
        Some(path) => {
            Box::new(BufReader::new(tokio::fs::File::open(path).await.map_err(
                |e| CliError::io(format!("opening {}", path.display()), e),
            )?))
        }
        None => Box::new(BufReader::new(tokio::io::stdin())),
    };

    let mut tally = Tally::default();
    let mut progress = Progress::new();
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| CliError::io(format!("reading {source}"), e))?;
        if n > 0 {
            chunk.push(entry(&args, trim_newline(&line)));
        }
        if chunk.len() == CHUNK || (n == 0 && !chunk.is_empty()) {
            let entries = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
            if let Err(e) = write_chunk(
                &transport,
                &args.stream,
                entries,
                args.aggregate,
                &mut tally,
            )
            .await
            {
                progress.finish();
                eprintln!(
                    "kinsumer: wrote {} of {} records read before the error",
                    tally.written, tally.read
                );
                return Err(e);
            }
            progress.update(tally.written);
        }
        if n == 0 {
            break;
        }
    }
    progress.finish();
    eprintln!(
        "kinsumer: wrote {} records to stream {:?} from {source}, {} failed",
        tally.written, args.stream, tally.failed
    );
    match tally.failed {
        0 => Ok(ExitCode::SUCCESS),
        failed => Err(CliError::PublishIncomplete {
            stream: args.stream,
            failed,
            total: tally.read,
            first: tally.first_failure.unwrap_or_default(),
        }),
    }
}

/// One line as a record with the chosen partition key.
fn entry(args: &PublishArgs, data: &[u8]) -> PutEntry {
    let partition_key = match &args.partition_key {
        Some(key) => key.clone(),
        None => format!("{:032x}", rand::random::<u128>()),
    };
    PutEntry {
        partition_key,
        data: Bytes::copy_from_slice(data),
        explicit_hash_key: None,
    }
}

/// The line without its `\n` or `\r\n`.
fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Writes one chunk; records that still fail after the library's retries are counted, any other
/// failure (missing stream, access denied) ends the command.
async fn write_chunk(
    transport: &kinsumer::kinesis::aws::AwsKinesis,
    stream: &str,
    entries: Vec<PutEntry>,
    aggregate: bool,
    tally: &mut Tally,
) -> Result<(), CliError> {
    let total = entries.len();
    tally.read += total;
    let written = if aggregate {
        kinsumer::publish::publish_aggregated(
            transport,
            stream,
            entries,
            kinsumer::publish::aggregate::DEFAULT_AGGREGATE_BYTES,
        )
        .await
        .map(|w| w.len())
    } else {
        kinsumer::publish::publish_batch(transport, stream, entries)
            .await
            .map(|w| w.len())
    };
    match written {
        Ok(written) => tally.written += written,
        Err(kinsumer::Error::PublishIncomplete { failed, .. }) => {
            tally.written += total - failed.len();
            tally.failed += failed.len();
            if tally.first_failure.is_none() {
                tally.first_failure = failed.first().map(|f| format!("{}: {}", f.code, f.message));
            }
        }
        Err(e) => return Err(CliError::kinsumer(e, None)),
    }
    Ok(())
}

/// A `\r` progress line on stderr, shown only on a terminal and only for input that takes a while.
struct Progress {
    enabled: bool,
    started: Instant,
    last: Option<Instant>,
}

impl Progress {
    /// Enabled when stderr is a terminal.
    fn new() -> Self {
        Progress {
            enabled: term::stderr_is_terminal(),
            started: Instant::now(),
            last: None,
        }
    }

    /// Redraws the line (rate-limited) once publishing has taken a while.
    fn update(&mut self, written: usize) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.started);
        if !self.enabled
            || elapsed < PROGRESS_AFTER
            || self
                .last
                .is_some_and(|t| now.duration_since(t) < PROGRESS_EVERY)
        {
            return;
        }
        self.last = Some(now);
        let rate = written as f64 / elapsed.as_secs_f64();
        let mut err = std::io::stderr().lock();
        // Progress is best effort: a failed write to stderr is not worth failing the publish.
        let _ = write!(err, "\r\x1b[Kpublished {written} records ({rate:.0}/s)");
        let _ = err.flush();
    }

    /// Clears the line if one was drawn.
    fn finish(&mut self) {
        if self.last.is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
            self.last = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_are_not_part_of_the_record() {
        assert_eq!(trim_newline(b"abc\n"), b"abc");
        assert_eq!(trim_newline(b"abc\r\n"), b"abc");
        assert_eq!(trim_newline(b"abc"), b"abc");
        assert_eq!(trim_newline(b"\n"), b"");
    }
}
