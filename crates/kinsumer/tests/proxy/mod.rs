//! A loopback TCP proxy for fault injection between a client and an emulator.
//!
//! ```ignore
//! mod proxy;
//!
//! let proxy = proxy::Proxy::start(proxy::socket_addr(emu.kinesis_endpoint())).await;
//! let kinesis = aws_sdk_kinesis::Client::from_conf(
//!     aws_sdk_kinesis::config::Builder::from(&emu.sdk_config())
//!         .endpoint_url(proxy.endpoint())
//!         .build(),
//! );
//! proxy.reset_all(); // every live connection is aborted with a TCP RST
//! proxy.stall(true); // nothing moves, no connection is accepted; connections stay open
//! proxy.stall(false);
//! proxy.refuse(true); // every connection, live or new, is reset at once
//! proxy.refuse(false);
//! ```
//!
//! The proxy listens on `127.0.0.1:0` and forwards bytes both ways, one task per connection.
//! Faults:
//! - [`Proxy::stall`]: stop forwarding bytes (either way) and stop accepting connections. New
//!   connections wait in the kernel's backlog (the client's connect succeeds), established ones
//!   stay open; bytes already read are held until the stall ends, then forwarded — like packets
//!   delayed by a network partition.
//! - [`Proxy::reset_all`]: abort every live connection with a RST to both ends (`SO_LINGER` 0,
//!   then close).
//! - [`Proxy::refuse`]: the server is gone: every live connection is reset, and every new one
//!   is accepted and reset at once (the client's request fails with a reset connection).
//! - [`Proxy::freeze_live`]: the connections open now never forward another byte (but stay
//!   open); new connections work — like pooled connections silently dropped by a middlebox.
//! - [`Proxy::set_delay`]: wait this long before forwarding each chunk (either way).
//! - [`Proxy::drop_responses`]: read what the upstream answers and discard it (requests still
//!   reach the upstream and take effect; the client never hears back).
//!
//! A read or write error on one side (e.g. the client reset the connection) resets the other
//! side too; an orderly close is passed on as an orderly close (half-close per direction).
//! Dropping the proxy aborts its tasks (and so closes every connection).

#![allow(dead_code)] // each test binary uses a different part of the proxy

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// The socket address of an `http://127.0.0.1:PORT` endpoint (loopback only).
pub fn socket_addr(endpoint: &str) -> SocketAddr {
    let host_port = endpoint
        .strip_prefix("http://")
        .unwrap_or(endpoint)
        .trim_end_matches('/');
    let addr: SocketAddr = host_port
        .parse()
        .unwrap_or_else(|e| panic!("endpoint {endpoint:?} is not http://IP:PORT: {e}"));
    assert!(
        addr.ip().is_loopback(),
        "the proxy forwards to loopback addresses only, not {addr}"
    );
    addr
}

/// A running proxy; its tasks end when it is dropped.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

struct Shared {
    upstream: SocketAddr,
    stalled: watch::Sender<bool>,
    delay_micros: AtomicU64,
    drop_responses: AtomicBool,
    refusing: AtomicBool,
    /// Live connections by id.
    live: Mutex<HashMap<u64, Connection>>,
    next_id: AtomicU64,
    accepted: AtomicU64,
    resets: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

/// The handles of one live connection.
struct Connection {
    /// Cancelled: reset the connection.
    kill: CancellationToken,
    /// True: forward nothing more, ever.
    frozen: watch::Sender<bool>,
}

impl Shared {
    fn delay(&self) -> Duration {
        Duration::from_micros(self.delay_micros.load(Ordering::Relaxed))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Client to upstream.
    Request,
    /// Upstream to client.
    Response,
}

impl Proxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        assert!(
            upstream.ip().is_loopback(),
            "the proxy forwards to loopback addresses only, not {upstream}"
        );
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("binding the proxy on 127.0.0.1");
        let addr = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(Shared {
            upstream,
            stalled: watch::Sender::new(false),
            delay_micros: AtomicU64::new(0),
            drop_responses: AtomicBool::new(false),
            refusing: AtomicBool::new(false),
            live: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Proxy {
            addr,
            shared,
            accept,
        }
    }

    /// `http://127.0.0.1:PORT`, for an SDK client's `endpoint_url`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops (`true`) or resumes (`false`) forwarding and accepting.
    pub fn stall(&self, on: bool) {
        self.shared.stalled.send_replace(on);
    }

    /// Aborts every live connection with a RST to both ends; returns how many.
    pub fn reset_all(&self) -> usize {
        let live = self.shared.live.lock().expect("proxy connections");
        for connection in live.values() {
            connection.kill.cancel();
        }
        live.len()
    }

    /// Resets every connection, live (`true`) and new (while `true`), as if the server were
    /// gone; `false` forwards new connections again.
    pub fn refuse(&self, on: bool) {
        self.shared.refusing.store(on, Ordering::SeqCst);
        if on {
            self.reset_all();
        }
    }

    /// Freezes every connection open now (they stay open and forward nothing more); returns
    /// how many. Connections accepted later are not affected.
    pub fn freeze_live(&self) -> usize {
        let live = self.shared.live.lock().expect("proxy connections");
        for connection in live.values() {
            connection.frozen.send_replace(true);
        }
        live.len()
    }

    /// Waits this long before forwarding each chunk, both ways (zero: no delay).
    pub fn set_delay(&self, delay: Duration) {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.shared.delay_micros.store(micros, Ordering::Relaxed);
    }

    /// Discards (`true`) or forwards again (`false`) what the upstream sends.
    pub fn drop_responses(&self, on: bool) {
        self.shared.drop_responses.store(on, Ordering::Relaxed);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn live(&self) -> usize {
        self.shared.live.lock().expect("proxy connections").len()
    }

    /// Connections aborted with a RST so far (by `reset_all` or because a side failed).
    pub fn resets(&self) -> u64 {
        self.shared.resets.load(Ordering::Relaxed)
    }

    /// Bytes forwarded to the upstream, and to clients, so far.
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.shared.bytes_up.load(Ordering::Relaxed),
            self.shared.bytes_down.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // The accept task owns the connection tasks (a JoinSet): they end with it.
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    let mut stalled = shared.stalled.subscribe();
    loop {
        // While stalled, new connections wait in the kernel's backlog.
        if stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) if shared.refusing.load(Ordering::SeqCst) => {
                    shared.accepted.fetch_add(1, Ordering::Relaxed);
                    shared.resets.fetch_add(1, Ordering::Relaxed);
                    abort(client);
                }
                Ok((client, _)) => {
                    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
                    let kill = CancellationToken::new();
                    let frozen = watch::Sender::new(false);
                    let frozen_rx = frozen.subscribe();
                    shared.live.lock().expect("proxy connections").insert(
                        id,
                        Connection {
                            kill: kill.clone(),
                            frozen,
                        },
                    );
                    shared.accepted.fetch_add(1, Ordering::Relaxed);
                    connections.spawn(connection(
                        client,
                        Arc::clone(&shared),
                        id,
                        kill,
                        frozen_rx,
                    ));
                }
                // E.g. out of file descriptors: try again shortly.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stalled.changed() => {}
        }
    }
}

/// Removes a connection from the live set however its task ends (even aborted).
struct Registered {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut live) = self.shared.live.lock() {
            live.remove(&self.id);
        }
    }
}

