//! The AWS SDK implementation of the transport, and the one classifier of AWS
//! SDK failures shared with the DynamoDB store.

use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_kinesis::config::http::HttpResponse;
use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{
    PutRecordsRequestEntry, Shard, ShardIteratorType, SubscribeToShardEvent,
    SubscribeToShardEventStream,
};
use aws_smithy_types::event_stream::RawMessage;
use bytes::Bytes;

use super::fanout::{ConsumerDescription, ConsumerStatus, Subscription, SubscriptionEvent};
use super::{
    KinesisTransport, PutEntry, PutOutcome, RawRecord, RecordsPage, ShardDescription,
    StartingPosition,
};
use crate::error::{ServiceError, ServiceErrorKind};
use crate::record::{InitialPosition, SequenceNumber, ShardId};

/// How many times a ListShards listing starts over after its `NextToken` expired
/// (tokens live 300 s) before the error is returned.
const LIST_SHARDS_RESTARTS: u32 = 3;

/// Kinesis through the AWS SDK. Cheap to clone: the SDK client is reference counted.
#[derive(Clone, Debug)]
pub struct AwsKinesis {
    client: aws_sdk_kinesis::Client,
}

impl AwsKinesis {
    /// Wraps an SDK client.
    pub fn new(client: aws_sdk_kinesis::Client) -> Self {
        AwsKinesis { client }
    }

    /// Builds an SDK client from a loaded configuration (`aws_config::load_defaults`).
    pub fn from_conf(config: &aws_config::SdkConfig) -> Self {
        AwsKinesis::new(aws_sdk_kinesis::Client::new(config))
    }

    /// The SDK client, for calls this transport does not wrap.
    pub fn client(&self) -> &aws_sdk_kinesis::Client {
        &self.client
    }
}

#[async_trait]
impl KinesisTransport for AwsKinesis {
    async fn describe_stream(&self, stream: &str) -> Result<(), ServiceError> {
        self.client
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }

    async fn list_shards(&self, stream: &str) -> Result<Vec<ShardDescription>, ServiceError> {
        let mut shards = Vec::new();
        let mut next_token: Option<String> = None;
        let mut restarts = 0;
        loop {
            // A page after the first names the stream only through its token.
            let request = match &next_token {
                None => self.client.list_shards().stream_name(stream),
                Some(token) => self.client.list_shards().next_token(token),
            };
            match request.send().await {
                Ok(out) => {
                    shards.extend(out.shards.unwrap_or_default().into_iter().map(describe));
                    match out.next_token {
                        Some(token) if !token.is_empty() => next_token = Some(token),
                        _ => return Ok(shards),
                    }
                }
                Err(e)
                    if next_token.is_some()
                        && e.code() == Some("ExpiredNextTokenException")
                        && restarts < LIST_SHARDS_RESTARTS =>
                {
                    // The listing took longer than a token lives: start over.
                    restarts += 1;
                    shards.clear();
                    next_token = None;
                }
                Err(e) => return Err(classify(&e)),
            }
        }
    }

