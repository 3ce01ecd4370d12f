//! The listing indexes: what they copy and what a page costs, filtered or not. In their own
//! binary because they count requests, and the counter is the process's: each test holds
//! [`COUNTING`] throughout, so they run one at a time.

#[path = "listing/attempt_pages.rs"]
mod attempt_pages;
#[path = "listing/event_pages.rs"]
mod event_pages;
#[path = "listing/filtered.rs"]
mod filtered;

/// Held by every test of this binary for its whole run.
static COUNTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Events and attempts are listed on pages, which name them and hold nothing else: no event
/// is copied to the listing index (a copy is a write unit each). A page is read back with
/// one `Query` (and, for events, one of the index, for events stored before pages) and one
/// `BatchGetItem`, and still shows whole items.
#[tokio::test]
async fn the_listing_index_copies_no_payload_and_a_page_costs_two_requests() {
    let _one_at_a_time = COUNTING.lock().await;
    use aws_sdk_dynamodb::types::AttributeValue;
    use hookrelay_shared::requests as counted;
    use hookrelay_tests::{
        Receiver, Stack, admin_call, create_endpoint, create_source, send_event,
    };

    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let source = create_source(&stack, serde_json::json!({"name": "s"})).await;
    create_endpoint(
        &stack,
        serde_json::json!({"name": "r", "url": receiver.url}),
    )
    .await;
    let padding = "p".repeat(2048);
    for n in 0..3 {
        let body = format!(
            r#"{{"event_type": "order.created", "data": {{"n": {n}, "pad": "{padding}"}}}}"#
        );
        send_event(&stack, &source, body.as_bytes()).await;
    }
    stack.drain(&stack.delivery()).await;

    let ddb = aws_sdk_dynamodb::Client::new(&stack.aws);
    let pages = ddb
        .query()
        .table_name(&stack.settings.table_name)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S("PAGE#default#ATT".into()))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert!(!pages.is_empty());
    for page in &pages {
        let mut names: Vec<&str> = page.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(names, ["entries", "expires_at", "pk", "sk"]);
    }
    // Events are listed on pages too: the index holds none of them.
    let copies = ddb
        .query()
        .table_name(&stack.settings.table_name)
        .index_name(hookrelay_shared::store::LISTING_INDEX)
        .key_condition_expression("gsi1pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S("default#EVT".into()))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert!(copies.is_empty(), "{copies:?}");
    let event_pages = ddb
        .query()
        .table_name(&stack.settings.table_name)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S("PAGE#default#EVT".into()))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert!(!event_pages.is_empty());
    for page in &event_pages {
        let mut names: Vec<&str> = page.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(names, ["entries", "expires_at", "pk", "sk"]);
    }

    for (path, kind) in [
        ("/workspaces/default/events?limit=50", "events"),
        ("/workspaces/default/attempts?limit=50", "attempts"),
        (
            "/workspaces/default/events?event_type=order.created",
            "filtered events",
        ),
    ] {
        let before = counted::snapshot();
        let (status, page) = admin_call(&stack, "GET", path, None).await;
        let sent = counted::since(&before);
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["data"].as_array().unwrap().len(), 3, "{kind}: {page}");
        let q = ("DynamoDB".to_owned(), "Query".to_owned());
        let b = ("DynamoDB".to_owned(), "BatchGetItem".to_owned());
        // An event listing reads the index too, side by side with its pages, for the events
        // stored before pages.
        let queries = if kind.contains("events") { 2 } else { 1 };
        assert_eq!(sent.get(&q), Some(&queries), "{kind}: {sent:?}");
        assert_eq!(sent.get(&b), Some(&1), "{kind}: {sent:?}");
    }
    // Whole items come back: an attempt's endpoint and an event's fan-out.
    let (_, attempts) = admin_call(&stack, "GET", "/workspaces/default/attempts", None).await;
    assert!(attempts["data"][0]["endpoint_id"].is_string(), "{attempts}");
    let (_, events) = admin_call(&stack, "GET", "/workspaces/default/events", None).await;
    assert_eq!(
        events["data"][0]["endpoint_ids"].as_array().unwrap().len(),
        1
    );
}
