//! Batch endpoints: events collect on the batching queue (its event source mapping as the
//! template sets it) and go out as one signed JSON array when `batch.size` have collected or
//! `batch.interval` has passed since the first; a failed batch is retried whole and
//! dead-lettered whole, with every event's attempts recorded.

use std::time::{Duration, Instant};

use hookrelay_tests::receiver::Reply;
use hookrelay_tests::{
    Receiver, Stack, attempts_of, create_endpoint, create_source, send_event,
    verify_with_standardwebhooks,
};
use serde_json::{Value, json};

async fn batch_endpoint(stack: &Stack, receiver: &Receiver, size: u32, interval: u32) -> Value {
    create_endpoint(
        stack,
        json!({
            "name": "batched",
            "url": receiver.url,
            "delivery": {"mode": "batch", "batch": {"size": size, "interval": interval}},
        }),
    )
    .await
}

async fn send(stack: &Stack, source: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            send_event(
                stack,
                source,
                json!({"type": "log.line", "n": i}).to_string().as_bytes(),
            )
            .await,
        );
    }
    ids
}

#[tokio::test]
async fn a_batch_is_flushed_when_it_reaches_its_size() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let source = create_source(
        &stack,
        json!({"name": "logs", "default_event_type": "log.line"}),
    )
    .await;
    let ep = batch_endpoint(&stack, &receiver, 3, 300).await;
    let ids = send(&stack, &source, 4).await;
    let delivery = stack.delivery();

    // The deliveries queue hands batch endpoints' tasks to the batching queue.
    stack.drain(&delivery).await;
    assert!(receiver.deliveries().is_empty());
    let (visible, _) = stack
        .queue_depth(stack.settings.batching_queue_url.as_ref().unwrap())
        .await;
    assert_eq!(visible, 4);

    // Three make a batch; the fourth waits for its interval (300 s), invisible.
    let round = stack
        .collect_once(&delivery, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!((round.received, round.deleted, round.failed), (4, 3, 1));
    stack.deliver_once(&delivery, Duration::from_secs(2)).await;
    let got = receiver.deliveries();
    assert_eq!(got.len(), 1, "one request for three events");
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(
        body,
        json!([
            {"type": "log.line", "n": 0},
            {"type": "log.line", "n": 1},
            {"type": "log.line", "n": 2},
        ])
    );
    assert!(got[0].header("webhook-id").starts_with("bat_"));
    verify_with_standardwebhooks(ep["secret"].as_str().unwrap(), &got[0]).unwrap();
    for id in &ids[..3] {
        let attempts = attempts_of(&stack, id).await;
        assert_eq!(attempts.len(), 1, "each batched event has its attempt");
        assert_eq!(attempts[0]["status"], "SUCCESSFUL");
    }
    assert!(attempts_of(&stack, &ids[3]).await.is_empty());
    let (visible, hidden) = stack
        .queue_depth(stack.settings.batching_queue_url.as_ref().unwrap())
        .await;
    assert_eq!((visible, hidden), (0, 1), "the fourth waits, invisible");
}

