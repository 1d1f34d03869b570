//! Enhanced fan-out at the transport level: stream consumers, their
//! registration, and the events of a SubscribeToShard subscription.

use std::time::Duration;

use futures::stream::BoxStream;
use tokio::time::Instant;
use tracing::info;

use super::{KinesisTransport, RawRecord};
use crate::config::FanOutConsumer;
use crate::error::{Error, ServiceError, ServiceErrorKind};
use crate::record::{SequenceNumber, ShardId};

/// The state of a stream consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumerStatus {
    /// Registered, not usable yet.
    Creating,
    /// Usable for SubscribeToShard.
    Active,
    /// Being deregistered.
    Deleting,
}

/// A registered enhanced fan-out consumer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerDescription {
    /// The consumer's name.
    pub name: String,
    /// The consumer's ARN, used to subscribe.
    pub arn: String,
    /// Its state.
    pub status: ConsumerStatus,
    /// The ARN of the stream it reads.
    pub stream_arn: String,
}

/// One event of a subscription: the records pushed since the last one.
#[derive(Clone, Debug, Default)]
pub struct SubscriptionEvent {
    /// The records, in order.
    pub records: Vec<RawRecord>,
    /// Everything up to this position was pushed (even when `records` is empty);
    /// `None` at the end of a closed shard.
    pub continuation: Option<SequenceNumber>,
    /// How far behind the tip of the shard the event is, in milliseconds.
    pub millis_behind_latest: Option<i64>,
    /// The shards that follow this one: set at the end of a closed shard.
    pub child_shards: Vec<ShardId>,
}

/// An open subscription: its events until the service ends it (AWS does after
/// five minutes, or at the end of a closed shard) or it fails.
pub type Subscription = BoxStream<'static, Result<SubscriptionEvent, ServiceError>>;

/// How often the consumer's state is re-read while waiting for it to become active.
const ACTIVE_POLL: Duration = Duration::from_millis(500);

/// Finds (registering it when named and absent) the consumer to read through
/// and waits, up to `wait`, until it is active. Returns its ARN.
pub(crate) async fn resolve_consumer(
    transport: &dyn KinesisTransport,
    stream: &str,
    consumer: &FanOutConsumer,
    wait: Duration,
) -> Result<String, Error> {
    let deadline = Instant::now() + wait;
    let mut current = match consumer {
        FanOutConsumer::Arn(arn) => match transport.consumer_by_arn(arn).await {
            Ok(found) => found,
            Err(e) if e.kind == ServiceErrorKind::NotFound => {
                return Err(consumer_error(
                    arn,
                    "is not registered; register it (aws kinesis register-stream-consumer) or \
                     name it with with_fan_out_consumer_name to have it registered",
                ))
            }
            Err(e) => return Err(kinesis_error("DescribeStreamConsumer", stream, e)),
        },
        FanOutConsumer::Named(name) => find_or_register(transport, stream, name).await?,
    };
    if !belongs_to(&current, stream) {
        return Err(consumer_error(
            &current.arn,
            &format!(
                "reads stream {}, not {stream:?}; use a consumer of this stream",
                current.stream_arn
            ),
        ));
    }
    loop {
        match current.status {
            ConsumerStatus::Active => return Ok(current.arn),
            ConsumerStatus::Deleting => {
                return Err(consumer_error(
                    &current.arn,
                    "is being deregistered; wait until it is gone and register it again",
                ))
            }
            ConsumerStatus::Creating if Instant::now() >= deadline => {
                return Err(consumer_error(
                    &current.arn,
                    &format!(
                        "did not become ACTIVE within {wait:?}; check it in the Kinesis console"
                    ),
                ))
            }
            ConsumerStatus::Creating => {
                tokio::time::sleep(ACTIVE_POLL).await;
                current = transport
                    .consumer_by_arn(&current.arn)
                    .await
                    .map_err(|e| kinesis_error("DescribeStreamConsumer", stream, e))?;
            }
        }
    }
}

