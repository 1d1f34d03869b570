//! Delivery: placeholder while being written.

/// Acknowledges one record (manual mode).
#[derive(Clone, Debug)]
pub(crate) struct AckToken;

impl AckToken {
    pub(crate) fn ack(&self) {}
}
