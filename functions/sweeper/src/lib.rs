//! The sweeper: endpoint lifecycle and reconciliation, on a schedule. Both of its reads are
//! queries on sparse GSIs, so a run costs in proportion to what it has to do.

use std::time::Instant;

use aws_config::SdkConfig;
use hookrelay_shared::config::Settings;
use hookrelay_shared::metrics::{self as m, Metrics};
use hookrelay_shared::queue::{Queue, QueueError};
use hookrelay_shared::store::{Store, StoreError};
use hookrelay_shared::telemetry::error_chain;
use hookrelay_shared::{DeliveryTask, Timestamp};
use serde::Serialize;

pub struct Context {
    pub store: Store,
    pub queue: Queue,
    pub settings: Settings,
}

impl Context {
    pub fn new(aws: &SdkConfig, settings: Settings) -> Self {
        Self {
            store: Store::connect(aws, &settings),
            queue: Queue::connect(aws, &settings),
            settings,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("sweep read failed")]
    Store(#[from] StoreError),
    #[error("re-enqueue failed")]
    Queue(#[from] QueueError),
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct SweepReport {
    /// Enabled endpoints found past the threshold.
    pub stale_found: usize,
    pub deactivated: usize,
    pub pending_found: usize,
    pub reenqueued_events: usize,
    pub reenqueued_tasks: usize,
    /// Items this run could not handle; the next run tries them again.
    pub errors: usize,
    pub duration_ms: u64,
}

pub async fn handle(ctx: &Context, now: Timestamp) -> Result<SweepReport, SweepError> {
    let started = Instant::now();
    let mut report = SweepReport::default();
    deactivate_stale(ctx, now, &mut report).await?;
    reenqueue_stranded(ctx, now, &mut report).await?;
    report.duration_ms = started.elapsed().as_millis() as u64;
    let mut metrics = Metrics::new("sweeper");
    metrics.add_by(
        m::ENDPOINTS_DEACTIVATED,
        "Reason",
        "stale",
        report.deactivated as f64,
    );
    metrics.add(
        m::STRANDED_EVENTS_REENQUEUED,
        report.reenqueued_events as f64,
    );
    metrics.add(m::SWEEP_DURATION, report.duration_ms as f64);
    metrics.flush();
    tracing::info!(
        stale_found = report.stale_found,
        deactivated = report.deactivated,
        pending_found = report.pending_found,
        reenqueued_events = report.reenqueued_events,
        duration_ms = report.duration_ms,
        "sweep finished"
    );
    Ok(report)
}

async fn deactivate_stale(
    ctx: &Context,
    now: Timestamp,
    report: &mut SweepReport,
) -> Result<(), SweepError> {
    let cutoff = now.minus(ctx.settings.sweep_after());
    let stale = ctx.store.stale_endpoints(cutoff).await?;
    report.stale_found = stale.len();
    for ep in stale {
        // The condition re-checks staleness: a success since the index read wins.
        match ctx
            .store
            .disable_endpoint(&ep.workspace, &ep.id, "stale", now, Some(cutoff))
            .await
        {
            Ok(true) => {
                report.deactivated += 1;
                tracing::info!(endpoint.id = %ep.id, workspace = %ep.workspace, reason = "stale", "endpoint deactivated");
            }
            Ok(false) => {}
            // One failure must not stop the rest of the run; the next run retries it.
            Err(e) => {
                report.errors += 1;
                tracing::warn!(endpoint.id = %ep.id, error = %error_chain(&e), "endpoint not deactivated");
            }
        }
    }
    Ok(())
}

/// Events stored but never confirmed queued (the ingest function died or SQS failed between
/// the two steps) get their tasks sent again. At-least-once: a task that did reach the queue
/// may be delivered twice, which receivers dedupe by `webhook-id`.
async fn reenqueue_stranded(
    ctx: &Context,
    now: Timestamp,
    report: &mut SweepReport,
) -> Result<(), SweepError> {
    let pending = ctx
        .store
        .pending_events(now.minus(ctx.settings.reconcile_after))
        .await?;
    report.pending_found = pending.len();
    for p in pending {
        match reenqueue_one(ctx, &p.event_key).await {
            Ok(Some(tasks)) => {
                report.reenqueued_events += 1;
                report.reenqueued_tasks += tasks;
            }
            Ok(None) => {}
            Err(e) => {
                report.errors += 1;
                tracing::warn!(event.key = %p.event_key, error = %error_chain(&e), "stranded event not re-enqueued");
            }
        }
    }
    Ok(())
}

/// Answers how many tasks were queued, or `None` when nothing could be done this run.
async fn reenqueue_one(ctx: &Context, event_key: &str) -> Result<Option<usize>, SweepError> {
    let Some(event) = ctx.store.get_event_by_key(event_key).await? else {
        return Ok(None);
    };
    let tasks: Vec<DeliveryTask> = event
        .endpoint_ids
        .iter()
        .map(|ep| DeliveryTask::new(&event, event_key, ep))
        .collect();
    let unsent = ctx.queue.send_tasks(&tasks).await?;
    if !unsent.is_empty() {
        tracing::warn!(event.id = %event.id, unsent = unsent.len(), "stranded event still not queued");
        return Ok(None);
    }
    ctx.store.clear_pending(event_key).await?;
    tracing::info!(event.id = %event.id, tasks = tasks.len(), "stranded event re-enqueued");
    Ok(Some(tasks.len()))
}
