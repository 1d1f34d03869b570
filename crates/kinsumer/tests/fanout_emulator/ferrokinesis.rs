//! ferrokinesis served on a free 127.0.0.1 port from a thread of its own. Shared by the
//! library's and the CLI's tests (the CLI's include this file by path).

use std::time::Duration;

/// How long the emulator keeps a subscription open (AWS: five minutes). Short, so that every
/// test also runs through re-subscriptions.
pub const SESSION: Duration = Duration::from_secs(2);

/// Starts ferrokinesis on its own thread and runtime (each test has a runtime of its own that
/// ends with the test) and returns its endpoint.
pub fn start() -> String {
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
