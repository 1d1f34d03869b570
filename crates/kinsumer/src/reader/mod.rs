//! Shard readers: one task per owned shard, pushing batches into delivery.
//! [`polling`] reads with GetRecords, [`fanout`] with SubscribeToShard.

pub(crate) mod backoff;
pub(crate) mod core;
pub mod deagg;
pub(crate) mod fanout;
pub(crate) mod polling;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::delivery::{Sender, ShardCursor};
use crate::error::Error;
use crate::kinesis::KinesisTransport;
use crate::Config;

/// What a reader needs besides its shard.
#[derive(Clone)]
pub(crate) struct ReaderContext {
    pub(crate) stream: Arc<str>,
    pub(crate) transport: Arc<dyn KinesisTransport>,
    pub(crate) config: Arc<Config>,
    pub(crate) sender: Sender,
    /// The enhanced fan-out consumer's ARN when reading with SubscribeToShard.
    pub(crate) fan_out_consumer: Option<Arc<str>>,
}

/// Why a reader stopped.
#[derive(Debug)]
pub(crate) enum ReaderExit {
    /// The shard is closed and every record was read (and sent).
    ShardEnd,
    /// Cancelled (lease given up, lost, or consumer stopping).
    Cancelled,
    /// A failure retrying cannot fix here; the coordinator decides.
    Failed(Error),
}

/// Reads `cursor`'s shard from where the cursor says until cancelled, the
/// shard ends, or a non-retryable failure: through the fan-out consumer when
/// one is set, by polling otherwise.
pub(crate) async fn read_shard(
    ctx: ReaderContext,
    cursor: Arc<ShardCursor>,
    cancel: CancellationToken,
) -> ReaderExit {
    let consumer = ctx.fan_out_consumer.clone();
    let reader = core::ReaderCore::new(ctx, cursor, cancel);
    match consumer {
        Some(arn) => fanout::read_shard(reader, arn).await,
        None => polling::read_shard(reader).await,
    }
}
