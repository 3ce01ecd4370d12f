//! AWS SDK configuration. In AWS the default chain applies; locally and in tests an explicit
//! endpoint (moto's server) with static dummy credentials.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;

/// The default chain, honouring `AWS_ENDPOINT_URL` (the local stack sets it).
pub async fn load() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// A config that talks to a local AWS-compatible endpoint.
pub async fn local(endpoint_url: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint_url)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "local"))
        .load()
        .await
}
