//! Faults of our own dependencies: nothing already accepted is lost, and no client gets a
//! 500 for them.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use hookrelay_shared::Timestamp;
use hookrelay_tests::{Receiver, Stack, admin_request, json_of, request};
use serde_json::json;

type Item = HashMap<String, AttributeValue>;

async fn setup(stack: &Stack, url: &str) -> String {
    let admin = stack.admin();
    let resp = hookrelay_admin::handle(
        &admin,
        admin_request(
            "POST",
            "/workspaces/default/endpoints",
            Some(json!({"name": "r", "url": url})),
        ),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let resp = hookrelay_admin::handle(
        &admin,
        admin_request(
            "POST",
            "/workspaces/default/sources",
            Some(json!({"name": "s"})),
        ),
    )
    .await;
    json_of(&resp)["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn storage_down_at_ingest_is_a_503_and_queues_nothing() {
    let stack = Stack::new().await;
    let source = setup(&stack, "http://127.0.0.1:9/hook").await;
    let mut settings = stack.settings.clone();
    settings.table_name = "no-such-table".into();
    let ctx = hookrelay_ingest::Context::new(&stack.aws, settings);
    let resp = hookrelay_ingest::handle(
        &ctx,
        request(
            "POST",
            &format!("/in/{source}"),
            &[],
            br#"{"event_type":"x"}"#,
        ),
    )
    .await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "5");
    assert_eq!(json_of(&resp)["error"]["code"], "unavailable");
    assert_eq!(
        stack.queue_depth(&stack.settings.delivery_queue_url).await,
        (0, 0)
    );
}

#[tokio::test]
async fn queue_down_at_ingest_keeps_the_event_and_the_sweeper_delivers_it() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let second = Receiver::start().await;
    let source = setup(&stack, &receiver.url).await;
    let resp = hookrelay_admin::handle(
        &stack.admin(),
        admin_request(
            "POST",
            "/workspaces/default/endpoints",
            Some(json!({"name": "r2", "url": second.url})),
        ),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let mut settings = stack.settings.clone();
    settings.delivery_queue_url = format!("{}-gone", stack.settings.delivery_queue_url);
    let ctx = hookrelay_ingest::Context::new(&stack.aws, settings);
    let body = br#"{"event_type":"x","data":{"keep":"me"}}"#;
    let resp =
        hookrelay_ingest::handle(&ctx, request("POST", &format!("/in/{source}"), &[], body)).await;
    // Stored durably, so accepted: the queueing is ours to finish.
    assert_eq!(resp.status(), 202, "{}", resp.body());
    assert_eq!(
        stack.queue_depth(&stack.settings.delivery_queue_url).await,
        (0, 0)
    );

    let later = Timestamp::now().plus(Duration::from_secs(600));
    let report = hookrelay_sweeper::handle(&stack.sweeper(), later)
        .await
        .unwrap();
    assert_eq!(report.reenqueued_events, 1);
    stack.drain(&stack.delivery()).await;
    for r in [&receiver, &second] {
        let got = r.deliveries();
        assert_eq!(got.len(), 1, "exactly once per endpoint");
        assert_eq!(&got[0].body[..], body);
    }
    // A second reconciliation finds nothing left.
    let again = hookrelay_sweeper::handle(&stack.sweeper(), later)
        .await
        .unwrap();
    assert_eq!(again.pending_found, 0);
}

#[tokio::test]
async fn storage_down_at_delivery_fails_the_batch_without_losing_it() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let source = setup(&stack, &receiver.url).await;
    let resp = hookrelay_ingest::handle(
        &stack.ingest(),
        request(
            "POST",
            &format!("/in/{source}"),
            &[],
            br#"{"event_type":"x"}"#,
        ),
    )
    .await;
    assert_eq!(resp.status(), 202);

    // A short visibility timeout, so the failed batch comes back within the test.
    stack
        .sqs
        .set_queue_attributes()
        .queue_url(&stack.settings.delivery_queue_url)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "3",
        )
        .send()
        .await
        .unwrap();
    let mut settings = stack.settings.clone();
    settings.table_name = "no-such-table".into();
    let broken = hookrelay_delivery::Context::new(&stack.aws, settings).unwrap();
    let r = stack.deliver_once(&broken, Duration::ZERO).await.unwrap();
    assert_eq!((r.received, r.failed, r.deleted), (1, 1, 0));
    assert!(receiver.deliveries().is_empty());

    // The message is still there; make it visible again and a healthy function delivers it.
    let msgs = stack
        .sqs
        .receive_message()
        .queue_url(&stack.settings.delivery_queue_url)
        // A long poll: a short poll's empty answer would prove nothing.
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert!(msgs.is_empty(), "hidden for the queue's visibility timeout");
    let (_, in_flight) = stack.queue_depth(&stack.settings.delivery_queue_url).await;
    assert_eq!(in_flight, 1);

    // Storage is back: the same task is delivered, once, as its first attempt.
    let r = stack
        .deliver_once(&stack.delivery(), Duration::from_secs(6))
        .await
        .expect("the batch comes back");
    assert_eq!((r.received, r.deleted), (1, 1));
    let got = receiver.deliveries();
    assert_eq!(got.len(), 1);
    let id = got[0].header("webhook-id");
    let attempts = hookrelay_tests::attempts_of(&stack, &id).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        attempts[0]["attempt_number"], 1,
        "a failed read is not an attempt"
    );
}

