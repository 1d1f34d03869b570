//! Reading a stream in another account: Kinesis credentials from an assumed
//! IAM role, while DynamoDB keeps the base credentials (the usual
//! cross-account layout: the stream there, the coordination tables here).

use aws_config::sts::AssumeRoleProvider;
use aws_config::SdkConfig;

use crate::error::{Error, Result};

/// An IAM role to assume for the Kinesis client (the Go library's `role`).
///
/// ```
/// let role = kinsumer::AssumeRole::new("arn:aws:iam::123456789012:role/stream-reader")
///     .with_external_id("shared-secret")
///     .with_session_name("billing-consumer");
/// assert_eq!(role.role_arn, "arn:aws:iam::123456789012:role/stream-reader");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssumeRole {
    /// The role's ARN.
    pub role_arn: String,
    /// The external ID the role's trust policy requires, if any.
    pub external_id: Option<String>,
    /// The session name (default: one the SDK makes up).
    pub session_name: Option<String>,
}

impl AssumeRole {
    /// A role to assume.
    pub fn new(role_arn: impl Into<String>) -> Self {
        AssumeRole {
            role_arn: role_arn.into(),
            external_id: None,
            session_name: None,
        }
    }

    /// Sets the external ID.
    pub fn with_external_id(mut self, id: impl Into<String>) -> Self {
        self.external_id = Some(id.into());
        self
    }

    /// Sets the session name.
    pub fn with_session_name(mut self, name: impl Into<String>) -> Self {
        self.session_name = Some(name.into());
        self
    }
}

/// An SDK configuration whose credentials come from assuming `role` with the
/// credentials of `base` (refreshed automatically before they expire).
pub async fn assume_role_config(base: &SdkConfig, role: &AssumeRole) -> Result<SdkConfig> {
    if !role.role_arn.starts_with("arn:") || !role.role_arn.contains(":role/") {
        return Err(Error::InvalidName {
            what: "role ARN",
            value: role.role_arn.clone(),
            reason: "expected arn:<partition>:iam::<account>:role/<name>",
        });
    }
    let base = if base.time_source().is_some() {
        base.clone()
    } else {
        base.to_builder()
            .time_source(aws_smithy_async::time::SystemTimeSource::new())
            .build()
    };
    let mut builder = AssumeRoleProvider::builder(role.role_arn.clone()).configure(&base);
    if let Some(id) = &role.external_id {
        builder = builder.external_id(id.clone());
    }
    if let Some(name) = &role.session_name {
        builder = builder.session_name(name.clone());
    }
    let provider = builder.build().await;
    Ok(base
        .to_builder()
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(provider),
        )
        .build())
}
