//! Batch endpoints: each accepted event joins its endpoint's open batch (kept in DynamoDB),
//! which goes out as one signed JSON array on the deliveries queue the moment `batch.size`
//! have collected, or when its timer on the batching queue (the template's event source
//! mapping) finds `batch.interval` passed since the first; events keep their accept order
//! within a batch and across batches; a failed batch is retried whole and dead-lettered
//! whole, with every event's attempts recorded.

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

/// A stack, a receiver and a source of `log.line` events.
async fn logs_stack() -> (Stack, Receiver, String) {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let source = create_source(
        &stack,
        json!({"name": "logs", "default_event_type": "log.line"}),
    )
    .await;
    (stack, receiver, source)
}

/// Syncs a YAML config file to the default workspace, as `make sync` does.
async fn sync_yaml(stack: &Stack, file: &str) {
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
}

fn numbers(body: &[u8]) -> Vec<u64> {
    let body: Value = serde_json::from_slice(body).unwrap();
    body.as_array()
        .unwrap()
        .iter()
        .map(|e| e["n"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_batch_goes_out_the_moment_it_reaches_its_size() {
    let (stack, receiver, source) = logs_stack().await;
    let ep = batch_endpoint(&stack, &receiver, 3, 300).await;
    let ids = send(&stack, &source, 4).await;
    let delivery = stack.delivery();

    // No collector round, no interval: the third event sealed the batch at ingest.
    stack.drain(&delivery).await;
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
    // The fourth waits in the next open batch, durably.
    let open = stack
        .store
        .batch_state("default", ep["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((open.seq, open.members.len()), (2, 1));
    assert_eq!(open.members[0].event_id, ids[3]);
}

/// SQS hands a batch endpoint's tasks to the delivery function in any split: one task per
/// invocation here (the sweeper's reconciliation, replays). The size is still reached.
#[tokio::test]
async fn the_size_is_reached_across_invocations_whatever_the_split() {
    let (stack, receiver, source) = logs_stack().await;
    let ep = batch_endpoint(&stack, &receiver, 3, 300).await;
    let ep_id = ep["id"].as_str().unwrap();
    let delivery = stack.delivery();
    // Stored events whose tasks arrive as single tasks, each in its own invocation.
    let mut ids = Vec::new();
    for i in 0..3 {
        let event = hookrelay_shared::Event {
            id: hookrelay_shared::ids::new_id(hookrelay_shared::ids::EVENT),
            workspace: "default".into(),
            source_id: source.clone(),
            event_type: "log.line".into(),
            idempotency_key: format!("k{i}"),
            received_at: hookrelay_shared::Timestamp::now(),
            payload: json!({"n": i}).to_string().into_bytes(),
            endpoint_ids: vec![ep_id.to_owned()],
            content_type: None,
            hops: 0,
            trace: None,
        };
        stack
            .store
            .insert_event(&event, &source, false, Duration::from_secs(3600))
            .await
            .unwrap();
        let key = hookrelay_shared::store::Store::event_key(&source, &event.idempotency_key);
        let task = hookrelay_shared::DeliveryTask::new(&event, &key, ep_id);
        let queue = hookrelay_shared::queue::Queue::connect(&stack.aws, &stack.settings);
        assert!(queue.send_tasks(&[task]).await.unwrap().is_empty());
        let round = stack
            .deliver_once(&delivery, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!((round.received, round.failed), (1, 0));
        ids.push(event.id);
    }
    stack.drain(&delivery).await;
    let got = receiver.deliveries();
    assert_eq!(got.len(), 1, "the third task filled the batch");
    assert_eq!(numbers(&got[0].body), [0, 1, 2]);
    // A repeated task (reconciliation after a crash) does not add an event twice.
    let open = stack
        .store
        .batch_state("default", ep_id)
        .await
        .unwrap()
        .unwrap();
    assert!(open.members.is_empty(), "{open:?}");
}

#[tokio::test]
async fn a_burst_of_concurrent_events_fills_whole_batches_once_each() {
    let (stack, receiver, source) = logs_stack().await;
    batch_endpoint(&stack, &receiver, 5, 300).await;
    let ingest = stack.ingest();
    let sends = (0..20).map(|i| {
        let ingest = &ingest;
        let source = &source;
        async move {
            let resp = hookrelay_ingest::handle(
                ingest,
                hookrelay_tests::request(
                    "POST",
                    &format!("/in/{source}"),
                    &[("content-type", "application/json")],
                    json!({"n": i}).to_string().as_bytes(),
                ),
            )
            .await;
            assert_eq!(resp.status(), 202, "{}", resp.body());
        }
    });
    futures::future::join_all(sends).await;
    let delivery = stack.delivery();
    stack.drain(&delivery).await;
    let got = receiver.deliveries();
    assert_eq!(got.len(), 4, "twenty events, four batches of five");
    let mut all: Vec<u64> = Vec::new();
    for d in &got {
        let n = numbers(&d.body);
        assert_eq!(n.len(), 5);
        all.extend(n);
    }
    all.sort_unstable();
    assert_eq!(all, (0..20).collect::<Vec<_>>(), "each event exactly once");
}

#[tokio::test]
async fn a_batch_goes_out_when_its_interval_has_passed() {
    let (stack, receiver, source) = logs_stack().await;
    batch_endpoint(&stack, &receiver, 10, 3).await;
    let delivery = stack.delivery();
    let started = Instant::now();
    send(&stack, &source, 1).await;
    // A trickle: the second event joins the first one's batch, not a batch of its own.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    send(&stack, &source, 1).await;
    assert!(
        stack
            .collect_once(&delivery, Duration::from_millis(500))
            .await
            .is_none(),
        "the timer is not due before the interval"
    );

    let mut delivered = Vec::new();
    while delivered.is_empty() && started.elapsed() < Duration::from_secs(15) {
        stack.collect_once(&delivery, Duration::from_secs(2)).await;
        stack.drain(&delivery).await;
        delivered = receiver.deliveries();
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(3), "not before the interval");
    // How soon after the interval is a matter for the benchmarks: a busy machine slows this
    // loop's polling, not the timer's rule.
    assert!(!delivered.is_empty(), "the batch went out within {took:?}");
    assert_eq!(delivered.len(), 1, "both events in one batch");
    assert_eq!(numbers(&delivered[0].body), [0, 0]);
}

/// The seed's forwarder at scale: 1 000 lines through `/log` arrive complete, in the order
/// they were accepted, in arrays of exactly `size` but the last, which the interval sends.
#[tokio::test]
async fn a_thousand_lines_arrive_complete_in_order_in_full_batches() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let file = include_str!("../../examples/forwarder.yaml")
        .replace("https://logs.example.com/ingest", &receiver.url)
        .replace("size: 50", "size: 30")
        .replace("interval: 5", "interval: 2");
    assert!(file.contains("size: 30") && file.contains("interval: 2"));
    sync_yaml(&stack, &file).await;
    let ingest = stack.ingest();
    for n in 0..1000 {
        let resp = hookrelay_ingest::handle(
            &ingest,
            hookrelay_tests::request(
                "POST",
                "/log",
                &[("content-type", "application/json")],
                json!({"n": n}).to_string().as_bytes(),
            ),
        )
        .await;
        assert_eq!(resp.status(), 200, "{}", resp.body());
    }
    let delivery = stack.delivery();
    let started = Instant::now();
    let mut lines = 0;
    while lines < 1000 && started.elapsed() < Duration::from_secs(60) {
        stack.drain(&delivery).await;
        stack
            .collect_once(&delivery, Duration::from_millis(500))
            .await;
        lines = receiver
            .deliveries()
            .iter()
            .map(|d| numbers(&d.body).len())
            .sum();
    }
    let got = receiver.deliveries();
    let sizes: Vec<usize> = got.iter().map(|d| numbers(&d.body).len()).collect();
    let mut expected = vec![30; 33];
    expected.push(10);
    assert_eq!(sizes, expected, "full batches, then the rest");
    let all: Vec<u64> = got.iter().flat_map(|d| numbers(&d.body)).collect();
    assert_eq!(all, (0..1000).collect::<Vec<_>>(), "complete and in order");
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
    let first = stack
        .deliver_once(&delivery, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(
        (first.received, first.failed, first.deleted),
        (1, 0, 1),
        "the batch failed as one task: its retry is a new, delayed message"
    );
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
    sync_yaml(&stack, &file).await;

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
    let got = receiver.deliveries();
    assert_eq!(got.len(), 1);
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(
        body,
        json!([{"level": "info", "msg": "a"}, "plain text line", {"level": "warn", "msg": "c"}]),
        "JSON bodies as they are, others as strings"
    );
}

/// A batch is capped by bytes as well as by count: large events seal it before `size` is
/// reached, so one request never carries more than 1 MiB of payloads.
#[tokio::test]
async fn large_events_seal_a_batch_at_one_mebibyte() {
    let (stack, receiver, source) = logs_stack().await;
    batch_endpoint(&stack, &receiver, 100, 300).await;
    let pad = "x".repeat(250 * 1024);
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(
            send_event(
                &stack,
                &source,
                json!({"type": "log.line", "n": n, "pad": pad})
                    .to_string()
                    .as_bytes(),
            )
            .await,
        );
    }
    stack.drain(&stack.delivery()).await;
    let got = receiver.deliveries();
    assert_eq!(
        got.len(),
        1,
        "the first four went as soon as the fifth would not fit"
    );
    assert!(
        got[0].body.len() <= 1024 * 1024 + 1024,
        "{} bytes",
        got[0].body.len()
    );
    let batch: Vec<Value> = serde_json::from_slice(&got[0].body).unwrap();
    let ns: Vec<u64> = batch.iter().map(|e| e["n"].as_u64().unwrap()).collect();
    assert_eq!(ns, vec![0, 1, 2, 3]);
}
