//! Throughput and CPU cost of consuming through `next()`.
//!
//! `cargo bench -p kinsumer --bench throughput` prints:
//! 1. in memory: 1,000,000 records from 16 shards through `next()`;
//! 2. against kinesalite (+ dynalite for the tables): 100,000 records from 4
//!    shards, kinsumer vs a bare GetRecords loop over the same shards with the
//!    same throttle delay. The emulators are started as in the tests (or found
//!    through AWS_ENDPOINT_URL_KINESIS / AWS_ENDPOINT_URL_DYNAMODB).
//!    Skip this part with `-- --memory-only`; `BENCH_BUFFER=N` sets the
//!    consumer's buffer size for this part (default 10,000).
//!
//! CPU is this process's user+system time (getrusage), so the emulators' own
//! work is not counted.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kinsumer::kinesis::memory::MemoryKinesis;
use kinsumer::kinesis::{KinesisTransport, PutEntry};
use kinsumer::store::memory::MemoryStore;
use kinsumer::{Config, Kinsumer};

const THROTTLE: Duration = Duration::from_millis(200);

fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn max_rss_mib() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_maxrss as f64 / 1024.0
}

struct Figures {
    records: usize,
    wall: Duration,
    cpu: Duration,
}

impl Figures {
    fn print(&self, label: &str) {
        let per_core = self.records as f64 / self.cpu.as_secs_f64().max(1e-9);
        println!(
            "{label:<34} {:>9} records  {:>8.3} s wall  {:>10.0} records/s  {:>7.3} s CPU  {:>6.3} µs CPU/record  {:>10.0} records/CPU-s",
            self.records,
            self.wall.as_secs_f64(),
            self.records as f64 / self.wall.as_secs_f64(),
            self.cpu.as_secs_f64(),
            self.cpu.as_secs_f64() * 1e6 / self.records as f64,
            per_core,
        );
    }
}

async fn drain(mut k: Kinsumer, n: usize) -> (Figures, Kinsumer) {
    let (t0, c0) = (Instant::now(), cpu_time());
    k.run().await.expect("run");
    let mut bytes = 0usize;
    for i in 0..n {
        let r = k.next().await.expect("open").expect("record");
        if i == 0 {
            println!(
                "(first record {:.3} s after run())",
                t0.elapsed().as_secs_f64()
            );
        }
        bytes += r.data.len();
    }
    let figures = Figures {
        records: n,
        wall: t0.elapsed(),
        cpu: cpu_time() - c0,
    };
    assert!(bytes >= n, "payloads seen");
    (figures, k)
}

async fn in_memory() {
    const N: usize = 1_000_000;
    let kinesis = MemoryKinesis::new();
    kinesis.create_stream("bench", 16);
    let payload = Bytes::from(vec![b'x'; 100]);
    let entries: Vec<PutEntry> = (0..N)
        .map(|i| PutEntry {
            partition_key: format!("key-{}", i % 1000),
            data: payload.clone(),
            explicit_hash_key: None,
        })
        .collect();
    for chunk in entries.chunks(500) {
        kinesis
            .put_records("bench", chunk.to_vec())
            .await
            .expect("put");
    }
    // The transport alone: GetRecords over every shard, records dropped.
    let (t0, c0) = (Instant::now(), cpu_time());
    let mut total = 0;
    for shard in kinesis.open_shards("bench") {
        let from =
            kinsumer::kinesis::StartingPosition::Initial(kinsumer::InitialPosition::TrimHorizon);
        let mut it = kinesis
            .shard_iterator("bench", &shard, &from)
            .await
            .expect("iterator");
        loop {
            let page = kinesis.get_records(&it, 10_000).await.expect("records");
            if page.records.is_empty() {
                break;
            }
            total += page.records.len();
            it = page.next_iterator.expect("open shard");
        }
    }
    let bare = Figures {
        records: total,
        wall: t0.elapsed(),
        cpu: cpu_time() - c0,
    };
    bare.print("in memory, 16 shards, bare loop");
    let store = MemoryStore::new("bench");
    let config = Config::new()
        .with_throttle_delay(THROTTLE)
        .with_buffer_size(100_000);
    let k = Kinsumer::with_backends(
        Arc::new(kinesis.clone()),
        Arc::new(store),
        "bench",
        "bench",
        config.clone(),
    )
    .expect("build");
    k.create_required_tables().await.expect("tables");
    let (figures, mut k) = drain(k, N).await;
    figures.print("in memory, 16 shards, next()");
    let own = figures.cpu.saturating_sub(bare.cpu);
    println!(
        "kinsumer's own cost over the bare loop: {:.3} µs CPU/record = {:.0} records per CPU-second",
        own.as_secs_f64() * 1e6 / N as f64,
        N as f64 / own.as_secs_f64().max(1e-9)
    );
    k.stop().await;

    // The same records through enhanced fan-out (SubscribeToShard), with fresh checkpoints.
    let store = MemoryStore::new("bench-efo");
    let k = Kinsumer::with_backends(
        Arc::new(kinesis),
        Arc::new(store),
        "bench",
        "bench",
        config.with_fan_out_consumer_name("bench"),
    )
    .expect("build");
    k.create_required_tables().await.expect("tables");
    let (figures, mut k) = drain(k, N).await;
    figures.print("in memory, 16 shards, fan-out, next()");
    k.stop().await;
}

