//! Every AWS request a function sends is allowed by that function's IAM policy in
//! `template.yaml`. Each function is driven through its paths on the local stack while the
//! SDK request counter records what it sent; each `(service, operation)` must appear as an
//! action in the function's policy statements. A request the policy forgot is refused in AWS
//! only, where no local test would notice it.
//!
//! One counting test in this binary, so the process-wide counter sees one function at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hookrelay_shared::requests::{self, Counts};
use hookrelay_shared::{Timestamp, store::AttemptFilter};
use hookrelay_tests::receiver::Reply;
use hookrelay_tests::{
    Receiver, Stack, admin_call as call, admin_request, create_endpoint, create_source, request,
    send_event,
};
use serde_json::json;

fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

/// Actions each function's policy statements allow, by the function's logical id.
fn policies() -> BTreeMap<String, BTreeSet<String>> {
    use serde_yaml_ng::Value as Yaml;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let template: Yaml = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = BTreeMap::new();
    for (name, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let name = name.as_str().unwrap().to_owned();
        let mut actions = BTreeSet::new();
        for policy in resource["Properties"]["Policies"].as_sequence().unwrap() {
            for statement in policy["Statement"].as_sequence().unwrap() {
                assert_eq!(statement["Effect"].as_str(), Some("Allow"));
                match &statement["Action"] {
                    Yaml::String(a) => {
                        actions.insert(a.clone());
                    }
                    Yaml::Sequence(list) => {
                        actions.extend(list.iter().map(|a| a.as_str().unwrap().to_owned()))
                    }
                    other => panic!("{name}: unexpected Action {other:?}"),
                }
            }
        }
        out.insert(name, actions);
    }
    out
}

fn action((service, operation): &(String, String)) -> String {
    let prefix = match service.as_str() {
        "DynamoDB" => "dynamodb",
        "SQS" => "sqs",
        "EventBridge" => "events",
        "SSM" => "ssm",
        "S3" => "s3",
        other => panic!("no IAM prefix known for {other}"),
    };
    // SQS authorizes its batch operations by the single one's action.
    let operation = match service.as_str() {
        "SQS" => operation.strip_suffix("Batch").unwrap_or(operation),
        _ => operation,
    };
    format!("{prefix}:{operation}")
}

fn check(function: &str, sent: &Counts, policies: &BTreeMap<String, BTreeSet<String>>) {
    let allowed = &policies[function];
    assert!(!sent.is_empty(), "{function} was not exercised");
    let refused: Vec<String> = sent
        .keys()
        .map(action)
        .filter(|a| !allowed.contains(a))
        .collect();
    assert!(
        refused.is_empty(),
        "{function} sends {refused:?}, which its policy does not allow (it allows {allowed:?})"
    );
}

