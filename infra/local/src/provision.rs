//! Creates the template's DynamoDB tables, S3 buckets and SQS queues on a local AWS endpoint,
//! with the template's own keys, indexes, TTL, lifecycle rules, queue attributes and redrive
//! policy: one source of truth for local and deployed.

use std::collections::HashMap;

use anyhow::{Context as _, Result, anyhow, bail};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_yaml_ng::Value;

use crate::template::{Bindings, Template, number, scalar};

#[derive(Debug, Clone)]
pub struct Provisioned {
    pub bindings: Bindings,
    /// Logical id → table name.
    pub tables: HashMap<String, String>,
    /// Logical id → queue URL.
    pub queues: HashMap<String, String>,
    /// Logical id → bucket name.
    pub buckets: HashMap<String, String>,
}

impl Provisioned {
    pub fn table(&self, logical_id: &str) -> Result<&str> {
        self.tables
            .get(logical_id)
            .map(String::as_str)
            .ok_or_else(|| anyhow!("no table {logical_id}"))
    }

    pub fn bucket(&self, logical_id: &str) -> Result<&str> {
        self.buckets
            .get(logical_id)
            .map(String::as_str)
            .ok_or_else(|| anyhow!("no bucket {logical_id}"))
    }

    pub fn queue(&self, logical_id: &str) -> Result<&str> {
        self.queues
            .get(logical_id)
            .map(String::as_str)
            .ok_or_else(|| anyhow!("no queue {logical_id}"))
    }
}

/// Creates everything under names starting with `prefix`, so several stacks (one per test)
/// can share one endpoint.
pub async fn provision(t: &Template, aws: &SdkConfig, prefix: &str) -> Result<Provisioned> {
    let mut out = Provisioned {
        bindings: Bindings::default(),
        tables: HashMap::new(),
        queues: HashMap::new(),
        buckets: HashMap::new(),
    };
    let ddb = aws_sdk_dynamodb::Client::new(aws);
    for logical in t.of_type("AWS::DynamoDB::Table")? {
        let name = format!("{prefix}-{logical}");
        let props = t.resolve(&t.resource(&logical)?["Properties"], &out.bindings)?;
        let arn = create_table(&ddb, &name, &props)
            .await
            .with_context(|| format!("creating table {logical}"))?;
        out.bindings.refs.insert(logical.clone(), name.clone());
        out.bindings.arns.insert(logical.clone(), arn);
        out.tables.insert(logical, name);
    }

    let s3 = hookrelay_shared::requests::s3(aws);
    for logical in t.of_type("AWS::S3::Bucket")? {
        // Bucket names are lower case.
        let name = format!("{prefix}-{logical}").to_lowercase();
        let props = t.resolve(&t.resource(&logical)?["Properties"], &out.bindings)?;
        create_bucket(&s3, &name, &props)
            .await
            .with_context(|| format!("creating bucket {logical}"))?;
        out.bindings
            .arns
            .insert(logical.clone(), format!("arn:aws:s3:::{name}"));
        out.bindings.refs.insert(logical.clone(), name.clone());
        out.buckets.insert(logical, name);
    }

    let sqs = aws_sdk_sqs::Client::new(aws);
    let mut left = t.of_type("AWS::SQS::Queue")?;
    // A queue whose redrive policy names another is created after it.
    while !left.is_empty() {
        let before = left.len();
        let mut still = Vec::new();
        for logical in left {
            let Ok(props) = t.resolve(&t.resource(&logical)?["Properties"], &out.bindings) else {
                still.push(logical);
                continue;
            };
            // SQS requires a FIFO queue's name to end in `.fifo`.
            let name = if is_fifo(&props) {
                format!("{prefix}-{logical}.fifo")
            } else {
                format!("{prefix}-{logical}")
            };
            let (url, arn) = create_queue(&sqs, &name, &props)
                .await
                .with_context(|| format!("creating queue {logical}"))?;
            out.bindings.refs.insert(logical.clone(), url.clone());
            out.bindings.arns.insert(logical.clone(), arn);
            out.queues.insert(logical, url);
        }
        if still.len() == before {
            bail!("queues {still:?} reference resources the local stack cannot create");
        }
        left = still;
    }
    Ok(out)
}

async fn create_table(ddb: &aws_sdk_dynamodb::Client, name: &str, props: &Value) -> Result<String> {
    let mut req = ddb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest);
    for def in seq(props, "AttributeDefinitions") {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(str_of(def, "AttributeName")?)
                .attribute_type(ScalarAttributeType::from(
                    str_of(def, "AttributeType")?.as_str(),
                ))
                .build()?,
        );
    }
    req = req.set_key_schema(Some(key_schema(props)?));
    for gsi in seq(props, "GlobalSecondaryIndexes") {
        let projection = gsi.get("Projection");
        let mut p = Projection::builder().projection_type(ProjectionType::from(
            projection
                .and_then(|p| p.get("ProjectionType"))
                .and_then(Value::as_str)
                .unwrap_or("ALL"),
        ));
        for attr in projection
            .map(|p| seq(p, "NonKeyAttributes"))
            .unwrap_or_default()
        {
            p = p.non_key_attributes(scalar(attr).unwrap_or_default());
        }
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(str_of(gsi, "IndexName")?)
                .set_key_schema(Some(key_schema(gsi)?))
                .projection(p.build())
                .build()?,
        );
    }
    let created = req.send().await.map_err(aws_sdk_dynamodb::Error::from)?;
    let arn = created
        .table_description
        .and_then(|d| d.table_arn)
        .unwrap_or_else(|| format!("arn:aws:dynamodb:us-east-1:123456789012:table/{name}"));
    if let Some(ttl) = props.get("TimeToLiveSpecification") {
        ddb.update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(str_of(ttl, "AttributeName")?)
                    .enabled(ttl.get("Enabled").and_then(Value::as_bool).unwrap_or(true))
                    .build()?,
            )
            .send()
            .await
            .map_err(aws_sdk_dynamodb::Error::from)?;
    }
    Ok(arn)
}

