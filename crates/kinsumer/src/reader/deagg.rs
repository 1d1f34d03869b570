//! De-aggregation of records written by the Kinesis Producer Library (KPL).
//!
//! The KPL packs many *user records* into one Kinesis record:
//!
//! ```text
//! +--------------------+-----------------------------+---------------------+
//! | magic F3 89 9A C2  | protobuf AggregatedRecord   | MD5 of the protobuf |
//! | 4 bytes            | N bytes                     | 16 bytes            |
//! +--------------------+-----------------------------+---------------------+
//! ```
//!
//! ```text
//! message AggregatedRecord {            // proto2
//!   repeated string partition_key_table     = 1;
//!   repeated string explicit_hash_key_table = 2;
//!   repeated Record records                 = 3;
//! }
//! message Record {
//!   required uint64 partition_key_index     = 1;
//!   optional uint64 explicit_hash_key_index = 2;
//!   required bytes  data                    = 3;
//!   repeated Tag    tags                    = 4;
//! }
//! message Tag { required string key = 1; optional string value = 2; }
//! ```
//!
//! [`deaggregate`] is pure and never drops data: a record that carries the
//! magic number but is not a valid aggregate comes back whole as
//! [`Deaggregated::Corrupt`], for the caller to deliver as a plain record.
//!
//! Cost: user-record payloads are zero-copy slices of the input [`Bytes`].
//! Each distinct partition key or explicit hash key of an aggregate is
//! allocated once, as an [`Arc<str>`] shared by every user record naming it:
//! the KPL writes one table entry per distinct key, so this is one
//! allocation per key (not per user record), and callers get a plain `&str`
//! without `unsafe` or re-validating UTF-8 (as `Bytes` keys would need).

use std::sync::Arc;

use bytes::Bytes;
use md5::{Digest, Md5};
use prost::Message;

/// The four bytes that open every KPL aggregated record.
pub(crate) const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// Length of the trailing MD5 checksum.
const CHECKSUM_LEN: usize = 16;

/// What one Kinesis record turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deaggregated {
    /// Not a KPL aggregate (no magic number): the record itself.
    Plain(Bytes),
    /// A valid aggregate: its user records in order. May be empty.
    Aggregated(Vec<UserRecord>),
    /// Carries the magic number but is not a valid aggregate. Deliver `data`
    /// as a plain record and report `reason`; never drop it.
    Corrupt {
        /// The whole original record, magic number included.
        data: Bytes,
        /// Why it could not be de-aggregated.
        reason: DeaggError,
    },
}

/// One user record taken out of an aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The partition key the producer gave this user record (not the one of
    /// the enclosing Kinesis record). Shared with the other user records of
    /// the same aggregate that have the same key.
    pub partition_key: Arc<str>,
    /// The explicit hash key the producer gave this user record, if any.
    pub explicit_hash_key: Option<Arc<str>>,
    /// The payload: a zero-copy slice of the aggregated record.
    pub data: Bytes,
    /// Position of this user record within its aggregate, from 0. Together
    /// with the Kinesis record's sequence number it identifies the user
    /// record (the KCL's "sub-sequence number").
    pub sub_sequence_number: u64,
}

/// Why a record that starts with the KPL magic number is not a valid
/// aggregate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeaggError {
    /// The MD5 checksum does not match the protobuf body.
    #[error("KPL aggregate checksum mismatch")]
    BadChecksum,
    /// The protobuf body could not be decoded, or lacks a required field.
    #[error("KPL aggregate body cannot be decoded: {0}")]
    Decode(String),
    /// A user record refers to a key past the end of its key table.
    #[error("KPL aggregate key index {index} is out of range for a table of {table_len} keys")]
    BadKeyIndex {
        /// The index found in the user record.
        index: u64,
        /// The number of entries in the key table it indexes.
        table_len: usize,
    },
    /// Too short to hold the magic number and the checksum.
    #[error("KPL aggregate too short for its magic number and checksum")]
    TooShort,
}

/// True when `data` starts with the KPL magic number (a cheap test before [`deaggregate`]).
pub fn is_aggregated(data: &[u8]) -> bool {
    data.starts_with(&MAGIC)
}

