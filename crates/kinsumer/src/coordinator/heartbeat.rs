//! The client heartbeat: refreshes this client's row every third of a lease.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Shared;
use crate::error::{Error, ServiceError, ServiceErrorKind};

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
        let row = shared.client_row();
        let sent = shared.fence.now_ms();
        // A hung call must not hold back the next heartbeat: give up on it
        // when the next one is due.
        let call = shared.store.put_client(&row);
        let result = match tokio::time::timeout(every.min(shared.config.call_timeout), call).await {
            Ok(result) => result,
            Err(_) => Err(Error::Store {
                operation: "PutItem",
                table: shared.store.tables().clients.clone(),
                source: ServiceError::new(ServiceErrorKind::Transient, "heartbeat timed out"),
            }),
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
