//! The client heartbeat: refreshes this client's row every third of a lease.
//!
//! A heartbeat that gets no answer is sent again alongside, a quarter of an
//! interval later, without giving the first one up. A request on a pooled
//! connection that a middlebox silently forgot (a NAT timeout, a load
//! balancer restart) never answers, and each such connection would otherwise
//! cost a whole heartbeat interval: with three or four of them no heartbeat
//! lands for more than a lease and a healthy client is taken over. Sent again,
//! the heartbeat goes out on another connection (the hung one is busy), so it
//! lands within a quarter interval per dead connection, while a slow but
//! working call still gets the whole interval to answer.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::Shared;
use crate::error::{Error, Result, ServiceError, ServiceErrorKind};

/// Attempts of one heartbeat, started a quarter interval apart while none has answered.
const ATTEMPTS: u32 = 4;

/// Writes this client's row until `stop`; sends a failure that cannot heal
/// (e.g. the table was deleted) to `fatal` and ends.
pub(crate) async fn beat(shared: Arc<Shared>, fatal: mpsc::Sender<Error>, stop: CancellationToken) {
    let every = shared.config.heartbeat_interval();
    let mut failing = false;
    let mut next = Instant::now() + every;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = sleep_until(next) => {}
        }
        next = Instant::now() + every;
        // Every attempt writes a time at or after this one, and a late
        // attempt may land after an earlier-sent one: the leases are valid
        // from here, not from the attempt that answered.
        let sent = shared.fence.now_ms();
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            result = heartbeat(&shared, every) => result,
        };
        match result {
            Ok(()) => {
                shared.fence.heartbeat(sent);
                if failing {
                    info!("heartbeat works again");
                    failing = false;
                }
            }
            Err(e) if e.is_fatal() => {
                let _ = fatal.send(e).await;
                return;
            }
            Err(e) => {
                shared.config.stats.retried("heartbeat", None);
                if !failing {
                    warn!(error = %e, "heartbeat failed; retrying");
                    failing = true;
                }
            }
        }
    }
}

/// One heartbeat: up to [`ATTEMPTS`] writes of this client's row, a quarter
/// interval apart while none has answered; the first success ends it. An
/// error answer ends it when no other attempt is pending (an outage is not
/// hammered). A hung call must not hold back the next heartbeat: everything is
/// given up when the next one is due.
async fn heartbeat(shared: &Shared, every: Duration) -> Result<()> {
    let limit = every.min(shared.config.call_timeout);
    let deadline = Instant::now() + limit;
    let spacing = every / ATTEMPTS;
    let mut attempts = FuturesUnordered::new();
    attempts.push(attempt(shared));
    let mut started = 1;
    let mut next_attempt = Instant::now() + spacing;
    let mut last_error = None;
    loop {
        tokio::select! {
            biased;
            Some(result) = attempts.next(), if !attempts.is_empty() => match result {
                Ok(()) => return Ok(()),
                Err(e) if e.is_fatal() || attempts.is_empty() => return Err(e),
                Err(e) => last_error = Some(e),
            },
            _ = sleep_until(next_attempt), if started < ATTEMPTS => {
                started += 1;
                debug!(attempt = started, "no answer to the heartbeat yet; sending it again");
                attempts.push(attempt(shared));
                next_attempt += spacing;
            }
            _ = sleep_until(deadline) => {
                return Err(last_error.unwrap_or_else(|| Error::Store {
                    operation: "PutItem",
                    table: shared.store.tables().clients.clone(),
                    source: ServiceError::new(
                        ServiceErrorKind::Transient,
                        format!("no answer to {started} heartbeat attempts within {limit:?}"),
                    ),
                }));
            }
        }
    }
}

fn attempt(shared: &Shared) -> impl Future<Output = Result<()>> + '_ {
    let row = shared.client_row();
    async move { shared.store.put_client(&row).await }
}