/// Closes the stream with a RST instead of a FIN.
fn abort(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn connection(
    mut client: TcpStream,
    shared: Arc<Shared>,
    id: u64,
    kill: CancellationToken,
    frozen: watch::Receiver<bool>,
) {
    let _registered = Registered {
        shared: Arc::clone(&shared),
        id,
    };
    let _ = client.set_nodelay(true);
    let upstream = tokio::select! {
        connected = TcpStream::connect(shared.upstream) => connected,
        _ = kill.cancelled() => Err(io::Error::other("reset by the proxy")),
    };
    let mut upstream = match upstream {
        Ok(upstream) => upstream,
        Err(_) => {
            shared.resets.fetch_add(1, Ordering::Relaxed);
            abort(client);
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    let clean = {
        let (client_read, client_write) = client.split();
        let (upstream_read, upstream_write) = upstream.split();
        let both = async {
            tokio::try_join!(
                pump(
                    client_read,
                    upstream_write,
                    Direction::Request,
                    &shared,
                    frozen.clone()
                ),
                pump(
                    upstream_read,
                    client_write,
                    Direction::Response,
                    &shared,
                    frozen.clone()
                ),
            )
        };
        tokio::select! {
            result = both => result.is_ok(),
            _ = kill.cancelled() => false,
        }
    };
    if !clean {
        shared.resets.fetch_add(1, Ordering::Relaxed);
        abort(client);
        abort(upstream);
    }
}

/// Waits until neither the proxy is stalled nor the connection frozen; false if the proxy is gone.
async fn may_forward(
    stalled: &mut watch::Receiver<bool>,
    frozen: &mut watch::Receiver<bool>,
) -> bool {
    loop {
        if !*stalled.borrow_and_update() && !*frozen.borrow_and_update() {
            return true;
        }
        tokio::select! {
            changed = stalled.changed() => if changed.is_err() { return false },
            changed = frozen.changed() => if changed.is_err() { return false },
        }
    }
}

/// Forwards one direction until end of stream (then passes the close on) or an error.
async fn pump(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    direction: Direction,
    shared: &Shared,
    mut frozen: watch::Receiver<bool>,
) -> io::Result<()> {
    let mut stalled = shared.stalled.subscribe();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if !may_forward(&mut stalled, &mut frozen).await {
            return Err(io::Error::other("proxy gone"));
        }
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        // Bytes read just before a stall are held until it ends.
        if !may_forward(&mut stalled, &mut frozen).await {
            return Err(io::Error::other("proxy gone"));
        }
        let delay = shared.delay();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match direction {
            Direction::Response if shared.drop_responses.load(Ordering::Relaxed) => continue,
            Direction::Response => {
                to.write_all(&buf[..n]).await?;
                shared.bytes_down.fetch_add(n as u64, Ordering::Relaxed);
            }
            Direction::Request => {
                to.write_all(&buf[..n]).await?;
                shared.bytes_up.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
}
