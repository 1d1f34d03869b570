//! The values a consumer hands out and the identifiers it orders them by.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

/// The id of a Kinesis shard, e.g. `shardId-000000000001`.
///
/// Cheap to clone (reference counted), because every record carries one.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(Arc<str>);

impl ShardId {
    /// Wraps a shard id.
    pub fn new(id: impl AsRef<str>) -> Self {
        ShardId(Arc::from(id.as_ref()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl From<&str> for ShardId {
    fn from(s: &str) -> Self {
        ShardId::new(s)
    }
}

impl From<String> for ShardId {
    fn from(s: String) -> Self {
        ShardId(Arc::from(s))
    }
}

/// The id of one consumer process in the cluster (a UUID, unique per run).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ClientId(String);

impl ClientId {
    /// Wraps a client id.
    pub fn new(id: impl Into<String>) -> Self {
        ClientId(id.into())
    }

    /// A fresh random id.
    pub fn random() -> Self {
        ClientId(uuid::Uuid::new_v4().to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Kinesis sequence number: a decimal string of up to 129 digits.
///
/// Ordered numerically (shorter is smaller, then digit by digit), never as plain
/// text and never through a fixed-width integer.
///
/// ```
/// use kinsumer::SequenceNumber;
/// assert!(SequenceNumber::new("9") < SequenceNumber::new("10"));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SequenceNumber(String);

impl SequenceNumber {
    /// Wraps a sequence number as Kinesis returned it.
    pub fn new(s: impl Into<String>) -> Self {
        SequenceNumber(s.into())
    }

    /// The number as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        let a = self.0.trim_start_matches('0');
        let b = other.0.trim_start_matches('0');
        a.len()
            .cmp(&b.len())
            .then_with(|| a.as_bytes().cmp(b.as_bytes()))
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// How far a shard has been processed: a sequence number and, inside a KPL
/// aggregate, the sub-sequence number of the last processed user record.
///
/// `sub_sequence: None` means the whole Kinesis record is done; inside one
/// Kinesis record every `Some(n)` sorts before `None`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Position {
    /// The Kinesis record's sequence number.
    pub sequence: SequenceNumber,
    /// The last processed user record of an aggregate, if the aggregate is not done.
    pub sub_sequence: Option<u64>,
}

impl Position {
    /// The position just after a whole Kinesis record.
    pub fn after(sequence: SequenceNumber) -> Self {
        Position {
            sequence,
            sub_sequence: None,
        }
    }
}

impl Ord for Position {
    fn cmp(&self, other: &Self) -> Ordering {
        self.sequence.cmp(&other.sequence).then_with(|| {
            match (self.sub_sequence, other.sub_sequence) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => a.cmp(&b),
            }
        })
    }
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Where a shard without a checkpoint starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum InitialPosition {
    /// The oldest record still in the stream (the default).
    #[default]
    TrimHorizon,
    /// Only records put after the shard is first read.
    Latest,
    /// The first record put at or after this time.
    AtTimestamp(SystemTime),
}

/// One record handed to the caller.
///
/// For a record written by the KPL in its aggregated format, each user record
/// is handed out on its own, with its own partition key and
/// `sub_sequence_number`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Record {
    /// The payload.
    pub data: Bytes,
    /// The partition key the producer chose.
    pub partition_key: String,
    /// The explicit hash key of a de-aggregated user record, if the producer set one.
    pub explicit_hash_key: Option<String>,
    /// The Kinesis sequence number (of the enclosing aggregate for a user record).
    pub sequence_number: SequenceNumber,
    /// The index of a user record inside its KPL aggregate; `None` for a plain record.
    pub sub_sequence_number: Option<u64>,
    /// The shard the record came from.
    pub shard_id: ShardId,
    /// When Kinesis accepted the record.
    pub approximate_arrival: Option<SystemTime>,
    pub(crate) ack: Option<crate::delivery::AckToken>,
}

impl Record {
    /// Builds a plain (not aggregated) record; useful in tests of code that consumes records.
    pub fn new(
        shard_id: ShardId,
        sequence_number: SequenceNumber,
        partition_key: impl Into<String>,
        data: Bytes,
    ) -> Self {
        Record {
            data,
            partition_key: partition_key.into(),
            explicit_hash_key: None,
            sequence_number,
            sub_sequence_number: None,
            shard_id,
            approximate_arrival: None,
            ack: None,
        }
    }

    /// The position that marks this record as processed.
    pub fn position(&self) -> Position {
        Position {
            sequence: self.sequence_number.clone(),
            sub_sequence: self.sub_sequence_number,
        }
    }

    /// In manual-acknowledgement mode, marks this record — and every earlier record
    /// of the same shard — as processed, so that the next commit checkpoints it.
    /// Does nothing in the default (automatic) mode, where asking for the next
    /// record does the same.
    pub fn ack(&self) {
        if let Some(token) = &self.ack {
            token.ack();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_order_numerically() {
        let a = SequenceNumber::new("49590338271490256608559692538361571095921575989136588898");
        let b = SequenceNumber::new("49590338271490256608559692540925702759324208523137515618");
        assert!(a < b);
        assert!(SequenceNumber::new("99") < SequenceNumber::new("100"));
        assert!(SequenceNumber::new("100") > SequenceNumber::new("099"));
        assert_eq!(
            SequenceNumber::new("7").cmp(&SequenceNumber::new("007")),
            Ordering::Equal
        );
    }

    #[test]
    fn whole_record_position_sorts_after_its_user_records() {
        let seq = SequenceNumber::new("5");
        let sub = |n| Position {
            sequence: seq.clone(),
            sub_sequence: Some(n),
        };
        assert!(sub(0) < sub(1));
        assert!(sub(99) < Position::after(seq.clone()));
        assert!(Position::after(seq.clone()) < sub(0).clone_with_seq("6"));
    }

    impl Position {
        fn clone_with_seq(&self, s: &str) -> Position {
            Position {
                sequence: SequenceNumber::new(s),
                sub_sequence: self.sub_sequence,
            }
        }
    }
}
