//! Counts of AWS requests this process sent, by service and operation: an SDK interceptor on
//! every client the functions build. Each HTTP attempt counts (retries too), as AWS bills.
//! The cost benchmark and the request-count tests read them; a function pays one atomic
//! increment per request for it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

static COUNTS: Mutex<BTreeMap<(String, String), u64>> = Mutex::new(BTreeMap::new());

/// Requests by `(service, operation)`, e.g. `("DynamoDB", "PutItem")`.
pub type Counts = BTreeMap<(String, String), u64>;

#[derive(Debug, Clone, Copy, Default)]
pub struct RequestCounter;

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "hookrelay-request-counter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(meta) = cfg.load::<Metadata>()
            && let Ok(mut counts) = COUNTS.lock()
        {
            *counts
                .entry((meta.service().to_owned(), meta.name().to_owned()))
                .or_default() += 1;
        }
        Ok(())
    }
}

/// What was sent so far.
pub fn snapshot() -> Counts {
    COUNTS.lock().map(|c| c.clone()).unwrap_or_default()
}

/// What was sent since `before` (a snapshot).
pub fn since(before: &Counts) -> Counts {
    snapshot()
        .into_iter()
        .filter_map(|(k, n)| {
            let d = n - before.get(&k).copied().unwrap_or(0);
            (d > 0).then_some((k, d))
        })
        .collect()
}

/// A DynamoDB client that counts its requests.
pub fn dynamodb(aws: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::config::Builder::from(aws)
        .interceptor(RequestCounter)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// An SQS client that counts its requests.
pub fn sqs(aws: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::config::Builder::from(aws)
        .interceptor(RequestCounter)
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// An EventBridge client that counts its requests.
pub fn eventbridge(aws: &aws_config::SdkConfig) -> aws_sdk_eventbridge::Client {
    let config = aws_sdk_eventbridge::config::Builder::from(aws)
        .interceptor(RequestCounter)
        .build();
    aws_sdk_eventbridge::Client::from_conf(config)
}

/// An S3 client that counts its requests. Against a local endpoint (one set in the config)
/// buckets are addressed by path: `bucket.127.0.0.1` names no host.
pub fn s3(aws: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(aws)
        .force_path_style(aws.endpoint_url().is_some())
        .interceptor(RequestCounter)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}
