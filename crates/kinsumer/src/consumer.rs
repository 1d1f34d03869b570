//! The public consumer: build it, create its tables, run it, take records, stop it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::clock::Clock;
use crate::config::ReadMode;
use crate::coordinator::fence::Fence;
use crate::coordinator::{Coordinator, Shared};
use crate::delivery::{channel, Receiver};
use crate::error::{Error, Result, ServiceError, ServiceErrorKind};
use crate::kinesis::aws::AwsKinesis;
use crate::kinesis::fanout::resolve_consumer;
use crate::kinesis::role::{assume_role_config, AssumeRole};
use crate::kinesis::{KinesisTransport, PutEntry};
use crate::record::{ClientId, Record, SequenceNumber, ShardId};
use crate::store::dynamo::DynamoStore;
use crate::store::timed::Timed;
use crate::store::CoordinationStore;
use crate::Config;

/// How long `run()` waits for a newly registered fan-out consumer to become active.
const CONSUMER_ACTIVE_WAIT: Duration = Duration::from_secs(120);

/// A Kinesis consumer that shares a stream's shards with the other clients of
/// the same application, coordinated through DynamoDB.
///
/// ```no_run
/// # async fn demo() -> kinsumer::Result<()> {
/// let sdk = aws_config::load_from_env().await;
/// let mut consumer = kinsumer::Kinsumer::new(&sdk, "events", "billing", "", kinsumer::Config::new())?;
/// consumer.create_required_tables().await?;
/// consumer.run().await?;
/// while let Some(record) = consumer.next().await {
///     let record = record?;
///     println!("{}: {} bytes", record.partition_key, record.data.len());
/// }
/// # Ok(()) }
/// ```
pub struct Kinsumer {
    shared: Arc<Shared>,
    state: State,
}

enum State {
    Ready,
    Running {
        receiver: Receiver,
        stop: CancellationToken,
        task: JoinHandle<()>,
    },
    Stopped,
}

impl Kinsumer {
    /// A consumer using the AWS SDK with `sdk_config` (the Go library's `New`),
    /// with the connect and call timeouts of `config` applied to its clients.
    /// An empty `client_name` becomes `<hostname>-<pid>`.
    pub fn new(
        sdk_config: &aws_config::SdkConfig,
        stream: &str,
        application: &str,
        client_name: &str,
        config: Config,
    ) -> Result<Self> {
        let (kinesis, dynamodb) = sdk_clients(sdk_config, sdk_config, &config);
        Self::from_clients(kinesis, dynamodb, stream, application, client_name, config)
    }

    /// Like [`Kinsumer::new`], but the stream is read (and published to) with
    /// the credentials of `role`, assumed with those of `sdk_config`, which
    /// DynamoDB keeps using: the usual layout for a stream in another account.
    /// Credentials are refreshed automatically.
    pub async fn new_with_role(
        sdk_config: &aws_config::SdkConfig,
        role: &AssumeRole,
        stream: &str,
        application: &str,
        client_name: &str,
        config: Config,
    ) -> Result<Self> {
        let assumed = assume_role_config(sdk_config, role).await?;
        let (kinesis, dynamodb) = sdk_clients(&assumed, sdk_config, &config);
        Self::from_clients(kinesis, dynamodb, stream, application, client_name, config)
    }

    /// A consumer using ready SDK clients (e.g. with custom endpoints or credentials).
    pub fn from_clients(
        kinesis: aws_sdk_kinesis::Client,
        dynamodb: aws_sdk_dynamodb::Client,
        stream: &str,
        application: &str,
        client_name: &str,
        config: Config,
    ) -> Result<Self> {
        validate_application(application)?;
        Self::with_backends(
            Arc::new(AwsKinesis::new(kinesis)),
            Arc::new(DynamoStore::new(dynamodb, application)),
            stream,
            client_name,
            config,
        )
    }

