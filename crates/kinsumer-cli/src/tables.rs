//! `kinsumer tables create|delete`: an application's three DynamoDB tables
//! (`<app>_clients`, `<app>_checkpoints`, `<app>_metadata`).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use kinsumer::store::CoordinationStore;
use kinsumer::Billing;

use crate::args;
use crate::aws::AwsArgs;
use crate::error::CliError;
use crate::term;

/// How often table creation or deletion is checked for completion.
const WAITER_DELAY: Duration = Duration::from_secs(1);

/// `kinsumer tables ...`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    kinsumer tables create --app billing --on-demand\n  \
    kinsumer tables create --app billing --read-capacity 5 --write-capacity 5\n  \
    kinsumer tables delete --app billing")]
pub struct TablesArgs {
    #[command(subcommand)]
    action: TablesAction,
}

/// What to do with the tables.
#[derive(Debug, Subcommand)]
enum TablesAction {
    /// Create the tables if missing and wait until they are ACTIVE.
    #[command(after_help = "Example:\n  kinsumer tables create --app billing --on-demand")]
    Create(CreateArgs),
    /// Delete the tables (and every checkpoint in them) and wait until they are gone.
    #[command(after_help = "Example:\n  kinsumer tables delete --app billing")]
    Delete(DeleteArgs),
}

/// `kinsumer tables create`.
#[derive(Debug, Args)]
struct CreateArgs {
    /// Application name (the tables' prefix).
    #[arg(long, value_parser = args::application)]
    app: String,
    /// Bill per request instead of provisioned capacity.
    #[arg(long, conflicts_with_all = ["read_capacity", "write_capacity"])]
    on_demand: bool,
    /// Provisioned read capacity units per table.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i64).range(1..))]
    read_capacity: i64,
    /// Provisioned write capacity units per table.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i64).range(1..))]
    write_capacity: i64,
    #[command(flatten)]
    aws: AwsArgs,
}

/// `kinsumer tables delete`.
#[derive(Debug, Args)]
struct DeleteArgs {
    /// Application name (the tables' prefix).
    #[arg(long, value_parser = args::application)]
    app: String,
    #[command(flatten)]
    aws: AwsArgs,
}

/// Runs `kinsumer tables ...`.
pub async fn run(args: TablesArgs) -> Result<ExitCode, CliError> {
    match args.action {
        TablesAction::Create(args) => create(args).await,
        TablesAction::Delete(args) => delete(args).await,
    }
}

/// `kinsumer tables create`.
async fn create(args: CreateArgs) -> Result<ExitCode, CliError> {
    let store = args.aws.clients().await?.store(&args.app);
    let billing = if args.on_demand {
        Billing::OnDemand
    } else {
        Billing::Provisioned {
            read: args.read_capacity,
            write: args.write_capacity,
        }
    };
    store
        .create_tables(billing, WAITER_DELAY)
        .await
        .map_err(|e| CliError::kinsumer(e, Some(&args.app)))?;
    let billed = match billing {
        Billing::OnDemand => "on demand".to_string(),
        Billing::Provisioned { read, write } => {
            format!("provisioned, {read} read / {write} write units each")
        }
    };
    term::print_line(&format!(
        "tables {} are ACTIVE ({billed}; existing tables were kept as they are)",
        store.tables().all().join(", ")
    ))
    .map_err(|e| CliError::io("writing to stdout", e))?;
    Ok(ExitCode::SUCCESS)
}

/// `kinsumer tables delete`.
async fn delete(args: DeleteArgs) -> Result<ExitCode, CliError> {
    let store = args.aws.clients().await?.store(&args.app);
    store
        .delete_tables(WAITER_DELAY)
        .await
        .map_err(|e| CliError::kinsumer(e, Some(&args.app)))?;
    term::print_line(&format!(
        "tables {} are gone",
        store.tables().all().join(", ")
    ))
    .map_err(|e| CliError::io("writing to stdout", e))?;
    Ok(ExitCode::SUCCESS)
}
