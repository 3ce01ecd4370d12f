//! What each delivery's result does to its SQS message and its endpoint.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsBatchResponse;
use hookrelay_shared::model::attempt_error;
use hookrelay_shared::{Attempt, DeadLetter, DeliveryTask, Endpoint, Event, Timestamp};

use crate::{Context, Received, SUCCESS_WRITE_INTERVAL};
use hookrelay_shared::metrics::{self as m, Metrics};
use hookrelay_shared::model::disabled_reason;
use hookrelay_shared::ops_events::{self, OpsEvent};
use hookrelay_shared::telemetry::error_chain;

#[derive(Debug, Clone)]
pub enum Outcome {
    /// 2xx: the message is deleted.
    Delivered(Attempt),
    /// Failed with attempts left: the message comes back after `delay`.
    Retry { attempt: Attempt, delay: Duration },
    /// Failed on the last attempt: the task goes to the dead-letter queue.
    Exhausted(Attempt),
    /// 410 Gone: the endpoint is disabled and the task ends.
    Gone(Attempt),
    /// Not attempted (endpoint disabled or deleted): the task ends.
    Canceled(Attempt),
    /// Refused by the SSRF guard: waiting will not change that, so the task ends.
    Denied(Attempt),
    /// Nothing left to deliver (the event expired): the task ends.
    Dropped,
    /// Not attempted: too little of the invocation was left. The message comes back at once.
    Postponed,
    /// Not attempted: the task was queued moments ago and its event is not stored yet. The
    /// message comes back shortly.
    NotStoredYet,
    /// Not attempted: the endpoint's circuit is open and another task is its probe. The task
    /// is queued again after this long.
    Parked(Duration),
    /// Not attempted: the endpoint's rate limit is reached. The task is queued again after
    /// this long, its place in line kept by the wait (see `rate_limit`).
    Deferred(Duration),
}

/// SQS's longest message delay: a longer wait is re-queued in hops.
pub const MAX_DELAY: Duration = Duration::from_secs(900);

/// How long a task whose event is not stored yet waits before it is read again.
const NOT_STORED_DELAY: Duration = Duration::from_secs(5);

/// SQS's longest visibility timeout: a message cannot wait longer unseen.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(43_200);

impl Outcome {
    /// How long the task waits before it is tried again, when it does not end here.
    pub fn hold(&self) -> Option<Duration> {
        match self {
            Outcome::Retry { delay, .. } => Some(*delay),
            Outcome::Parked(wait) | Outcome::Deferred(wait) => Some(*wait),
            Outcome::Postponed => Some(Duration::ZERO),
            Outcome::NotStoredYet => Some(NOT_STORED_DELAY),
            Outcome::Delivered(_)
            | Outcome::Exhausted(_)
            | Outcome::Gone(_)
            | Outcome::Canceled(_)
            | Outcome::Denied(_)
            | Outcome::Dropped => None,
        }
    }

    pub fn attempt(&self) -> Option<&Attempt> {
        match self {
            Outcome::Delivered(a)
            | Outcome::Retry { attempt: a, .. }
            | Outcome::Exhausted(a)
            | Outcome::Gone(a)
            | Outcome::Canceled(a)
            | Outcome::Denied(a) => Some(a),
            Outcome::Dropped
            | Outcome::Postponed
            | Outcome::NotStoredYet
            | Outcome::Parked(_)
            | Outcome::Deferred(_) => None,
        }
    }
}

fn record(metrics: &mut Metrics, outcome: &Outcome) {
    let latency = |a: &Attempt| a.response.as_ref().map_or(0.0, |r| r.latency as f64);
    if outcome
        .attempt()
        .is_some_and(|a| a.error_code.as_deref() == Some(attempt_error::PLUGIN))
    {
        metrics.add(m::PLUGIN_FAILURES, 1.0);
    }
    match outcome {
        Outcome::Delivered(a) => {
            metrics.add(m::DELIVERIES_SUCCEEDED, 1.0);
            metrics.add(m::DELIVERY_LATENCY, latency(a));
            metrics.add(m::ATTEMPTS_PER_SUCCESS, f64::from(a.attempt_number));
        }
        Outcome::Retry { attempt, .. } => {
            metrics.add(m::DELIVERIES_FAILED, 1.0);
            metrics.add(m::DELIVERY_LATENCY, latency(attempt));
        }
        Outcome::Exhausted(a) => {
            metrics.add(m::DELIVERIES_FAILED, 1.0);
            metrics.add(m::DELIVERIES_EXHAUSTED, 1.0);
            metrics.add(m::DELIVERY_LATENCY, latency(a));
        }
        Outcome::Gone(a) => {
            metrics.add(m::DELIVERIES_FAILED, 1.0);
            metrics.add(m::DELIVERY_LATENCY, latency(a));
            metrics.add_by(
                m::ENDPOINTS_DEACTIVATED,
                "Reason",
                disabled_reason::GONE,
                1.0,
            );
        }
        Outcome::Denied(_) => metrics.add(m::DELIVERIES_DENIED, 1.0),
        Outcome::Parked(_) => metrics.add(m::DELIVERIES_PARKED, 1.0),
        Outcome::Deferred(_) => metrics.add(m::DELIVERIES_DEFERRED, 1.0),
        Outcome::Canceled(_) | Outcome::Dropped | Outcome::Postponed | Outcome::NotStoredYet => {}
    }
}

