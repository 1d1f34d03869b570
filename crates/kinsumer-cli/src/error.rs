//! The CLI's one error type: what went wrong, phrased for someone at a shell, with the fix.

use std::io;

/// Everything a subcommand can fail with. `Display` is the one line printed after
/// `kinsumer: error: `.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The library failed; `app` (when known) lets the message name the exact fix.
    #[error("{}", describe(source, app.as_deref(), *consume))]
    Kinsumer {
        /// The library's error.
        source: kinsumer::Error,
        /// The application, for hints that name it.
        app: Option<String>,
        /// Whether the command was `consume` (which has `--create-tables`).
        consume: bool,
    },
    /// Flag values that parse but do not fit together (exit code 2, like clap's usage errors).
    #[error("{0}")]
    Usage(String),
    /// No region from the flags, the environment or the profile.
    #[error(
        "no AWS region configured; pass --region, set AWS_REGION, or set a region in your AWS profile"
    )]
    NoRegion,
    /// Reading input or writing output failed.
    #[error("{action}: {source}")]
    Io {
        /// What was being done, e.g. "reading /tmp/lines.txt".
        action: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The Prometheus exporter could not start.
    #[error("cannot serve metrics on {addr}: {message}")]
    Metrics {
        /// The address asked for.
        addr: String,
        /// Why it failed.
        message: String,
    },
    /// Anything else that went wrong at run time.
    #[error("{0}")]
    Failed(String),
    /// Some records could not be published after retries.
    #[error("{failed} of {total} records could not be written to stream {stream:?} (first error: {first}); they were retried with backoff")]
    PublishIncomplete {
        /// The stream.
        stream: String,
        /// Records not written.
        failed: usize,
        /// Records read.
        total: usize,
        /// The first failure's code and message.
        first: String,
    },
}

impl CliError {
    /// A library error, with the application named in hints where one applies.
    pub fn kinsumer(source: kinsumer::Error, app: Option<&str>) -> Self {
        CliError::Kinsumer {
            source,
            app: app.map(str::to_string),
            consume: false,
        }
    }

    /// A library error of `kinsumer consume`, whose hints may mention `--create-tables`.
    pub fn consume(source: kinsumer::Error, app: &str) -> Self {
        CliError::Kinsumer {
            source,
            app: Some(app.to_string()),
            consume: true,
        }
    }

    /// An I/O error while doing `action`.
    pub fn io(action: impl Into<String>, source: io::Error) -> Self {
        CliError::Io {
            action: action.into(),
            source,
        }
    }

    /// The process exit code for this error: 2 for bad usage, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Kinsumer {
                source: kinsumer::Error::Config(_),
                ..
            } => 2,
            _ => 1,
        }
    }
}

/// The library's message, with the CLI's way to fix it where the library names its API instead.
fn describe(error: &kinsumer::Error, app: Option<&str>, consume: bool) -> String {
    let app_arg = app.unwrap_or("<app>");
    match error {
        kinsumer::Error::NoSuchStream { stream } => format!(
            "Kinesis stream {stream:?} does not exist (check the name, --region and the account); \
             create it with: aws kinesis create-stream --stream-name {stream} --shard-count 1"
        ),
        kinsumer::Error::TablesMissing { tables } if consume => format!(
            "DynamoDB table(s) {} do not exist or are not ACTIVE; pass --create-tables, \
             or run: kinsumer tables create --app {app_arg}",
            tables.join(", ")
        ),
        kinsumer::Error::TablesMissing { tables } => format!(
            "DynamoDB table(s) {} do not exist or are not ACTIVE (no client of application \
             {app_arg} has run yet?); create them with: kinsumer tables create --app {app_arg}",
            tables.join(", ")
        ),
        kinsumer::Error::Store { source, .. }
            if source.kind == kinsumer::ServiceErrorKind::NotFound =>
        {
            format!("{error}; create the tables with: kinsumer tables create --app {app_arg}")
        }
        kinsumer::Error::Unreachable {
            service,
            operation,
            resource,
            source,
        } => {
            let flag = match *service {
                "Kinesis" => "--kinesis-endpoint",
                _ => "--dynamodb-endpoint",
            };
            format!(
                "cannot reach {service}: {operation} on {resource} failed ({source}); check \
                 the endpoint ({flag} or --endpoint-url, else the AWS_ENDPOINT_URL* variables), \
                 the region (--region) and the network path to {service}"
            )
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_stream_says_how_to_create_it() {
        let e = CliError::kinsumer(
            kinsumer::Error::NoSuchStream {
                stream: "orders".into(),
            },
            Some("billing"),
        );
        let text = e.to_string();
        assert!(text.contains("\"orders\" does not exist"), "{text}");
        assert!(
            text.contains("aws kinesis create-stream --stream-name orders"),
            "{text}"
        );
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn missing_tables_name_both_fixes() {
        let missing = || kinsumer::Error::TablesMissing {
            tables: vec!["billing_clients".into()],
        };
        let text = CliError::consume(missing(), "billing").to_string();
        assert!(text.contains("billing_clients"), "{text}");
        assert!(text.contains("--create-tables"), "{text}");
        assert!(
            text.contains("kinsumer tables create --app billing"),
            "{text}"
        );
        // Other commands have no --create-tables.
        let text = CliError::kinsumer(missing(), Some("billing")).to_string();
        assert!(!text.contains("--create-tables"), "{text}");
        assert!(
            text.contains("kinsumer tables create --app billing"),
            "{text}"
        );
    }

    #[test]
    fn an_unreachable_service_names_the_flags_to_check() {
        let e = CliError::consume(
            kinsumer::Error::Unreachable {
                service: "Kinesis",
                operation: "DescribeStreamSummary",
                resource: "stream \"events\"".into(),
                source: kinsumer::ServiceError::new(
                    kinsumer::ServiceErrorKind::Transient,
                    "no answer within 4s",
                ),
            },
            "billing",
        );
        let text = e.to_string();
        for what in [
            "cannot reach Kinesis",
            "stream \"events\"",
            "no answer within 4s",
            "--kinesis-endpoint",
            "--region",
            "network",
        ] {
            assert!(text.contains(what), "{text:?} does not mention {what:?}");
        }
        assert_eq!(text.lines().count(), 1, "{text}");
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn usage_errors_exit_with_2() {
        assert_eq!(CliError::Usage("bad".into()).exit_code(), 2);
        assert_eq!(CliError::NoRegion.exit_code(), 1);
    }
}