async fn find_or_register(
    transport: &dyn KinesisTransport,
    stream: &str,
    name: &str,
) -> Result<ConsumerDescription, Error> {
    let describe = |e| kinesis_error("DescribeStreamConsumer", stream, e);
    if let Some(found) = transport
        .consumer_by_name(stream, name)
        .await
        .map_err(describe)?
    {
        return Ok(found);
    }
    match transport.register_consumer(stream, name).await {
        Ok(registered) => {
            info!(consumer = %registered.arn, "registered the enhanced fan-out consumer");
            Ok(registered)
        }
        // Another client registered it first.
        Err(e) if e.kind == ServiceErrorKind::ResourceInUse => transport
            .consumer_by_name(stream, name)
            .await
            .map_err(describe)?
            .ok_or_else(|| {
                kinesis_error(
                    "RegisterStreamConsumer",
                    stream,
                    ServiceError::new(
                        ServiceErrorKind::Other,
                        format!("consumer {name:?} reported in use but not found"),
                    ),
                )
            }),
        Err(e) => Err(kinesis_error("RegisterStreamConsumer", stream, e)),
    }
}

/// True when the consumer reads `stream`: its stream ARN (`arn:…:stream/NAME`)
/// names it or, when a service leaves that out, its own ARN
/// (`arn:…:stream/NAME/consumer/…`) does.
fn belongs_to(consumer: &ConsumerDescription, stream: &str) -> bool {
    let named = |arn: &str| {
        arn.rsplit_once(":stream/")
            .is_some_and(|(_, name)| name == stream)
    };
    if consumer.stream_arn.is_empty() {
        consumer
            .arn
            .contains(&format!(":stream/{stream}/consumer/"))
    } else {
        named(&consumer.stream_arn)
    }
}

fn consumer_error(consumer: &str, problem: &str) -> Error {
    Error::FanOutConsumer {
        consumer: consumer.to_string(),
        problem: problem.to_string(),
    }
}

fn kinesis_error(operation: &'static str, stream: &str, source: ServiceError) -> Error {
    Error::Kinesis {
        operation,
        stream: stream.to_string(),
        shard: None,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinesis::memory::MemoryKinesis;

    #[test]
    fn a_consumer_belongs_to_the_stream_its_arns_name() {
        let consumer = |arn: &str, stream_arn: &str| ConsumerDescription {
            name: "c".into(),
            arn: arn.into(),
            status: ConsumerStatus::Active,
            stream_arn: stream_arn.into(),
        };
        let arn = "arn:aws:kinesis:us-east-1:123456789012:stream/events/consumer/c:1";
        let stream_arn = "arn:aws:kinesis:us-east-1:123456789012:stream/events";
        assert!(belongs_to(&consumer(arn, stream_arn), "events"));
        assert!(!belongs_to(&consumer(arn, stream_arn), "event"));
        assert!(!belongs_to(&consumer(arn, "events"), "events"));
        // A service that leaves the stream ARN out: the consumer's own ARN names the stream.
        assert!(belongs_to(&consumer(arn, ""), "events"));
        assert!(!belongs_to(&consumer(arn, ""), "event"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_named_consumer_is_registered_once_and_waited_for() {
        let kinesis = MemoryKinesis::new();
        kinesis.create_stream("events", 1);
        let named = FanOutConsumer::Named("billing".into());
        let first = resolve_consumer(&kinesis, "events", &named, Duration::from_secs(5))
            .await
            .expect("registered and active");
        let again = resolve_consumer(&kinesis, "events", &named, Duration::from_secs(5))
            .await
            .expect("reused");
        assert_eq!(first, again);
        assert_eq!(kinesis.consumers("events").len(), 1);
        let by_arn = FanOutConsumer::Arn(first.clone());
        let resolved = resolve_consumer(&kinesis, "events", &by_arn, Duration::from_secs(5))
            .await
            .expect("found by ARN");
        assert_eq!(resolved, first);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_arn_or_another_streams_consumer_is_refused_with_the_fix() {
        let kinesis = MemoryKinesis::new();
        kinesis.create_stream("events", 1);
        kinesis.create_stream("other", 1);
        let unknown = FanOutConsumer::Arn(
            "arn:aws:kinesis:us-east-1:000000000000:stream/events/consumer/x:1".into(),
        );
        let err = resolve_consumer(&kinesis, "events", &unknown, Duration::from_secs(5))
            .await
            .expect_err("unknown consumer");
        assert!(
            err.to_string().contains("register-stream-consumer"),
            "{err}"
        );
        let other = resolve_consumer(
            &kinesis,
            "other",
            &FanOutConsumer::Named("c".into()),
            Duration::from_secs(5),
        )
        .await
        .expect("registered on the other stream");
        let err = resolve_consumer(
            &kinesis,
            "events",
            &FanOutConsumer::Arn(other),
            Duration::from_secs(5),
        )
        .await
        .expect_err("a consumer of another stream");
        assert!(err.to_string().contains("not \"events\""), "{err}");
    }
}
