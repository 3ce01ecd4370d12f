//! Ordered endpoints (`delivery.ordering: fifo`): events reach the endpoint in accept order,
//! one in flight at a time per line, through retries; a failing head holds only its own line
//! (with an `ordering_key`, one line per value); unordered endpoints are not affected; an
//! exhausted head is dead-lettered and its line moves on; bad settings are answered 400.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookrelay_tests::{
    Receiver, Stack, admin_call, create_endpoint, create_source, send_event, serve_on_loopback,
};
use serde_json::{Value, json};

fn seq_of(body: &[u8]) -> u64 {
    let v: Value = serde_json::from_slice(body).expect("delivered JSON");
    v["data"]["seq"].as_u64().expect("seq")
}

#[tokio::test]
async fn a_thousand_events_arrive_in_order_through_retries() {
    const N: u64 = 1000;
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    // About one answer in 25 fails, some twice in a row.
    let script: Vec<u16> = (0..1200u64)
        .map(|i| {
            if i % 25 == 7 || i % 100 == 8 {
                500
            } else {
                200
            }
        })
        .collect();
    receiver.script(&script, 200);
    let source = create_source(&stack, json!({"name": "src"})).await;
    create_endpoint(
        &stack,
        json!({"name": "ordered", "url": receiver.url, "events": ["*"],
               "retry": {"schedule": [0, 0, 0, 0]},
               "delivery": {"ordering": "fifo"}}),
    )
    .await;
    for seq in 0..N {
        send_event(
            &stack,
            &source,
            json!({"event_type": "order.updated", "data": {"seq": seq}})
                .to_string()
                .as_bytes(),
        )
        .await;
    }
    let (visible, _) = stack.queue_depth(&stack.settings.delivery_queue_url).await;
    assert_eq!(
        visible, 0,
        "nothing of the ordered endpoint on the unordered queue"
    );

    let delivery = stack.delivery();
    let started = Instant::now();
    let mut retried = 0;
    loop {
        let seen = receiver.deliveries();
        let done = seen
            .iter()
            .zip(script.iter().chain(std::iter::repeat(&200)))
            .filter(|(_, status)| **status == 200)
            .count() as u64;
        if done >= N {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "only {done} of {N} delivered"
        );
        if let Some(r) = stack
            .deliver_ordered_once(&delivery, Duration::from_secs(1))
            .await
        {
            retried += r.failed;
        }
    }
    let took = started.elapsed();
    println!("{N} ordered events delivered in {took:?} ({retried} messages handed back)");

    // The requests in the order they were made: each is the one before it again (a retry
    // after a failure) or the next one, never one ahead.
    let seen = receiver.deliveries();
    let mut expected = 0u64;
    for (i, (d, status)) in seen.iter().zip(&script).enumerate() {
        let seq = seq_of(&d.body);
        assert_eq!(seq, expected, "request {i} out of order");
        if *status == 200 {
            expected += 1;
        }
    }
    assert_eq!(expected, N);
    assert!(retried > 0, "retries happened");
}

/// A receiver that fails the first `fails` requests for customer `c1`'s first event and
/// records what it saw: (customer, seq, status).
async fn keyed_receiver(fails: usize) -> (String, Arc<Mutex<Vec<(String, u64, u16)>>>) {
    let seen: Arc<Mutex<Vec<(String, u64, u16)>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let log = log.clone();
            async move {
                let v: Value = serde_json::from_slice(&body).expect("JSON");
                let customer = v["data"]["customer_id"].as_str().unwrap_or("").to_owned();
                let seq = v["data"]["seq"].as_u64().expect("seq");
                let mut log = log.lock().expect("lock");
                let tries = log.iter().filter(|(c, s, _)| *c == "c1" && *s == 0).count();
                let status = if customer == "c1" && seq == 0 && tries < fails {
                    500
                } else {
                    200
                };
                log.push((customer, seq, status));
                axum::http::StatusCode::from_u16(status).expect("status")
            }
        }),
    );
    let addr = serve_on_loopback(app).await;
    (format!("http://{addr}/hook"), seen)
}