/// Reads every shard to `n` records in total with GetRecords only.
async fn bare_loop(client: &aws_sdk_kinesis::Client, stream: &str, n: usize) -> Figures {
    let (t0, c0) = (Instant::now(), cpu_time());
    let shards = client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .expect("list");
    let mut tasks = Vec::new();
    for shard in shards.shards() {
        let client = client.clone();
        let stream = stream.to_string();
        let shard = shard.shard_id().to_string();
        tasks.push(tokio::spawn(async move {
            let mut it = client
                .get_shard_iterator()
                .stream_name(stream)
                .shard_id(shard)
                .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
                .send()
                .await
                .expect("iterator")
                .shard_iterator
                .expect("iterator");
            let mut count = 0usize;
            let mut next_call = tokio::time::Instant::now();
            loop {
                tokio::time::sleep_until(next_call).await;
                next_call = tokio::time::Instant::now() + THROTTLE;
                let out = client
                    .get_records()
                    .shard_iterator(&it)
                    .limit(10_000)
                    .send()
                    .await
                    .expect("records");
                count += out.records().len();
                if out.records().is_empty() && out.millis_behind_latest() == Some(0) {
                    return count;
                }
                match out.next_shard_iterator {
                    Some(next) => it = next,
                    None => return count,
                }
            }
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("task");
    }
    assert_eq!(total, n, "bare loop read every record");
    Figures {
        records: total,
        wall: t0.elapsed(),
        cpu: cpu_time() - c0,
    }
}

async fn against_emulators() {
    const N: usize = 100_000;
    let emu = common::emulators().await;
    let stream = emu.unique_name("bench");
    emu.create_stream(&stream, 4).await;
    let payload = Bytes::from(vec![b'x'; 100]);
    let t = Instant::now();
    let records: Vec<(String, Bytes)> = (0..N)
        .map(|i| (format!("key-{}", i % 1000), payload.clone()))
        .collect();
    emu.put_records(&stream, records).await;
    println!(
        "(put {N} records into kinesalite in {:.1} s)",
        t.elapsed().as_secs_f64()
    );

    let client = emu.kinesis_client();
    let bare = bare_loop(&client, &stream, N).await;
    bare.print("kinesalite, 4 shards, bare loop");

    let app = emu.unique_name("benchapp");
    let config = Config::new()
        .with_throttle_delay(THROTTLE)
        .with_on_demand_billing()
        .with_buffer_size(
            std::env::var("BENCH_BUFFER")
                .ok()
                .and_then(|b| b.parse().ok())
                .unwrap_or(10_000),
        )
        .with_dynamo_waiter_delay(Duration::from_millis(50));
    let k = Kinsumer::from_clients(
        client,
        emu.dynamodb_client(),
        &stream,
        &app,
        "bench",
        config,
    )
    .expect("build");
    k.create_required_tables().await.expect("tables");
    let (figures, mut k) = drain(k, N).await;
    figures.print("kinesalite, 4 shards, kinsumer");
    println!(
        "kinsumer vs bare loop: {:.2}x wall time, {:.2}x CPU",
        figures.wall.as_secs_f64() / bare.wall.as_secs_f64(),
        figures.cpu.as_secs_f64() / bare.cpu.as_secs_f64().max(1e-9),
    );
    k.stop().await;
    k.delete_tables().await.expect("delete tables");
    emu.delete_stream(&stream).await;
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        // `cargo test --all-targets` asks benches to list themselves; nothing to run then.
        return;
    }
    let memory_only = args.iter().any(|a| a == "--memory-only");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        in_memory().await;
        if !memory_only {
            against_emulators().await;
        }
    });
    println!("max RSS {:.0} MiB", max_rss_mib());
}
