//! The template and the code agree: index names, queue sizing against the retry policy's
//! bounds, and the event source mapping the local stack plays.

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use hookrelay_local::template::{Template, number};
use hookrelay_shared::retry::{MAX_RETRIES, MAX_VISIBILITY, RetryPolicy};
use hookrelay_shared::store::{
    FAILING_INDEX, LINK_INDEX, LISTING_INDEX, PENDING_INDEX, SWEEP_INDEX, TYPE_INDEX,
};
use hookrelay_tests::Stack;

#[tokio::test]
async fn provisioned_table_has_the_indexes_the_store_queries() {
    let stack = Stack::new().await;
    let ddb = aws_sdk_dynamodb::Client::new(&stack.aws);
    let table = ddb
        .describe_table()
        .table_name(&stack.settings.table_name)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let mut names: Vec<_> = table
        .global_secondary_indexes()
        .iter()
        .filter_map(|g| g.index_name().map(str::to_owned))
        .collect();
    names.sort();
    let mut expected = vec![
        LISTING_INDEX.to_owned(),
        LINK_INDEX.to_owned(),
        TYPE_INDEX.to_owned(),
        PENDING_INDEX.to_owned(),
        SWEEP_INDEX.to_owned(),
        FAILING_INDEX.to_owned(),
    ];
    expected.sort();
    assert_eq!(names, expected);
    let ttl = ddb
        .describe_time_to_live()
        .table_name(&stack.settings.table_name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|d| d.attribute_name()),
        Some("expires_at")
    );
}

#[tokio::test]
async fn queue_sizing_covers_the_longest_allowed_schedule() {
    let t = Template::workspace_default().unwrap();
    let q = &t.resource("DeliveriesQueue").unwrap()["Properties"];
    let max_receive = number(&q["RedrivePolicy"], "maxReceiveCount").unwrap();
    let retention = number(q, "MessageRetentionPeriod").unwrap();
    let visibility = number(q, "VisibilityTimeout").unwrap();

    // Every allowed attempt fits under the redrive policy, with margin for crashed invocations.
    let longest = RetryPolicy::parse(&vec!["43200"; MAX_RETRIES].join(",")).unwrap();
    assert!(
        max_receive >= u64::from(longest.max_attempts()) + 3,
        "{max_receive}"
    );
    assert!(RetryPolicy::parse(&vec!["1"; MAX_RETRIES + 1].join(",")).is_err());
    // The message outlives the longest schedule.
    let total: Duration = longest.schedule().iter().sum();
    assert!(Duration::from_secs(retention) > total + Duration::from_secs(86_400));
    assert!(MAX_VISIBILITY.as_secs() == 43_200);
    // Lambda's guidance: visibility at least six times the consumer's timeout.
    let delivery_timeout = number(
        &t.resource("DeliveryFunction").unwrap()["Properties"],
        "Timeout",
    )
    .unwrap();
    assert!(visibility >= 6 * delivery_timeout);
    // The template's parameter pattern and the code's bound agree.
    let pattern = t.parameter_default("RetrySchedule").unwrap();
    assert!(RetryPolicy::parse(pattern.as_str().unwrap()).is_ok());
}

#[tokio::test]
async fn provisioned_queue_has_the_templates_redrive_policy() {
    let stack = Stack::new().await;
    let attrs = stack
        .sqs
        .get_queue_attributes()
        .queue_url(&stack.settings.delivery_queue_url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let redrive: serde_json::Value =
        serde_json::from_str(&attrs[&QueueAttributeName::RedrivePolicy]).unwrap();
    let t = Template::workspace_default().unwrap();
    let q = &t.resource("DeliveriesQueue").unwrap()["Properties"];
    assert_eq!(
        redrive["maxReceiveCount"].as_u64(),
        number(&q["RedrivePolicy"], "maxReceiveCount")
    );
    assert!(
        redrive["deadLetterTargetArn"]
            .as_str()
            .unwrap()
            .ends_with("DeadLetterQueue")
    );
    assert_eq!(
        attrs[&QueueAttributeName::VisibilityTimeout],
        number(q, "VisibilityTimeout").unwrap().to_string()
    );
}

#[tokio::test]
async fn local_stack_matches_the_template() {
    let stack = Stack::new().await;
    let t = Template::workspace_default().unwrap();
    let props = &t.resource("Table").unwrap()["Properties"];
    let ddb = aws_sdk_dynamodb::Client::new(&stack.aws);
    let table = ddb
        .describe_table()
        .table_name(&stack.settings.table_name)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let keys = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> Vec<(String, String)> {
        schema
            .iter()
            .map(|k| {
                (
                    k.attribute_name().to_owned(),
                    k.key_type().as_str().to_owned(),
                )
            })
            .collect()
    };
    let yaml_keys = |v: &serde_yaml_ng::Value| -> Vec<(String, String)> {
        v.as_sequence()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["AttributeName"].as_str().unwrap().to_owned(),
                    k["KeyType"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(keys(table.key_schema()), yaml_keys(&props["KeySchema"]));
    for gsi in props["GlobalSecondaryIndexes"].as_sequence().unwrap() {
        let name = gsi["IndexName"].as_str().unwrap();
        let local = table
            .global_secondary_indexes()
            .iter()
            .find(|g| g.index_name() == Some(name))
            .unwrap_or_else(|| panic!("index {name} missing locally"));
        assert_eq!(
            keys(local.key_schema()),
            yaml_keys(&gsi["KeySchema"]),
            "{name}"
        );
        assert_eq!(
            local
                .projection()
                .and_then(|p| p.projection_type())
                .map(|p| p.as_str()),
            gsi["Projection"]["ProjectionType"].as_str(),
            "{name}"
        );
    }

    for (logical, url) in [
        ("DeliveriesQueue", &stack.settings.delivery_queue_url),
        ("DeadLetterQueue", &stack.settings.dead_letter_queue_url),
        (
            "BatchingQueue",
            stack.settings.batching_queue_url.as_ref().unwrap(),
        ),
    ] {
        let q = &t.resource(logical).unwrap()["Properties"];
        let attrs = stack
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap();
        for (prop, attr) in [
            (
                "MessageRetentionPeriod",
                QueueAttributeName::MessageRetentionPeriod,
            ),
            ("VisibilityTimeout", QueueAttributeName::VisibilityTimeout),
        ] {
            if let Some(n) = number(q, prop) {
                assert_eq!(attrs[&attr], n.to_string(), "{logical}.{prop}");
            }
        }
    }

    // The event source mapping the local stack plays is the template's.
    let ev = &t.resource("DeliveryFunction").unwrap()["Properties"]["Events"]["Deliveries"]["Properties"];
    let param = |v: &serde_yaml_ng::Value| {
        let resolved = t.resolve(v, &Default::default()).unwrap();
        hookrelay_local::template::scalar(&resolved)
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert_eq!(stack.mapping.batch_size as u64, param(&ev["BatchSize"]));
    assert_eq!(
        stack.mapping.window.as_secs(),
        param(&ev["MaximumBatchingWindowInSeconds"])
    );
    assert!(stack.mapping.report_batch_item_failures);
}
