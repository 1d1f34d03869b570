//! Shard readers: one task per owned shard, pushing batches into delivery.

pub(crate) mod backoff;
pub mod deagg;
pub(crate) mod polling;
