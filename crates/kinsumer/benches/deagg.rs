//! Throughput of KPL de-aggregation, in user records per second.
//!
//! Each input is one aggregate of 100 user records of 100 bytes. The
//! `md5_only` case hashes the same body alone: the checksum is the floor of
//! what de-aggregation can cost.
//!
//! Run with `cargo bench -p kinsumer --bench deagg`.

// The module is compiled into the bench directly, so the bench does not
// depend on how the crate exposes it. Cargo builds benches with `--cfg test`
// but, without a harness, drops `#[test]` functions: the module's test
// helpers and imports are then unused.
#[allow(dead_code, unused_imports)]
#[path = "../src/reader/deagg.rs"]
mod deagg;

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use md5::{Digest, Md5};

use deagg::{deaggregate, Deaggregated};

const USER_RECORDS: usize = 100;
const RECORD_LEN: usize = 100;
const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// 100 x 100 bytes, 7 partition keys, some explicit hash keys, written by
/// the real aggregator (see tests/fixtures/kpl/generate.py).
static KPL_FIXTURE: &[u8] = include_bytes!("../tests/fixtures/kpl/many.bin");

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a length-delimited field (wire type 2).
fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, field << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Builds an aggregate by hand, each user record having the partition key
/// `key-{i % distinct_keys}`.
fn aggregate(distinct_keys: usize) -> Bytes {
    let mut body = Vec::new();
    for k in 0..distinct_keys {
        put_bytes(&mut body, 1, format!("key-{k}").as_bytes());
    }
    for i in 0..USER_RECORDS {
        let mut record = Vec::new();
        put_varint(&mut record, 1 << 3); // partition_key_index, varint
        put_varint(&mut record, (i % distinct_keys) as u64);
        put_bytes(&mut record, 3, &[i as u8; RECORD_LEN]);
        put_bytes(&mut body, 3, &record);
    }
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&body);
    out.extend_from_slice(&Md5::digest(&body));
    Bytes::from(out)
}

fn count(out: Deaggregated) -> usize {
    match out {
        Deaggregated::Aggregated(records) => records.len(),
        _ => 0,
    }
}

fn bench(c: &mut Criterion) {
    let inputs = [
        ("kpl_fixture_7_keys", Bytes::copy_from_slice(KPL_FIXTURE)),
        ("1_key", aggregate(1)),
        ("100_keys", aggregate(USER_RECORDS)),
    ];
    let mut group = c.benchmark_group("deagg_100x100B");
    group.throughput(Throughput::Elements(USER_RECORDS as u64));
    for (name, input) in &inputs {
        assert_eq!(count(deaggregate(input.clone())), USER_RECORDS, "{name}");
        group.bench_function(*name, |b| {
            b.iter(|| count(deaggregate(black_box(input.clone()))))
        });
    }
    let body = &KPL_FIXTURE[MAGIC.len()..KPL_FIXTURE.len() - 16];
    group.bench_function("md5_only", |b| b.iter(|| Md5::digest(black_box(body))));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