    async fn shard_iterator(
        &self,
        stream: &str,
        shard: &ShardId,
        from: &StartingPosition,
    ) -> Result<String, ServiceError> {
        let request = self
            .client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.as_str());
        let (kind, sequence, timestamp) = iterator_type(from);
        let request = request
            .shard_iterator_type(kind)
            .set_starting_sequence_number(sequence)
            .set_timestamp(timestamp);
        let out = request
            .customize()
            .config_override(retried_by_the_reader())
            .send()
            .await
            .map_err(|e| classify(&e))?;
        out.shard_iterator.ok_or_else(|| {
            ServiceError::new(
                ServiceErrorKind::Other,
                format!("GetShardIterator for {shard} answered without an iterator"),
            )
        })
    }

    async fn get_records(&self, iterator: &str, limit: u32) -> Result<RecordsPage, ServiceError> {
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let out = self
            .client
            .get_records()
            .shard_iterator(iterator)
            .limit(limit)
            .customize()
            .config_override(retried_by_the_reader())
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let records = out.records.into_iter().map(raw_record).collect();
        Ok(RecordsPage {
            records,
            next_iterator: out.next_shard_iterator,
            millis_behind_latest: out.millis_behind_latest,
            child_shards: out
                .child_shards
                .unwrap_or_default()
                .into_iter()
                .map(|c| ShardId::from(c.shard_id))
                .collect(),
        })
    }

    async fn put_records(
        &self,
        stream: &str,
        entries: Vec<PutEntry>,
    ) -> Result<Vec<PutOutcome>, ServiceError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let count = entries.len();
        let request_entries = entries
            .into_iter()
            .map(|e| {
                PutRecordsRequestEntry::builder()
                    .partition_key(e.partition_key)
                    .data(Blob::new(Vec::from(e.data)))
                    .set_explicit_hash_key(e.explicit_hash_key)
                    .build()
                    .map_err(|e| {
                        ServiceError::new(
                            ServiceErrorKind::InvalidRequest,
                            format!("invalid PutRecords entry: {e}"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .put_records()
            .stream_name(stream)
            .set_records(Some(request_entries))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        if out.records.len() != count {
            return Err(ServiceError::new(
                ServiceErrorKind::Other,
                format!(
                    "PutRecords answered {} results for {count} records",
                    out.records.len()
                ),
            ));
        }
        Ok(out
            .records
            .into_iter()
            .map(|r| match (r.error_code, r.shard_id, r.sequence_number) {
                (None, Some(shard_id), Some(sequence_number)) => PutOutcome::Written {
                    shard_id: ShardId::from(shard_id),
                    sequence_number: SequenceNumber::new(sequence_number),
                },
                (code, _, _) => PutOutcome::Failed {
                    code: code.unwrap_or_else(|| "MissingResult".to_string()),
                    message: r
                        .error_message
                        .unwrap_or_else(|| "no shard id or sequence number".to_string()),
                },
            })
            .collect())
    }

    async fn consumer_by_name(
        &self,
        stream: &str,
        name: &str,
    ) -> Result<Option<ConsumerDescription>, ServiceError> {
        let stream_arn = self.stream_arn(stream).await?;
        match self
            .client
            .describe_stream_consumer()
            .stream_arn(stream_arn)
            .consumer_name(name)
            .send()
            .await
        {
            Ok(out) => Ok(out.consumer_description.map(consumer_description)),
            Err(e) => match classify(&e) {
                e if e.kind == ServiceErrorKind::NotFound => Ok(None),
                e => Err(e),
            },
        }
    }

    async fn consumer_by_arn(&self, arn: &str) -> Result<ConsumerDescription, ServiceError> {
        let out = self
            .client
            .describe_stream_consumer()
            .consumer_arn(arn)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        out.consumer_description
            .map(consumer_description)
            .ok_or_else(|| {
                ServiceError::new(
                    ServiceErrorKind::Other,
                    format!("DescribeStreamConsumer for {arn} answered without a description"),
                )
            })
    }

    async fn register_consumer(
        &self,
        stream: &str,
        name: &str,
    ) -> Result<ConsumerDescription, ServiceError> {
        let stream_arn = self.stream_arn(stream).await?;
        let out = self
            .client
            .register_stream_consumer()
            .stream_arn(&stream_arn)
            .consumer_name(name)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let consumer = out.consumer.ok_or_else(|| {
            ServiceError::new(
                ServiceErrorKind::Other,
                format!("RegisterStreamConsumer for {name} answered without a consumer"),
            )
        })?;
        Ok(ConsumerDescription {
            status: consumer_status(&consumer.consumer_status),
            name: consumer.consumer_name,
            arn: consumer.consumer_arn,
            stream_arn,
        })
    }

    async fn subscribe_to_shard(
        &self,
        consumer_arn: &str,
        shard: &ShardId,
        from: &StartingPosition,
    ) -> Result<Subscription, ServiceError> {
        let (kind, sequence, timestamp) = iterator_type(from);
        let position = aws_sdk_kinesis::types::StartingPosition::builder()
            .r#type(kind)
            .set_sequence_number(sequence)
            .set_timestamp(timestamp)
            .build()
            .map_err(|e| {
                ServiceError::new(
                    ServiceErrorKind::InvalidRequest,
                    format!("invalid starting position: {e}"),
                )
            })?;
        let out = self
            .client
            .subscribe_to_shard()
            .consumer_arn(consumer_arn)
            .shard_id(shard.as_str())
            .starting_position(position)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        // The stream ends after its first failure: a receiver that failed is not read again.
        let events = futures::stream::unfold(Some(out.event_stream), |receiver| async move {
            let mut receiver = receiver?;
            loop {
                match receiver.recv().await {
                    Ok(Some(SubscribeToShardEventStream::SubscribeToShardEvent(event))) => {
                        return Some((Ok(subscription_event(event)), Some(receiver)))
                    }
                    // An event type this SDK version does not know: skip it.
                    Ok(Some(_)) => continue,
                    Ok(None) => return None,
                    Err(e) => return Some((Err(classify_event_error(&e)), None)),
                }
            }
        });
        Ok(Box::pin(events))
    }
}

impl AwsKinesis {
    /// The stream's ARN (DescribeStreamSummary), which the consumer operations need.
    async fn stream_arn(&self, stream: &str) -> Result<String, ServiceError> {
        let out = self
            .client
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        out.stream_description_summary
            .map(|s| s.stream_arn)
            .ok_or_else(|| {
                ServiceError::new(
                    ServiceErrorKind::Other,
                    format!("DescribeStreamSummary for {stream} answered without a summary"),
                )
            })
    }
}

/// One SDK record, taking its buffer (no copy of the payload).
fn raw_record(r: aws_sdk_kinesis::types::Record) -> RawRecord {
    RawRecord {
        data: Bytes::from(r.data.into_inner()),
        partition_key: r.partition_key.unwrap_or_default(),
        sequence_number: SequenceNumber::new(r.sequence_number),
        approximate_arrival: r
            .approximate_arrival_timestamp
            .and_then(|t| SystemTime::try_from(t).ok()),
    }
}

/// The iterator type, sequence number and timestamp of a starting position.
fn iterator_type(from: &StartingPosition) -> (ShardIteratorType, Option<String>, Option<DateTime>) {
    match from {
        StartingPosition::Initial(InitialPosition::TrimHorizon) => {
            (ShardIteratorType::TrimHorizon, None, None)
        }
        StartingPosition::Initial(InitialPosition::Latest) => {
            (ShardIteratorType::Latest, None, None)
        }
        StartingPosition::Initial(InitialPosition::AtTimestamp(at)) => (
            ShardIteratorType::AtTimestamp,
            None,
            Some(DateTime::from(*at)),
        ),
        StartingPosition::After(sequence) => (
            ShardIteratorType::AfterSequenceNumber,
            Some(sequence.as_str().to_string()),
            None,
        ),
        StartingPosition::At(sequence) => (
            ShardIteratorType::AtSequenceNumber,
            Some(sequence.as_str().to_string()),
            None,
        ),
    }
}

/// One SubscribeToShard event as the transport describes it.
fn subscription_event(event: SubscribeToShardEvent) -> SubscriptionEvent {
    let continuation = Some(event.continuation_sequence_number)
        .filter(|c| !c.is_empty())
        .map(SequenceNumber::new);
    SubscriptionEvent {
        records: event.records.into_iter().map(raw_record).collect(),
        continuation,
        millis_behind_latest: Some(event.millis_behind_latest),
        child_shards: event
            .child_shards
            .unwrap_or_default()
            .into_iter()
            .map(|c| ShardId::from(c.shard_id))
            .collect(),
    }
}

fn consumer_status(status: &aws_sdk_kinesis::types::ConsumerStatus) -> ConsumerStatus {
    use aws_sdk_kinesis::types::ConsumerStatus as Sdk;
    match status {
        Sdk::Active => ConsumerStatus::Active,
        Sdk::Deleting => ConsumerStatus::Deleting,
        _ => ConsumerStatus::Creating,
    }
}

fn consumer_description(d: aws_sdk_kinesis::types::ConsumerDescription) -> ConsumerDescription {
    ConsumerDescription {
        status: consumer_status(&d.consumer_status),
        name: d.consumer_name,
        arn: d.consumer_arn,
        stream_arn: d.stream_arn,
    }
}

/// Classifies a failure inside an event stream (no HTTP response to look at).
fn classify_event_error<E>(err: &SdkError<E, RawMessage>) -> ServiceError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let kind = match err {
        SdkError::ServiceError(_) => match err.code().map(kind_of_code) {
            Some(ServiceErrorKind::Other) | None => ServiceErrorKind::Transient,
            Some(kind) => kind,
        },
        SdkError::ConstructionFailure(_) => ServiceErrorKind::Other,
        _ => ServiceErrorKind::Transient,
    };
    let message = match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        _ => DisplayErrorContext(err).to_string(),
    };
    ServiceError::new(kind, message)
}

/// One SDK shard as the transport describes it.
fn describe(shard: Shard) -> ShardDescription {
    ShardDescription {
        id: ShardId::from(shard.shard_id),
        parent: shard.parent_shard_id.map(ShardId::from),
        adjacent_parent: shard.adjacent_parent_shard_id.map(ShardId::from),
        hash_range: shard.hash_key_range.and_then(|r| {
            Some((
                r.starting_hash_key.parse().ok()?,
                r.ending_hash_key.parse().ok()?,
            ))
        }),
        ending_sequence: shard
            .sequence_number_range
            .and_then(|r| r.ending_sequence_number)
            .map(SequenceNumber::new),
    }
}

/// The SDK configuration of the shard readers' calls (GetShardIterator,
/// GetRecords): one attempt each. The reader retries them itself, by its retry
/// policy, counted in stats and cancellable; retried again inside the SDK,
/// a call against an unreachable Kinesis would sit in the SDK's own backoff
/// (up to seconds between attempts) when Kinesis comes back, instead of
/// noticing within about one throttle delay.
fn retried_by_the_reader() -> aws_sdk_kinesis::config::Builder {
    aws_sdk_kinesis::config::Builder::default().retry_config(RetryConfig::disabled())
}

/// Classifies a failed call of any AWS SDK client (Kinesis, DynamoDB) into a
/// [`ServiceError`], by the error code the service returned and, failing
/// that, by what went wrong on the way (timeout, connection, 5xx).
pub(crate) fn classify<E>(err: &SdkError<E, HttpResponse>) -> ServiceError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status());
    let kind = match err {
        SdkError::ServiceError(_) => match err.code().map(kind_of_code) {
            Some(kind) if kind != ServiceErrorKind::Other => kind,
            _ => match status.map(|s| s.as_u16()) {
                Some(500..=599) => ServiceErrorKind::Transient,
                Some(429) => ServiceErrorKind::Throttled,
                _ => ServiceErrorKind::Other,
            },
        },
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => ServiceErrorKind::Transient,
        // A connector error the caller caused (e.g. a bad TLS setup) does not heal by retrying;
        // IO (reset, refused), timeouts and anything else the connector reports may.
        SdkError::DispatchFailure(f) if f.is_user() => ServiceErrorKind::Other,
        SdkError::DispatchFailure(_) => ServiceErrorKind::Transient,
        _ => ServiceErrorKind::Other,
    };
    let message = match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => match status {
            Some(status) => format!("{code} (HTTP {})", status.as_u16()),
            None => code.to_string(),
        },
        _ => DisplayErrorContext(err).to_string(),
    };
    ServiceError::new(kind, message)
}

