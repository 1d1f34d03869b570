//! Delivery: the bounded buffer between shard readers and the caller, record
//! hand-out (`next()` and `Stream`), acknowledgements and checkpoint watermarks.

pub(crate) mod batch;
pub(crate) mod cursor;
pub(crate) mod positions;
pub(crate) mod receiver;

pub(crate) use batch::{AckToken, BatchProgress};
pub(crate) use cursor::ShardCursor;
pub(crate) use positions::PositionLog;
pub(crate) use receiver::{channel, Receiver, Sender};
