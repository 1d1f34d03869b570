//! Packing small records into KPL aggregated records, the format the Kinesis
//! Producer Library writes and KCL (and this crate's reader) de-aggregates.
//!
//! Records are packed per shard: each record goes into an aggregate bound for
//! the open shard its own hash key falls in, and the aggregate carries the
//! first member's hash key as its explicit hash key, so that every user record
//! lands on the shard it would have reached alone and the records of one
//! partition key keep their order (as long as the shard map does not change
//! between listing the shards and the write).

use bytes::{Bytes, BytesMut};
use md5::{Digest, Md5};
use prost::encoding::encoded_len_varint;
use prost::Message;

use crate::kinesis::{hash_key, PutEntry, ShardDescription};
use crate::reader::deagg::{AggregatedRecord, Record, MAGIC};

/// The KPL's default aggregate size limit (`AggregationMaxSize`).
pub const DEFAULT_AGGREGATE_BYTES: usize = 51_200;
/// Kinesis's limit for one record: data plus partition key.
pub const MAX_RECORD_BYTES: usize = 1_048_576;

/// Magic number and MD5 trailer around the protobuf body.
const FRAME_BYTES: usize = MAGIC.len() + 16;

/// One Kinesis record to write and the input records it carries, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packed {
    /// The record to put: an aggregate, or a lone input record as it was.
    pub entry: PutEntry,
    /// Indices (into the input) of the user records it carries, in order.
    pub members: Vec<usize>,
    /// True when `entry` is a KPL aggregate (false: a lone record written plain).
    pub aggregated: bool,
}

/// Packs `entries` into KPL aggregates of at most `max_bytes` (data plus
/// partition key), one run of aggregates per open shard of `shards`. A record
/// alone in its aggregate, one too big to share, or one no listed shard covers,
/// is written as it is.
pub fn pack(entries: &[PutEntry], shards: &[ShardDescription], max_bytes: usize) -> Vec<Packed> {
    let ranges: Vec<(u128, u128)> = shards
        .iter()
        .filter(|s| s.ending_sequence.is_none())
        .filter_map(|s| s.hash_range)
        .collect();
    let mut open: Vec<Option<Builder>> = (0..ranges.len()).map(|_| None).collect();
    let mut packed = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let hash = hash_key(&entry.partition_key, entry.explicit_hash_key.as_deref());
        let Some(shard) = ranges
            .iter()
            .position(|(lo, hi)| *lo <= hash && hash <= *hi)
        else {
            packed.push(Packed::plain(i, entry));
            continue;
        };
        let slot = &mut open[shard];
        if let Some(builder) = slot.as_mut() {
            if builder.fits(entry, max_bytes) {
                builder.add(i, entry);
                continue;
            }
        }
        if let Some(full) = slot.take() {
            packed.push(full.finish(entries));
        }
        let mut builder = Builder::new(entry, hash);
        builder.add(i, entry);
        *slot = Some(builder);
    }
    packed.extend(open.into_iter().flatten().map(|b| b.finish(entries)));
    packed
}

impl Packed {
    fn plain(index: usize, entry: &PutEntry) -> Self {
        Packed {
            entry: entry.clone(),
            members: vec![index],
            aggregated: false,
        }
    }
}

/// An aggregate being filled, with the size its encoding will have.
struct Builder {
    outer_key: String,
    outer_hash: u128,
    partition_keys: Vec<String>,
    hash_keys: Vec<String>,
    members: Vec<usize>,
    /// Encoded size of the protobuf body so far.
    body_len: usize,
}

impl Builder {
    fn new(first: &PutEntry, hash: u128) -> Self {
        Builder {
            outer_key: first.partition_key.clone(),
            outer_hash: hash,
            partition_keys: Vec::new(),
            hash_keys: Vec::new(),
            members: Vec::new(),
            body_len: 0,
        }
    }

    /// The body bytes `entry` adds: new table entries and its `Record`.
    fn cost(&self, entry: &PutEntry) -> usize {
        let field = |len: usize| 1 + encoded_len_varint(len as u64) + len;
        let mut cost = 0;
        let key_index = match self
            .partition_keys
            .iter()
            .position(|k| *k == entry.partition_key)
        {
            Some(i) => i,
            None => {
                cost += field(entry.partition_key.len());
                self.partition_keys.len()
            }
        };
        let mut record = 1 + encoded_len_varint(key_index as u64) + field(entry.data.len());
        if let Some(ehk) = &entry.explicit_hash_key {
            let index = match self.hash_keys.iter().position(|k| k == ehk) {
                Some(i) => i,
                None => {
                    cost += field(ehk.len());
                    self.hash_keys.len()
                }
            };
            record += 1 + encoded_len_varint(index as u64);
        }
        cost + field(record)
    }

