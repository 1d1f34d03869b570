//! Consumer configuration: the Go library's knobs, with documented defaults and `validate()`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::ConfigError;
use crate::record::InitialPosition;
use crate::stats::{NoopStats, StatReceiver};

/// How records count as processed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AckMode {
    /// A record is processed when the caller asks for the next one, stops the
    /// consumer, or drops it (the default).
    #[default]
    Auto,
    /// A record is processed only when the caller calls [`crate::Record::ack`]
    /// (which also acknowledges every earlier record of its shard).
    Manual,
}

/// How the coordination tables are billed when `create_required_tables` creates them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Billing {
    /// Provisioned capacity units.
    Provisioned {
        /// Read capacity units per table.
        read: i64,
        /// Write capacity units per table.
        write: i64,
    },
    /// Pay per request.
    OnDemand,
}

/// The configuration of one consumer. Start from [`Config::default`] (or
/// [`Config::new`]) and change what you need with the `with_*` methods.
///
/// ```
/// use std::time::Duration;
/// use kinsumer::Config;
///
/// let config = Config::new()
///     .with_commit_frequency(Duration::from_millis(500))
///     .with_buffer_size(5_000);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone)]
pub struct Config {
    pub(crate) throttle_delay: Duration,
    pub(crate) commit_frequency: Duration,
    pub(crate) shard_check_frequency: Duration,
    pub(crate) leader_action_frequency: Duration,
    pub(crate) buffer_size: usize,
    pub(crate) billing: Billing,
    pub(crate) dynamo_waiter_delay: Duration,
    pub(crate) stats: Arc<dyn StatReceiver>,
    pub(crate) initial_position: InitialPosition,
    pub(crate) lease_duration: Duration,
    pub(crate) handoff_timeout: Duration,
    pub(crate) max_records_per_call: u32,
    pub(crate) call_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) ack_mode: AckMode,
    pub(crate) deaggregate: bool,
    pub(crate) read_mode: ReadMode,
}

/// How shard readers get records from Kinesis.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadMode {
    /// GetRecords in a loop, one call per throttle delay per shard (the default).
    #[default]
    Polling,
    /// Enhanced fan-out (SubscribeToShard) through a stream consumer.
    FanOut(FanOutConsumer),
}

/// The enhanced fan-out consumer to read through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FanOutConsumer {
    /// An existing consumer, by its ARN (the Go library's `consumerARN`).
    Arn(String),
    /// A consumer of this name on the stream: registered if absent, reused if present.
    Named(String),
}