#[tokio::test]
async fn malformed_task_is_dropped_not_retried_forever() {
    let stack = Stack::new().await;
    stack
        .sqs
        .send_message()
        .queue_url(&stack.settings.delivery_queue_url)
        .message_body("not a task")
        .send()
        .await
        .unwrap();
    let r = stack
        .deliver_once(&stack.delivery(), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!((r.received, r.deleted, r.failed), (1, 1, 0));
}

#[tokio::test]
async fn sweeper_does_not_disable_an_endpoint_that_just_succeeded() {
    // The index read and the update race: the update's condition re-checks staleness.
    let stack = Stack::new().await;
    let now = Timestamp::now();
    let old = now.minus(Duration::from_secs(400 * 86_400));
    let mut ep =
        hookrelay_shared::Endpoint::new("default", "e", "https://example.com", vec!["*".into()]);
    ep.created_at = old;
    ep.updated_at = old;
    stack.store.put_endpoint(&mut ep).await.unwrap();
    stack
        .store
        .record_success("default", &ep.id, now, Duration::from_secs(3600))
        .await
        .unwrap();
    let cutoff = now.minus(Duration::from_secs(365 * 86_400));
    let disabled = stack
        .store
        .disable_endpoint("default", &ep.id, "stale", now, Some(cutoff))
        .await
        .unwrap();
    assert!(!disabled);
    ep = stack
        .store
        .get_endpoint("default", &ep.id)
        .await
        .unwrap()
        .unwrap();
    assert!(ep.enabled);
    // Throttled: a second success within the hour writes nothing.
    let wrote = stack
        .store
        .record_success(
            "default",
            &ep.id,
            now.plus(Duration::from_secs(60)),
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
    assert!(!wrote);
}

#[tokio::test]
async fn an_expired_event_no_longer_blocks_its_key() {
    // DynamoDB's TTL deletes late; an expired event must not swallow a new one.
    let stack = Stack::new().await;
    let mut event = hookrelay_shared::Event {
        id: hookrelay_shared::ids::new_id("evt"),
        workspace: "default".into(),
        source_id: "src_x".into(),
        event_type: "x".into(),
        idempotency_key: "k".into(),
        received_at: Timestamp::now().minus(Duration::from_secs(10)),
        payload: b"{}".to_vec(),
        endpoint_ids: vec![],
        content_type: None,
        hops: 0,
        trace: None,
    };
    let first = stack
        .store
        .insert_event(&event, "src_x", false, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(matches!(
        first,
        hookrelay_shared::store::InsertOutcome::Inserted { .. }
    ));
    event.id = hookrelay_shared::ids::new_id("evt");
    event.received_at = Timestamp::now();
    let again = stack
        .store
        .insert_event(&event, "src_x", false, Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(
        matches!(
            again,
            hookrelay_shared::store::InsertOutcome::Inserted { .. }
        ),
        "{again:?}"
    );
    let dup = stack
        .store
        .insert_event(&event, "src_x", false, Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(matches!(
        dup,
        hookrelay_shared::store::InsertOutcome::Duplicate(_)
    ));
}

#[tokio::test]
async fn a_nearly_spent_invocation_postpones_instead_of_overrunning() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let source = setup(&stack, &receiver.url).await;
    hookrelay_ingest::handle(
        &stack.ingest(),
        request(
            "POST",
            &format!("/in/{source}"),
            &[],
            br#"{"event_type":"x"}"#,
        ),
    )
    .await;
    let ctx = stack.delivery();
    let batch =
        hookrelay_local::esm::receive_batch(&stack.sqs, &stack.mapping, Duration::from_secs(1))
            .await
            .unwrap();
    let event = hookrelay_local::esm::to_event(&batch, &stack.mapping);
    let deadline = std::time::Instant::now() + Duration::from_millis(500);
    let resp = hookrelay_delivery::handle_traced(&ctx, event, None, Some(deadline)).await;
    assert_eq!(
        resp.batch_item_failures.len(),
        1,
        "reported for another try"
    );
    assert!(receiver.deliveries().is_empty(), "no request started");
    hookrelay_local::esm::complete(&stack.sqs, &stack.mapping, &batch, Some(&resp))
        .await
        .unwrap();
    // Visible again at once, and delivered by an invocation with time to spare.
    let r = stack
        .deliver_once(&ctx, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(r.deleted, 1);
    assert_eq!(receiver.deliveries().len(), 1);
}

/// Ingests one event for an endpoint on `receiver`, then takes its item out of the table:
/// the state of a task queued before its event's write landed, as ingest allows. Answers
/// the item, to put back.
async fn queued_before_stored(stack: &Stack, receiver: &Receiver) -> Item {
    let source = setup(stack, &receiver.url).await;
    let resp = hookrelay_ingest::handle(
        &stack.ingest(),
        request(
            "POST",
            &format!("/in/{source}"),
            &[],
            br#"{"event_type":"x"}"#,
        ),
    )
    .await;
    assert_eq!(resp.status(), 202);
    let dynamo = aws_sdk_dynamodb::Client::new(&stack.aws);
    let items = dynamo
        .scan()
        .table_name(&stack.settings.table_name)
        .filter_expression("sk = :evt")
        .expression_attribute_values(":evt", AttributeValue::S("EVT".into()))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert_eq!(items.len(), 1);
    let item = items[0].clone();
    dynamo
        .delete_item()
        .table_name(&stack.settings.table_name)
        .key("pk", item["pk"].clone())
        .key("sk", item["sk"].clone())
        .send()
        .await
        .unwrap();
    item
}

#[tokio::test]
async fn a_task_that_overtakes_its_event_waits_for_it_in_the_same_invocation() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let item = queued_before_stored(&stack, &receiver).await;

    // The event's write lands a moment after delivery has looked for it.
    let dynamo = aws_sdk_dynamodb::Client::new(&stack.aws);
    let table = stack.settings.table_name.clone();
    let late_write = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        dynamo
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
    });

    let r = stack
        .deliver_once(&stack.delivery(), Duration::ZERO)
        .await
        .unwrap();
    late_write.await.unwrap();
    assert_eq!((r.received, r.deleted, r.failed), (1, 1, 0));
    assert_eq!(receiver.deliveries().len(), 1);
}

#[tokio::test]
async fn a_task_whose_event_never_arrives_waits_and_is_kept() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let item = queued_before_stored(&stack, &receiver).await;

    // Within the store grace the task is neither delivered nor dropped: it comes back later.
    let r = stack
        .deliver_once(&stack.delivery(), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!((r.received, r.deleted, r.failed), (1, 0, 1));
    assert!(receiver.deliveries().is_empty());
    let (_, in_flight) = stack.queue_depth(&stack.settings.delivery_queue_url).await;
    assert_eq!(in_flight, 1);

    // It comes back after its short wait, still without its event: it waits again, kept.
    let r = stack
        .deliver_once(&stack.delivery(), Duration::from_secs(8))
        .await
        .expect("the task comes back");
    assert_eq!((r.received, r.deleted, r.failed), (1, 0, 1));
    assert!(receiver.deliveries().is_empty());

    // The store write lands late: the next receive delivers it, as its first attempt.
    let dynamo = aws_sdk_dynamodb::Client::new(&stack.aws);
    dynamo
        .put_item()
        .table_name(&stack.settings.table_name)
        .set_item(Some(item.clone()))
        .send()
        .await
        .unwrap();
    let r = stack
        .deliver_once(&stack.delivery(), Duration::from_secs(8))
        .await
        .expect("the task comes back");
    assert_eq!((r.received, r.deleted, r.failed), (1, 1, 0));
    assert_eq!(receiver.deliveries().len(), 1);
    let id = item["id"].as_s().unwrap();
    let attempts = hookrelay_tests::attempts_of(&stack, id).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        attempts[0]["attempt_number"], 1,
        "waiting receives are not attempts"
    );
}