/// The kind of an error code of Kinesis or DynamoDB (`Other` when unknown).
fn kind_of_code(code: &str) -> ServiceErrorKind {
    match code {
        "ResourceNotFoundException" => ServiceErrorKind::NotFound,
        "ProvisionedThroughputExceededException"
        | "LimitExceededException"
        | "ThrottlingException"
        | "Throttling"
        | "KMSThrottlingException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException" => ServiceErrorKind::Throttled,
        "ExpiredIteratorException" => ServiceErrorKind::ExpiredIterator,
        "ResourceInUseException" => ServiceErrorKind::ResourceInUse,
        "ConditionalCheckFailedException" => ServiceErrorKind::ConditionFailed,
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "MissingAuthenticationToken"
        | "IncompleteSignature"
        | "KMSAccessDeniedException" => ServiceErrorKind::AccessDenied,
        "InvalidArgumentException" | "ValidationException" | "SerializationException" => {
            ServiceErrorKind::InvalidRequest
        }
        "InternalFailure"
        | "InternalFailureException"
        | "InternalServerError"
        | "ServiceUnavailable"
        | "ServiceUnavailableException" => ServiceErrorKind::Transient,
        _ => ServiceErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use aws_sdk_kinesis::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_kinesis::operation::get_records::GetRecordsError;
    use aws_smithy_types::body::SdkBody;

    fn response(status: u16) -> HttpResponse {
        HttpResponse::new(
            status.try_into().expect("a valid status code"),
            SdkBody::empty(),
        )
    }

    fn service_error(code: &str, status: u16) -> SdkError<GetRecordsError, HttpResponse> {
        let meta = ErrorMetadata::builder()
            .code(code)
            .message("the message")
            .build();
        SdkError::service_error(GetRecordsError::generic(meta), response(status))
    }

    #[test]
    fn service_codes_map_to_kinds() {
        let cases = [
            ("ResourceNotFoundException", ServiceErrorKind::NotFound),
            (
                "ProvisionedThroughputExceededException",
                ServiceErrorKind::Throttled,
            ),
            ("LimitExceededException", ServiceErrorKind::Throttled),
            ("ThrottlingException", ServiceErrorKind::Throttled),
            ("KMSThrottlingException", ServiceErrorKind::Throttled),
            (
                "ExpiredIteratorException",
                ServiceErrorKind::ExpiredIterator,
            ),
            ("ResourceInUseException", ServiceErrorKind::ResourceInUse),
            ("AccessDeniedException", ServiceErrorKind::AccessDenied),
            (
                "UnrecognizedClientException",
                ServiceErrorKind::AccessDenied,
            ),
            ("InvalidSignatureException", ServiceErrorKind::AccessDenied),
            ("KMSAccessDeniedException", ServiceErrorKind::AccessDenied),
            ("InvalidArgumentException", ServiceErrorKind::InvalidRequest),
            ("ValidationException", ServiceErrorKind::InvalidRequest),
            (
                "ConditionalCheckFailedException",
                ServiceErrorKind::ConditionFailed,
            ),
            ("SomethingNew", ServiceErrorKind::Other),
        ];
        for (code, kind) in cases {
            let classified = classify(&service_error(code, 400));
            assert_eq!(classified.kind, kind, "{code}");
            assert_eq!(classified.message, format!("{code}: the message"));
        }
    }

    #[test]
    fn server_errors_are_transient_and_429_is_throttling() {
        assert_eq!(
            classify(&service_error("SomethingNew", 503)).kind,
            ServiceErrorKind::Transient
        );
        assert_eq!(
            classify(&service_error("InternalFailure", 500)).kind,
            ServiceErrorKind::Transient
        );
        assert_eq!(
            classify(&service_error("SomethingNew", 429)).kind,
            ServiceErrorKind::Throttled
        );
        // A known code wins over the status.
        assert_eq!(
            classify(&service_error("ResourceNotFoundException", 500)).kind,
            ServiceErrorKind::NotFound
        );
    }

    #[test]
    fn transport_failures_are_transient() {
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let dispatch: SdkError<GetRecordsError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io(Box::new(reset)));
        let classified = classify(&dispatch);
        assert_eq!(classified.kind, ServiceErrorKind::Transient);
        assert!(
            classified.message.contains("reset by peer"),
            "{}",
            classified.message
        );

        let timeout: SdkError<GetRecordsError, HttpResponse> =
            SdkError::timeout_error("took too long");
        assert_eq!(classify(&timeout).kind, ServiceErrorKind::Transient);

        let garbled: SdkError<GetRecordsError, HttpResponse> =
            SdkError::response_error("unexpected end of body", response(200));
        assert_eq!(classify(&garbled).kind, ServiceErrorKind::Transient);

        let user: SdkError<GetRecordsError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::user("bad TLS configuration".into()));
        assert_eq!(classify(&user).kind, ServiceErrorKind::Other);

        let unbuilt: SdkError<GetRecordsError, HttpResponse> =
            SdkError::construction_failure("missing field");
        assert_eq!(classify(&unbuilt).kind, ServiceErrorKind::Other);
    }

    #[test]
    fn shards_keep_their_parents_and_ending_sequence() {
        use aws_sdk_kinesis::types::{HashKeyRange, SequenceNumberRange};
        let shard = Shard::builder()
            .shard_id("shardId-000000000002")
            .parent_shard_id("shardId-000000000000")
            .adjacent_parent_shard_id("shardId-000000000001")
            .hash_key_range(
                HashKeyRange::builder()
                    .starting_hash_key("0")
                    .ending_hash_key("1")
                    .build()
                    .expect("a complete hash key range"),
            )
            .sequence_number_range(
                SequenceNumberRange::builder()
                    .starting_sequence_number("1")
                    .ending_sequence_number("99")
                    .build()
                    .expect("a complete sequence number range"),
            )
            .build()
            .expect("a complete shard");
        assert_eq!(
            describe(shard),
            ShardDescription {
                id: ShardId::new("shardId-000000000002"),
                parent: Some(ShardId::new("shardId-000000000000")),
                adjacent_parent: Some(ShardId::new("shardId-000000000001")),
                hash_range: Some((0, 1)),
                ending_sequence: Some(SequenceNumber::new("99")),
            }
        );
    }

    /// A loopback server that reads each request, then closes the connection
    /// without an answer; counts the connections (one per attempt).
    async fn hanging_up() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let endpoint = format!("http://{}", listener.local_addr().expect("its address"));
        let connections = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await;
            }
        });
        (endpoint, connections)
    }

    #[tokio::test]
    async fn reader_calls_are_attempted_once_and_retried_by_the_reader() {
        let (endpoint, connections) = hanging_up().await;
        let config = aws_sdk_kinesis::Config::builder()
            .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
            .region(aws_sdk_kinesis::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_kinesis::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .endpoint_url(endpoint)
            // The SDK retries everything else: three attempts, with short pauses here.
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(std::time::Duration::from_millis(1)),
            )
            .build();
        let kinesis = AwsKinesis::new(aws_sdk_kinesis::Client::from_conf(config));
        let attempts = |before: usize| connections.load(Ordering::SeqCst) - before;

        let before = connections.load(Ordering::SeqCst);
        let e = kinesis.describe_stream("s").await.expect_err("no answer");
        assert_eq!(e.kind, ServiceErrorKind::Transient, "{e}");
        assert_eq!(attempts(before), 3, "the SDK retries other calls: {e}");

        let before = connections.load(Ordering::SeqCst);
        let e = kinesis
            .get_records("iterator", 10)
            .await
            .expect_err("no answer");
        assert_eq!(e.kind, ServiceErrorKind::Transient, "{e}");
        assert_eq!(attempts(before), 1, "GetRecords: {e}");

        let before = connections.load(Ordering::SeqCst);
        let from = StartingPosition::Initial(InitialPosition::TrimHorizon);
        let e = kinesis
            .shard_iterator("s", &ShardId::new("shardId-000000000000"), &from)
            .await
            .expect_err("no answer");
        assert_eq!(e.kind, ServiceErrorKind::Transient, "{e}");
        assert_eq!(attempts(before), 1, "GetShardIterator: {e}");
    }
}