#[tokio::test]
async fn a_batch_is_flushed_when_its_interval_has_passed() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let source = create_source(
        &stack,
        json!({"name": "logs", "default_event_type": "log.line"}),
    )
    .await;
    batch_endpoint(&stack, &receiver, 10, 3).await;
    let delivery = stack.delivery();
    let started = Instant::now();
    send(&stack, &source, 1).await;
    stack.drain(&delivery).await;
    // A second event arrives later: it joins the first one's batch, not a batch of its own.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    send(&stack, &source, 1).await;
    stack.drain(&delivery).await;

    let first = stack
        .collect_once(&delivery, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(first.failed, 2, "neither is due yet: both wait");
    assert!(receiver.deliveries().is_empty());

    let mut delivered = Vec::new();
    while delivered.is_empty() && started.elapsed() < Duration::from_secs(15) {
        stack.collect_once(&delivery, Duration::from_secs(2)).await;
        stack.drain(&delivery).await;
        delivered = receiver.deliveries();
    }
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "not before the interval"
    );
    assert_eq!(delivered.len(), 1, "both events in one batch");
    let body: Value = serde_json::from_slice(&delivered[0].body).unwrap();
    assert_eq!(body.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_failed_batch_is_retried_whole_and_dead_lettered_whole() {
    let stack = Stack::with_schedule("1,1").await;
    let receiver = Receiver::start().await;
    receiver.replies(vec![Reply::status(500)], Reply::status(200));
    let source = create_source(
        &stack,
        json!({"name": "logs", "default_event_type": "log.line"}),
    )
    .await;
    batch_endpoint(&stack, &receiver, 2, 300).await;
    let ids = send(&stack, &source, 2).await;
    let delivery = stack.delivery();
    stack.drain(&delivery).await;
    stack
        .collect_once(&delivery, Duration::from_secs(1))
        .await
        .unwrap();
    let first = stack
        .deliver_once(&delivery, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(first.failed, 1, "the batch failed as one task");
    let second = stack
        .deliver_once(&delivery, Duration::from_secs(4))
        .await
        .unwrap();
    assert_eq!(second.deleted, 1);
    let got = receiver.deliveries();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].body, got[1].body, "the same batch again");
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    for id in &ids {
        let attempts = attempts_of(&stack, id).await;
        let statuses: Vec<&str> = attempts
            .iter()
            .map(|a| a["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["SUCCESSFUL", "FAILED"], "{id}: newest first");
        assert_eq!(attempts[0]["attempt_number"], 2);
    }

    // An endpoint that keeps failing: after the schedule the batch is dead-lettered whole.
    receiver.replies(vec![], Reply::status(503));
    let ids = send(&stack, &source, 2).await;
    stack.drain(&delivery).await;
    stack
        .collect_once(&delivery, Duration::from_secs(1))
        .await
        .unwrap();
    for _ in 0..3 {
        stack.deliver_once(&delivery, Duration::from_secs(4)).await;
    }
    let letters = stack.dead_letters().await;
    assert_eq!(letters.len(), 1, "one letter for the whole batch");
    let letter: Value = serde_json::from_str(letters[0].body().unwrap()).unwrap();
    assert_eq!(letter["reason"], "exhausted");
    let events: Vec<&str> = letter["task"]["batch"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(events, ids.iter().map(String::as_str).collect::<Vec<_>>());
    for id in &ids {
        let attempts = attempts_of(&stack, id).await;
        assert_eq!(attempts.len(), 3);
        assert_eq!(attempts[0]["exhausted"], true);
    }
}

#[tokio::test]
async fn batch_settings_are_validated() {
    let stack = Stack::new().await;
    for (delivery, field) in [
        (
            json!({"mode": "batch", "batch": {"size": 0}}),
            "delivery.batch.size",
        ),
        (
            json!({"mode": "batch", "batch": {"size": 101}}),
            "delivery.batch.size",
        ),
        (
            json!({"mode": "batch", "batch": {"interval": 301}}),
            "delivery.batch.interval",
        ),
        (
            json!({"mode": "single", "batch": {"size": 5}}),
            "delivery.batch",
        ),
    ] {
        let resp = hookrelay_admin::handle(
            &stack.admin(),
            hookrelay_tests::admin_request(
                "POST",
                "/workspaces/default/endpoints",
                Some(json!({"name": "b", "url": "https://example.com/", "delivery": delivery})),
            ),
        )
        .await;
        assert_eq!(resp.status(), 400, "{delivery}");
        let err = hookrelay_tests::json_of(&resp);
        assert!(
            err["error"]["fields"].get(field).is_some(),
            "{delivery}: {err}"
        );
    }
    // Defaults: 10 events, 10 s.
    let ep = create_endpoint(
        &stack,
        json!({"name": "b", "url": "https://example.com/", "delivery": {"mode": "batch"}}),
    )
    .await;
    assert_eq!(ep["delivery"]["mode"], "batch");
}

/// The README's forwarder: the example file syncs as it is, and lines POSTed to `/log` reach
/// the sink as one array.
#[tokio::test]
async fn the_forwarder_example_syncs_and_forwards_in_batches() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let file = include_str!("../../examples/forwarder.yaml")
        .replace("https://logs.example.com/ingest", &receiver.url)
        .replace("size: 50", "size: 3");
    let resp = hookrelay_admin::handle(
        &stack.admin(),
        hookrelay_tests::request(
            "POST",
            "/workspaces/default/config/sync",
            &[
                (
                    "authorization",
                    &format!("Bearer {}", hookrelay_tests::ADMIN_KEY),
                ),
                ("content-type", "application/yaml"),
            ],
            file.as_bytes(),
        ),
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", resp.body());

    let lines = [
        r#"{"level":"info","msg":"a"}"#,
        "plain text line",
        r#"{"level":"warn","msg":"c"}"#,
    ];
    for line in lines {
        let content_type = if line.starts_with('{') {
            "application/json"
        } else {
            "text/plain"
        };
        let resp = hookrelay_ingest::handle(
            &stack.ingest(),
            hookrelay_tests::request(
                "POST",
                "/log",
                &[("content-type", content_type)],
                line.as_bytes(),
            ),
        )
        .await;
        assert_eq!((resp.status().as_u16(), resp.body().as_str()), (200, "ok"));
    }
    let delivery = stack.delivery();
    stack.drain(&delivery).await;
    stack
        .collect_once(&delivery, Duration::from_secs(1))
        .await
        .unwrap();
    stack.deliver_once(&delivery, Duration::from_secs(2)).await;
    let got = receiver.deliveries();
    assert_eq!(got.len(), 1);
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(
        body,
        json!([{"level": "info", "msg": "a"}, "plain text line", {"level": "warn", "msg": "c"}]),
        "JSON bodies as they are, others as strings"
    );
}