/// Splits one Kinesis record into its KPL user records.
///
/// Returns [`Deaggregated::Plain`] for a record without the KPL magic
/// number, [`Deaggregated::Aggregated`] for a valid aggregate (possibly with
/// no user records) and [`Deaggregated::Corrupt`], carrying the original
/// bytes, for a record with the magic number that is too short, fails its
/// checksum, cannot be decoded or refers to a missing key.
///
/// Keys that are not valid UTF-8 are decoded lossily (U+FFFD), as the KCL
/// does, rather than failing the whole aggregate. Tags are ignored.
///
/// Two deliberate differences from the KCL's de-aggregator: the magic
/// number followed by the MD5 of an empty body (20 bytes) is an aggregate
/// with no user records, not a plain record; and user records are not
/// filtered by the shard's hash key range (the KCL silently drops a whole
/// aggregate if one of its keys falls outside it).
pub fn deaggregate(data: Bytes) -> Deaggregated {
    if !data.starts_with(&MAGIC) {
        return Deaggregated::Plain(data);
    }
    match user_records(&data) {
        Ok(records) => Deaggregated::Aggregated(records),
        Err(reason) => Deaggregated::Corrupt { data, reason },
    }
}

/// Checks and decodes an aggregate whose magic number has been seen.
fn user_records(data: &Bytes) -> Result<Vec<UserRecord>, DeaggError> {
    let body_end = data
        .len()
        .checked_sub(CHECKSUM_LEN)
        .filter(|&end| end >= MAGIC.len())
        .ok_or(DeaggError::TooShort)?;
    if Md5::digest(&data[MAGIC.len()..body_end]).as_slice() != &data[body_end..] {
        return Err(DeaggError::BadChecksum);
    }
    // Decoding from `Bytes` makes every `bytes` field a slice of `data`.
    let message = AggregatedRecord::decode(data.slice(MAGIC.len()..body_end))
        .map_err(|e| DeaggError::Decode(e.to_string()))?;
    let partition_keys = key_table(&message.partition_key_table);
    let hash_keys = key_table(&message.explicit_hash_key_table);
    // A plain loop, not `collect::<Result<..>>()`, which cannot pre-size.
    let mut records = Vec::with_capacity(message.records.len());
    for (sub_sequence_number, record) in (0u64..).zip(message.records) {
        let missing =
            |field| DeaggError::Decode(format!("user record {sub_sequence_number} has no {field}"));
        let pk_index = record
            .partition_key_index
            .ok_or_else(|| missing("partition_key_index"))?;
        records.push(UserRecord {
            partition_key: lookup(&partition_keys, pk_index)?,
            explicit_hash_key: record
                .explicit_hash_key_index
                .map(|index| lookup(&hash_keys, index))
                .transpose()?,
            data: record.data.ok_or_else(|| missing("data"))?,
            sub_sequence_number,
        });
    }
    Ok(records)
}

/// Turns a key table into shared strings, one allocation per entry.
fn key_table(raw: &[Bytes]) -> Vec<Arc<str>> {
    raw.iter()
        .map(|key| match std::str::from_utf8(key) {
            Ok(key) => Arc::from(key),
            // Slower than `from_utf8`, so only for keys that need it.
            Err(_) => Arc::from(String::from_utf8_lossy(key).as_ref()),
        })
        .collect()
}

/// Returns the key at `index`, or the error naming the bad index.
fn lookup(table: &[Arc<str>], index: u64) -> Result<Arc<str>, DeaggError> {
    usize::try_from(index)
        .ok()
        .and_then(|i| table.get(i))
        .cloned()
        .ok_or(DeaggError::BadKeyIndex {
            index,
            table_len: table.len(),
        })
}

/// Wire form of `AggregatedRecord`. The `string` tables are read as bytes
/// (same wire type) so that decoding slices the input instead of copying
/// it; [`key_table`] makes the strings.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct AggregatedRecord {
    /// Distinct partition keys, indexed by `Record::partition_key_index`.
    #[prost(bytes = "bytes", repeated, tag = "1")]
    pub(crate) partition_key_table: Vec<Bytes>,
    /// Distinct explicit hash keys, indexed by
    /// `Record::explicit_hash_key_index`.
    #[prost(bytes = "bytes", repeated, tag = "2")]
    pub(crate) explicit_hash_key_table: Vec<Bytes>,
    /// The user records.
    #[prost(message, repeated, tag = "3")]
    pub(crate) records: Vec<Record>,
}

