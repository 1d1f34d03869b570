//! The AWS SDK implementation of the transport.
