//! Ordered endpoints on the delivery side: records from the ordered (FIFO) queue.
//!
//! A batch holds, for each line (SQS message group) in it, some of that line's next
//! messages in the order they were accepted. Each line is delivered one message at a time,
//! in that order; lines run concurrently. When a message cannot end now (a failed attempt
//! with retries left, a rate limit, an event not stored yet, too little time left), it and
//! every later message of its line in the batch are answered as failures: none of the later
//! ones may be deleted before it. The message itself is the retry timer: its visibility
//! timeout is set to the schedule's delay, and the later ones are made visible again at
//! once: SQS hands out none of a line's messages while one of them is in flight, so they
//! wait behind their head without a timer of their own (one that ran out before the head's
//! could only let them come back ahead of it). A message that ends
//! (delivered, exhausted and dead-lettered, cancelled, refused) lets its line move on.
//!
//! Attempts are counted by hookrelay, as on the deliveries queue, but a retried message
//! cannot carry its count (its body is the one first sent): the count is read back from the
//! attempt history, on receives after the first only.

use std::collections::HashMap;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsMessage};
use futures::StreamExt;
use hookrelay_shared::store::{AttemptFilter, PageRequest};
use hookrelay_shared::telemetry::error_chain;
use hookrelay_shared::{AttemptStatus, DeliveryTask, TriggerMode};

use crate::{Context, Endpoints, Events, Outcome, Received, Way, deliver_one};

/// One line's messages in a batch, in the order SQS handed them out.
#[derive(Debug)]
pub struct Line {
    pub group: String,
    pub received: Vec<Received>,
}

/// The message group a record was sent in: SQS's attribute, else the task's own.
pub fn group_of(msg: &SqsMessage, task: &DeliveryTask) -> String {
    msg.attributes
        .get("MessageGroupId")
        .cloned()
        .or_else(|| task.group.clone())
        .unwrap_or_else(|| task.endpoint_id.clone())
}

/// Splits a batch into its lines, keeping the order of each line's messages and the order
/// in which lines first appear.
pub fn lines(received: Vec<(String, Received)>) -> Vec<Line> {
    let mut out: Vec<Line> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for (group, r) in received {
        match at.get(&group) {
            Some(&i) => out[i].received.push(r),
            None => {
                at.insert(group.clone(), out.len());
                out.push(Line {
                    group,
                    received: vec![r],
                });
            }
        }
    }
    out
}

/// Splits a line at the first message that could not end now (`stopped`, its index): the
/// messages tried, that one included (it answers for itself), and the messages behind it,
/// which are answered as failures unsent, so that none is deleted ahead of it.
pub fn split_at_stop<T>(mut line: Vec<T>, stopped: Option<usize>) -> (Vec<T>, Vec<T>) {
    match stopped {
        Some(i) if i < line.len() => {
            let behind = line.split_off(i + 1);
            (line, behind)
        }
        _ => (line, Vec::new()),
    }
}

/// What one line did: its messages' outcomes, and those left unsent behind a message that
/// waits.
struct LineRun {
    outcomes: Vec<(Received, Outcome)>,
    behind: Vec<Received>,
}

/// Delivers the records of the ordered queue (at `url`) and answers, in `response`, the
/// messages to hand back.
pub async fn handle(
    ctx: &Context,
    url: &str,
    received: Vec<(String, Received)>,
    response: &mut SqsBatchResponse,
) {
    if received.is_empty() {
        return;
    }
    let started = hookrelay_shared::Timestamp::now();
    let event_keys = received
        .iter()
        .flat_map(|(_, r)| crate::task_event_keys(&r.task).cloned())
        .collect();
    let endpoint_refs = received
        .iter()
        .map(|(_, r)| (r.task.workspace.clone(), r.task.endpoint_id.clone()))
        .collect();
    let (events, endpoints) = match ctx
        .store
        .load_for_delivery(&event_keys, &endpoint_refs)
        .await
    {
        Ok(found) => found,
        Err(e) => {
            // Every line waits, whole and in order, for the queue's visibility timeout.
            tracing::error!(error = %error_chain(&e), "ordered batch read failed; the whole batch is retried");
            for (_, r) in &received {
                response.add_failure(r.message_id.clone());
            }
            return;
        }
    };
    let runs: Vec<LineRun> = futures::stream::iter(lines(received))
        .map(|line| run_line(ctx, line, &events, &endpoints))
        .buffer_unordered(ctx.settings.delivery_concurrency)
        .collect()
        .await;
    let mut outcomes = Vec::new();
    let mut behind = Vec::new();
    for run in runs {
        outcomes.extend(run.outcomes);
        for r in run.behind {
            response.add_failure(r.message_id.clone());
            behind.push((r.receipt_handle, Duration::ZERO));
        }
    }
    crate::record(
        ctx,
        outcomes,
        (&events, &endpoints),
        response,
        Some(url),
        started,
    )
    .await;
    // Visible again, and held by SQS until their head is deleted or visible again.
    if !behind.is_empty()
        && let Err(e) = ctx.queue.delay_on(url, &behind).await
    {
        tracing::warn!(error = %error_chain(&e), "visibility not changed; the queue's timeout applies to the held messages");
    }
}