impl fmt::Display for ReadMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadMode::Polling => f.write_str("polling"),
            ReadMode::FanOut(FanOutConsumer::Arn(arn)) => write!(f, "fan-out ({arn})"),
            ReadMode::FanOut(FanOutConsumer::Named(name)) => write!(f, "fan-out ({name})"),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            throttle_delay: Duration::from_millis(250),
            commit_frequency: Duration::from_secs(1),
            shard_check_frequency: Duration::from_secs(1),
            leader_action_frequency: Duration::from_secs(5),
            buffer_size: 10_000,
            billing: Billing::Provisioned {
                read: 10,
                write: 10,
            },
            dynamo_waiter_delay: Duration::from_secs(3),
            stats: Arc::new(NoopStats),
            initial_position: InitialPosition::TrimHorizon,
            lease_duration: Duration::from_secs(2),
            handoff_timeout: Duration::from_secs(5),
            max_records_per_call: 10_000,
            call_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            ack_mode: AckMode::Auto,
            deaggregate: true,
            read_mode: ReadMode::Polling,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("throttle_delay", &self.throttle_delay)
            .field("commit_frequency", &self.commit_frequency)
            .field("shard_check_frequency", &self.shard_check_frequency)
            .field("leader_action_frequency", &self.leader_action_frequency)
            .field("buffer_size", &self.buffer_size)
            .field("billing", &self.billing)
            .field("dynamo_waiter_delay", &self.dynamo_waiter_delay)
            .field("initial_position", &self.initial_position)
            .field("lease_duration", &self.lease_duration)
            .field("handoff_timeout", &self.handoff_timeout)
            .field("max_records_per_call", &self.max_records_per_call)
            .field("call_timeout", &self.call_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("ack_mode", &self.ack_mode)
            .field("deaggregate", &self.deaggregate)
            .field("read_mode", &self.read_mode)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// The default configuration (the Go library's `NewConfig`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Time between two GetRecords calls on one shard. At least 200 ms (Kinesis
    /// allows 5 reads per second per shard); default 250 ms. With several
    /// applications on one stream use 50 ms + 200 ms × applications.
    pub fn with_throttle_delay(mut self, delay: Duration) -> Self {
        self.throttle_delay = delay;
        self
    }

    /// How often processed positions are committed to the checkpoints table;
    /// default 1 s. A crash re-delivers at most about this much.
    pub fn with_commit_frequency(mut self, every: Duration) -> Self {
        self.commit_frequency = every;
        self
    }

    /// How often the client re-reads the clients, leases and shard list and
    /// rebalances; default 1 s.
    pub fn with_shard_check_frequency(mut self, every: Duration) -> Self {
        self.shard_check_frequency = every;
        self
    }

    /// How often the leader lists the stream's shards and reaps dead clients;
    /// at least the shard-check frequency; default 5 s.
    pub fn with_leader_action_frequency(mut self, every: Duration) -> Self {
        self.leader_action_frequency = every;
        self
    }

    /// How many records may wait, fetched but not yet handed to the caller,
    /// across all shards; readers pause when it is full. Default 10,000.
    pub fn with_buffer_size(mut self, records: usize) -> Self {
        self.buffer_size = records;
        self
    }

    /// Read capacity of the tables `create_required_tables` creates (default 10).
    pub fn with_dynamo_read_capacity(mut self, units: i64) -> Self {
        let write = match self.billing {
            Billing::Provisioned { write, .. } => write,
            Billing::OnDemand => 10,
        };
        self.billing = Billing::Provisioned { read: units, write };
        self
    }

    /// Write capacity of the tables `create_required_tables` creates (default 10).
    pub fn with_dynamo_write_capacity(mut self, units: i64) -> Self {
        let read = match self.billing {
            Billing::Provisioned { read, .. } => read,
            Billing::OnDemand => 10,
        };
        self.billing = Billing::Provisioned { read, write: units };
        self
    }

    /// Bill the tables `create_required_tables` creates per request instead of
    /// by provisioned capacity.
    pub fn with_on_demand_billing(mut self) -> Self {
        self.billing = Billing::OnDemand;
        self
    }

    /// Time between checks that tables were created or deleted; default 3 s.
    pub fn with_dynamo_waiter_delay(mut self, delay: Duration) -> Self {
        self.dynamo_waiter_delay = delay;
        self
    }

    /// Where the consumer reports its events; default: nowhere.
    pub fn with_stats(mut self, stats: Arc<dyn StatReceiver>) -> Self {
        self.stats = stats;
        self
    }

    /// Where a shard without a checkpoint starts; default `TrimHorizon`.
    pub fn with_initial_position(mut self, position: InitialPosition) -> Self {
        self.initial_position = position;
        self
    }

    /// How long a client's leases stay valid without a heartbeat; default 2 s.
    /// Heartbeats are sent every third of it. A crashed client's shards are taken
    /// over about one lease duration after its last heartbeat.
    pub fn with_lease_duration(mut self, lease: Duration) -> Self {
        self.lease_duration = lease;
        self
    }

    /// How long a client giving a shard up (rebalance or stop) waits for the
    /// caller to finish records already handed out; default 5 s.
    pub fn with_handoff_timeout(mut self, timeout: Duration) -> Self {
        self.handoff_timeout = timeout;
        self
    }

    /// Records asked for per GetRecords call (1..=10,000; default 10,000).
    pub fn with_max_records_per_call(mut self, records: u32) -> Self {
        self.max_records_per_call = records;
        self
    }

    /// Timeout of every single AWS call; default 10 s.
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Timeout for opening a connection to AWS (applied to the SDK clients
    /// `Kinsumer::new` builds); default 3 s.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Automatic (default) or manual acknowledgement of records.
    pub fn with_ack_mode(mut self, mode: AckMode) -> Self {
        self.ack_mode = mode;
        self
    }

    /// Split KPL aggregates into their user records (default: on).
    pub fn with_deaggregation(mut self, on: bool) -> Self {
        self.deaggregate = on;
        self
    }

    /// Read through an existing enhanced fan-out consumer (SubscribeToShard)
    /// instead of polling. The consumer must be registered on this stream.
    ///
    /// ```
    /// let config = kinsumer::Config::new().with_fan_out_consumer_arn(
    ///     "arn:aws:kinesis:us-east-1:123456789012:stream/events/consumer/billing:1700000000",
    /// );
    /// assert!(config.validate().is_ok());
    /// ```
    pub fn with_fan_out_consumer_arn(mut self, arn: impl Into<String>) -> Self {
        self.read_mode = ReadMode::FanOut(FanOutConsumer::Arn(arn.into()));
        self
    }

    /// Read through the enhanced fan-out consumer of this name, registering it
    /// on the stream at `run()` when absent and waiting until it is active.
    pub fn with_fan_out_consumer_name(mut self, name: impl Into<String>) -> Self {
        self.read_mode = ReadMode::FanOut(FanOutConsumer::Named(name.into()));
        self
    }

    /// How shard readers get records: polling (default) or enhanced fan-out.
    pub fn with_read_mode(mut self, mode: ReadMode) -> Self {
        self.read_mode = mode;
        self
    }

    /// The configured read mode.
    pub fn read_mode(&self) -> &ReadMode {
        &self.read_mode
    }

    /// The interval of client heartbeats (and lease renewals): a third of the lease duration.
    pub fn heartbeat_interval(&self) -> Duration {
        self.lease_duration / 3
    }

    /// Checks every value; returns the error of the first invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.throttle_delay < Duration::from_millis(200) {
            return Err(ConfigError::ThrottleDelay(self.throttle_delay));
        }
        if self.commit_frequency.is_zero() {
            return Err(ConfigError::CommitFrequency);
        }
        if self.shard_check_frequency.is_zero() {
            return Err(ConfigError::ShardCheckFrequency);
        }
        if self.leader_action_frequency.is_zero()
            || self.leader_action_frequency < self.shard_check_frequency
        {
            return Err(ConfigError::LeaderActionFrequency {
                leader: self.leader_action_frequency,
                shard_check: self.shard_check_frequency,
            });
        }
        if self.buffer_size == 0 {
            return Err(ConfigError::BufferSize);
        }
        if let Billing::Provisioned { read, write } = self.billing {
            if read <= 0 || write <= 0 {
                return Err(ConfigError::DynamoCapacity);
            }
        }
        if self.dynamo_waiter_delay.is_zero() {
            return Err(ConfigError::DynamoWaiterDelay);
        }
        if self.lease_duration < Duration::from_millis(300)
            || self.lease_duration < self.shard_check_frequency
        {
            return Err(ConfigError::LeaseDuration {
                lease: self.lease_duration,
                shard_check: self.shard_check_frequency,
            });
        }
        if !(1..=10_000).contains(&self.max_records_per_call) {
            return Err(ConfigError::MaxRecords(self.max_records_per_call));
        }
        if self.call_timeout.is_zero() {
            return Err(ConfigError::Timeout("call"));
        }
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::Timeout("connect"));
        }
        if self.handoff_timeout.is_zero() {
            return Err(ConfigError::Timeout("handoff"));
        }
        match &self.read_mode {
            ReadMode::Polling => {}
            ReadMode::FanOut(FanOutConsumer::Arn(arn)) => {
                if !is_consumer_arn(arn) {
                    return Err(ConfigError::FanOutConsumerArn(arn.clone()));
                }
            }
            ReadMode::FanOut(FanOutConsumer::Named(name)) => {
                if !is_consumer_name(name) {
                    return Err(ConfigError::FanOutConsumerName(name.clone()));
                }
            }
        }
        Ok(())
    }
}