    /// A consumer over any transport and store (the Go library's
    /// `NewWithInterfaces`), e.g. the in-memory ones:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kinsumer::{Config, Kinsumer};
    /// use kinsumer::kinesis::memory::MemoryKinesis;
    /// use kinsumer::store::memory::MemoryStore;
    ///
    /// let kinesis = MemoryKinesis::new();
    /// let store = MemoryStore::new("app");
    /// let consumer = Kinsumer::with_backends(Arc::new(kinesis), Arc::new(store), "stream", "worker-1", Config::new());
    /// assert!(consumer.is_ok());
    /// ```
    pub fn with_backends(
        transport: Arc<dyn KinesisTransport>,
        store: Arc<dyn CoordinationStore>,
        stream: &str,
        client_name: &str,
        config: Config,
    ) -> Result<Self> {
        if stream.is_empty() {
            return Err(Error::NoStreamName);
        }
        config.validate()?;
        let config_lease = config.lease_duration;
        let call_timeout = config.call_timeout;
        let client_name = if client_name.is_empty() {
            default_client_name()
        } else {
            client_name.to_string()
        };
        Ok(Kinsumer {
            shared: Arc::new(Shared {
                stream: Arc::from(stream),
                client_id: ClientId::random(),
                client_name,
                config: Arc::new(config),
                transport,
                // Every coordination call is bounded, and a timeout names its table.
                store: Arc::new(Timed::new(store, call_timeout)),
                clock: Clock::new(),
                fence: Arc::new(Fence::new(config_lease)),
                fan_out_consumer: OnceLock::new(),
            }),
            state: State::Ready,
        })
    }

    /// This client's name.
    pub fn client_name(&self) -> &str {
        &self.shared.client_name
    }

    /// This client's id (unique per consumer).
    pub fn client_id(&self) -> &ClientId {
        &self.shared.client_id
    }

    /// The stream consumed.
    pub fn stream(&self) -> &str {
        &self.shared.stream
    }

    /// The coordination store (e.g. to read the cluster state).
    pub fn store(&self) -> &Arc<dyn CoordinationStore> {
        &self.shared.store
    }

    /// The cluster as the tables and the stream show it now (clients, leader,
    /// shards, owners, checkpoints).
    pub async fn cluster_state(&self) -> Result<crate::coordinator::status::ClusterState> {
        crate::coordinator::status::ClusterState::read(
            &*self.shared.store,
            Some(&*self.shared.transport),
            &self.shared.stream,
        )
        .await
    }

    /// The transport (e.g. to publish or list shards).
    pub fn transport(&self) -> &Arc<dyn KinesisTransport> {
        &self.shared.transport
    }

    /// Creates `<app>_clients`, `<app>_checkpoints` and `<app>_metadata` if
    /// missing and waits until they are ACTIVE. Safe to call from several processes at once.
    pub async fn create_required_tables(&self) -> Result<()> {
        let config = &self.shared.config;
        self.shared
            .store
            .create_tables(config.billing, config.dynamo_waiter_delay)
            .await
    }

    /// Deletes the application's three tables and waits until they are gone.
    pub async fn delete_tables(&self) -> Result<()> {
        self.shared
            .store
            .delete_tables(self.shared.config.dynamo_waiter_delay)
            .await
    }

