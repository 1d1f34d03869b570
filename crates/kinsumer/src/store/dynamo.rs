//! The DynamoDB implementation of the store.