#[tokio::test]
async fn keyed_lines_progress_independently_while_one_head_fails() {
    let stack = Stack::new().await;
    let (url, seen) = keyed_receiver(1).await;
    let plain = Receiver::start().await;
    let source = create_source(&stack, json!({"name": "src"})).await;
    create_endpoint(
        &stack,
        json!({"name": "by-customer", "url": url, "events": ["*"],
               "retry": {"schedule": [12, 5]},
               "delivery": {"ordering": "fifo", "ordering_key": "/data/customer_id"}}),
    )
    .await;
    create_endpoint(
        &stack,
        json!({"name": "unordered", "url": plain.url, "events": ["*"]}),
    )
    .await;
    for seq in 0..5u64 {
        for customer in ["c1", "c2"] {
            send_event(
                &stack,
                &source,
                json!({"event_type": "x", "data": {"customer_id": customer, "seq": seq}})
                    .to_string()
                    .as_bytes(),
            )
            .await;
        }
    }
    let delivery = stack.delivery();
    // The unordered endpoint gets everything at once, whatever the ordered lines do.
    stack.drain(&delivery).await;
    assert_eq!(
        plain.deliveries().len(),
        10,
        "the unordered endpoint is unaffected"
    );

    // Rounds until c2's line is through: c1's head fails and holds c1 (its retry waits
    // 9.6 to 14.4 s with the schedule's jitter, room for a busy machine) while c2 goes on.
    let started = Instant::now();
    let c2_done = || {
        seen.lock()
            .expect("lock")
            .iter()
            .filter(|(c, _, s)| c == "c2" && *s == 200)
            .count()
    };
    while c2_done() < 5 && started.elapsed() < Duration::from_secs(8) {
        stack
            .deliver_ordered_once(&delivery, Duration::from_secs(1))
            .await;
    }
    {
        let log = seen.lock().expect("lock");
        let c2: Vec<u64> = log
            .iter()
            .filter(|(c, _, s)| c == "c2" && *s == 200)
            .map(|(_, q, _)| *q)
            .collect();
        assert_eq!(c2, [0, 1, 2, 3, 4], "c2's line went on in order");
        let c1: Vec<(u64, u16)> = log
            .iter()
            .filter(|(c, _, _)| c == "c1")
            .map(|(_, q, s)| (*q, *s))
            .collect();
        assert_eq!(c1, [(0, 500)], "c1's line waits behind its failed head");
    }

    // The head's retries come after their delay; then the rest of c1, in order.
    let started = Instant::now();
    loop {
        let c1_done = seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|(c, _, s)| c == "c1" && *s == 200)
            .count();
        if c1_done == 5 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "c1 finishes");
        stack
            .deliver_ordered_once(&delivery, Duration::from_secs(1))
            .await;
    }
    let log = seen.lock().expect("lock").clone();
    let c1: Vec<(u64, u16)> = log
        .iter()
        .filter(|(c, _, _)| c == "c1")
        .map(|(_, q, s)| (*q, *s))
        .collect();
    assert_eq!(
        c1,
        [(0, 500), (0, 200), (1, 200), (2, 200), (3, 200), (4, 200)]
    );
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "the retry waited its delay"
    );
}

#[tokio::test]
async fn an_exhausted_head_is_dead_lettered_and_its_line_moves_on() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    receiver.script(&[500, 500], 200);
    let source = create_source(&stack, json!({"name": "src"})).await;
    create_endpoint(
        &stack,
        json!({"name": "ordered", "url": receiver.url, "events": ["*"],
               "retry": {"schedule": [0]},
               "delivery": {"ordering": "fifo"}}),
    )
    .await;
    for seq in 0..3u64 {
        send_event(
            &stack,
            &source,
            json!({"event_type": "x", "data": {"seq": seq}})
                .to_string()
                .as_bytes(),
        )
        .await;
    }
    let delivery = stack.delivery();
    let started = Instant::now();
    while receiver.deliveries().len() < 4 && started.elapsed() < Duration::from_secs(20) {
        stack
            .deliver_ordered_once(&delivery, Duration::from_secs(1))
            .await;
    }
    let seqs: Vec<u64> = receiver
        .deliveries()
        .iter()
        .map(|d| seq_of(&d.body))
        .collect();
    assert_eq!(
        seqs,
        [0, 0, 1, 2],
        "two attempts of the head, then the rest"
    );
    let letters = stack.dead_letters().await;
    assert_eq!(letters.len(), 1, "the exhausted head is dead-lettered");
    let letter: Value = serde_json::from_str(letters[0].body().unwrap_or_default()).unwrap();
    assert_eq!(letter["reason"], "exhausted");
    assert_eq!(letter["attempts"], 2);
}