    /// Checks the stream and the tables, joins the cluster and starts consuming.
    /// Returns at once; records then come from [`Kinsumer::next`].
    ///
    /// Fails with [`Error::TablesMissing`] or [`Error::NoSuchStream`] right away
    /// when those are missing, with [`Error::Unreachable`] when Kinesis or
    /// DynamoDB does not answer these checks within the pre-flight bound
    /// (the call timeout, at most 4 s), and with [`Error::RunTwice`] on a
    /// second call. Resolving an enhanced fan-out consumer, which follows the
    /// checks, may wait longer for a new consumer to become active.
    pub async fn run(&mut self) -> Result<()> {
        if !matches!(self.state, State::Ready) {
            return Err(Error::RunTwice);
        }
        let shared = Arc::clone(&self.shared);
        self.check_stream().await?;
        let tables = shared.store.tables();
        preflight(
            &shared.config,
            Check::dynamodb("DescribeTable", tables.all().join(", ")),
            shared.store.check_tables(),
        )
        .await?;
        if let ReadMode::FanOut(consumer) = &shared.config.read_mode {
            let arn = resolve_consumer(
                shared.transport.as_ref(),
                &shared.stream,
                consumer,
                CONSUMER_ACTIVE_WAIT,
            )
            .await?;
            info!(consumer = %arn, "reading with enhanced fan-out");
            let _ = shared.fan_out_consumer.set(Arc::from(arn));
        }
        let sent = shared.fence.now_ms();
        preflight(
            &shared.config,
            Check::dynamodb("PutItem", tables.clients.clone()),
            shared.store.put_client(&shared.client_row()),
        )
        .await?;
        shared.fence.heartbeat(sent);
        let config = &shared.config;
        let (sender, receiver) = channel(
            config.buffer_size,
            config.ack_mode,
            Arc::clone(&config.stats),
            Arc::clone(&shared.fence),
        );
        let stop = CancellationToken::new();
        let coordinator = Coordinator::new(Arc::clone(&shared), sender);
        let span =
            tracing::info_span!("kinsumer", stream = %shared.stream, client = %shared.client_name);
        let task = tokio::spawn(tracing::Instrument::instrument(
            coordinator.run(stop.clone()),
            span,
        ));
        self.state = State::Running {
            receiver,
            stop,
            task,
        };
        Ok(())
    }

    /// The next record; `Some(Err(_))` for a failure of background work;
    /// `None` once stopped (or before `run()`).
    ///
    /// In the default acknowledgement mode, calling `next` marks the record it
    /// returned last as processed.
    pub async fn next(&mut self) -> Option<Result<Record>> {
        std::future::poll_fn(|cx| self.poll_record(cx)).await
    }

    fn poll_record(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Record>>> {
        match &mut self.state {
            State::Running { receiver, .. } => receiver.poll_next_record(cx),
            _ => Poll::Ready(None),
        }
    }

    /// Stops gracefully: stops reading, waits (bounded by the hand-off timeout)
    /// for records already handed out to be processed, commits, releases leases
    /// and leadership, and leaves the clients table. The record returned last
    /// by `next()` counts as processed (in the default mode).
    pub async fn stop(&mut self) {
        let state = std::mem::replace(&mut self.state, State::Stopped);
        if let State::Running {
            mut receiver,
            stop,
            task,
        } = state
        {
            receiver.finish_pending();
            stop.cancel();
            // Keep taking nothing from the receiver while the coordinator winds down,
            // but keep it alive so readers are not mistaken for crashed.
            let bound = self.shared.config.handoff_timeout * 3 + self.shared.config.call_timeout;
            if tokio::time::timeout(bound, task).await.is_err() {
                tracing::warn!("graceful stop did not finish in {bound:?}; leases will expire");
            }
            drop(receiver);
        }
    }

    /// Checks that the stream exists and Kinesis answers, as [`Kinsumer::run`]
    /// does first: [`Error::NoSuchStream`] when it does not exist,
    /// [`Error::Unreachable`] when Kinesis does not answer within the
    /// pre-flight bound (the call timeout, at most 4 s) or the connection fails.
    pub async fn check_stream(&self) -> Result<()> {
        let shared = &self.shared;
        let stream = shared.stream.to_string();
        let describe = async {
            match shared.transport.describe_stream(&stream).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind == ServiceErrorKind::NotFound => Err(Error::NoSuchStream {
                    stream: stream.clone(),
                }),
                Err(source) => Err(Error::Kinesis {
                    operation: "DescribeStreamSummary",
                    stream: stream.clone(),
                    shard: None,
                    source,
                }),
            }
        };
        preflight(
            &shared.config,
            Check {
                service: "Kinesis",
                operation: "DescribeStreamSummary",
                resource: format!("stream {stream:?}"),
            },
            describe,
        )
        .await
    }

