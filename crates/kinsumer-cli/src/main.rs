//! `kinsumer`: the command-line face of the kinsumer library.
//!
//! One file per subcommand: [`demo`] (in memory, nothing to set up), [`consume`], [`publish`],
//! [`tables`] and [`status`]. Shared pieces: [`aws`] (SDK configuration and endpoint options),
//! [`args`] (value parsers), [`error`] (the one error type and its exit codes) and [`term`]
//! (terminal detection and in-place redraws).
//!
//! Exit codes: 0 success, 1 runtime failure (one line `kinsumer: error: <message>` on stderr),
//! 2 bad usage.

mod args;
mod aws;
mod consume;
mod demo;
mod error;
mod publish;
mod status;
mod tables;
mod term;

use std::process::ExitCode;

use clap::{ArgAction, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::error::CliError;

/// Consume AWS Kinesis streams with a cluster of clients coordinated through DynamoDB.
#[derive(Debug, Parser)]
#[command(
    name = "kinsumer",
    version,
    propagate_version = true,
    after_help = "Start here (no AWS needed):\n  kinsumer demo\n\n\
                  Then, against AWS:\n  \
                  kinsumer tables create --app billing\n  \
                  seq 1 1000 | kinsumer publish --stream events\n  \
                  kinsumer consume --stream events --app billing --format json\n  \
                  kinsumer status --stream events --app billing --watch"
)]
struct Cli {
    /// More log output on stderr (-v: info, -vv: debug); RUST_LOG overrides it.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// A self-contained demonstration in memory: clients join, crash and reshard while records flow.
    Demo(demo::DemoArgs),
    /// Join an application's cluster on a stream and print every record to stdout.
    Consume(consume::ConsumeArgs),
    /// Write lines from stdin or a file to a stream, one record per line.
    Publish(publish::PublishArgs),
    /// Create or delete an application's DynamoDB tables.
    Tables(tables::TablesArgs),
    /// Show an application's clients, shards, leases and checkpoints.
    Status(status::StatusArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse(); // prints usage errors and exits with 2
    init_tracing(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return report(CliError::Io {
                action: "starting the async runtime".into(),
                source: e,
            })
        }
    };
    let outcome = runtime.block_on(run(cli.command));
    // Leftover background tasks (e.g. the metrics listener) must not delay the exit.
    runtime.shutdown_background();
    match outcome {
        Ok(code) => code,
        Err(e) => report(e),
    }
}

/// Runs one subcommand.
async fn run(command: Command) -> Result<ExitCode, CliError> {
    match command {
        Command::Demo(args) => demo::run(args).await,
        Command::Consume(args) => consume::run(args).await,
        Command::Publish(args) => publish::run(args).await,
        Command::Tables(args) => tables::run(args).await,
        Command::Status(args) => status::run(args).await,
    }
}

/// Prints the one-line error and picks the exit code.
fn report(error: CliError) -> ExitCode {
    eprintln!("kinsumer: error: {error}");
    ExitCode::from(error.exit_code())
}

/// Logs go to stderr (stdout belongs to records and reports). `consume` logs its lifecycle
/// (joined, leases taken and released) at info level by default; the other commands only warn.
fn init_tracing(cli: &Cli) {
    let base = match cli.command {
        Command::Consume(_) => 1,
        _ => 0,
    };
    let directives = match base + cli.verbose {
        0 => "warn",
        // `kinsumer` is both the library's and this binary's log target.
        1 => "warn,kinsumer=info",
        2 => "info,kinsumer=debug",
        _ => "debug,kinsumer=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directives));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(term::stderr_is_terminal())
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_subcommand_has_an_example() {
        for sub in Cli::command().get_subcommands() {
            let help = sub
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(
                help.contains("kinsumer "),
                "{} has no example in its after_help",
                sub.get_name()
            );
        }
    }
}
