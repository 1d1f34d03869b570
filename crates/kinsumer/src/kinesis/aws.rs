//! The AWS SDK implementation of the transport, and the one classifier of AWS
//! SDK failures shared with the DynamoDB store.

use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_kinesis::config::http::HttpResponse;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, Shard, ShardIteratorType};
use bytes::Bytes;

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
        let request = match from {
            StartingPosition::Initial(InitialPosition::TrimHorizon) => {
                request.shard_iterator_type(ShardIteratorType::TrimHorizon)
            }
            StartingPosition::Initial(InitialPosition::Latest) => {
                request.shard_iterator_type(ShardIteratorType::Latest)
            }
            StartingPosition::Initial(InitialPosition::AtTimestamp(at)) => request
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(DateTime::from(*at)),
            StartingPosition::After(sequence) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(sequence.as_str()),
            StartingPosition::At(sequence) => request
                .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                .starting_sequence_number(sequence.as_str()),
        };
        let out = request.send().await.map_err(|e| classify(&e))?;
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
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let records = out
            .records
            .into_iter()
            .map(|r| RawRecord {
                // Takes the SDK's buffer: no copy of the payload.
                data: Bytes::from(r.data.into_inner()),
                partition_key: r.partition_key.unwrap_or_default(),
                sequence_number: SequenceNumber::new(r.sequence_number),
                approximate_arrival: r
                    .approximate_arrival_timestamp
                    .and_then(|t| SystemTime::try_from(t).ok()),
            })
            .collect();
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
}

/// One SDK shard as the transport describes it.
fn describe(shard: Shard) -> ShardDescription {
    ShardDescription {
        id: ShardId::from(shard.shard_id),
        parent: shard.parent_shard_id.map(ShardId::from),
        adjacent_parent: shard.adjacent_parent_shard_id.map(ShardId::from),
        ending_sequence: shard
            .sequence_number_range
            .and_then(|r| r.ending_sequence_number)
            .map(SequenceNumber::new),
    }
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
                ending_sequence: Some(SequenceNumber::new("99")),
            }
        );
    }
}