#[tokio::test]
async fn bad_ordering_settings_are_answered_400() {
    let stack = Stack::new().await;
    let base = |delivery: Value| json!({"name": "e", "url": "https://example.com/hook", "delivery": delivery});
    for (delivery, field) in [
        (
            json!({"ordering": "fifo", "ordering_key": "data/customer_id"}),
            Some("delivery.ordering_key"),
        ),
        (
            json!({"ordering": "fifo", "ordering_key": "/a~2"}),
            Some("delivery.ordering_key"),
        ),
        (
            json!({"ordering_key": "/data/customer_id"}),
            Some("delivery.ordering_key"),
        ),
        (
            json!({"mode": "batch", "ordering": "fifo"}),
            Some("delivery.ordering"),
        ),
        (json!({"ordering": "lifo"}), None),
    ] {
        let (status, body) = admin_call(
            &stack,
            "POST",
            "/workspaces/default/endpoints",
            Some(base(delivery.clone())),
        )
        .await;
        assert_eq!(status, 400, "{delivery}: {body}");
        if let Some(field) = field {
            assert!(body.to_string().contains(field), "{delivery}: {body}");
        }
    }
    // An update is checked the same way.
    let (status, ep) = admin_call(
        &stack,
        "POST",
        "/workspaces/default/endpoints",
        Some(base(
            json!({"ordering": "fifo", "ordering_key": "/data/customer_id"}),
        )),
    )
    .await;
    assert_eq!(status, 201, "{ep}");
    assert_eq!(ep["delivery"]["ordering"], "fifo");
    let id = ep["id"].as_str().unwrap();
    let (status, body) = admin_call(
        &stack,
        "PUT",
        &format!("/workspaces/default/endpoints/{id}"),
        Some(base(json!({"ordering": "fifo", "ordering_key": "nope"}))),
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

/// An event whose ordered task SQS would not take is stored pending for that endpoint only:
/// reconciliation sends its task and nothing else, so the unordered endpoint, whose task was
/// queued, gets the event once, and the ordered line gets it once, in its place.
#[tokio::test]
async fn reconciliation_sends_only_the_tasks_that_were_never_queued() {
    let mut stack = Stack::new().await;
    let ordered = Receiver::start().await;
    let plain = Receiver::start().await;
    let source = create_source(&stack, json!({"name": "src"})).await;
    create_endpoint(
        &stack,
        json!({"name": "ordered", "url": ordered.url, "events": ["*"],
               "delivery": {"ordering": "fifo"}}),
    )
    .await;
    create_endpoint(
        &stack,
        json!({"name": "plain", "url": plain.url, "events": ["*"]}),
    )
    .await;

    // The ordered queue refuses the send (it does not exist for this ingest).
    let working = stack.settings.ordered_queue_url.clone();
    stack.settings.ordered_queue_url = working.as_ref().map(|u| format!("{u}-missing.fifo"));
    let id = send_event(
        &stack,
        &source,
        json!({"event_type": "x", "data": {"seq": 0}})
            .to_string()
            .as_bytes(),
    )
    .await;
    stack.settings.ordered_queue_url = working;

    let delivery = stack.delivery();
    stack.drain(&delivery).await;
    assert_eq!(plain.deliveries().len(), 1, "the queued task is delivered");
    assert!(ordered.deliveries().is_empty(), "the refused one is not");

    let later = hookrelay_shared::Timestamp::now().plus(stack.settings.reconcile_after * 2);
    let report = hookrelay_sweeper::handle(&stack.sweeper(), later)
        .await
        .expect("sweep");
    assert_eq!((report.pending_found, report.reenqueued_tasks), (1, 1));
    stack.drain(&delivery).await;
    for _ in 0..5 {
        stack
            .deliver_ordered_once(&delivery, Duration::from_secs(1))
            .await;
        if !ordered.deliveries().is_empty() {
            break;
        }
    }
    assert_eq!(
        ordered.deliveries().len(),
        1,
        "the ordered endpoint gets it"
    );
    assert_eq!(plain.deliveries().len(), 1, "the plain endpoint not twice");
    assert_eq!(
        ordered.deliveries()[0]
            .headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok()),
        Some(id.as_str())
    );

    let again = hookrelay_sweeper::handle(&stack.sweeper(), later)
        .await
        .expect("sweep");
    assert_eq!(again.pending_found, 0, "no longer pending");
}

/// The ordered queue's own dead-letter queue (where SQS moves a task whose invocations keep
/// crashing) is read and redriven through the admin API like the main one, and a redriven
/// task goes back to its line.
#[tokio::test]
async fn the_ordered_dead_letter_queue_is_read_and_redriven_into_its_line() {
    let mut stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let source = create_source(&stack, json!({"name": "src"})).await;
    create_endpoint(
        &stack,
        json!({"name": "ordered", "url": receiver.url, "events": ["*"],
               "delivery": {"ordering": "fifo"}}),
    )
    .await;
    let id = send_event(
        &stack,
        &source,
        json!({"event_type": "x", "data": {"seq": 0}})
            .to_string()
            .as_bytes(),
    )
    .await;

    // What SQS's redrive policy does after maxReceiveCount crashed receives: the message,
    // body intact, onto the dead-letter queue.
    let ordered_url = stack.settings.ordered_queue_url.clone().expect("ordered");
    let dlq_url = stack
        .settings
        .ordered_dead_letter_queue_url
        .clone()
        .expect("ordered dlq");
    let received = stack
        .sqs
        .receive_message()
        .queue_url(&ordered_url)
        .wait_time_seconds(1)
        .send()
        .await
        .expect("receive");
    let message = received.messages().first().expect("the task").clone();
    stack
        .sqs
        .send_message()
        .queue_url(&dlq_url)
        .message_body(message.body().expect("body"))
        .message_group_id("crashed")
        .message_deduplication_id(message.message_id().expect("id"))
        .send()
        .await
        .expect("dead-lettered");
    stack
        .sqs
        .delete_message()
        .queue_url(&ordered_url)
        .receipt_handle(message.receipt_handle().expect("handle"))
        .send()
        .await
        .expect("moved off the queue");

    let (status, peek) = admin_call(&stack, "GET", "/dlq?queue=ordered", None).await;
    assert_eq!(status, 200, "{peek}");
    assert_eq!(peek["data"][0]["task"]["event_id"], id.as_str(), "{peek}");
    let (_, main) = admin_call(&stack, "GET", "/dlq", None).await;
    assert_eq!(main["data"], json!([]), "the main DLQ is another queue");

    let (status, redriven) = admin_call(&stack, "POST", "/dlq/redrive?queue=ordered", None).await;
    assert_eq!(status, 200, "{redriven}");
    assert_eq!(redriven["moved"], 1, "{redriven}");
    let delivery = stack.delivery();
    let started = Instant::now();
    while receiver.deliveries().is_empty() && started.elapsed() < Duration::from_secs(10) {
        stack
            .deliver_ordered_once(&delivery, Duration::from_secs(1))
            .await;
    }
    assert_eq!(
        receiver.deliveries().len(),
        1,
        "back in its line and delivered"
    );

    let (status, bad) = admin_call(&stack, "GET", "/dlq?queue=fifo", None).await;
    assert_eq!(
        (status, &bad["error"]["code"]),
        (400, &json!("invalid_queue"))
    );
    stack.settings.ordered_dead_letter_queue_url = None;
    let (status, none) = admin_call(&stack, "POST", "/dlq/redrive?queue=ordered", None).await;
    assert_eq!(
        (status, &none["error"]["code"]),
        (404, &json!("no_ordered_queue"))
    );
}
