//! Failover and graceful-leave scenario against kinesalite + dynalite.
//!
//! `cargo bench -p kinsumer --bench failover` runs, with shard-check frequency
//! 1 s (lease duration 2 s, commit frequency 1 s):
//! - crash: two clients share 4 shards while records flow; one is dropped
//!   without `stop()`; prints the gap between the crash and the survivor's first
//!   record from a shard the dead client held, and the records delivered twice;
//! - graceful: the same with `stop()`; prints the gap and the duplicates;
//! - both again in enhanced fan-out mode, against ferrokinesis (in process, with
//!   2 s subscriptions) instead of kinesalite.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/fanout_emulator/ferrokinesis.rs"]
mod ferrokinesis;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kinsumer::{Config, Kinsumer};
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
struct Delivery {
    client: usize,
    shard: String,
    data: String,
    at: Instant,
}

type Log = Arc<Mutex<Vec<Delivery>>>;

fn config() -> Config {
    Config::new()
        .with_shard_check_frequency(Duration::from_secs(1))
        .with_leader_action_frequency(Duration::from_secs(1))
        .with_commit_frequency(Duration::from_secs(1))
        .with_lease_duration(Duration::from_secs(2))
        .with_throttle_delay(Duration::from_millis(200))
        .with_on_demand_billing()
        .with_dynamo_waiter_delay(Duration::from_millis(50))
}

fn spawn(
    mut k: Kinsumer,
    client: usize,
    log: Log,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                r = k.next() => match r {
                    Some(Ok(r)) => log.lock().expect("log").push(Delivery {
                        client,
                        shard: r.shard_id.to_string(),
                        data: String::from_utf8_lossy(&r.data).into_owned(),
                        at: Instant::now(),
                    }),
                    Some(Err(e)) => eprintln!("client {client}: {e}"),
                    None => break,
                },
                _ = stop.cancelled() => { k.stop().await; break; }
            }
        }
    })
}

async fn scenario(crash: bool, fan_out: bool) {
    static FAN_OUT: std::sync::OnceLock<common::Emulators> = std::sync::OnceLock::new();
    let dynalite = common::emulators().await;
    let emu: &'static common::Emulators = if fan_out {
        FAN_OUT.get_or_init(|| dynalite.with_kinesis_endpoint(ferrokinesis::start()))
    } else {
        dynalite
    };
    let stream = emu.unique_name("failover");
    let app = emu.unique_name("failapp");
    emu.create_stream(&stream, 4).await;
    let log: Log = Arc::default();
    let producing = CancellationToken::new();
    let producer = {
        let stream = stream.clone();
        let producing = producing.clone();
        tokio::spawn(async move {
            let mut n = 0usize;
            while !producing.is_cancelled() {
                let batch: Vec<(String, Bytes)> = (0..20)
                    .map(|_| {
                        n += 1;
                        (format!("key-{}", n % 40), Bytes::from(format!("{n}")))
                    })
                    .collect();
                emu.put_records(&stream, batch).await;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            n
        })
    };
    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    for client in 0..2 {
        let mut k = Kinsumer::new(
            &emu.sdk_config(),
            &stream,
            &app,
            &format!("client-{client}"),
            if fan_out {
                config().with_fan_out_consumer_name("failover")
            } else {
                config()
            },
        )
        .expect("build");
        k.create_required_tables().await.expect("tables");
        k.run().await.expect("run");
        let stop = CancellationToken::new();
        tasks.push(spawn(k, client, Arc::clone(&log), stop.clone()));
        stops.push(stop);
    }
    // Let the cluster settle into 2 + 2 shards.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let victim_shards: HashSet<String> = {
        let log = log.lock().expect("log");
        let recent = log.iter().rev().take(200);
        recent
            .filter(|d| d.client == 0)
            .map(|d| d.shard.clone())
            .collect()
    };
    let t0 = Instant::now();
    let victim = tasks.remove(0);
    if crash {
        victim.abort();
        let _ = victim.await;
    } else {
        stops[0].cancel();
        victim.await.expect("victim");
    }
    let event_index = log.lock().expect("log").len();
    // Wait until the survivor delivers from every victim shard.
    let deadline = Instant::now() + Duration::from_secs(30);
    let gap = loop {
        let first = {
            let log = log.lock().expect("log");
            let mut firsts: HashMap<&str, Instant> = HashMap::new();
            for d in log[event_index..]
                .iter()
                .filter(|d| d.client == 1 && victim_shards.contains(&d.shard))
            {
                firsts.entry(&d.shard).or_insert(d.at);
            }
            (firsts.len() == victim_shards.len())
                .then(|| firsts.values().max().copied())
                .flatten()
        };
        if let Some(at) = first {
            break Some(at.duration_since(t0));
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    producing.cancel();
    let produced = producer.await.expect("producer");
    // Drain what is left.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let distinct: HashSet<String> = log
            .lock()
            .expect("log")
            .iter()
            .map(|d| d.data.clone())
            .collect();
        if distinct.len() >= produced {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = log.lock().expect("log").clone();
    let distinct: HashSet<&str> = log.iter().map(|d| d.data.as_str()).collect();
    println!(
        "{:<9} {:<8} victim held {} shards; survivor delivered from all of them {} after the {}; produced {produced}, delivered {}, duplicates {}, lost {}",
        if crash { "crash" } else { "graceful" },
        if fan_out { "fan-out" } else { "polling" },
        victim_shards.len(),
        gap.map_or("NEVER (30 s)".to_string(), |g| format!("{:.2} s", g.as_secs_f64())),
        if crash { "crash" } else { "stop() began" },
        log.len(),
        log.len() - distinct.len(),
        produced.saturating_sub(distinct.len()),
    );
    stops[1].cancel();
    for t in tasks {
        let _ = t.await;
    }
    emu.delete_stream(&stream).await;
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        println!("shard-check 1 s, lease 2 s, commit 1 s, 4 shards, 2 clients, ~800 records/s");
        for fan_out in [false, true] {
            scenario(true, fan_out).await;
            scenario(false, fan_out).await;
        }
    });
}