/// The batch's metrics, held or written as EMF lines (see `held_metrics`); what they held
/// is returned for OTLP.
pub(crate) fn flush_metrics(
    ctx: &Context,
    outcomes: &[(Received, Outcome)],
    started: Timestamp,
) -> hookrelay_shared::metrics::Recorded {
    let mut metrics = Metrics::new("delivery").since(started.unix_millis());
    for (_, o) in outcomes {
        record(&mut metrics, o);
    }
    let recorded = metrics.take();
    ctx.metric_lines.hold(&recorded);
    recorded
}

pub(crate) async fn settle(
    ctx: &Context,
    outcomes: Vec<(Received, Outcome)>,
    events: &HashMap<String, Event>,
    endpoints: &HashMap<(String, String), Endpoint>,
    response: &mut SqsBatchResponse,
    ordered_queue: Option<&str>,
) {
    let now = Timestamp::now();
    let mut delays = Vec::new();
    let mut requeue: Vec<(Received, DeliveryTask, Duration)> = Vec::new();
    let mut ops_out: Vec<OpsEvent> = Vec::new();
    let mut succeeded = HashSet::new();
    let mut failures: HashMap<(String, String), u32> = HashMap::new();
    for (r, outcome) in outcomes {
        let key = (r.task.workspace.clone(), r.task.endpoint_id.clone());
        if matches!(
            outcome,
            Outcome::Retry { .. } | Outcome::Exhausted(_) | Outcome::Gone(_) | Outcome::Denied(_)
        ) {
            *failures.entry(key.clone()).or_default() += 1;
        }
        if ordered_queue.is_some()
            && let Some(wait) = outcome.hold()
        {
            // On the ordered queue the message itself waits, keeping its place at the head
            // of its line: SQS hands out none of the line's later messages meanwhile.
            delays.push((r.receipt_handle.clone(), wait.min(MAX_VISIBILITY)));
            response.add_failure(r.message_id.clone());
            continue;
        }
        match outcome {
            Outcome::Delivered(_) => {
                succeeded.insert(key);
            }
            Outcome::Retry { attempt, delay } => {
                // The next attempt is a new message, delayed: waiting holds no in-flight slot,
                // and the task carries its own attempt count.
                let mut next = r.task.clone();
                next.attempts = attempt.attempt_number;
                next.manual = false;
                next.not_before = (delay > MAX_DELAY).then(|| now.plus(delay));
                requeue.push((r, next, delay.min(MAX_DELAY)));
                continue;
            }
            Outcome::Parked(wait) | Outcome::Deferred(wait) => {
                let task = r.task.clone();
                requeue.push((r, task, wait.min(MAX_DELAY)));
                continue;
            }
            Outcome::Exhausted(attempt) => {
                let reason = if attempt.error_code.as_deref() == Some(attempt_error::RECEIVE_LIMIT)
                {
                    "receive_limit"
                } else {
                    "exhausted"
                };
                let letter = DeadLetter {
                    task: r.task.clone(),
                    reason: reason.to_owned(),
                    attempts: attempt.attempt_number,
                    last_status: attempt.response.as_ref().and_then(|x| x.status),
                    last_error_code: attempt.error_code.clone(),
                    endpoint_url: attempt.request.url.clone(),
                    event_type: events
                        .get(&r.task.event_key)
                        .map(|e| e.event_type.clone())
                        .unwrap_or_default(),
                    failed_at: attempt.attempted_at,
                };
                if let Err(e) = ctx.queue.dead_letter(&letter).await {
                    // Keep the message: SQS redelivers it and the redrive policy still
                    // catches it if this keeps failing.
                    tracing::error!(event.id = %r.task.event_id, error = %error_chain(&e), "dead-lettering failed");
                    response.add_failure(r.message_id.clone());
                } else if let Some(ep) = endpoints.get(&key) {
                    let mut ops = OpsEvent::new(ops_events::ATTEMPT_EXHAUSTED, ep, now);
                    ops.counts.attempts = Some(letter.attempts);
                    ops.event_id = Some(r.task.event_id.clone());
                    ops.event_type = Some(letter.event_type.clone());
                    ops.last_status = letter.last_status;
                    ops.last_error_code = letter.last_error_code.clone();
                    ops_out.push(ops);
                }
            }
            Outcome::Gone(_) => {
                match ctx
                    .store
                    .disable_endpoint(&key.0, &key.1, disabled_reason::GONE, now, None)
                    .await
                {
                    Ok(changed) => {
                        tracing::warn!(endpoint.id = %key.1, changed, "endpoint answered 410 Gone; disabled");
                        if let (true, Some(ep)) = (changed, endpoints.get(&key)) {
                            ops_out.push(OpsEvent::deactivated(ep, disabled_reason::GONE, now));
                        }
                    }
                    Err(e) => {
                        tracing::error!(endpoint.id = %key.1, error = %error_chain(&e), "endpoint not disabled after 410")
                    }
                }
            }
            Outcome::Postponed => {
                delays.push((r.receipt_handle.clone(), Duration::ZERO));
                response.add_failure(r.message_id.clone());
            }
            Outcome::NotStoredYet => {
                delays.push((r.receipt_handle.clone(), NOT_STORED_DELAY));
                response.add_failure(r.message_id.clone());
            }
            Outcome::Canceled(_) | Outcome::Denied(_) | Outcome::Dropped => {}
        }
    }

    if !requeue.is_empty() {
        delays.extend(requeue_tasks(ctx, requeue, response).await);
    }
    if !delays.is_empty() {
        let changed = match ordered_queue {
            Some(url) => ctx.queue.delay_on(url, &delays).await,
            None => ctx.queue.delay(&delays).await,
        };
        match changed {
            Ok(refused) if !refused.is_empty() => {
                tracing::warn!(
                    refused = refused.len(),
                    "visibility not changed; default timeout applies"
                )
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "visibility not changed; default timeout applies")
            }
        }
    }

    // One atomic write per failing endpoint per batch, however many of its tasks failed.
    let failure_writes = failures.into_iter().map(|((ws, id), n)| async move {
        match ctx.store.record_failures(&ws, &id, n, now).await {
            Ok(streak) => streak.map(|s| ((ws, id), n, s)),
            Err(e) => {
                tracing::warn!(endpoint.id = %id, error = %error_chain(&e), "failure count not written");
                None
            }
        }
    });
    for ((ws, id), n, streak) in futures::future::join_all(failure_writes)
        .await
        .into_iter()
        .flatten()
    {
        let Some(ep) = endpoints.get(&(ws.clone(), id)) else {
            continue;
        };
        let threshold = match ctx.ops.workspace_settings(&ws).await {
            Some(s) => s.failing_after(),
            None => hookrelay_shared::WorkspaceSettings::DEFAULT_FAILING_AFTER,
        };
        // Once per streak: when this batch's failures carried it across the threshold.
        if streak >= threshold && streak.saturating_sub(n) < threshold {
            let mut ops = OpsEvent::new(ops_events::ENDPOINT_FAILING, ep, now);
            ops.counts.consecutive_failures = Some(streak);
            ops_out.push(ops);
        }
    }
    ctx.ops.emit(&ops_out).await;

    // At most one write per endpoint, all at once, and only when it changes something.
    let success_writes = succeeded
        .into_iter()
        .filter(|key| {
            let known = endpoints.get(key);
            let recent = known
                .and_then(|ep| ep.last_success_at)
                .is_some_and(|at| now.since(at) < SUCCESS_WRITE_INTERVAL);
            let streak = known.is_some_and(|ep| ep.consecutive_failures > 0);
            !recent || streak
        })
        .map(|(ws, id)| async move {
            if let Err(e) = ctx
                .store
                .record_success(&ws, &id, now, SUCCESS_WRITE_INTERVAL)
                .await
            {
                tracing::warn!(endpoint.id = %id, error = %error_chain(&e), "last_success_at not written");
            }
        });
    futures::future::join_all(success_writes).await;
}

/// Queues each task again as a new message with its delay; the received message is then
/// done. A task SQS does not take keeps its message, which comes back after the delay (capped
/// at the longest visibility timeout), as before: nothing is lost, at the price of an
/// in-flight slot while it waits. Answers those visibility changes.
pub(crate) async fn requeue_tasks(
    ctx: &Context,
    requeue: Vec<(Received, DeliveryTask, Duration)>,
    response: &mut SqsBatchResponse,
) -> Vec<(String, Duration)> {
    let sends: Vec<(DeliveryTask, Duration)> = requeue
        .iter()
        .map(|(_, task, delay)| (task.clone(), *delay))
        .collect();
    let unsent: HashSet<usize> = match ctx.queue.send_tasks_delayed(&sends).await {
        Ok(unsent) => unsent.into_iter().collect(),
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "tasks not queued again; their messages wait instead");
            (0..sends.len()).collect()
        }
    };
    let mut delays = Vec::new();
    for (i, (r, _, delay)) in requeue.into_iter().enumerate() {
        if unsent.contains(&i) {
            delays.push((r.receipt_handle.clone(), delay));
            response.add_failure(r.message_id);
        }
    }
    delays
}
