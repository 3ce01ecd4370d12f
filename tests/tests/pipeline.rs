//! The whole path, in-process against moto and a real receiver: ingest → DynamoDB → SQS →
//! delivery → endpoint, retries through visibility timeouts, the DLQ, and the sweeper.

use std::time::Duration;

use hookrelay_shared::{Timestamp, signature};
use hookrelay_tests::{Receiver, Stack, admin_request, json_of, request};
use serde_json::{Value, json};

async fn create_source(stack: &Stack, body: Value) -> String {
    let admin = stack.admin();
    let resp = hookrelay_admin::handle(
        &admin,
        admin_request("POST", "/workspaces/default/sources", Some(body)),
    )
    .await;
    assert_eq!(resp.status(), 201, "{}", resp.body());
    json_of(&resp)["id"].as_str().unwrap().to_owned()
}

async fn create_endpoint(stack: &Stack, url: &str, events: &[&str]) -> Value {
    // Names are unique within a workspace.
    static CREATED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let name = format!(
        "receiver-{}",
        CREATED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let admin = stack.admin();
    let resp = hookrelay_admin::handle(
        &admin,
        admin_request(
            "POST",
            "/workspaces/default/endpoints",
            Some(json!({"name": name, "url": url, "events": events})),
        ),
    )
    .await;
    assert_eq!(resp.status(), 201, "{}", resp.body());
    json_of(&resp)
}

async fn ingest(
    stack: &Stack,
    source: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> http::Response<String> {
    let ctx = stack.ingest();
    hookrelay_ingest::handle(
        &ctx,
        request("POST", &format!("/in/{source}"), headers, body),
    )
    .await
}

async fn attempts_of(stack: &Stack, event_id: &str) -> Vec<Value> {
    let admin = stack.admin();
    let resp = hookrelay_admin::handle(
        &admin,
        admin_request(
            "GET",
            &format!("/workspaces/default/attempts?event_id={event_id}"),
            None,
        ),
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", resp.body());
    json_of(&resp)["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn accepted_event_is_delivered_once_with_identical_body_and_signature() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let source = create_source(&stack, json!({"name": "shop"})).await;
    let endpoint = create_endpoint(&stack, &receiver.url, &["order.*"]).await;

    // Odd spacing, key order and unicode must survive byte for byte.
    let body = "{ \"event_type\" : \"order.created\",\n  \"data\": {\"id\": 7, \"name\": \"caf\u{e9} \\u00e9\"}  }";
    let resp = ingest(
        &stack,
        &source,
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .await;
    assert_eq!(resp.status(), 202, "{}", resp.body());
    let event_id = json_of(&resp)["id"].as_str().unwrap().to_owned();
    assert!(event_id.starts_with("evt_"));

    let delivery = stack.delivery();
    let rounds = stack.drain(&delivery).await;
    assert_eq!(rounds.len(), 1);
    assert_eq!(rounds[0].deleted, 1);

    let got = receiver.deliveries();
    assert_eq!(got.len(), 1, "delivered exactly once");
    let d = &got[0];
    assert_eq!(&d.body[..], body.as_bytes(), "body is byte-identical");
    let h = |n: &str| d.headers.get(n).unwrap().to_str().unwrap().to_owned();
    assert_eq!(h("content-type"), "application/json");
    assert!(h("user-agent").starts_with("hookrelay/"));
    assert_eq!(h("webhook-id"), event_id);
    let ts: i64 = h("webhook-timestamp").parse().unwrap();
    let expected = signature::sign(
        endpoint["secret"].as_str().unwrap(),
        &event_id,
        ts,
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(h("webhook-signature"), expected);

    let attempts = attempts_of(&stack, &event_id).await;
    assert_eq!(attempts.len(), 1);
    let a = &attempts[0];
    assert_eq!(a["status"], "SUCCESSFUL");
    assert_eq!(a["attempt_number"], 1);
    assert_eq!(a["endpoint_id"], endpoint["id"]);
    assert_eq!(a["exhausted"], false);
    assert_eq!(a["request"]["method"], "POST");
    assert_eq!(a["request"]["url"], receiver.url.as_str());
    assert_eq!(a["response"]["status"], 200);
    assert!(a["response"]["latency"].is_u64());
    assert!(a["id"].as_str().unwrap().starts_with("att_"));

    // The endpoint now shows its success; the event its payload.
    let admin = stack.admin();
    let ep = json_of(
        &hookrelay_admin::handle(
            &admin,
            admin_request(
                "GET",
                &format!(
                    "/workspaces/default/endpoints/{}",
                    endpoint["id"].as_str().unwrap()
                ),
                None,
            ),
        )
        .await,
    );
    assert_eq!(ep["enabled"], true);
    assert!(ep["last_success_at"].is_string());
    let ev = json_of(
        &hookrelay_admin::handle(
            &admin,
            admin_request(
                "GET",
                &format!("/workspaces/default/events/{event_id}"),
                None,
            ),
        )
        .await,
    );
    assert_eq!(ev["event_type"], "order.created");
    assert_eq!(ev["payload"]["data"]["name"], "café é");
    assert_eq!(
        stack.queue_depth(&stack.settings.delivery_queue_url).await,
        (0, 0)
    );
}

#[tokio::test]
async fn repeated_idempotency_key_is_answered_alike_and_delivered_once() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let source = create_source(&stack, json!({"name": "s"})).await;
    create_endpoint(&stack, &receiver.url, &["*"]).await;
    let body = br#"{"event_type":"a.b","data":{}}"#;

    let first = ingest(&stack, &source, &[("idempotency-key", "delivery-42")], body).await;
    let second = ingest(&stack, &source, &[("idempotency-key", "delivery-42")], body).await;
    let third = ingest(&stack, &source, &[("webhook-id", "msg_other")], body).await;
    assert_eq!(first.status(), 202);
    assert_eq!(second.status(), 202);
    assert_eq!(json_of(&first)["id"], json_of(&second)["id"]);
    assert_eq!(second.headers().get("idempotent-replayed").unwrap(), "true");
    assert!(first.headers().get("idempotent-replayed").is_none());
    assert_ne!(json_of(&first)["id"], json_of(&third)["id"]);

    let delivery = stack.delivery();
    stack.drain(&delivery).await;
    assert_eq!(receiver.deliveries().len(), 2, "one per distinct key");
}

#[tokio::test]
async fn fans_out_to_each_matching_endpoint() {
    let stack = Stack::new().await;
    let (a, b, c) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    let source = create_source(&stack, json!({"name": "s"})).await;
    create_endpoint(&stack, &a.url, &["invoice.*"]).await;
    create_endpoint(&stack, &b.url, &["invoice.paid", "other"]).await;
    create_endpoint(&stack, &c.url, &["invoice.failed"]).await;

    let resp = ingest(
        &stack,
        &source,
        &[],
        br#"{"event_type":"invoice.paid","data":{"n":1}}"#,
    )
    .await;
    assert_eq!(resp.status(), 202);
    let event_id = json_of(&resp)["id"].as_str().unwrap().to_owned();

    let delivery = stack.delivery();
    stack.drain(&delivery).await;
    assert_eq!(a.deliveries().len(), 1);
    assert_eq!(b.deliveries().len(), 1);
    assert_eq!(c.deliveries().len(), 0);
    let attempts = attempts_of(&stack, &event_id).await;
    assert_eq!(attempts.len(), 2);
    assert!(attempts.iter().all(|a| a["status"] == "SUCCESSFUL"));
}

#[tokio::test]
async fn failing_endpoint_is_retried_after_its_delay() {
    let stack = Stack::with_schedule("2,2").await;
    let receiver = Receiver::start().await;
    receiver.script(&[500], 200);
    let source = create_source(&stack, json!({"name": "s"})).await;
    create_endpoint(&stack, &receiver.url, &["*"]).await;
    let resp = ingest(&stack, &source, &[], br#"{"event_type":"x","data":{}}"#).await;
    let event_id = json_of(&resp)["id"].as_str().unwrap().to_owned();

    let delivery = stack.delivery();
    let first = stack.deliver_once(&delivery, Duration::ZERO).await.unwrap();
    assert_eq!(
        (first.received, first.failed, first.deleted),
        (1, 0, 1),
        "the retry is a new message"
    );

    // The retry is delayed for its backoff, so an immediate poll finds nothing, and it is not
    // in flight…
    assert!(
        stack
            .deliver_once(&delivery, Duration::ZERO)
            .await
            .is_none()
    );
    assert_eq!(
        stack.queue_depth(&stack.settings.delivery_queue_url).await,
        (0, 0)
    );
    let attempts = attempts_of(&stack, &event_id).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["status"], "FAILED");
    assert_eq!(attempts[0]["response"]["status"], 500);
    assert!(attempts[0]["next_attempt_at"].is_string());

    // …and it comes back after it.
    let second = stack
        .deliver_once(&delivery, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!((second.received, second.deleted), (1, 1));
    assert_eq!(receiver.deliveries().len(), 2);
    let attempts = attempts_of(&stack, &event_id).await;
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["status"], "SUCCESSFUL", "newest first");
    assert_eq!(attempts[0]["attempt_number"], 2);
    assert_eq!(attempts[1]["attempt_number"], 1);
    // Retries of one event to one endpoint keep the same webhook-id.
    let ids: Vec<_> = receiver
        .deliveries()
        .iter()
        .map(|d| d.headers["webhook-id"].clone())
        .collect();
    assert_eq!(ids[0], ids[1]);
}

#[tokio::test]
async fn exhausted_task_ends_in_the_dead_letter_queue() {
    let stack = Stack::with_schedule("1").await;
    let receiver = Receiver::start().await;
    receiver.script(&[], 503);
    let source = create_source(&stack, json!({"name": "s"})).await;
    create_endpoint(&stack, &receiver.url, &["*"]).await;
    let resp = ingest(&stack, &source, &[], br#"{"event_type":"x","data":{}}"#).await;
    let event_id = json_of(&resp)["id"].as_str().unwrap().to_owned();

    let delivery = stack.delivery();
    stack.deliver_once(&delivery, Duration::ZERO).await.unwrap();
    let last = stack
        .deliver_once(&delivery, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        last.deleted, 1,
        "the last attempt removes the task from the main queue"
    );
    assert_eq!(
        stack.queue_depth(&stack.settings.delivery_queue_url).await,
        (0, 0)
    );

    let dead = stack.dead_letters().await;
    assert_eq!(dead.len(), 1);
    let letter: Value = serde_json::from_str(dead[0].body().unwrap()).unwrap();
    assert_eq!(letter["task"]["event_id"], event_id.as_str());
    assert_eq!(letter["reason"], "exhausted");
    assert_eq!(letter["attempts"], 2);
    assert_eq!(letter["last_status"], 503);
    assert_eq!(letter["last_error_code"], "HTTP_STATUS");
    assert_eq!(letter["event_type"], "x");
    assert_eq!(letter["endpoint_url"], receiver.url.as_str());

    let attempts = attempts_of(&stack, &event_id).await;
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["exhausted"], true);
    assert_eq!(attempts[1]["exhausted"], false);
    assert!(attempts.iter().all(|a| a["status"] == "FAILED"));
}

#[tokio::test]
async fn connection_errors_and_timeouts_are_failed_attempts() {
    let stack = Stack::with_schedule("60").await;
    // Nothing listens on this port.
    let port = hookrelay_local::moto::free_port().unwrap();
    let source = create_source(&stack, json!({"name": "s"})).await;
    create_endpoint(&stack, &format!("http://127.0.0.1:{port}/hook"), &["*"]).await;
    let resp = ingest(&stack, &source, &[], br#"{"event_type":"x","data":{}}"#).await;
    let event_id = json_of(&resp)["id"].as_str().unwrap().to_owned();

    let delivery = stack.delivery();
    let r = stack.deliver_once(&delivery, Duration::ZERO).await.unwrap();
    assert_eq!(
        (r.failed, r.deleted),
        (0, 1),
        "its retry is a new, delayed message"
    );
    let attempts = attempts_of(&stack, &event_id).await;
    assert_eq!(attempts[0]["status"], "FAILED");
    assert_eq!(attempts[0]["error_code"], "CONNECTION");
    assert!(attempts[0]["response"].get("status").is_none());
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_stops_retrying() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    receiver.script(&[], 410);
    let source = create_source(&stack, json!({"name": "s"})).await;
    let endpoint = create_endpoint(&stack, &receiver.url, &["*"]).await;
    let id = endpoint["id"].as_str().unwrap();
    ingest(&stack, &source, &[], br#"{"event_type":"x","data":{}}"#).await;

    let delivery = stack.delivery();
    let r = stack.deliver_once(&delivery, Duration::ZERO).await.unwrap();
    assert_eq!(r.deleted, 1);
    let ep = stack
        .store
        .get_endpoint("default", id)
        .await
        .unwrap()
        .unwrap();
    assert!(!ep.enabled);
    assert_eq!(ep.disabled_reason.as_deref(), Some("gone"));
    assert!(stack.dead_letters().await.is_empty());
}

#[tokio::test]
async fn sweeper_deactivates_stale_endpoints_only() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let source = create_source(&stack, json!({"name": "s"})).await;
    let now = Timestamp::now();
    let day = Duration::from_secs(86_400);

    let mut stale = stack_endpoint(&receiver.url);
    stale.created_at = now.minus(day * 400);
    let mut stale_success = stack_endpoint(&receiver.url);
    stale_success.created_at = now.minus(day * 900);
    stale_success.last_success_at = Some(now.minus(day * 366));
    let mut fresh = stack_endpoint(&receiver.url);
    fresh.created_at = now.minus(day * 500);
    fresh.last_success_at = Some(now.minus(day));
    let young = stack_endpoint(&receiver.url);
    for ep in [&stale, &stale_success, &fresh, &young] {
        stack.store.put_endpoint(&mut ep.clone()).await.unwrap();
    }

    // A task queued to the stale endpoint before the sweep…
    ingest(&stack, &source, &[], br#"{"event_type":"x","data":{}}"#).await;

    let report = hookrelay_sweeper::handle(&stack.sweeper(), now)
        .await
        .unwrap();
    assert_eq!(report.stale_found, 2);
    assert_eq!(report.deactivated, 2);
    for (ep, enabled) in [
        (&stale, false),
        (&stale_success, false),
        (&fresh, true),
        (&young, true),
    ] {
        let got = stack
            .store
            .get_endpoint("default", &ep.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.enabled, enabled, "{}", ep.id);
        if !enabled {
            assert_eq!(got.disabled_reason.as_deref(), Some("stale"));
        }
    }
    // …is canceled, not delivered or retried.
    let delivery = stack.delivery();
    stack.drain(&delivery).await;
    assert_eq!(
        receiver.deliveries().len(),
        2,
        "only the enabled endpoints received it"
    );
    let attempts = stack
        .store
        .find_attempts("default", &Default::default(), &Default::default())
        .await
        .unwrap()
        .data;
    let canceled: Vec<_> = attempts
        .iter()
        .filter(|a| a.status == hookrelay_shared::AttemptStatus::Canceled)
        .collect();
    assert_eq!(canceled.len(), 2);
    assert!(
        canceled
            .iter()
            .all(|a| a.error_code.as_deref() == Some("ENDPOINT_DISABLED"))
    );

    // A second run finds nothing left to do.
    let again = hookrelay_sweeper::handle(&stack.sweeper(), now)
        .await
        .unwrap();
    assert_eq!((again.stale_found, again.deactivated), (0, 0));

    // New events no longer fan out to them.
    let resp = ingest(&stack, &source, &[], br#"{"event_type":"x","data":{}}"#).await;
    let id = json_of(&resp)["id"].as_str().unwrap().to_owned();
    stack.list_accepted().await;
    let (_, ev) = stack
        .store
        .get_event("default", &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.endpoint_ids.len(), 2);
}

fn stack_endpoint(url: &str) -> hookrelay_shared::Endpoint {
    hookrelay_shared::Endpoint::new("default", "e", url, vec!["*".into()])
}

#[tokio::test]
async fn sweeper_reenqueues_events_stranded_before_queueing() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let mut ep = stack_endpoint(&receiver.url);
    stack.store.put_endpoint(&mut ep).await.unwrap();
    // The ingest function stored this event and died before queueing its task.
    let event = hookrelay_shared::Event {
        id: hookrelay_shared::ids::new_id("evt"),
        workspace: "default".into(),
        source_id: "src_x".into(),
        event_type: "x".into(),
        idempotency_key: "k1".into(),
        received_at: Timestamp::now().minus(Duration::from_secs(600)),
        payload: br#"{"event_type":"x"}"#.to_vec(),
        content_type: None,
        endpoint_ids: vec![ep.id.clone()],
        hops: 0,
        trace: None,
    };
    stack
        .store
        .insert_event(&event, "src_x", true, Duration::from_secs(86_400))
        .await
        .unwrap();

    let report = hookrelay_sweeper::handle(&stack.sweeper(), Timestamp::now())
        .await
        .unwrap();
    assert_eq!(report.pending_found, 1);
    assert_eq!(report.reenqueued_events, 1);
    let delivery = stack.delivery();
    stack.drain(&delivery).await;
    assert_eq!(receiver.deliveries().len(), 1);
    assert_eq!(&receiver.deliveries()[0].body[..], &event.payload[..]);

    // Re-enqueued once: the mark is gone.
    let again = hookrelay_sweeper::handle(&stack.sweeper(), Timestamp::now())
        .await
        .unwrap();
    assert_eq!(again.pending_found, 0);
}

#[tokio::test]
async fn events_queued_normally_are_not_stranded() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let source = create_source(&stack, json!({"name": "s"})).await;
    create_endpoint(&stack, &receiver.url, &["*"]).await;
    let resp = ingest(&stack, &source, &[], br#"{"event_type":"x"}"#).await;
    assert_eq!(resp.status(), 202, "{}", resp.body());
    let future = Timestamp::now().plus(Duration::from_secs(3600));
    let report = hookrelay_sweeper::handle(&stack.sweeper(), future)
        .await
        .unwrap();
    assert_eq!(report.pending_found, 0);
    assert_eq!(report.reenqueued_events, 0);
    // Its task was queued when it was accepted: delivered once, without the sweeper.
    stack.drain(&stack.delivery()).await;
    assert_eq!(receiver.deliveries().len(), 1);
}