/// The bucket with the template's lifecycle expiration: the emulator keeps the rule (and
/// answers it back), it does not expire objects.
async fn create_bucket(s3: &aws_sdk_s3::Client, name: &str, props: &Value) -> Result<()> {
    use aws_sdk_s3::types::{
        BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
        LifecycleRuleFilter,
    };
    s3.create_bucket()
        .bucket(name)
        .send()
        .await
        .map_err(aws_sdk_s3::Error::from)?;
    let rules = props
        .get("LifecycleConfiguration")
        .map(|l| seq(l, "Rules"))
        .unwrap_or_default();
    if rules.is_empty() {
        return Ok(());
    }
    let mut config = BucketLifecycleConfiguration::builder();
    for rule in rules {
        let mut r = LifecycleRule::builder()
            .set_id(rule.get("Id").and_then(scalar))
            .filter(LifecycleRuleFilter::builder().prefix("").build())
            .status(ExpirationStatus::from(str_of(rule, "Status")?.as_str()));
        if let Some(days) = number(rule, "ExpirationInDays") {
            r = r.expiration(
                LifecycleExpiration::builder()
                    .days(i32::try_from(days)?)
                    .build(),
            );
        }
        config = config.rules(r.build()?);
    }
    s3.put_bucket_lifecycle_configuration()
        .bucket(name)
        .lifecycle_configuration(config.build()?)
        .send()
        .await
        .map_err(aws_sdk_s3::Error::from)?;
    Ok(())
}

fn key_schema(v: &Value) -> Result<Vec<KeySchemaElement>> {
    seq(v, "KeySchema")
        .into_iter()
        .map(|k| {
            Ok(KeySchemaElement::builder()
                .attribute_name(str_of(k, "AttributeName")?)
                .key_type(KeyType::from(str_of(k, "KeyType")?.as_str()))
                .build()?)
        })
        .collect()
}

async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    props: &Value,
) -> Result<(String, String)> {
    let mut req = sqs.create_queue().queue_name(name);
    for (prop, attr) in [
        ("VisibilityTimeout", QueueAttributeName::VisibilityTimeout),
        (
            "MessageRetentionPeriod",
            QueueAttributeName::MessageRetentionPeriod,
        ),
        ("DelaySeconds", QueueAttributeName::DelaySeconds),
        (
            "ReceiveMessageWaitTimeSeconds",
            QueueAttributeName::ReceiveMessageWaitTimeSeconds,
        ),
        ("MaximumMessageSize", QueueAttributeName::MaximumMessageSize),
    ] {
        if let Some(n) = number(props, prop) {
            req = req.attributes(attr, n.to_string());
        }
    }
    for (prop, attr) in [
        ("FifoQueue", QueueAttributeName::FifoQueue),
        (
            "ContentBasedDeduplication",
            QueueAttributeName::ContentBasedDeduplication,
        ),
        ("DeduplicationScope", QueueAttributeName::DeduplicationScope),
        (
            "FifoThroughputLimit",
            QueueAttributeName::FifoThroughputLimit,
        ),
    ] {
        if let Some(v) = props.get(prop).and_then(scalar) {
            req = req.attributes(attr, v);
        }
    }
    if let Some(policy) = props.get("RedrivePolicy") {
        let json = serde_json::json!({
            "deadLetterTargetArn": policy.get("deadLetterTargetArn").and_then(scalar),
            "maxReceiveCount": number(policy, "maxReceiveCount"),
        });
        req = req.attributes(QueueAttributeName::RedrivePolicy, json.to_string());
    }
    let url = req
        .send()
        .await
        .map_err(aws_sdk_sqs::Error::from)?
        .queue_url
        .ok_or_else(|| anyhow!("CreateQueue answered no URL"))?;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(aws_sdk_sqs::Error::from)?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| anyhow!("queue {name} has no ARN"))?;
    Ok((url, arn))
}

/// Whether the template's queue is a FIFO queue.
pub fn is_fifo(props: &Value) -> bool {
    props
        .get("FifoQueue")
        .and_then(scalar)
        .is_some_and(|v| v == "true")
}

fn seq<'a>(v: &'a Value, key: &str) -> Vec<&'a Value> {
    v.get(key)
        .and_then(Value::as_sequence)
        .map(|s| s.iter().collect())
        .unwrap_or_default()
}

fn str_of(v: &Value, key: &str) -> Result<String> {
    v.get(key)
        .and_then(scalar)
        .ok_or_else(|| anyhow!("missing {key}"))
}
