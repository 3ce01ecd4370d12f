//! Retries hold no SQS capacity and are counted by hookrelay: a failed attempt's task goes
//! back as a new, delayed message carrying its attempt count (a wait longer than SQS's 900 s
//! goes on in hops), so no message sits in flight while it waits; receives that send nothing
//! are never attempts; the queue's `maxReceiveCount` is a last guard that still leaves a
//! letter, an attempt and `attempt.exhausted`; an endpoint that keeps failing has its circuit
//! opened, its tasks parked and one probe at a time sent; a letter moved back by SQS's own
//! DLQ redrive is delivered.

use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName as A;
use hookrelay_shared::{DeliveryTask, Timestamp};
use hookrelay_tests::{
    Receiver, Stack, attempts_of, create_endpoint, create_source, request, send_event,
};
use serde_json::{Value, json};

/// (visible, in flight, delayed) on the deliveries queue.
async fn depth(stack: &Stack) -> (u64, u64, u64) {
    let attrs = stack
        .sqs
        .get_queue_attributes()
        .queue_url(&stack.settings.delivery_queue_url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(A::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    let n = |a: A| attrs.get(&a).and_then(|v| v.parse().ok()).unwrap_or(0);
    (
        n(A::ApproximateNumberOfMessages),
        n(A::ApproximateNumberOfMessagesNotVisible),
        n(A::ApproximateNumberOfMessagesDelayed),
    )
}

/// Receives the deliveries queue's messages without handling them, as an invocation that
/// crashed, timed out or was throttled would: each receive counts, nothing is sent.
async fn receive_and_drop(stack: &Stack, times: usize) {
    for _ in 0..times {
        let got = stack
            .sqs
            .receive_message()
            .queue_url(&stack.settings.delivery_queue_url)
            .visibility_timeout(0)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        assert!(!got.is_empty(), "the task is on the queue");
    }
}

async fn setup(stack: &Stack, url: &str, schedule: &[u64]) -> (String, Value) {
    let source = create_source(stack, json!({"name": "src"})).await;
    let ep = create_endpoint(
        stack,
        json!({"name": "ep", "url": url, "events": ["*"], "retry": {"schedule": schedule}}),
    )
    .await;
    (source, ep)
}

#[tokio::test]
async fn a_waiting_retry_is_a_delayed_message_not_an_in_flight_one() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    receiver.script(&[500], 200);
    let (source, _) = setup(&stack, &receiver.url, &[2]).await;
    let id = send_event(&stack, &source, br#"{"event_type":"x"}"#).await;
    let delivery = stack.delivery();
    let first = stack
        .deliver_once(&delivery, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(
        (first.received, first.failed),
        (1, 0),
        "the message is done"
    );
    assert_eq!(
        depth(&stack).await,
        (0, 0, 1),
        "the retry waits delayed, not in flight"
    );

    let started = Instant::now();
    let mut second = None;
    while second.is_none() && started.elapsed() < Duration::from_secs(10) {
        second = stack.deliver_once(&delivery, Duration::from_secs(1)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "not before its delay"
    );
    let attempts = attempts_of(&stack, &id).await;
    let got: Vec<(&str, u64)> = attempts
        .iter()
        .map(|a| {
            (
                a["status"].as_str().unwrap(),
                a["attempt_number"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, [("SUCCESSFUL", 2), ("FAILED", 1)]);
    assert_eq!(attempts[0]["trigger_mode"], "AUTOMATIC");
    assert_eq!(depth(&stack).await, (0, 0, 0));
}

#[tokio::test]
async fn a_wait_longer_than_sqs_allows_goes_on_in_hops_that_are_not_attempts() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let (source, ep) = setup(&stack, &receiver.url, &[3600]).await;
    let id = send_event(&stack, &source, br#"{"event_type":"x"}"#).await;
    // The task as its first failure would have queued it: due in an hour.
    let got = stack.take_all(&stack.settings.delivery_queue_url).await;
    let mut task: DeliveryTask = serde_json::from_str(got[0].body().unwrap()).unwrap();
    assert_eq!(task.endpoint_id, ep["id"].as_str().unwrap());
    task.attempts = 1;
    task.not_before = Some(Timestamp::now().plus(Duration::from_secs(3600)));
    stack
        .sqs
        .send_message()
        .queue_url(&stack.settings.delivery_queue_url)
        .message_body(serde_json::to_string(&task).unwrap())
        .send()
        .await
        .unwrap();

    let delivery = stack.delivery();
    let round = stack
        .deliver_once(&delivery, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!((round.received, round.failed), (1, 0));
    assert!(
        receiver.deliveries().is_empty(),
        "nothing sent before it is due"
    );
    assert!(
        attempts_of(&stack, &id).await.is_empty(),
        "a hop is no attempt"
    );
    assert_eq!(depth(&stack).await, (0, 0, 1), "the next hop waits delayed");
}

/// An endpoint with an empty schedule has exactly one real try, whatever happened to its
/// task's messages before: receives by invocations that crashed, timed out or were
/// throttled, a task that overtook its event, an invocation with too little time left.
#[tokio::test]
async fn receives_that_send_nothing_are_not_attempts() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let (source, _) = setup(&stack, &receiver.url, &[]).await;
    let delivery = stack.delivery();

    // Crashed, timed out or throttled invocations: received, never settled.
    let crashed = send_event(&stack, &source, br#"{"event_type":"x","n":1}"#).await;
    receive_and_drop(&stack, 3).await;
    stack.drain(&delivery).await;
    let a = attempts_of(&stack, &crashed).await;
    assert_eq!(a.len(), 1);
    assert_eq!(
        (a[0]["status"].as_str(), a[0]["attempt_number"].as_u64()),
        (Some("SUCCESSFUL"), Some(1))
    );

    // An invocation with less than a second left postpones the task.
    let postponed = send_event(&stack, &source, br#"{"event_type":"x","n":2}"#).await;
    let delivery_ref = &delivery;
    let round = hookrelay_local::esm::run_once(
        &stack.sqs,
        &stack.mapping,
        Duration::from_secs(1),
        |event| async move {
            let deadline = std::time::Instant::now() + Duration::from_millis(200);
            Ok(hookrelay_delivery::handle_traced(delivery_ref, event, None, Some(deadline)).await)
        },
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(round.failed, 1, "postponed");
    assert!(attempts_of(&stack, &postponed).await.is_empty());
    stack.drain(&delivery).await;
    let a = attempts_of(&stack, &postponed).await;
    assert_eq!((a.len(), a[0]["attempt_number"].as_u64()), (1, Some(1)));
    assert_eq!(receiver.deliveries().len(), 2, "one request per event");
}

#[tokio::test]
async fn the_receive_limit_leaves_a_letter_an_attempt_and_an_ops_event() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let bus = stack.ops_events_queue().await;
    let (source, ep) = setup(&stack, &receiver.url, &[1, 1]).await;
    let id = send_event(&stack, &source, br#"{"event_type":"x"}"#).await;
    // Invocations that keep crashing on it, up to the last receive SQS allows.
    receive_and_drop(
        &stack,
        hookrelay_delivery::DELIVERIES_MAX_RECEIVE_COUNT as usize - 1,
    )
    .await;
    let delivery = stack.delivery();
    stack.drain(&delivery).await;

    assert!(
        receiver.deliveries().is_empty(),
        "nothing sent on the last receive"
    );
    let letters = stack.dead_letters().await;
    assert_eq!(letters.len(), 1);
    let letter: Value = serde_json::from_str(letters[0].body().unwrap()).unwrap();
    assert_eq!(letter["reason"], "receive_limit");
    assert_eq!(letter["last_error_code"], "RECEIVE_LIMIT");
    let a = attempts_of(&stack, &id).await;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["error_code"], "RECEIVE_LIMIT");
    assert_eq!(a[0]["exhausted"], true);
    let ops = stack.read_ops_events(&bus).await;
    assert!(
        ops.iter().any(|e| e["detail-type"] == "attempt.exhausted"
            && e["detail"]["endpoint"]["id"] == ep["id"]),
        "{ops:?}"
    );
}

/// The template's redrive policy and the function's guard name the same receive limit.
#[test]
fn the_receive_guard_matches_the_templates_redrive_policy() {
    let template = include_str!("../../template.yaml");
    let queue = template
        .split("\n  DeliveriesQueue:")
        .nth(1)
        .expect("DeliveriesQueue");
    let limit: u32 = queue
        .lines()
        .find_map(|l| l.trim().strip_prefix("maxReceiveCount:"))
        .expect("maxReceiveCount")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(limit, hookrelay_delivery::DELIVERIES_MAX_RECEIVE_COUNT);
}

#[tokio::test]
async fn an_open_circuit_parks_tasks_and_sends_one_probe_at_a_time() {
    let stack = Stack::new().await;
    let (dead, healthy) = (Receiver::start().await, Receiver::start().await);
    dead.script(&[], 500);
    let source = create_source(&stack, json!({"name": "src"})).await;
    create_endpoint(
        &stack,
        json!({"name": "dead", "url": dead.url, "events": ["dead.*"], "retry": {"schedule": [1, 1, 1, 1, 1, 1]}}),
    )
    .await;
    create_endpoint(
        &stack,
        json!({"name": "healthy", "url": healthy.url, "events": ["ok.*"]}),
    )
    .await;
    let mut settings = stack.settings.clone();
    settings.circuit_breaker_after = 2;
    settings.circuit_probe_interval = Duration::from_secs(2);
    let delivery = hookrelay_delivery::Context::new(&stack.aws, settings).unwrap();
    let ingest = stack.ingest();
    let send = |t: &'static str, n: u32| {
        let ingest = &ingest;
        let source = &source;
        async move {
            let resp = hookrelay_ingest::handle(
                ingest,
                request(
                    "POST",
                    &format!("/in/{source}"),
                    &[],
                    json!({"event_type": t, "n": n}).to_string().as_bytes(),
                ),
            )
            .await;
            assert_eq!(resp.status(), 202);
        }
    };

    // Two failures in a row open the circuit.
    send("dead.x", 0).await;
    send("dead.x", 1).await;
    stack.deliver_once(&delivery, Duration::from_secs(1)).await;
    assert_eq!(dead.deliveries().len(), 2);

    // Six more for the dead endpoint, three for the healthy one, in one batch: one probe
    // goes, five are parked; the healthy ones go at once.
    for n in 2..8 {
        send("dead.x", n).await;
    }
    for n in 0..3 {
        send("ok.x", n).await;
    }
    let started = Instant::now();
    while healthy.deliveries().len() < 3 && started.elapsed() < Duration::from_secs(5) {
        stack
            .deliver_once(&delivery, Duration::from_millis(200))
            .await;
    }
    assert_eq!(
        healthy.deliveries().len(),
        3,
        "healthy endpoints are not held up"
    );
    assert_eq!(dead.deliveries().len(), 3, "one probe, the rest parked");
    let (_, in_flight, _) = depth(&stack).await;
    assert_eq!(in_flight, 0, "parked tasks hold no in-flight slot");

    // While it stays down, at most one request per probe interval.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        stack
            .deliver_once(&delivery, Duration::from_millis(500))
            .await;
    }
    let while_down = dead.deliveries().len() - 3;
    assert!(
        while_down <= 3,
        "{while_down} requests in 5 s to an open circuit"
    );

    // Back: the next probe succeeds, the circuit closes, everything parked goes.
    dead.script(&[], 200);
    let mark = dead.deliveries().len();
    let started = Instant::now();
    let delivered = |r: &Receiver| {
        let mut n: Vec<u64> = r.deliveries()[mark..]
            .iter()
            .map(|d| {
                serde_json::from_slice::<Value>(&d.body).unwrap()["n"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        n.sort_unstable();
        n.dedup();
        n
    };
    while delivered(&dead).len() < 8 && started.elapsed() < Duration::from_secs(40) {
        stack.deliver_once(&delivery, Duration::from_secs(1)).await;
    }
    assert_eq!(delivered(&dead), (0..8).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_letter_moved_back_by_sqs_itself_is_delivered() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    receiver.script(&[500], 200);
    let (source, _) = setup(&stack, &receiver.url, &[]).await;
    let id = send_event(&stack, &source, br#"{"event_type":"x"}"#).await;
    let delivery = stack.delivery();
    stack.drain(&delivery).await;
    let letters = stack.dead_letters().await;
    assert_eq!(letters.len(), 1, "exhausted after its one try");

    // What SQS's "Start DLQ redrive" does: the letter's body, as it is, back on the queue.
    stack
        .sqs
        .send_message()
        .queue_url(&stack.settings.delivery_queue_url)
        .message_body(letters[0].body().unwrap())
        .send()
        .await
        .unwrap();
    stack.drain(&delivery).await;
    let a = attempts_of(&stack, &id).await;
    assert_eq!(a[0]["status"], "SUCCESSFUL", "{a:?}");
    assert_eq!(a[0]["attempt_number"], 1, "attempts count afresh");
    assert_eq!(receiver.deliveries().len(), 2);
}

/// A batch that fails at once raises the failure streak by as many tasks as it held; the
/// first probe after the circuit opens still waits the base interval, and each failed probe
/// doubles the wait from there. (Measured from the streak, a blip of one batch pushed the
/// first probe out to the 15-minute cap.)
#[tokio::test]
async fn the_probe_wait_doubles_per_failed_probe_not_per_failure() {
    let stack = Stack::new().await;
    let dead = Receiver::start().await;
    dead.script(&[], 500);
    let source = create_source(&stack, json!({"name": "src"})).await;
    let ep = create_endpoint(
        &stack,
        json!({"name": "dead", "url": dead.url, "events": ["*"], "retry": {"schedule": [1, 1, 1]}}),
    )
    .await;
    let ep_id = ep["id"].as_str().expect("id").to_owned();
    let mut settings = stack.settings.clone();
    settings.circuit_breaker_after = 2;
    settings.circuit_probe_interval = Duration::from_secs(2);
    let delivery = hookrelay_delivery::Context::new(&stack.aws, settings).unwrap();

    // Ten failures in one batch: the streak is 10, five times the threshold.
    for n in 0..10 {
        send_event(
            &stack,
            &source,
            json!({"event_type": "x", "n": n}).to_string().as_bytes(),
        )
        .await;
    }
    stack.deliver_once(&delivery, Duration::from_secs(1)).await;
    assert_eq!(dead.deliveries().len(), 10);
    let streak = |e: &hookrelay_shared::Endpoint| (e.consecutive_failures, e.probes);
    let read = || async {
        stack
            .store
            .get_endpoint("default", &ep_id)
            .await
            .expect("read")
            .expect("stored")
    };
    assert_eq!(streak(&read().await), (10, 0));

    // The retries come back: one goes as the probe, due again after the base interval.
    let started = Instant::now();
    while dead.deliveries().len() < 11 && started.elapsed() < Duration::from_secs(10) {
        stack
            .deliver_once(&delivery, Duration::from_millis(500))
            .await;
    }
    let now = Timestamp::now();
    let after_one = read().await;
    assert_eq!(after_one.probes, 1, "one probe sent");
    let wait = after_one.probe_at.expect("next probe").since(now);
    assert!(
        wait <= Duration::from_secs(2),
        "the first probe's wait is the base interval, not the streak's: {wait:?}"
    );

    // The second probe, after the first failed, is due within twice that.
    let started = Instant::now();
    while read().await.probes < 2 && started.elapsed() < Duration::from_secs(20) {
        stack
            .deliver_once(&delivery, Duration::from_millis(500))
            .await;
    }
    let now = Timestamp::now();
    let after_two = read().await;
    assert_eq!(after_two.probes, 2, "a second probe after the first failed");
    let wait = after_two.probe_at.expect("next probe").since(now);
    assert!(wait <= Duration::from_secs(4), "doubled once: {wait:?}");
}