    /// Writes one record (PutRecord semantics) and returns where it went.
    pub async fn publish(
        &self,
        partition_key: &str,
        data: Bytes,
    ) -> Result<(ShardId, SequenceNumber)> {
        let mut written = self
            .publish_batch(vec![PutEntry {
                partition_key: partition_key.to_string(),
                data,
                explicit_hash_key: None,
            }])
            .await?;
        written.pop().ok_or_else(|| Error::PublishIncomplete {
            stream: self.shared.stream.to_string(),
            total: 1,
            failed: Vec::new(),
        })
    }

    /// Writes records with PutRecords, 500 per call, retrying only the entries
    /// that failed (with backoff). Returns each record's shard and sequence
    /// number in input order, or [`Error::PublishIncomplete`] naming the records
    /// that could not be written.
    pub async fn publish_batch(
        &self,
        entries: Vec<PutEntry>,
    ) -> Result<Vec<(ShardId, SequenceNumber)>> {
        crate::publish::publish_batch(&*self.shared.transport, &self.shared.stream, entries).await
    }

    /// Writes `entries` packed into KPL aggregates (of at most
    /// [`crate::publish::aggregate::DEFAULT_AGGREGATE_BYTES`], per shard), which
    /// this crate and KCL de-aggregate. Returns each record's shard and position
    /// (aggregate sequence number + sub-sequence number), in input order.
    pub async fn publish_aggregated(
        &self,
        entries: Vec<PutEntry>,
    ) -> Result<Vec<(ShardId, crate::Position)>> {
        crate::publish::publish_aggregated(
            &*self.shared.transport,
            &self.shared.stream,
            entries,
            crate::publish::aggregate::DEFAULT_AGGREGATE_BYTES,
        )
        .await
    }
}

impl Drop for Kinsumer {
    /// Dropping a running consumer without `stop()` is a crash as far as the
    /// cluster is concerned: its tasks end, nothing is committed or released,
    /// and its leases are taken over once they expire.
    fn drop(&mut self) {
        if let State::Running { task, .. } = &self.state {
            task.abort();
        }
    }
}

impl futures::Stream for Kinsumer {
    type Item = Result<Record>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_record(cx)
    }
}

/// The longest `run()` waits for any one of its checks before it starts (the
/// stream, the tables, this client's first row), when the call timeout is
/// longer: a wrong endpoint or a black-holed network should be reported in
/// seconds, not after a whole call timeout (or the SDK's retries of it).
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(4);

/// The bound of each pre-flight check under `config`.
fn preflight_timeout(config: &Config) -> Duration {
    config.call_timeout.min(PREFLIGHT_TIMEOUT)
}

/// What a pre-flight check calls, for the error when it gets no answer.
struct Check {
    service: &'static str,
    operation: &'static str,
    resource: String,
}

impl Check {
    fn dynamodb(operation: &'static str, tables: String) -> Self {
        Check {
            service: "DynamoDB",
            operation,
            resource: format!("table {tables:?}"),
        }
    }
}

/// Runs one pre-flight check under [`preflight_timeout`]; no answer in time,
/// or a connection-level failure (`Transient`: timeout, reset, refused, 5xx),
/// becomes [`Error::Unreachable`], which says what to check. Other failures
/// (a missing stream or table, access denied) pass through as they are.
async fn preflight<T>(
    config: &Config,
    check: Check,
    call: impl Future<Output = Result<T>>,
) -> Result<T> {
    let limit = preflight_timeout(config);
    let unreachable = |source| Error::Unreachable {
        service: check.service,
        operation: check.operation,
        resource: check.resource,
        source,
    };
    match tokio::time::timeout(limit, call).await {
        Err(_) => Err(unreachable(ServiceError::new(
            ServiceErrorKind::Transient,
            format!("no answer within {limit:?}"),
        ))),
        Ok(Err(Error::Kinesis { source, .. } | Error::Store { source, .. }))
            if source.kind == ServiceErrorKind::Transient =>
        {
            Err(unreachable(source))
        }
        Ok(result) => result,
    }
}

