//! The AWS options every AWS subcommand shares, and the SDK clients built from them.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use clap::Args;
use kinsumer::kinesis::aws::AwsKinesis;
use kinsumer::kinesis::role::assume_role_config;
use kinsumer::store::dynamo::DynamoStore;
use kinsumer::AssumeRole;

use crate::error::CliError;

/// Where and as whom to call AWS. The standard environment (`AWS_REGION`, `AWS_PROFILE`,
/// credentials, `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_KINESIS`, `AWS_ENDPOINT_URL_DYNAMODB`)
/// applies as usual; these flags win over it.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "AWS options")]
pub struct AwsArgs {
    /// AWS region (default: AWS_REGION or the profile's region).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Named profile from ~/.aws/config and ~/.aws/credentials.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Endpoint for both Kinesis and DynamoDB (e.g. a local emulator).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Endpoint for Kinesis only (wins over --endpoint-url).
    #[arg(long, value_name = "URL")]
    pub kinesis_endpoint: Option<String>,
    /// Endpoint for DynamoDB only (wins over --endpoint-url).
    #[arg(long, value_name = "URL")]
    pub dynamodb_endpoint: Option<String>,
    /// IAM role to assume for Kinesis (a stream in another account); DynamoDB keeps the
    /// base credentials.
    #[arg(long, value_name = "ARN")]
    pub role_arn: Option<String>,
    /// External ID required by the role's trust policy (with --role-arn).
    #[arg(long, value_name = "ID", requires = "role_arn")]
    pub external_id: Option<String>,
}

/// SDK clients for both services.
#[derive(Debug, Clone)]
pub struct Clients {
    /// Kinesis.
    pub kinesis: aws_sdk_kinesis::Client,
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
}

impl Clients {
    /// The library's transport over the Kinesis client.
    pub fn transport(&self) -> AwsKinesis {
        AwsKinesis::new(self.kinesis.clone())
    }

    /// The library's store for `app` over the DynamoDB client.
    pub fn store(&self, app: &str) -> DynamoStore {
        DynamoStore::new(self.dynamodb.clone(), app)
    }
}

impl AwsArgs {
    /// Loads the shared configuration (`aws_config::defaults(BehaviorVersion::latest())` with the
    /// flags applied) and fails early when no region is configured anywhere.
    pub async fn sdk_config(&self) -> Result<SdkConfig, CliError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(profile) = &self.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let sdk = loader.load().await;
        if sdk.region().is_none() {
            return Err(CliError::NoRegion);
        }
        Ok(sdk)
    }

    /// Kinesis and DynamoDB clients, each with its own endpoint when one was given.
    ///
    /// A flag beats the per-service environment variables, which the SDK would otherwise
    /// prefer over a shared `--endpoint-url`.
    pub async fn clients(&self) -> Result<Clients, CliError> {
        let sdk = self.sdk_config().await?;
        let kinesis_sdk = match &self.role_arn {
            Some(arn) => {
                let mut role = AssumeRole::new(arn.clone());
                if let Some(id) = &self.external_id {
                    role = role.with_external_id(id.clone());
                }
                assume_role_config(&sdk, &role)
                    .await
                    .map_err(|source| CliError::Kinsumer {
                        source,
                        app: None,
                        consume: false,
                    })?
            }
            None => sdk.clone(),
        };
        let mut kinesis = aws_sdk_kinesis::config::Builder::from(&kinesis_sdk);
        if let Some(url) = self
            .kinesis_endpoint
            .as_ref()
            .or(self.endpoint_url.as_ref())
        {
            kinesis = kinesis.endpoint_url(url);
        }
        let mut dynamodb = aws_sdk_dynamodb::config::Builder::from(&sdk);
        if let Some(url) = self
            .dynamodb_endpoint
            .as_ref()
            .or(self.endpoint_url.as_ref())
        {
            dynamodb = dynamodb.endpoint_url(url);
        }
        Ok(Clients {
            kinesis: aws_sdk_kinesis::Client::from_conf(kinesis.build()),
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb.build()),
        })
    }
}