#[tokio::test]
async fn every_request_a_function_sends_is_allowed_by_its_policy() {
    let policies = policies();
    let stack = Stack::with_schedule("1").await;
    let good = Receiver::start().await;
    let bad = Receiver::start().await;
    bad.replies(vec![], Reply::status(500));

    // The management API: every kind of route, recovery and the dead-letter tools included.
    let before = requests::snapshot();
    let admin = stack.admin();
    hookrelay_shared::warm::connections(&admin.store, &admin.queue).await;
    let source = create_source(&stack, json!({"name": "s"})).await;
    let ops = create_endpoint(
        &stack,
        json!({"name": "ops", "url": good.url, "events": ["never.matches"]}),
    )
    .await;
    let ok = create_endpoint(
        &stack,
        json!({"name": "ok", "url": good.url, "events": ["order.*"]}),
    )
    .await;
    let failing = create_endpoint(
        &stack,
        json!({"name": "failing", "url": bad.url, "events": ["order.*"]}),
    )
    .await;
    let batch = create_endpoint(
        &stack,
        json!({"name": "batch", "url": good.url, "events": ["order.*"],
               "delivery": {"mode": "batch", "batch": {"size": 2, "interval": 1}}}),
    )
    .await;
    let (s, _) = call(
        &stack,
        "PUT",
        "/workspaces/default",
        Some(json!({"name": "default", "settings": {
            "ops_endpoint_id": ops["id"],
            "failing_after": 1,
            "disable_failing": {"after_days": 1, "min_failures": 1},
            "warn_before_deactivation": {"days": 30},
        }})),
    )
    .await;
    assert_eq!(s, 200);
    let ok_id = ok["id"].as_str().unwrap();
    for (method, path, body) in [
        ("GET", "/workspaces".to_owned(), None),
        ("GET", "/workspaces/default".to_owned(), None),
        (
            "POST",
            "/workspaces".to_owned(),
            Some(json!({"name": "other"})),
        ),
        ("DELETE", "/workspaces/other".to_owned(), None),
        ("GET", "/workspaces/default/sources".to_owned(), None),
        ("GET", format!("/workspaces/default/sources/{source}"), None),
        ("GET", "/workspaces/default/endpoints".to_owned(), None),
        (
            "GET",
            format!("/workspaces/default/endpoints/{ok_id}"),
            None,
        ),
        (
            "POST",
            format!("/workspaces/default/endpoints/{ok_id}/secret/rotate"),
            None,
        ),
        (
            "POST",
            format!("/workspaces/default/endpoints/{ok_id}/test"),
            None,
        ),
        (
            "POST",
            "/workspaces/default/keys".to_owned(),
            Some(json!({"name": "ci"})),
        ),
        ("GET", "/workspaces/default/keys".to_owned(), None),
        (
            "POST",
            "/workspaces/default/events".to_owned(),
            Some(json!({"event_type": "order.published", "data": {"n": 1}})),
        ),
        // Over 256 KiB: the payload goes to S3.
        (
            "POST",
            "/workspaces/default/events".to_owned(),
            Some(json!({"event_type": "order.published", "data": "x".repeat(300 * 1024)})),
        ),
        ("GET", "/dlq".to_owned(), None),
    ] {
        let (s, body) = call(&stack, method, &path, body).await;
        assert!(s < 300, "{method} {path}: {s} {body}");
    }
    let dump = hookrelay_admin::handle(
        &stack.admin(),
        admin_request("GET", "/workspaces/default/config/dump", None),
    )
    .await;
    assert_eq!(dump.status(), 200);
    let (s, body) = call(
        &stack,
        "POST",
        "/workspaces/default/config/sync?dry_run=true",
        Some(json!({"sources": [{"name": "s"}], "endpoints": []})),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    check("AdminFunction", &requests::since(&before), &policies);

    // Ingest: new events, a duplicate by idempotency key, and a fan-out to every kind.
    let before = requests::snapshot();
    let ingest = stack.ingest();
    hookrelay_shared::warm::connections(&ingest.store, &ingest.queue).await;
    for n in 0..3 {
        let body = format!(r#"{{"event_type": "order.created", "data": {{"n": {n}}}}}"#);
        send_event(&stack, &source, body.as_bytes()).await;
    }
    let large = format!(
        r#"{{"event_type": "order.created", "data": "{}"}}"#,
        "x".repeat(300 * 1024)
    );
    let large_id = send_event(&stack, &source, large.as_bytes()).await;
    for _ in 0..2 {
        let resp = hookrelay_ingest::handle(
            &ingest,
            request(
                "POST",
                &format!("/in/{source}"),
                &[("idempotency-key", "same")],
                br#"{"event_type": "order.paid"}"#,
            ),
        )
        .await;
        assert!(resp.status().is_success(), "{}", resp.body());
    }
    let sent = requests::since(&before);
    assert!(
        sent.keys().any(|(service, _)| service == "S3"),
        "a large payload went to S3: {sent:?}"
    );
    check("IngestFunction", &sent, &policies);

    // Delivery: successes, failures to retry, a failure streak (ops events), exhaustion to
    // the dead-letter queue, and the batching queue's collection.
    let before = requests::snapshot();
    let delivery = stack.delivery();
    hookrelay_shared::warm::connections(&delivery.store, &delivery.queue).await;
    stack.deliver_once(&delivery, Duration::ZERO).await;
    for _ in 0..3 {
        stack.deliver_once(&delivery, Duration::from_secs(2)).await;
    }
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for _ in 0..2 {
        stack.collect_once(&delivery, Duration::from_secs(1)).await;
    }
    stack.drain(&delivery).await;
    let sent = requests::since(&before);
    assert!(
        sent.contains_key(&("SQS".to_owned(), "SendMessage".to_owned())),
        "a task was dead-lettered: {sent:?}"
    );
    check("DeliveryFunction", &sent, &policies);
    let attempts = stack
        .store
        .find_attempts(
            "default",
            &AttemptFilter {
                endpoint_id: Some(batch["id"].as_str().unwrap().to_owned()),
                ..Default::default()
            },
            &Default::default(),
        )
        .await
        .unwrap();
    assert!(
        !attempts.data.is_empty(),
        "the batch endpoint was delivered to"
    );

    // The sweeper: failing and stale endpoints, warnings, stranded events.
    let before = requests::snapshot();
    let report = hookrelay_sweeper::handle(&stack.sweeper(), Timestamp::now().plus(days(2)))
        .await
        .unwrap();
    assert!(
        report.deactivated > 0,
        "the failing endpoint was deactivated: {report:?}"
    );
    hookrelay_sweeper::handle(&stack.sweeper(), Timestamp::now().plus(days(400)))
        .await
        .unwrap();
    check("SweeperFunction", &requests::since(&before), &policies);

    // Back to the management API for what the other functions made: events, attempts, the
    // dead-letter queue's redrive, and reactivation with recovery.
    let before = requests::snapshot();
    let failing_id = failing["id"].as_str().unwrap();
    let since = Timestamp::now().minus(days(1));
    let (_, events) = call(&stack, "GET", "/workspaces/default/events", None).await;
    let event_id = events["data"][0]["id"].as_str().unwrap().to_owned();
    let (_, attempts) = call(&stack, "GET", "/workspaces/default/attempts", None).await;
    let attempt_id = attempts["data"][0]["id"].as_str().unwrap().to_owned();
    for (method, path) in [
        ("GET", format!("/workspaces/default/events/{event_id}")),
        ("GET", format!("/workspaces/default/events/{large_id}")),
        ("GET", format!("/workspaces/default/attempts/{attempt_id}")),
        (
            "GET",
            format!("/workspaces/default/attempts?event_id={event_id}"),
        ),
        (
            "GET",
            format!("/workspaces/default/attempts?endpoint_id={ok_id}&status=FAILED"),
        ),
        (
            "GET",
            format!("/workspaces/default/events?source_id={source}&event_type=t"),
        ),
        (
            "GET",
            format!("/workspaces/default/events?source_id={source}"),
        ),
        (
            "POST",
            format!("/workspaces/default/events/{event_id}/retry?endpoint_id={ok_id}"),
        ),
        ("POST", "/dlq/redrive".to_owned()),
        ("GET", "/dlq?queue=ordered".to_owned()),
        ("POST", "/dlq/redrive?queue=ordered".to_owned()),
        (
            "POST",
            format!(
                "/workspaces/default/endpoints/{failing_id}/enable?recover_since={}",
                since
            ),
        ),
        ("DELETE", format!("/workspaces/default/endpoints/{ok_id}")),
        ("DELETE", format!("/workspaces/default/sources/{source}")),
    ] {
        let (s, body) = call(&stack, method, &path, None).await;
        assert!(s < 300, "{method} {path}: {s} {body}");
    }
    // A letter dead-lettered while a redrive runs (a task it moved that failed again) is put
    // back for the next call, not moved: the one path that changes a letter's visibility.
    let (key, stored) = stack
        .store
        .get_event("default", &event_id)
        .await
        .unwrap()
        .unwrap();
    let admin = stack.admin();
    let redrive = tokio::spawn(async move {
        hookrelay_admin::handle(&admin, admin_request("POST", "/dlq/redrive", None)).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    hookrelay_shared::queue::Queue::connect(&stack.aws, &stack.settings)
        .dead_letter(&hookrelay_shared::DeadLetter {
            task: hookrelay_shared::DeliveryTask::new(&stored, &key, failing_id),
            reason: "exhausted".into(),
            attempts: 1,
            last_status: Some(500),
            last_error_code: None,
            endpoint_url: bad.url.clone(),
            event_type: stored.event_type.clone(),
            failed_at: Timestamp::now(),
        })
        .await
        .unwrap();
    assert_eq!(redrive.await.unwrap().status(), 200);
    let sent = requests::since(&before);
    assert!(
        sent.contains_key(&("SQS".to_owned(), "ChangeMessageVisibilityBatch".to_owned())),
        "the late letter was put back: {sent:?}"
    );
    check("AdminFunction", &sent, &policies);
}

/// The admin API receives, deletes and puts back letters on both dead-letter queues: the
/// counter sees operations, not which queue they went to.
#[test]
fn the_admin_policy_covers_both_dead_letter_queues() {
    use serde_yaml_ng::Value as Yaml;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let template: Yaml = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let wanted = [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
    ];
    for queue in ["DeadLetterQueue", "OrderedDeadLetterQueue"] {
        let mut allowed = BTreeSet::new();
        for policy in template["Resources"]["AdminFunction"]["Properties"]["Policies"]
            .as_sequence()
            .unwrap()
        {
            for statement in policy["Statement"].as_sequence().unwrap() {
                let resources = serde_yaml_ng::to_string(&statement["Resource"]).unwrap();
                if !resources.contains(&format!("GetAtt {queue}.Arn")) {
                    continue;
                }
                for a in statement["Action"].as_sequence().into_iter().flatten() {
                    allowed.insert(a.as_str().unwrap().to_owned());
                }
            }
        }
        for action in wanted {
            assert!(allowed.contains(action), "{action} on {queue}: {allowed:?}");
        }
    }
}

/// The counter sees operations, not resources: an index the admin API pages through but its
/// policy does not name would be refused in AWS only.
#[test]
fn the_admin_policy_names_every_index_a_listing_queries() {
    use hookrelay_shared::store::{LINK_INDEX, LISTING_INDEX, TYPE_INDEX};
    use serde_yaml_ng::Value as Yaml;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let template: Yaml = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut queryable = BTreeSet::new();
    for policy in template["Resources"]["AdminFunction"]["Properties"]["Policies"]
        .as_sequence()
        .unwrap()
    {
        for statement in policy["Statement"].as_sequence().unwrap() {
            let actions = serde_yaml_ng::to_string(&statement["Action"]).unwrap();
            if !actions.contains("dynamodb:Query") {
                continue;
            }
            for resource in statement["Resource"].as_sequence().into_iter().flatten() {
                queryable.insert(serde_yaml_ng::to_string(resource).unwrap());
            }
        }
    }
    for index in [LISTING_INDEX, LINK_INDEX, TYPE_INDEX] {
        let wanted = format!("${{Table.Arn}}/index/{index}");
        assert!(
            queryable.iter().any(|r| r.contains(&wanted)),
            "{index} is not in {queryable:?}"
        );
    }
}