    fn fits(&self, entry: &PutEntry, max_bytes: usize) -> bool {
        let total = FRAME_BYTES + self.body_len + self.cost(entry) + self.outer_key.len();
        total <= max_bytes.min(MAX_RECORD_BYTES)
    }

    fn add(&mut self, index: usize, entry: &PutEntry) {
        self.body_len += self.cost(entry);
        if !self.partition_keys.contains(&entry.partition_key) {
            self.partition_keys.push(entry.partition_key.clone());
        }
        if let Some(ehk) = &entry.explicit_hash_key {
            if !self.hash_keys.contains(ehk) {
                self.hash_keys.push(ehk.clone());
            }
        }
        self.members.push(index);
    }

    /// The aggregate (or the lone member as it was).
    fn finish(self, entries: &[PutEntry]) -> Packed {
        if let [only] = self.members[..] {
            return Packed::plain(only, &entries[only]);
        }
        let index_of =
            |table: &[String], key: &str| table.iter().position(|k| k == key).map(|i| i as u64);
        let message = AggregatedRecord {
            partition_key_table: self
                .partition_keys
                .iter()
                .map(|k| Bytes::copy_from_slice(k.as_bytes()))
                .collect(),
            explicit_hash_key_table: self
                .hash_keys
                .iter()
                .map(|k| Bytes::copy_from_slice(k.as_bytes()))
                .collect(),
            records: self
                .members
                .iter()
                .map(|&i| {
                    let entry = &entries[i];
                    Record {
                        partition_key_index: index_of(&self.partition_keys, &entry.partition_key),
                        explicit_hash_key_index: entry
                            .explicit_hash_key
                            .as_deref()
                            .and_then(|k| index_of(&self.hash_keys, k)),
                        data: Some(entry.data.clone()),
                    }
                })
                .collect(),
        };
        let body = message.encode_to_vec();
        let mut data = BytesMut::with_capacity(FRAME_BYTES + body.len());
        data.extend_from_slice(&MAGIC);
        data.extend_from_slice(&body);
        data.extend_from_slice(&Md5::digest(&body));
        Packed {
            entry: PutEntry {
                partition_key: self.outer_key,
                data: data.freeze(),
                explicit_hash_key: Some(self.outer_hash.to_string()),
            },
            members: self.members,
            aggregated: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::deagg::{deaggregate, Deaggregated};
    use crate::record::ShardId;
    use proptest::prelude::*;

    fn shards(n: u128) -> Vec<ShardDescription> {
        let width = u128::MAX / n;
        (0..n)
            .map(|i| ShardDescription {
                id: ShardId::new(format!("shardId-{i:012}")),
                parent: None,
                adjacent_parent: None,
                hash_range: Some((
                    width * i,
                    if i + 1 == n {
                        u128::MAX
                    } else {
                        width * (i + 1) - 1
                    },
                )),
                ending_sequence: None,
            })
            .collect()
    }

    fn entry(key: &str, ehk: Option<&str>, data: &[u8]) -> PutEntry {
        PutEntry {
            partition_key: key.to_string(),
            data: Bytes::copy_from_slice(data),
            explicit_hash_key: ehk.map(str::to_string),
        }
    }

    fn shard_of(entry: &PutEntry, shards: &[ShardDescription]) -> Option<usize> {
        let hash = hash_key(&entry.partition_key, entry.explicit_hash_key.as_deref());
        shards.iter().position(|s| {
            s.hash_range
                .is_some_and(|(lo, hi)| lo <= hash && hash <= hi)
        })
    }

    /// What the reader gets back from one packed record.
    fn unpack(p: &Packed) -> Vec<PutEntry> {
        match deaggregate(p.entry.data.clone()) {
            Deaggregated::Aggregated(users) => users
                .into_iter()
                .map(|u| PutEntry {
                    partition_key: u.partition_key.to_string(),
                    data: u.data,
                    explicit_hash_key: u.explicit_hash_key.map(|k| k.to_string()),
                })
                .collect(),
            other => {
                assert!(
                    !p.aggregated,
                    "an aggregate that does not decode: {other:?}"
                );
                vec![p.entry.clone()]
            }
        }
    }

    proptest! {
        #[test]
        fn every_record_comes_back_once_in_order_on_its_own_shard(
            specs in prop::collection::vec(
                (0usize..30, prop::option::weighted(0.2, 0u128..u128::MAX), 0usize..300),
                0..400,
            ),
            shard_count in 1u128..6,
            max_bytes in 200usize..20_000,
        ) {
            let shards = shards(shard_count);
            let entries: Vec<PutEntry> = specs
                .iter()
                .enumerate()
                .map(|(i, (key, ehk, len))| {
                    let mut data = vec![(i % 251) as u8; *len];
                    data.extend_from_slice(&(i as u32).to_be_bytes());
                    entry(&format!("key-{key}"), ehk.map(|h| h.to_string()).as_deref(), &data)
                })
                .collect();
            let packed = pack(&entries, &shards, max_bytes);
            let mut seen = vec![0usize; entries.len()];
            // Kinesis orders records per shard: each shard's records must keep the input order.
            let mut last_per_shard: std::collections::HashMap<Option<usize>, usize> =
                Default::default();
            for p in &packed {
                let unpacked = unpack(p);
                prop_assert_eq!(unpacked.len(), p.members.len());
                for (&i, got) in p.members.iter().zip(&unpacked) {
                    prop_assert_eq!(got, &entries[i]);
                    seen[i] += 1;
                    // The aggregate goes where each of its members would have gone alone.
                    prop_assert_eq!(shard_of(&p.entry, &shards), shard_of(&entries[i], &shards));
                    let shard = shard_of(&entries[i], &shards);
                    if let Some(&before) = last_per_shard.get(&shard) {
                        prop_assert!(before < i, "per-shard (so per-key) order");
                    }
                    last_per_shard.insert(shard, i);
                }
                if p.aggregated {
                    let size = p.entry.data.len() + p.entry.partition_key.len();
                    prop_assert!(size <= max_bytes, "{} > {}", size, max_bytes);
                }
            }
            prop_assert!(seen.iter().all(|&n| n == 1));
        }
    }

    #[test]
    fn small_records_of_one_shard_share_an_aggregate() {
        let entries: Vec<PutEntry> = (0..100)
            .map(|i| entry(&format!("k{}", i % 7), None, &[i as u8; 100]))
            .collect();
        let packed = pack(&entries, &shards(1), DEFAULT_AGGREGATE_BYTES);
        assert_eq!(packed.len(), 1);
        assert!(packed[0].aggregated);
        assert_eq!(packed[0].members, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn without_a_shard_map_records_are_written_as_they_are() {
        let entries = vec![entry("a", None, b"1"), entry("a", None, b"2")];
        let packed = pack(&entries, &[], DEFAULT_AGGREGATE_BYTES);
        assert_eq!(packed.len(), 2);
        assert!(packed.iter().all(|p| !p.aggregated));
    }

    /// Byte for byte what the real aggregator (PyPI `aws-kinesis-agg`) wrote for the same
    /// user records: tests/fixtures/kpl/many.bin and single.bin with expected.json.
    #[test]
    fn the_same_records_make_the_same_bytes_as_the_kpl_aggregator() {
        use base64::Engine as _;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kpl");
        let expected: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.join("expected.json")).expect("expected.json"),
        )
        .expect("JSON");
        let fixture = "many.bin";
        let records = expected[fixture]["records"].as_array().expect("records");
        let entries: Vec<PutEntry> = records
            .iter()
            .map(|r| PutEntry {
                partition_key: r["partition_key"].as_str().expect("key").to_string(),
                explicit_hash_key: r["explicit_hash_key"].as_str().map(str::to_string),
                data: Bytes::from(
                    base64::engine::general_purpose::STANDARD
                        .decode(r["data"].as_str().expect("data"))
                        .expect("base64"),
                ),
            })
            .collect();
        // One shard covering everything, so all go into one aggregate as in the fixture.
        let packed = pack(&entries, &shards(1), MAX_RECORD_BYTES);
        assert_eq!(packed.len(), 1);
        let written = std::fs::read(dir.join(fixture)).expect("fixture");
        assert_eq!(&packed[0].entry.data[..], &written[..]);
    }
}