/// Wire form of `Record`. Proto2 `required` fields are `Option`s so that a
/// missing one is detected rather than read as 0 or empty. Field 4 (`tags`)
/// is not declared, so the decoder skips it without allocating.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Record {
    /// Index into the partition key table (required).
    #[prost(uint64, optional, tag = "1")]
    pub(crate) partition_key_index: Option<u64>,
    /// Index into the explicit hash key table.
    #[prost(uint64, optional, tag = "2")]
    pub(crate) explicit_hash_key_index: Option<u64>,
    /// The user record's payload (required).
    #[prost(bytes = "bytes", optional, tag = "3")]
    pub(crate) data: Option<Bytes>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};

    /// A user record as the tests describe it: key, hash key, payload.
    type Spec = (String, Option<String>, Vec<u8>);

    fn fixture_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kpl")
    }

    fn fixture(name: &str) -> Bytes {
        let path = fixture_dir().join(name);
        Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}")))
    }

    /// Frames a protobuf body as the KPL does: magic, body, MD5(body).
    fn frame(body: &[u8]) -> Bytes {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(body);
        out.extend_from_slice(&Md5::digest(body));
        Bytes::from(out)
    }

    /// Test-only aggregator: deduplicated key tables, as the KPL writes.
    fn aggregate(specs: &[Spec]) -> Bytes {
        fn index_of(table: &mut Vec<Bytes>, key: &str) -> u64 {
            let i = table.iter().position(|k| k == key.as_bytes());
            let i = i.unwrap_or_else(|| {
                table.push(Bytes::copy_from_slice(key.as_bytes()));
                table.len() - 1
            });
            i as u64
        }
        let mut msg = AggregatedRecord::default();
        for (pk, ehk, data) in specs {
            let record = Record {
                partition_key_index: Some(index_of(&mut msg.partition_key_table, pk)),
                explicit_hash_key_index: ehk
                    .as_deref()
                    .map(|k| index_of(&mut msg.explicit_hash_key_table, k)),
                data: Some(Bytes::copy_from_slice(data)),
            };
            msg.records.push(record);
        }
        frame(&msg.encode_to_vec())
    }

    fn specs_of(records: &[UserRecord]) -> Vec<Spec> {
        records
            .iter()
            .map(|r| {
                (
                    r.partition_key.to_string(),
                    r.explicit_hash_key.as_deref().map(str::to_owned),
                    r.data.to_vec(),
                )
            })
            .collect()
    }

    fn expect_records(out: Deaggregated) -> Vec<UserRecord> {
        match out {
            Deaggregated::Aggregated(records) => records,
            other => panic!("expected an aggregate, got {other:?}"),
        }
    }

    fn expect_corrupt(input: &Bytes, out: Deaggregated) -> DeaggError {
        match out {
            Deaggregated::Corrupt { data, reason } => {
                assert_eq!(&data, input, "corrupt record must come back whole");
                reason
            }
            other => panic!("expected a corrupt record, got {other:?}"),
        }
    }

    fn reason_name(e: &DeaggError) -> &'static str {
        match e {
            DeaggError::BadChecksum => "bad_checksum",
            DeaggError::Decode(_) => "decode",
            DeaggError::BadKeyIndex { .. } => "bad_key_index",
            DeaggError::TooShort => "too_short",
        }
    }

    /// Every fixture made by the real aggregator (generate.py) decodes to
    /// what expected.json says.
    #[test]
    fn fixtures_match_expected_json() {
        let text = std::fs::read_to_string(fixture_dir().join("expected.json")).unwrap();
        let expected: HashMap<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
        assert!(expected.len() >= 8, "too few fixtures: {}", expected.len());
        for (name, want) in &expected {
            let input = fixture(name);
            let out = deaggregate(input.clone());
            match want["kind"].as_str().unwrap() {
                "plain" => assert_eq!(out, Deaggregated::Plain(input), "{name}"),
                "corrupt" => {
                    let reason = expect_corrupt(&input, out);
                    assert_eq!(reason_name(&reason), want["reason"], "{name}: {reason}");
                }
                "aggregated" => {
                    let records = expect_records(out);
                    let want: Vec<Spec> = want["records"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| {
                            let data = base64::engine::general_purpose::STANDARD
                                .decode(r["data"].as_str().unwrap())
                                .unwrap();
                            let pk = r["partition_key"].as_str().unwrap().to_owned();
                            let ehk = r["explicit_hash_key"].as_str().map(str::to_owned);
                            (pk, ehk, data)
                        })
                        .collect();
                    assert_eq!(specs_of(&records), want, "{name}");
                    for (i, r) in records.iter().enumerate() {
                        assert_eq!(r.sub_sequence_number, i as u64, "{name}");
                    }
                }
                kind => panic!("{name}: unknown kind {kind}"),
            }
        }
    }

    /// No fixture file is left out of expected.json.
    #[test]
    fn every_fixture_is_listed() {
        let text = std::fs::read_to_string(fixture_dir().join("expected.json")).unwrap();
        let expected: HashMap<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
        for entry in std::fs::read_dir(fixture_dir()).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".bin") {
                assert!(expected.contains_key(&name), "{name} not in expected.json");
            }
        }
    }

    #[test]
    fn many_fixture_is_zero_copy_and_shares_keys() {
        let input = fixture("many.bin");
        let range = input.as_ptr_range();
        let records = expect_records(deaggregate(input.clone()));
        assert_eq!(records.len(), 100);
        for r in &records {
            assert_eq!(r.data.len(), 100);
            assert!(range.contains(&r.data.as_ptr()), "payload was copied");
        }
        // 7 distinct partition keys, each allocated once.
        let mut distinct: Vec<&Arc<str>> = Vec::new();
        for r in &records {
            if !distinct.iter().any(|k| Arc::ptr_eq(k, &r.partition_key)) {
                distinct.push(&r.partition_key);
            }
        }
        assert_eq!(distinct.len(), 7);
        assert!(records.iter().any(|r| &*r.partition_key == "clé-ü-€"));
        assert_eq!(
            records
                .iter()
                .filter(|r| r.explicit_hash_key.is_some())
                .count(),
            34
        );
    }

    #[test]
    fn short_and_partial_inputs() {
        assert_eq!(deaggregate(Bytes::new()), Deaggregated::Plain(Bytes::new()));
        let partial = Bytes::from_static(&MAGIC[..3]);
        assert_eq!(deaggregate(partial.clone()), Deaggregated::Plain(partial));
        for len in MAGIC.len()..MAGIC.len() + CHECKSUM_LEN {
            let mut input = MAGIC.to_vec();
            input.resize(len, 0);
            let input = Bytes::from(input);
            let reason = expect_corrupt(&input, deaggregate(input.clone()));
            assert_eq!(reason, DeaggError::TooShort, "length {len}");
        }
        // Magic plus the checksum of an empty body: the empty aggregate.
        assert_eq!(deaggregate(frame(&[])), Deaggregated::Aggregated(vec![]));
    }

    #[test]
    fn missing_required_fields_are_decode_errors() {
        let no_pk = AggregatedRecord {
            partition_key_table: vec![Bytes::from_static(b"k")],
            explicit_hash_key_table: vec![],
            records: vec![Record {
                partition_key_index: None,
                explicit_hash_key_index: None,
                data: Some(Bytes::from_static(b"x")),
            }],
        };
        let mut no_data = no_pk.clone();
        no_data.records[0].partition_key_index = Some(0);
        no_data.records[0].data = None;
        for (msg, field) in [(no_pk, "partition_key_index"), (no_data, "data")] {
            let input = frame(&msg.encode_to_vec());
            match expect_corrupt(&input, deaggregate(input.clone())) {
                DeaggError::Decode(text) => assert!(text.contains(field), "{text}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn out_of_range_key_indices() {
        let base = AggregatedRecord {
            partition_key_table: vec![Bytes::from_static(b"k")],
            explicit_hash_key_table: vec![Bytes::from_static(b"1"), Bytes::from_static(b"2")],
            records: vec![Record {
                partition_key_index: Some(0),
                explicit_hash_key_index: Some(1),
                data: Some(Bytes::from_static(b"x")),
            }],
        };
        let input = frame(&base.encode_to_vec());
        assert_eq!(
            expect_records(deaggregate(input))[0]
                .explicit_hash_key
                .as_deref(),
            Some("2")
        );

        let cases = [
            (Some(1), None, 1, 1),
            (Some(u64::MAX), None, u64::MAX, 1),
            (Some(0), Some(2), 2, 2),
        ];
        for (pk, ehk, index, table_len) in cases {
            let mut msg = base.clone();
            msg.records[0].partition_key_index = pk;
            msg.records[0].explicit_hash_key_index = ehk;
            let input = frame(&msg.encode_to_vec());
            let reason = expect_corrupt(&input, deaggregate(input.clone()));
            assert_eq!(reason, DeaggError::BadKeyIndex { index, table_len });
        }
        // Records but no key table at all.
        let mut msg = base;
        msg.partition_key_table.clear();
        let input = frame(&msg.encode_to_vec());
        let reason = expect_corrupt(&input, deaggregate(input.clone()));
        assert_eq!(
            reason,
            DeaggError::BadKeyIndex {
                index: 0,
                table_len: 0
            }
        );
    }

    #[test]
    fn invalid_utf8_keys_are_decoded_lossily() {
        let msg = AggregatedRecord {
            partition_key_table: vec![Bytes::from_static(b"a\xffb")],
            explicit_hash_key_table: vec![],
            records: vec![Record {
                partition_key_index: Some(0),
                explicit_hash_key_index: None,
                data: Some(Bytes::from_static(b"payload")),
            }],
        };
        let records = expect_records(deaggregate(frame(&msg.encode_to_vec())));
        assert_eq!(&*records[0].partition_key, "a\u{FFFD}b");
        assert_eq!(records[0].data, Bytes::from_static(b"payload"));
    }

    /// Protobuf fields may come in any order and repeated fields may be
    /// split: concatenated messages merge.
    #[test]
    fn fields_in_any_order() {
        let records = AggregatedRecord {
            records: vec![Record {
                partition_key_index: Some(0),
                explicit_hash_key_index: None,
                data: Some(Bytes::from_static(b"late tables")),
            }],
            ..Default::default()
        };
        let tables = AggregatedRecord {
            partition_key_table: vec![Bytes::from_static(b"pk")],
            ..Default::default()
        };
        let mut body = records.encode_to_vec();
        body.extend(tables.encode_to_vec());
        let out = expect_records(deaggregate(frame(&body)));
        assert_eq!(
            specs_of(&out),
            vec![("pk".into(), None, b"late tables".to_vec())]
        );
    }

    #[test]
    fn errors_display() {
        let e = DeaggError::BadKeyIndex {
            index: 9,
            table_len: 2,
        };
        assert_eq!(
            e.to_string(),
            "KPL aggregate key index 9 is out of range for a table of 2 keys"
        );
    }

    fn spec_strategy() -> impl Strategy<Value = Spec> {
        (
            "[a-c]{0,3}|\\PC{0,8}",
            proptest::option::of("[0-9]{1,39}"),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
    }

    proptest! {
        #[test]
        fn round_trip(specs in proptest::collection::vec(spec_strategy(), 0..40)) {
            let input = aggregate(&specs);
            let records = expect_records(deaggregate(input));
            prop_assert_eq!(specs_of(&records), specs);
            for (i, r) in records.iter().enumerate() {
                prop_assert_eq!(r.sub_sequence_number, i as u64);
            }
        }

        /// Any byte flipped in an aggregate is caught: by the magic check
        /// (plain) or by the checksum (corrupt); the input is never lost.
        #[test]
        fn flipped_byte_is_detected(
            specs in proptest::collection::vec(spec_strategy(), 1..10),
            pos in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let mut bytes = aggregate(&specs).to_vec();
            let pos = pos.index(bytes.len());
            bytes[pos] ^= flip;
            let input = Bytes::from(bytes);
            let out = deaggregate(input.clone());
            if pos < MAGIC.len() {
                prop_assert_eq!(out, Deaggregated::Plain(input));
            } else {
                prop_assert_eq!(out, Deaggregated::Corrupt { data: input, reason: DeaggError::BadChecksum });
            }
        }

        /// Arbitrary bodies behind a valid checksum never panic, and a
        /// rejected one comes back whole.
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let input = frame(&body);
            match deaggregate(input.clone()) {
                Deaggregated::Aggregated(_) => {}
                Deaggregated::Corrupt { data, reason } => {
                    prop_assert_eq!(data, input);
                    let expected = matches!(reason, DeaggError::Decode(_) | DeaggError::BadKeyIndex { .. });
                    prop_assert!(expected, "unexpected reason {:?}", reason);
                }
                Deaggregated::Plain(_) => prop_assert!(false, "framed input read as plain"),
            }
        }

        #[test]
        fn arbitrary_input_is_never_lost(input in proptest::collection::vec(any::<u8>(), 0..64)) {
            let input = Bytes::from(input);
            match deaggregate(input.clone()) {
                Deaggregated::Plain(data) => {
                    prop_assert!(!input.starts_with(&MAGIC));
                    prop_assert_eq!(data, input);
                }
                Deaggregated::Corrupt { data, .. } => prop_assert_eq!(data, input),
                Deaggregated::Aggregated(_) => prop_assert!(input.starts_with(&MAGIC)),
            }
        }
    }
}
