//! Batch endpoints on the delivery side. Their events join the open batch in DynamoDB (see
//! `hookrelay_shared::batching`): ingest adds them as it accepts them; tasks that reach this
//! function for a batch endpoint (the sweeper's reconciliation, a replay, a redrive, or a
//! task queued before batches were kept in DynamoDB) are added here. The batching queue
//! carries each open batch's timer, which seals the batch when its interval has passed.
//! Consecutive batches of one endpoint go out in order: a batch waits, briefly, for the
//! first attempt of the one before it.

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsBatchResponse;
use hookrelay_shared::batching::{self, Member, TimerOutcome};
use hookrelay_shared::telemetry::error_chain;
use hookrelay_shared::{BatchTimer, DeliveryTask};

use crate::{Context, Endpoints, Events, Received};

/// How long a batch waits for the batch before it to be attempted once; past it, it goes
/// anyway (the one before it may have been lost with a crashed instance).
const TURN_WAIT: Duration = Duration::from_secs(10);
const TURN_POLL: Duration = Duration::from_millis(100);

/// A timer received from the batching queue.
pub struct Timer {
    pub message_id: String,
    pub receipt_handle: String,
    pub timer: BatchTimer,
}

/// The timer in a batching queue message, if it is one.
pub fn parse_timer(message_id: &str, receipt_handle: &str, body: &str) -> Option<Timer> {
    let timer: BatchTimer = serde_json::from_str(body).ok()?;
    Some(Timer {
        message_id: message_id.to_owned(),
        receipt_handle: receipt_handle.to_owned(),
        timer,
    })
}

/// Adds single tasks for batch endpoints to their open batches. A task whose add fails is
/// answered as a failure, so SQS hands it back.
pub async fn add_all(
    ctx: &Context,
    received: Vec<Received>,
    events: &Events,
    endpoints: &Endpoints,
    response: &mut SqsBatchResponse,
) {
    let retention = ctx.settings.retention();
    let adds = received.into_iter().filter_map(|r| {
        let key = (r.task.workspace.clone(), r.task.endpoint_id.clone());
        let config = endpoints.get(&key)?.batching()?;
        let event = events.get(&r.task.event_key)?;
        let member = Member {
            workspace: r.task.workspace.clone(),
            endpoint_id: r.task.endpoint_id.clone(),
            event: hookrelay_shared::EventRef {
                event_key: r.task.event_key.clone(),
                event_id: r.task.event_id.clone(),
            },
            bytes: event.payload.len() as u64,
        };
        Some(async move {
            let added = batching::add(&ctx.store, &ctx.queue, &member, config, retention).await;
            (r, added)
        })
    });
    for (r, added) in futures::future::join_all(adds).await {
        if let Err(e) = added {
            tracing::warn!(event.id = %r.task.event_id, error = %error_chain(&e), "task not added to its batch; retried");
            response.add_failure(r.message_id);
        }
    }
}

/// Handles batch timers: a due batch is sealed and queued; one not due yet comes back when it
/// is.
pub async fn on_timers(
    ctx: &Context,
    timers: Vec<Timer>,
    endpoints: &Endpoints,
    response: &mut SqsBatchResponse,
) {
    let Some(url) = ctx.queue.batching_url().map(str::to_owned) else {
        return;
    };
    let runs = timers.into_iter().map(|t| async move {
        let config = endpoints
            .get(&(t.timer.workspace.clone(), t.timer.endpoint_id.clone()))
            .filter(|ep| ep.enabled)
            .and_then(|ep| ep.batching());
        let outcome = batching::on_timer(&ctx.store, &ctx.queue, &t.timer, config).await;
        (t, outcome)
    });
    let mut later = Vec::new();
    for (t, outcome) in futures::future::join_all(runs).await {
        match outcome {
            Ok(TimerOutcome::Done) => {}
            Ok(TimerOutcome::Later(wait)) => {
                later.push((t.receipt_handle.clone(), wait.max(Duration::from_secs(1))));
                response.add_failure(t.message_id);
            }
            Err(e) => {
                tracing::warn!(endpoint.id = %t.timer.endpoint_id, error = %error_chain(&e), "batch timer failed; retried");
                response.add_failure(t.message_id);
            }
        }
    }
    if !later.is_empty()
        && let Err(e) = ctx.queue.delay_on(&url, &later).await
    {
        tracing::warn!(error = %error_chain(&e), "batch timers keep the batching queue's visibility timeout");
    }
}

/// Waits until the batch before `task`'s has had its first attempt, at most [`TURN_WAIT`]
/// and never past what the invocation has left for the request itself.
pub async fn wait_turn(ctx: &Context, task: &DeliveryTask, deadline: Option<Instant>) {
    let Some(seq) = task.batch.as_ref().and_then(|b| b.seq) else {
        return;
    };
    if seq <= 1 {
        return;
    }
    let mut limit = Instant::now() + TURN_WAIT;
    if let Some(deadline) = deadline {
        let keep = ctx.settings.max_delivery_timeout + Duration::from_secs(1);
        limit = limit.min(deadline.checked_sub(keep).unwrap_or_else(Instant::now));
    }
    loop {
        match ctx
            .store
            .batch_state(&task.workspace, &task.endpoint_id)
            .await
        {
            Ok(Some(state)) if state.settled + 1 < seq => {}
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "batch order not checked");
                return;
            }
        }
        if Instant::now() + TURN_POLL > limit {
            tracing::warn!(endpoint.id = %task.endpoint_id, batch.seq = seq, "batch goes before the one ahead of it was attempted");
            return;
        }
        tokio::time::sleep(TURN_POLL).await;
    }
}

/// Records that `task`'s batch has had an attempt: the next batch may go.
pub async fn settle_turn(ctx: &Context, task: &DeliveryTask) {
    let Some(seq) = task.batch.as_ref().and_then(|b| b.seq) else {
        return;
    };
    if let Err(e) = ctx
        .store
        .settle_batch(&task.workspace, &task.endpoint_id, seq)
        .await
    {
        tracing::warn!(error = %error_chain(&e), batch.seq = seq, "batch turn not recorded; the next batch waits its bound");
    }
}
