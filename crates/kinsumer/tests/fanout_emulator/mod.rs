//! An emulator with enhanced fan-out for the integration tests: ferrokinesis
//! (kinesalite has no SubscribeToShard), run inside the test process on a free
//! 127.0.0.1 port, next to the shared dynalite of [`crate::common`].
//!
//! What ferrokinesis 0.7.0 does, and what the tests rely on: SubscribeToShard over HTTP/1.1 event
//! streams, an empty event every 200 ms, `ChildShards` once a shard is closed and the end of the
//! subscription after its last record, consumer registration (ACTIVE after ~0.5 s). It does not:
//! honour AT/AFTER_SEQUENCE_NUMBER in SubscribeToShard (it starts at TRIM_HORIZON; the reader
//! skips what it re-sends, and resuming at a sequence number is tested in memory), refuse a
//! second subscription with `ResourceInUseException`, or page ListShards by `NextToken`.
//!
//! [`kinesis_mock_emulators`] offers kinesis-mock (npm `kinesis-local` 0.6.2, a node process)
//! instead, for what ferrokinesis cannot show: it honours AT/AFTER_SEQUENCE_NUMBER and refuses a
//! second subscription to a held shard (`ResourceInUseException`, for ~2 s after the holder lets
//! go). It is slow (one event per second per shard; puts slow down as shards fill: keep data to a
//! few hundred records) and a subscription to a split parent never ends: no splits on it.

mod ferrokinesis;
mod kinesis_mock;

use std::sync::OnceLock;

use tokio::sync::OnceCell;

use crate::common::{self, Emulators};
pub use ferrokinesis::SESSION;

/// Dynalite plus the in-process ferrokinesis, started once per test process.
pub async fn emulators() -> &'static Emulators {
    static FAN_OUT: OnceLock<Emulators> = OnceLock::new();
    let dynamo = common::emulators().await;
    FAN_OUT.get_or_init(|| dynamo.with_kinesis_endpoint(ferrokinesis::start()))
}

/// Dynalite plus kinesis-mock, started once per test process.
pub async fn kinesis_mock_emulators() -> &'static Emulators {
    static KINESIS_MOCK: OnceCell<Emulators> = OnceCell::const_new();
    let dynamo = common::emulators().await;
    KINESIS_MOCK
        .get_or_init(|| async { dynamo.with_kinesis_endpoint(kinesis_mock::start().await) })
        .await
}
