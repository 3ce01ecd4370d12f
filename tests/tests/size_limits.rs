//! Sizes are checked before anything is stored or queued, and what is stored always fits:
//! a publish over the body limit is refused (413) and leaves nothing behind, an endpoint's
//! own headers are bounded, a receiver's oversized answer is cut and marked, and an attempt
//! too large for an item is stored slimmed instead of costing its `BatchWriteItem`
//! neighbours their history.

use std::time::Duration;

use hookrelay_shared::{
    Attempt, AttemptRequest, AttemptResponse, AttemptStatus, Timestamp, TriggerMode, ids,
};
use hookrelay_tests::receiver::Reply;
use hookrelay_tests::{
    Receiver, Stack, admin_call as call, attempts_of, create_endpoint, create_source, send_event,
};
use serde_json::json;

#[tokio::test]
async fn a_publish_over_the_body_limit_is_refused_and_stores_nothing() {
    let stack = Stack::new().await;
    create_endpoint(
        &stack,
        json!({"name": "e", "url": "https://example.com/hook"}),
    )
    .await;
    let big = "x".repeat(stack.settings.max_body_bytes);
    let (s, body) = call(
        &stack,
        "POST",
        "/workspaces/default/events",
        Some(json!({"event_type": "big", "data": big})),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{body}"
    );
    let (_, events) = call(&stack, "GET", "/workspaces/default/events", None).await;
    assert_eq!(events["data"].as_array().unwrap().len(), 0, "{events}");
    assert_eq!(
        stack.queue_depth(&stack.settings.delivery_queue_url).await,
        (0, 0)
    );

    // Just under the limit is stored and queued.
    let fits = "x".repeat(stack.settings.max_body_bytes - 100);
    let (s, body) = call(
        &stack,
        "POST",
        "/workspaces/default/events",
        Some(json!({"event_type": "big", "data": fits})),
    )
    .await;
    assert_eq!(s, 202, "{body}");
}

#[tokio::test]
async fn endpoint_headers_are_bounded() {
    let stack = Stack::new().await;
    let many: serde_json::Map<String, serde_json::Value> =
        (0..21).map(|i| (format!("x-h{i}"), json!("v"))).collect();
    let long_value = json!({"x-long": "v".repeat(2049)});
    let heavy: serde_json::Map<String, serde_json::Value> = (0..5)
        .map(|i| (format!("x-heavy{i}"), json!("v".repeat(2000))))
        .collect();
    for (headers, field) in [
        (json!(many), "headers"),
        (long_value, "headers.x-long"),
        (json!(heavy), "headers"),
    ] {
        let (s, body) = call(
            &stack,
            "POST",
            "/workspaces/default/endpoints",
            Some(json!({"name": "e", "url": "https://example.com/hook", "headers": headers})),
        )
        .await;
        assert_eq!(s, 400, "{body}");
        assert!(
            body["error"]["fields"].get(field).is_some(),
            "{field} is named: {body}"
        );
    }
    let twenty: serde_json::Map<String, serde_json::Value> = (0..20)
        .map(|i| (format!("x-h{i}"), json!("v".repeat(300))))
        .collect();
    let (s, body) = call(
        &stack,
        "POST",
        "/workspaces/default/endpoints",
        Some(json!({"name": "ok", "url": "https://example.com/hook", "headers": twenty})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
}

#[tokio::test]
async fn an_oversized_answer_is_cut_and_marked() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let mut reply = Reply::status(200).body("y".repeat(64 * 1024));
    for i in 0..40 {
        reply = reply.header(&format!("x-r{i}"), &"z".repeat(1500));
    }
    receiver.replies(vec![], reply);
    create_endpoint(&stack, json!({"name": "e", "url": receiver.url})).await;
    let source = create_source(&stack, json!({"name": "s"})).await;
    let event = send_event(&stack, &source, br#"{"event_type":"a"}"#).await;
    stack
        .deliver_once(&stack.delivery(), Duration::ZERO)
        .await
        .unwrap();
    let attempts = attempts_of(&stack, &event).await;
    assert_eq!(attempts.len(), 1);
    let response = &attempts[0]["response"];
    assert_eq!(response["truncated"], true, "{response}");
    assert_eq!(response["body"].as_str().unwrap().len(), 16 * 1024);
    let header_bytes: usize = response["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| k.len() + v.as_str().unwrap().len())
        .sum();
    assert!(header_bytes <= 8 * 1024, "{header_bytes}");
}

fn attempt(ws: &str, n: u32, huge: bool) -> Attempt {
    let now = Timestamp::now();
    Attempt {
        id: ids::new_id(ids::ATTEMPT),
        workspace: ws.to_owned(),
        event_id: format!("evt_{n}"),
        endpoint_id: "ep_1".into(),
        status: AttemptStatus::Failed,
        attempt_number: 1,
        trigger_mode: TriggerMode::Automatic,
        scheduled_at: now,
        attempted_at: now,
        exhausted: false,
        error_code: Some("HTTP_STATUS".into()),
        error_message: huge.then(|| "e".repeat(300 * 1024)),
        next_attempt_at: None,
        request: AttemptRequest {
            method: "POST".into(),
            url: "https://example.com/hook".into(),
            headers: Default::default(),
        },
        response: Some(AttemptResponse {
            status: Some(500),
            latency: 3,
            headers: Default::default(),
            body: Some(if huge {
                "b".repeat(300 * 1024)
            } else {
                "oops".into()
            }),
            truncated: false,
        }),
    }
}

#[tokio::test]
async fn an_attempt_too_large_for_an_item_is_stored_slimmed_and_its_neighbours_kept() {
    let stack = Stack::new().await;
    // 25 attempts, one BatchWriteItem: the huge one from a hostile tenant in the middle.
    let attempts: Vec<Attempt> = (0..25)
        .map(|n| {
            if n == 12 {
                attempt("hostile", n, true)
            } else {
                attempt("victim", n, false)
            }
        })
        .collect();
    stack
        .store
        .put_attempts(&attempts, Duration::from_secs(3600))
        .await
        .expect("every attempt is written");
    for a in &attempts {
        let stored = stack
            .store
            .get_attempt(&a.workspace, &a.id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("attempt {} of {} is stored", a.id, a.workspace));
        let response = stored.response.unwrap();
        if a.workspace == "hostile" {
            assert!(response.truncated);
            assert_eq!(response.body, None);
            assert!(stored.error_message.unwrap().len() <= 2048);
        } else {
            assert_eq!(response.body.as_deref(), Some("oops"));
            assert!(!response.truncated);
        }
    }
}
