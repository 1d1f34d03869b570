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

use std::sync::OnceLock;
use std::time::Duration;

use crate::common::{self, Emulators};

/// How long the emulator keeps a subscription open (AWS: five minutes). Short, so that every
/// test also runs through re-subscriptions.
pub const SESSION: Duration = Duration::from_secs(2);

/// Dynalite plus the in-process ferrokinesis, started once per test process.
pub async fn emulators() -> &'static Emulators {
    static FAN_OUT: OnceLock<Emulators> = OnceLock::new();
    let dynamo = common::emulators().await;
    if let Some(found) = FAN_OUT.get() {
        return found;
    }
    let endpoint = start_ferrokinesis();
    FAN_OUT.get_or_init(|| dynamo.with_kinesis_endpoint(endpoint))
}

/// Starts ferrokinesis on its own thread and runtime (each test has a runtime of its own that
/// ends with the test) and returns its endpoint.
fn start_ferrokinesis() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    let address = listener.local_addr().expect("the listener's address");
    listener
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    std::thread::Builder::new()
        .name("ferrokinesis".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("the emulator's runtime");
            runtime.block_on(async move {
                let (app, _store) = ferrokinesis::create_app(ferrokinesis::store::StoreOptions {
                    create_stream_ms: 0,
                    delete_stream_ms: 0,
                    update_stream_ms: 0,
                    shard_limit: 1000,
                    subscribe_to_shard_session_ms: u64::try_from(SESSION.as_millis())
                        .unwrap_or(u64::MAX),
                    ..Default::default()
                });
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                axum::serve(listener, app)
                    .await
                    .expect("ferrokinesis serves");
            });
        })
        .expect("starting the emulator's thread");
    format!("http://{address}")
}
