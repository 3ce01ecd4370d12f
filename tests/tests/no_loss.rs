//! No loss under faults: hundreds of events through ingest and delivery to endpoints that
//! fail at random, and a delivery invocation killed mid-batch. Every accepted event reaches
//! each subscribed endpoint at least once or sits in the DLQ; none reaches an endpoint that
//! did not subscribe; duplicates carry the same `webhook-id`. Half the events are accepted
//! while the pollers run, so tasks race their own store writes as in AWS.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use futures::StreamExt;
use hookrelay_local::esm;
use hookrelay_shared::DeadLetter;
use hookrelay_tests::faulty::{Faults, FaultyReceiver};
use hookrelay_tests::receiver::Reply;
use hookrelay_tests::{Receiver, Stack, create_endpoint, create_source, request, send_event};
use serde_json::json;

const EVENTS: usize = 500;
/// Visibility timeout of this test's queue: how long a crashed batch stays hidden.
const CRASH_VISIBILITY: u64 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_accepted_event_is_delivered_or_dead_lettered() {
    let mut stack = Stack::with_schedule("1,1,1").await;
    stack.settings.delivery_timeout = Duration::from_secs(1);
    stack.settings.cache_ttl = Duration::from_secs(60);
    // Endpoints that fail at random open their circuits now and then: probe them every
    // second, so parked tasks come back within the test.
    stack.settings.circuit_probe_interval = Duration::from_secs(1);
    stack
        .sqs
        .set_queue_attributes()
        .queue_url(&stack.settings.delivery_queue_url)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            CRASH_VISIBILITY.to_string(),
        )
        .send()
        .await
        .unwrap();

    let faults = Faults {
        error: 0.15,
        hang: 0.05,
        drop: 0.05,
        slow: 0.10,
    };
    let a = FaultyReceiver::start(faults, 1).await; // a.*
    let b = FaultyReceiver::start(faults, 2).await; // *
    let c = FaultyReceiver::start(faults, 3).await; // c.only: never sent
    let source = create_source(&stack, json!({"name": "load"})).await;
    let ep_a = create_endpoint(
        &stack,
        json!({"name": "a", "url": a.url, "events": ["a.*"]}),
    )
    .await;
    let ep_b = create_endpoint(&stack, json!({"name": "b", "url": b.url, "events": ["*"]})).await;
    create_endpoint(
        &stack,
        json!({"name": "c", "url": c.url, "events": ["c.only"]}),
    )
    .await;

    // Accept the first half of the events before any poller runs (for the killed batch
    // below); the second half is accepted while the pollers run, so tasks race their own
    // store writes as they do in AWS.
    let ingest = Arc::new(stack.ingest());
    let accept = |range: std::ops::Range<usize>| {
        let (ingest, source) = (ingest.clone(), source.clone());
        async move {
            futures::stream::iter(range)
                .map(|n| {
                    let (ingest, source) = (ingest.clone(), source.clone());
                    async move {
                        let ty = if n % 2 == 0 { "a.created" } else { "b.updated" };
                        let body =
                            format!(r#"{{"event_type":"{ty}","data":{{"n":{n}}}}}"#).into_bytes();
                        let resp = hookrelay_ingest::handle(
                            &ingest,
                            request("POST", &format!("/in/{source}"), &[], &body),
                        )
                        .await;
                        assert_eq!(resp.status(), 202, "{}", resp.body());
                        let id: serde_json::Value = serde_json::from_str(resp.body()).unwrap();
                        (id["id"].as_str().unwrap().to_owned(), ty.to_owned(), body)
                    }
                })
                .buffer_unordered(8)
                .collect::<Vec<(String, String, Vec<u8>)>>()
                .await
        }
    };
    let mut accepted = accept(0..EVENTS / 2).await;
    let ctx = Arc::new(stack.delivery());

    // Kill a delivery invocation mid-batch: its messages are neither deleted nor delayed.
    let doomed = esm::receive_batch(&stack.sqs, &stack.mapping, Duration::from_secs(1))
        .await
        .unwrap();
    let doomed_ids: HashSet<String> = doomed.iter().filter_map(|m| m.message_id.clone()).collect();
    assert_eq!(doomed_ids.len(), stack.mapping.batch_size);
    let event = esm::to_event(&doomed, &stack.mapping);
    let victim = {
        let ctx = ctx.clone();
        tokio::spawn(async move { hookrelay_delivery::handle(&ctx, event).await })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    victim.abort();
    let killed_at = Instant::now();

    // Four concurrent pollers, like concurrent Lambda invocations, until the queue is empty.
    let seen_messages = Arc::new(std::sync::Mutex::new(Vec::<(String, Instant)>::new()));
    let deadline = Instant::now() + Duration::from_secs(240);
    let pollers = (0..4).map(|_| {
        let (ctx, seen_messages) = (ctx.clone(), seen_messages.clone());
        let (sqs, mapping) = (stack.sqs.clone(), stack.mapping.clone());
        tokio::spawn(async move {
            let mut idle = 0;
            while Instant::now() < deadline && idle < 8 {
                let batch = esm::receive_batch(&sqs, &mapping, Duration::from_secs(1))
                    .await
                    .unwrap();
                if batch.is_empty() {
                    // Done only when nothing waits either: retries and parked tasks are
                    // delayed messages, not visible ones.
                    if waiting(&sqs, &mapping.queue_url).await == 0 {
                        idle += 1;
                    }
                    continue;
                }
                idle = 0;
                {
                    let mut s = seen_messages.lock().unwrap();
                    s.extend(
                        batch
                            .iter()
                            .filter_map(|m| m.message_id.clone())
                            .map(|id| (id, Instant::now())),
                    );
                }
                let response =
                    hookrelay_delivery::handle(&ctx, esm::to_event(&batch, &mapping)).await;
                esm::complete(&sqs, &mapping, &batch, Some(&response))
                    .await
                    .unwrap();
            }
        })
    });
    let pollers: Vec<_> = pollers.collect();
    let late = tokio::spawn(accept(EVENTS / 2..EVENTS));
    accepted.extend(late.await.unwrap());
    assert_eq!(accepted.len(), EVENTS);
    futures::future::join_all(pollers).await;
    let tasks_expected = accepted
        .iter()
        .map(|(_, ty, _)| if ty == "a.created" { 2 } else { 1 })
        .sum::<usize>();
    assert_eq!(
        stack.queue_depth(&stack.settings.delivery_queue_url).await,
        (0, 0),
        "queue drained"
    );
    // A task still delayed (a retry, a parked one) means the pollers ran out of time, not
    // that anything was lost; say so rather than blame an event below.
    assert_eq!(
        waiting(&stack.sqs, &stack.settings.delivery_queue_url).await,
        0,
        "the pollers stopped at their deadline with tasks still waiting on the queue"
    );

    // The killed batch came back and was handled again (its timing is checked exactly in
    // `killed_invocation_leaves_its_batch_for_the_visibility_timeout`).
    let seen_messages = seen_messages.lock().unwrap().clone();
    for id in &doomed_ids {
        let back = seen_messages
            .iter()
            .find(|(m, _)| m == id)
            .unwrap_or_else(|| panic!("{id} never came back"));
        assert!(back.1 > killed_at);
    }

    // Dead letters, by (event, endpoint).
    let mut dead: HashSet<(String, String)> = HashSet::new();
    loop {
        let msgs = stack
            .sqs
            .receive_message()
            .queue_url(&stack.settings.dead_letter_queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            // A short poll's empty answer does not mean an empty DLQ.
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        if msgs.is_empty() {
            break;
        }
        for m in msgs {
            let l: DeadLetter = serde_json::from_str(m.body().unwrap()).unwrap();
            assert_eq!(l.attempts, 4);
            dead.insert((l.task.event_id, l.task.endpoint_id));
        }
    }

    // Every accepted event reached each subscribed endpoint, or is dead-lettered for it.
    let (got_a, got_b) = (a.delivered(), b.delivered());
    let id_a = ep_a["id"].as_str().unwrap().to_owned();
    let id_b = ep_b["id"].as_str().unwrap().to_owned();
    let mut delivered = 0;
    // Dead-lettered without the endpoint ever having it (a request it received but did not
    // answer counts as failed to hookrelay: such a task may be both).
    let mut dead_only = 0;
    for (id, ty, _) in &accepted {
        let mut targets = vec![(&got_b, &id_b)];
        if ty == "a.created" {
            targets.push((&got_a, &id_a));
        }
        for (got, ep) in targets {
            if got.contains_key(id) {
                delivered += 1;
            } else {
                dead_only += 1;
                assert!(
                    dead.contains(&(id.clone(), ep.clone())),
                    "{id} to {ep}: neither delivered nor dead-lettered"
                );
            }
        }
    }
    // None went where it was not subscribed.
    assert!(c.seen().is_empty());
    let a_types: HashMap<&str, &str> = accepted
        .iter()
        .map(|(id, ty, _)| (id.as_str(), ty.as_str()))
        .collect();
    assert!(
        a.seen()
            .iter()
            .all(|s| a_types[s.webhook_id.as_str()] == "a.created")
    );
    // Every request for one event carried that event's webhook-id and its exact body.
    let bodies: HashMap<&str, &[u8]> = accepted
        .iter()
        .map(|(id, _, b)| (id.as_str(), b.as_slice()))
        .collect();
    let requests: Vec<_> = a.seen().into_iter().chain(b.seen()).collect();
    for s in &requests {
        assert_eq!(bodies[s.webhook_id.as_str()], s.body.as_slice());
    }
    let duplicates: usize = got_a.values().chain(got_b.values()).map(|n| n - 1).sum();
    println!(
        "no-loss: {EVENTS} events, {tasks_expected} tasks, {delivered} delivered, {} dead-lettered, {} requests, {duplicates} duplicate deliveries, killed batch of {}",
        dead.len(),
        requests.len(),
        doomed_ids.len()
    );
    assert_eq!(delivered + dead_only, tasks_expected);
}

/// Messages on the queue that are not visible now: in flight or delayed.
async fn waiting(sqs: &aws_sdk_sqs::Client, url: &str) -> u64 {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    attrs.values().filter_map(|v| v.parse::<u64>().ok()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_invocation_leaves_its_batch_for_the_visibility_timeout() {
    let stack = Stack::new().await;
    stack
        .sqs
        .set_queue_attributes()
        .queue_url(&stack.settings.delivery_queue_url)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            CRASH_VISIBILITY.to_string(),
        )
        .send()
        .await
        .unwrap();
    let receiver = Receiver::start().await;
    // The first answer takes long enough for the invocation to die while waiting for it.
    receiver.replies(
        vec![Reply::status(200).delay(Duration::from_secs(3))],
        Reply::status(200),
    );
    let source = create_source(&stack, json!({"name": "s"})).await;
    create_endpoint(&stack, json!({"name": "r", "url": receiver.url})).await;
    let event_id = send_event(&stack, &source, br#"{"event_type":"x"}"#).await;

    let ctx = Arc::new(stack.delivery());
    let batch = esm::receive_batch(&stack.sqs, &stack.mapping, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(batch.len(), 1);
    let event = esm::to_event(&batch, &stack.mapping);
    let victim = {
        let ctx = ctx.clone();
        tokio::spawn(async move { hookrelay_delivery::handle(&ctx, event).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.deliveries().len(), 1, "the request was in flight");
    victim.abort();
    assert!(victim.await.unwrap_err().is_cancelled());

    // Hidden until the visibility timeout ends, then handled again: nothing was lost.
    tokio::time::sleep(Duration::from_secs(CRASH_VISIBILITY - 2)).await;
    assert!(stack.deliver_once(&ctx, Duration::ZERO).await.is_none());
    let again = stack
        .deliver_once(&ctx, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!((again.received, again.deleted), (1, 1));
    let got = receiver.deliveries();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].header("webhook-id"), event_id);
    assert_eq!(
        got[1].header("webhook-id"),
        event_id,
        "the duplicate carries the same id"
    );
}
