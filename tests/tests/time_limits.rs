//! Work that must end inside a time limit: the admin function's calls within their deadline
//! (test pings, dead-letter redrive, recovery on reactivation), resumed by the next call when
//! cut short, and the sweeper's stranded-event backlog drained over successive runs.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hookrelay_admin::Deadline;
use hookrelay_shared::{DeliveryTask, Event, Timestamp};
use hookrelay_tests::receiver::Reply;
use hookrelay_tests::{
    ADMIN_KEY, Receiver, Stack, admin_request, aws_endpoint, create_endpoint, create_source,
    json_of, send_event,
};
use serde_json::{Value, json};

/// What each request to the emulator costs through the slow proxy: enough that a step of a
/// few requests takes measurable time, so a deadline falls between steps predictably.
const LATENCY: Duration = Duration::from_millis(250);

async fn call_within(
    admin: &hookrelay_admin::Context,
    method: &str,
    uri: &str,
    deadline: Deadline,
) -> (u16, Value) {
    let resp =
        hookrelay_admin::handle_with_deadline(admin, admin_request(method, uri, None), deadline)
            .await;
    (resp.status().as_u16(), json_of(&resp))
}

/// An admin context whose AWS requests each take [`LATENCY`] longer.
async fn slow_admin(stack: &Stack) -> hookrelay_admin::Context {
    let url = hookrelay_tests::slow::proxy(aws_endpoint(), LATENCY).await;
    let aws = hookrelay_shared::aws::local(&url).await;
    hookrelay_admin::Context::new(&aws, stack.settings.clone(), ADMIN_KEY.to_owned())
        .expect("admin context")
}

/// Every message on the deliveries queue, removed, as tasks.
async fn take_tasks(stack: &Stack) -> Vec<DeliveryTask> {
    stack
        .take_all(&stack.settings.delivery_queue_url)
        .await
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap_or_default()).expect("task"))
        .collect()
}

fn counts<'a>(ids: impl IntoIterator<Item = &'a str>) -> HashMap<&'a str, usize> {
    let mut n = HashMap::new();
    for id in ids {
        *n.entry(id).or_default() += 1;
    }
    n
}

#[tokio::test]
async fn a_ping_to_a_receiver_that_never_answers_ends_within_the_deadline() {
    let stack = Stack::new().await;
    let admin = stack.admin();
    let receiver = Receiver::start().await;
    receiver.replies(vec![], Reply::status(200).delay(Duration::from_secs(60)));
    let ep = create_endpoint(
        &stack,
        json!({"name": "silent", "url": receiver.url, "timeout_seconds": 25}),
    )
    .await;
    let uri = format!(
        "/workspaces/default/endpoints/{}/test",
        ep["id"].as_str().unwrap()
    );

    let started = Instant::now();
    let (status, attempt) = call_within(
        &admin,
        "POST",
        &uri,
        Deadline::after(Duration::from_secs(5)),
    )
    .await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
    assert_eq!(status, 200, "{attempt}");
    assert_eq!(attempt["status"], "FAILED");
    assert_eq!(attempt["error_code"], "TIMEOUT");

    // Creating with `"verify": true` is refused in time, with why.
    let started = Instant::now();
    let resp = hookrelay_admin::handle_with_deadline(
        &admin,
        admin_request(
            "POST",
            "/workspaces/default/endpoints",
            Some(json!({"name": "v", "url": receiver.url, "timeout_seconds": 25, "verify": true})),
        ),
        Deadline::after(Duration::from_secs(5)),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(resp.status(), 400, "{}", resp.body());
    let err = json_of(&resp);
    assert_eq!(err["error"]["code"], "endpoint_unverified");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("TIMEOUT"),
        "{err}"
    );

    // Too little time to send anything: a clear refusal, nothing sent.
    let seen = receiver.deliveries().len();
    let (status, err) = call_within(
        &admin,
        "POST",
        &uri,
        Deadline::after(Duration::from_secs(2)),
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (503, Some("deadline_exceeded"))
    );
    assert_eq!(receiver.deliveries().len(), seen);
}