/// `arn:<partition>:kinesis:<region>:<account>:stream/<stream>/consumer/<name>:<created>`.
fn is_consumer_arn(arn: &str) -> bool {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("kinesis"), Some(_region), Some(_account), Some(rest)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    !partition.is_empty() && rest.starts_with("stream/") && rest.contains("/consumer/")
}

/// Kinesis consumer names: 1 to 128 of `[a-zA-Z0-9_.-]`.
fn is_consumer_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn each_invalid_value_has_its_error() {
        let ms = Duration::from_millis;
        let cases: Vec<(Config, ConfigError)> = vec![
            (
                Config::new().with_throttle_delay(ms(199)),
                ConfigError::ThrottleDelay(ms(199)),
            ),
            (
                Config::new().with_commit_frequency(ms(0)),
                ConfigError::CommitFrequency,
            ),
            (
                Config::new().with_shard_check_frequency(ms(0)),
                ConfigError::ShardCheckFrequency,
            ),
            (
                Config::new().with_leader_action_frequency(ms(500)),
                ConfigError::LeaderActionFrequency {
                    leader: ms(500),
                    shard_check: ms(1000),
                },
            ),
            (Config::new().with_buffer_size(0), ConfigError::BufferSize),
            (
                Config::new().with_dynamo_read_capacity(0),
                ConfigError::DynamoCapacity,
            ),
            (
                Config::new().with_dynamo_write_capacity(0),
                ConfigError::DynamoCapacity,
            ),
            (
                Config::new().with_dynamo_waiter_delay(ms(0)),
                ConfigError::DynamoWaiterDelay,
            ),
            (
                Config::new().with_lease_duration(ms(900)),
                ConfigError::LeaseDuration {
                    lease: ms(900),
                    shard_check: ms(1000),
                },
            ),
            (
                Config::new().with_max_records_per_call(0),
                ConfigError::MaxRecords(0),
            ),
            (
                Config::new().with_max_records_per_call(10_001),
                ConfigError::MaxRecords(10_001),
            ),
            (
                Config::new().with_call_timeout(ms(0)),
                ConfigError::Timeout("call"),
            ),
            (
                Config::new().with_fan_out_consumer_arn("billing"),
                ConfigError::FanOutConsumerArn("billing".into()),
            ),
            (
                Config::new()
                    .with_fan_out_consumer_arn("arn:aws:kinesis:us-east-1:1:stream/events"),
                ConfigError::FanOutConsumerArn("arn:aws:kinesis:us-east-1:1:stream/events".into()),
            ),
            (
                Config::new().with_fan_out_consumer_name(""),
                ConfigError::FanOutConsumerName(String::new()),
            ),
            (
                Config::new().with_fan_out_consumer_name("has space"),
                ConfigError::FanOutConsumerName("has space".into()),
            ),
        ];
        for (config, expected) in cases {
            assert_eq!(config.validate(), Err(expected.clone()), "{expected}");
        }
    }

    #[test]
    fn on_demand_needs_no_capacity() {
        let c = Config::new().with_on_demand_billing();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.billing, Billing::OnDemand);
    }

    #[test]
    fn throttle_delay_at_the_minimum_is_accepted() {
        let c = Config::new().with_throttle_delay(Duration::from_millis(200));
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn fan_out_consumers_that_look_right_are_accepted() {
        let arn = "arn:aws-cn:kinesis:cn-north-1:123456789012:stream/s/consumer/c:1";
        assert_eq!(
            Config::new().with_fan_out_consumer_arn(arn).validate(),
            Ok(())
        );
        let named = Config::new().with_fan_out_consumer_name("billing-v2.eu_1");
        assert_eq!(named.validate(), Ok(()));
        assert_eq!(named.read_mode().to_string(), "fan-out (billing-v2.eu_1)");
        assert_eq!(Config::new().read_mode(), &ReadMode::Polling);
    }
}
