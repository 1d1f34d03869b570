//! The in-memory transport.