/// SDK clients with the connect and per-attempt timeouts of `config`, so that
/// a stalled connection is retried rather than awaited.
fn sdk_clients(
    kinesis: &aws_config::SdkConfig,
    dynamodb: &aws_config::SdkConfig,
    config: &Config,
) -> (aws_sdk_kinesis::Client, aws_sdk_dynamodb::Client) {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(config.connect_timeout)
        .operation_attempt_timeout(config.call_timeout)
        .build();
    let kinesis = aws_sdk_kinesis::config::Builder::from(kinesis)
        .timeout_config(timeouts.clone())
        .build();
    let dynamodb = aws_sdk_dynamodb::config::Builder::from(dynamodb)
        .timeout_config(timeouts)
        .build();
    (
        aws_sdk_kinesis::Client::from_conf(kinesis),
        aws_sdk_dynamodb::Client::from_conf(dynamodb),
    )
}

fn validate_application(application: &str) -> Result<()> {
    if application.is_empty() {
        return Err(Error::NoApplicationName);
    }
    // The longest table name is `<app>_checkpoints`; DynamoDB allows 255 characters.
    if application.len() > 255 - "_checkpoints".len() {
        return Err(Error::InvalidName {
            what: "application name",
            value: application.to_string(),
            reason: "too long for DynamoDB table names (at most 243 characters)",
        });
    }
    if !application
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(Error::InvalidName {
            what: "application name",
            value: application.to_string(),
            reason: "DynamoDB table names allow only letters, digits, '_', '-' and '.'",
        });
    }
    Ok(())
}

fn default_client_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "kinsumer".to_string());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_names_are_checked() {
        assert!(matches!(
            validate_application(""),
            Err(Error::NoApplicationName)
        ));
        assert!(matches!(
            validate_application("bad name"),
            Err(Error::InvalidName { .. })
        ));
        assert!(validate_application("orders-v2.prod_1").is_ok());
    }

    #[tokio::test]
    async fn a_role_changes_the_kinesis_credentials_only() {
        let base = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(
                    aws_credential_types::Credentials::new("base", "base", None, None, "test"),
                ),
            )
            .build();
        let role = AssumeRole::new("arn:aws:iam::123456789012:role/reader").with_external_id("x");
        let assumed = assume_role_config(&base, &role).await.expect("role config");
        let provider = |c: &aws_config::SdkConfig| {
            format!(
                "{:?}",
                c.credentials_provider().expect("a credentials provider")
            )
        };
        let k = provider(&assumed);
        let d = provider(&base);
        assert!(
            k.contains("AssumeRoleProvider") && k.contains("role/reader"),
            "{k}"
        );
        assert!(!d.contains("AssumeRoleProvider"), "{d}");
        // new_with_role builds Kinesis from the assumed configuration, DynamoDB from the base.
        let (kinesis, dynamodb) = sdk_clients(&assumed, &base, &Config::new());
        // Timeouts apply to both.
        for timeouts in [
            kinesis.config().timeout_config(),
            dynamodb.config().timeout_config(),
        ] {
            let t = timeouts.expect("timeouts");
            assert_eq!(t.connect_timeout(), Some(std::time::Duration::from_secs(3)));
        }
        let bad = assume_role_config(&base, &AssumeRole::new("reader")).await;
        assert!(matches!(bad, Err(Error::InvalidName { .. })));
    }

    #[test]
    fn default_name_is_host_and_pid() {
        let name = default_client_name();
        assert!(
            name.ends_with(&format!("-{}", std::process::id())),
            "{name}"
        );
    }
}