#[tokio::test]
async fn a_redrive_cut_short_reports_progress_and_the_next_call_finishes_it() {
    let stack = Stack::new().await;
    let letters = 35;
    for i in 0..letters {
        let task = json!({
            "v": 1, "workspace": "default", "event_key": format!("EVT#k{i}"),
            "event_id": format!("evt_{i:03}"), "endpoint_id": "ep_x",
        });
        stack
            .sqs
            .send_message()
            .queue_url(&stack.settings.dead_letter_queue_url)
            .message_body(
                json!({"task": task, "reason": "exhausted", "attempts": 3,
                "endpoint_url": "https://example.com/", "event_type": "a",
                "failed_at": Timestamp::now()})
                .to_string(),
            )
            .send()
            .await
            .expect("dead letter");
    }
    let slow = slow_admin(&stack).await;

    // Room for a couple of rounds (each a few slow requests) after the time kept back.
    let (status, first) = call_within(
        &slow,
        "POST",
        "/dlq/redrive",
        Deadline::after(Duration::from_secs(9)),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let moved = first["moved"].as_u64().unwrap();
    assert!(moved > 0 && moved < letters, "{first}");
    assert_eq!(first["complete"], false);
    assert_eq!(first["remaining_estimate"], letters - moved, "{first}");

    let (status, second) = call_within(
        &stack.admin(),
        "POST",
        "/dlq/redrive",
        Deadline::after(Duration::from_secs(20)),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["moved"], letters - moved, "{second}");
    assert_eq!(second["complete"], true);
    assert_eq!(second["remaining_estimate"], 0);

    let tasks = take_tasks(&stack).await;
    let n = counts(tasks.iter().map(|t| t.event_id.as_str()));
    assert_eq!(n.len(), letters as usize, "every letter is back");
    assert!(n.values().all(|&c| c == 1), "none twice: {n:?}");
    assert!(tasks.iter().all(|t| !t.manual));
    assert_eq!(
        stack
            .queue_depth(&stack.settings.dead_letter_queue_url)
            .await,
        (0, 0)
    );

    // The peek long-polls: an empty queue answers empty, a letter is found.
    let (status, peek) = call_within(
        &stack.admin(),
        "GET",
        "/dlq",
        Deadline::after(Duration::from_secs(10)),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(peek["data"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn a_recovery_cut_short_is_finished_by_the_next_call_each_event_once() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let source = create_source(&stack, json!({"name": "s"})).await;
    let ep = create_endpoint(&stack, json!({"name": "e", "url": receiver.url})).await;
    let id = ep["id"].as_str().unwrap();
    let uri = format!("/workspaces/default/endpoints/{id}");
    let before = Timestamp::now().minus(Duration::from_secs(5));
    let admin = stack.admin();
    let off = hookrelay_admin::handle(
        &admin,
        admin_request(
            "PUT",
            &uri,
            Some(json!({"name": "e", "url": receiver.url, "enabled": false})),
        ),
    )
    .await;
    assert_eq!(off.status(), 200);
    let missed: Vec<String> = futures::stream::iter(0..45)
        .then(|_| send_event(&stack, &source, br#"{"event_type": "a"}"#))
        .collect()
        .await;
    let delivery = stack.delivery();
    stack.drain(&delivery).await;
    assert!(receiver.deliveries().is_empty());

    let mut slow = slow_admin(&stack).await;
    slow.recovery_page = 10;
    let enable = format!("{uri}/enable?recover_since={before}");
    let (status, first) = call_within(
        &slow,
        "POST",
        &enable,
        Deadline::after(Duration::from_secs(9)),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["reactivated"], true);
    assert_eq!(first["complete"], false, "{first}");
    let done = first["recovered"].as_u64().unwrap();
    assert!(done > 0 && done < 45, "{first}");
    assert_eq!(first["endpoint"]["enabled"], true, "on from the start");
    assert_eq!(first["endpoint"]["recovery"]["recovered"], done);

    // Events after the reactivation reach the endpoint as usual, and are not recovered.
    let after = send_event(&stack, &source, br#"{"event_type": "a"}"#).await;

    // The next call carries on from where the first stopped; it needs no `recover_since`.
    let (status, second) = call_within(
        &admin,
        "POST",
        &format!("{uri}/enable"),
        Deadline::after(Duration::from_secs(20)),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["reactivated"], false);
    assert_eq!(second["complete"], true);
    assert_eq!(
        second["recovered"], 45,
        "the total, this call's and the first's"
    );
    assert!(second["endpoint"].get("recovery").is_none());

    stack.drain(&delivery).await;
    let ids: Vec<String> = receiver
        .deliveries()
        .iter()
        .map(|d| d.header("webhook-id"))
        .collect();
    let n = counts(ids.iter().map(String::as_str));
    let mut want: Vec<&str> = missed.iter().map(String::as_str).collect();
    want.push(&after);
    assert_eq!(n.len(), want.len(), "{n:?}");
    assert!(
        want.iter().all(|w| n.get(w) == Some(&1)),
        "each event exactly once: {n:?}"
    );

    // Done: another call recovers nothing more.
    let (_, third) = call_within(
        &admin,
        "POST",
        &enable,
        Deadline::after(Duration::from_secs(20)),
    )
    .await;
    assert_eq!(
        (third["recovered"].as_u64(), third["complete"].as_bool()),
        (Some(0), Some(true))
    );
}

#[tokio::test]
async fn the_sweeper_drains_a_stranded_backlog_over_successive_runs() {
    let stack = Stack::new().await;
    // Twelve pages of 50; a run's time (1 s past the reserve) covers a page or two here.
    let backlog = 600;
    let scope = "src_backlog:default";
    let stored: usize = futures::stream::iter(0..backlog)
        .map(|i| {
            let store = &stack.store;
            let retention = stack.settings.retention();
            async move {
                let id = hookrelay_shared::ids::new_id(hookrelay_shared::ids::EVENT);
                let event = Event {
                    id: id.clone(),
                    workspace: "default".into(),
                    source_id: "src_backlog".into(),
                    event_type: "a".into(),
                    idempotency_key: format!("k{i}"),
                    received_at: Timestamp::now(),
                    payload: b"{}".to_vec(),
                    endpoint_ids: vec!["ep_x".into()],
                    content_type: None,
                    hops: 0,
                    trace: None,
                };
                store
                    .insert_event(&event, scope, true, retention)
                    .await
                    .expect("stored");
                1
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .sum();
    assert_eq!(stored, backlog);

    let mut sweeper = stack.sweeper();
    sweeper.pending_page = 50;
    let later = Timestamp::now().plus(Duration::from_secs(3600));
    let mut runs = Vec::new();
    let mut queued = 0;
    while runs.len() < 40 {
        let deadline = Instant::now() + hookrelay_sweeper::PAGE_RESERVE + Duration::from_secs(1);
        let report = hookrelay_sweeper::run_until(
            &sweeper,
            later,
            hookrelay_sweeper::SweepOptions::default(),
            deadline,
        )
        .await
        .expect("sweep");
        assert_eq!(report.errors, 0);
        queued += report.reenqueued_events;
        let complete = report.pending_complete;
        runs.push(report);
        if complete {
            break;
        }
    }
    assert!(
        !runs[0].pending_complete && runs[0].reenqueued_events < backlog,
        "one run's time is not enough for the whole backlog: {:?}",
        runs[0]
    );
    assert!(runs.len() > 1);
    assert!(runs.last().unwrap().pending_complete, "drained: {runs:?}");
    assert_eq!(queued, backlog);
    let tasks = take_tasks(&stack).await;
    // With its tasks, each stranded event gets one that lists it: whether its first listing
    // was sent is not known.
    let (listings, deliveries): (Vec<_>, Vec<_>) = tasks.iter().partition(|t| t.lists_only());
    for tasks in [deliveries, listings] {
        let n = counts(tasks.iter().map(|t| t.event_key.as_str()));
        assert_eq!(n.len(), backlog);
        assert!(
            n.values().all(|&c| c == 1),
            "each stranded event queued once"
        );
    }
}