/// Moves tasks of ordered endpoints that came through the deliveries queue to the end of
/// their lines. A task SQS does not take is answered as a failure, so it comes back.
pub async fn join_lines(
    ctx: &Context,
    received: Vec<Received>,
    events: &Events,
    endpoints: &Endpoints,
    response: &mut SqsBatchResponse,
) {
    let mut tasks = Vec::with_capacity(received.len());
    for r in &received {
        let mut task = r.task.clone();
        let key = (task.workspace.clone(), task.endpoint_id.clone());
        if let (Some(ep), Some(event)) = (endpoints.get(&key), events.get(&task.event_key))
            && let Some(o) = ep.ordered()
        {
            task.group = Some(hookrelay_shared::ordering::group(
                &ep.id,
                &o,
                &event.payload,
            ));
        }
        tasks.push(task);
    }
    let unsent = match ctx.queue.send_ordered(&tasks, false).await {
        Ok(unsent) => unsent,
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "tasks not moved to their lines; retried");
            tasks.clone()
        }
    };
    for (r, task) in received.into_iter().zip(&tasks) {
        if unsent.contains(task) {
            response.add_failure(r.message_id);
        } else {
            tracing::info!(event.id = %task.event_id, endpoint.id = %task.endpoint_id, "task moved to its line");
        }
    }
}

/// Delivers a line's messages one after the other, stopping at the first that cannot end.
async fn run_line(ctx: &Context, line: Line, events: &Events, endpoints: &Endpoints) -> LineRun {
    let mut received = line.received;
    let mut outcomes = Vec::with_capacity(received.len());
    let mut stopped = None;
    for (i, r) in received.iter_mut().enumerate() {
        if r.receive_count > 1 {
            r.attempt = attempts_before(ctx, r).await.saturating_add(1);
        }
        let outcome = deliver_one(ctx, r, events, endpoints, Way::Ordered).await;
        let hold = outcome.hold();
        outcomes.push(outcome);
        if let Some(w) = hold {
            stopped = Some(i);
            tracing::info!(group = %line.group, wait_s = w.as_secs(), "line held behind its head");
            break;
        }
    }
    let (tried, behind) = split_at_stop(received, stopped);
    LineRun {
        outcomes: tried.into_iter().zip(outcomes).collect(),
        behind,
    }
}

/// The attempts this task has had since its message was sent: the highest attempt number
/// among its endpoint's attempts of its event from then on, of its own kind (automatic or
/// asked for); the task's own count when there are none or they cannot be read.
async fn attempts_before(ctx: &Context, r: &Received) -> u32 {
    let filter = AttemptFilter {
        event_id: Some(r.task.event_id.clone()),
        endpoint_id: Some(r.task.endpoint_id.clone()),
        status: None,
    };
    let page = PageRequest {
        // A task has at most 21 automatic attempts: one page holds them.
        limit: Some(100),
        cursor: None,
    };
    match ctx
        .store
        .find_attempts(&r.task.workspace, &filter, &page)
        .await
    {
        Ok(found) => found
            .data
            .iter()
            .filter(|a| r.sent_at.is_none_or(|at| a.attempted_at >= at))
            .filter(|a| (a.trigger_mode == TriggerMode::Manual) == r.task.manual)
            .filter(|a| a.status != AttemptStatus::Canceled)
            .map(|a| a.attempt_number)
            .max()
            .unwrap_or(r.task.attempts)
            .max(r.task.attempts),
        Err(e) => {
            tracing::warn!(event.id = %r.task.event_id, error = %error_chain(&e), "attempt count not read; counting from the task");
            r.task.attempts
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_messages_of_a_stopped_line_are_failures_too() {
        // A batch of two lines, interleaved: a1 b1 a2 a3 b2 a4.
        let batch = [
            ("a", "a1"),
            ("b", "b1"),
            ("a", "a2"),
            ("a", "a3"),
            ("b", "b2"),
            ("a", "a4"),
        ];
        let mut order: Vec<&str> = Vec::new();
        let mut by_line: HashMap<&str, Vec<&str>> = HashMap::new();
        for (g, id) in batch {
            if !order.contains(&g) {
                order.push(g);
            }
            by_line.entry(g).or_default().push(id);
        }
        // a2 fails: a3 and a4 must not be deleted before it; b goes on.
        let (tried, behind) = split_at_stop(by_line["a"].clone(), Some(1));
        assert_eq!(tried, ["a1", "a2"]);
        assert_eq!(behind, ["a3", "a4"]);
        let (tried, behind) = split_at_stop(by_line["b"].clone(), None);
        assert_eq!(tried, ["b1", "b2"]);
        assert!(behind.is_empty());
        // The head itself failing holds the whole line; the last one, nothing behind it.
        assert_eq!(split_at_stop(vec![1, 2, 3], Some(0)), (vec![1], vec![2, 3]));
        assert_eq!(
            split_at_stop(vec![1, 2, 3], Some(2)),
            (vec![1, 2, 3], vec![])
        );
    }

    fn received(id: &str, group: &str) -> (String, Received) {
        let task: DeliveryTask = serde_json::from_value(serde_json::json!({
            "v": 1, "workspace": "default", "event_key": "k", "event_id": id,
            "endpoint_id": "ep_1", "group": group,
        }))
        .expect("task");
        (
            group.to_owned(),
            Received {
                message_id: id.to_owned(),
                receipt_handle: id.to_owned(),
                task,
                attempt: 1,
                receive_count: 1,
                sent_at: None,
                trace_id: None,
                deadline: None,
            },
        )
    }

    #[test]
    fn a_batch_splits_into_lines_in_order() {
        let batch = vec![
            received("a1", "a"),
            received("b1", "b"),
            received("a2", "a"),
            received("b2", "b"),
            received("a3", "a"),
        ];
        let split = lines(batch);
        let ids: Vec<(String, Vec<String>)> = split
            .into_iter()
            .map(|l| {
                (
                    l.group,
                    l.received.into_iter().map(|r| r.message_id).collect(),
                )
            })
            .collect();
        assert_eq!(
            ids,
            [
                (
                    "a".to_owned(),
                    vec!["a1".to_owned(), "a2".into(), "a3".into()]
                ),
                ("b".to_owned(), vec!["b1".to_owned(), "b2".into()]),
            ]
        );
    }
}
