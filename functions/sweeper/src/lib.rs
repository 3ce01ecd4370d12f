//! The sweeper: endpoint lifecycle and reconciliation, on a schedule. Both of its reads are
//! queries on sparse GSIs, so a run costs in proportion to what it has to do.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use futures::StreamExt;
use hookrelay_shared::config::Settings;
use hookrelay_shared::metrics::{self as m, Metrics};
use hookrelay_shared::model::disabled_reason;
use hookrelay_shared::ops_events::{ENDPOINT_DEACTIVATION_PENDING, OpsEvent, OpsEvents};
use hookrelay_shared::queue::{Queue, QueueError};
use hookrelay_shared::store::{PageRequest, PendingCursor, SHARDS, Store, StoreError};
use hookrelay_shared::telemetry::error_chain;
use hookrelay_shared::{DeliveryTask, FailingPolicy, Timestamp};
use serde::{Deserialize, Serialize};

pub struct Context {
    pub store: Store,
    pub queue: Queue,
    pub settings: Settings,
    pub ops: OpsEvents,
    /// Stranded events read per query: what the sweeper holds in memory at once.
    pub pending_page: i32,
    /// The run's metrics over OTLP too, when a collector is configured.
    pub otlp: Option<std::sync::Arc<hookrelay_shared::otlp::Exporter>>,
}

/// The `service.name` of the sweeper's exported metrics.
pub const SERVICE_NAME: &str = "hookrelay-sweeper";

/// Stranded events read per query of the `pending` index.
pub const PENDING_PAGE: i32 = 200;

/// Stranded events re-enqueued at once (each a read, a send and a write).
const PENDING_CONCURRENCY: usize = 16;

/// A run's time when the invocation names no deadline, inside the template's 300 s timeout
/// and its 5-minute schedule.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(240);

/// Kept back from the deadline: a page of stranded events starts only with this much left,
/// and the run still reports and flushes its metrics after it.
pub const PAGE_RESERVE: Duration = Duration::from_secs(10);

impl Context {
    pub fn new(aws: &SdkConfig, settings: Settings) -> Self {
        Self {
            ops: OpsEvents::connect(aws, &settings, "sweeper"),
            store: Store::connect(aws, &settings),
            queue: Queue::connect(aws, &settings),
            settings,
            pending_page: PENDING_PAGE,
            otlp: hookrelay_shared::otlp::Exporter::from_env(SERVICE_NAME),
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

/// What a run is asked to do; the schedule sends none of it. `{"dry_run": true}` reports
/// what a run would do and changes nothing.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct SweepOptions {
    #[serde(default)]
    pub dry_run: bool,
}

impl SweepOptions {
    /// Reads the invocation's input: a schedule's event, `{}` or `{"dry_run": true}`.
    pub fn from_input(input: &serde_json::Value) -> Self {
        serde_json::from_value(input.clone()).unwrap_or_default()
    }
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct SweepReport {
    pub dry_run: bool,
    /// Endpoints read from the indexes (stale or failing candidates).
    pub endpoints_examined: usize,
    /// Enabled endpoints found past the one-year (`SWEEP_AFTER_DAYS`) threshold.
    pub stale_found: usize,
    /// Enabled endpoints in a failure streak older than a day.
    pub failing_found: usize,
    /// Deactivations, all reasons.
    pub deactivated: usize,
    pub deactivated_by_reason: BTreeMap<String, usize>,
    /// `endpoint.deactivation_pending` warnings emitted.
    pub warned: usize,
    /// Stranded events read this run.
    pub pending_found: usize,
    /// Whether this run read every stranded event; if not, its time ran out and the next
    /// run carries on with what is left.
    pub pending_complete: bool,
    pub reenqueued_events: usize,
    pub reenqueued_tasks: usize,
    /// Attempts written before listing pages, moved onto them this run (once, after an
    /// upgrade; see `page_legacy_attempts`).
    pub legacy_attempts_paged: usize,
    /// In a dry run, what a real run would do.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub planned: Vec<Planned>,
    /// Items this run could not handle; the next run tries them again.
    pub errors: usize,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Planned {
    pub action: &'static str,
    pub workspace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

impl SweepReport {
    /// Counts one conditional deactivation's result; answers whether it deactivated. An
    /// error is counted and logged, not raised: one endpoint must not stop the rest of the
    /// run, and the next run retries it.
    fn deactivation(
        &mut self,
        ws: &str,
        id: &str,
        reason: &'static str,
        result: Result<bool, StoreError>,
    ) -> bool {
        match result {
            Ok(true) => {
                self.deactivated += 1;
                *self
                    .deactivated_by_reason
                    .entry(reason.to_owned())
                    .or_default() += 1;
                tracing::info!(endpoint.id = %id, workspace = %ws, reason, "endpoint deactivated");
                true
            }
            Ok(false) => false,
            Err(e) => {
                self.errors += 1;
                tracing::warn!(endpoint.id = %id, error = %error_chain(&e), "endpoint not deactivated");
                false
            }
        }
    }
}

impl Planned {
    fn about(ws: &str, id: &str, action: &'static str, reason: &'static str) -> Self {
        Self {
            action,
            workspace: ws.to_owned(),
            endpoint_id: Some(id.to_owned()),
            reason: Some(reason),
            event_id: None,
        }
    }
}

/// A scheduled run.
pub async fn handle(ctx: &Context, now: Timestamp) -> Result<SweepReport, SweepError> {
    run(ctx, now, SweepOptions::default()).await
}

/// A run with [`DEFAULT_BUDGET`].
pub async fn run(
    ctx: &Context,
    now: Timestamp,
    opts: SweepOptions,
) -> Result<SweepReport, SweepError> {
    run_until(ctx, now, opts, Instant::now() + DEFAULT_BUDGET).await
}

/// A run that ends by `deadline` (the invocation's): the stranded-event backlog, however
/// large, is worked through a page at a time while the time lasts, and the rest is left for
/// the next run.
pub async fn run_until(
    ctx: &Context,
    now: Timestamp,
    opts: SweepOptions,
    deadline: Instant,
) -> Result<SweepReport, SweepError> {
    let started = Instant::now();
    let mut report = SweepReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let mut ops = Vec::new();
    deactivate_stale(ctx, now, opts, &mut report, &mut ops).await?;
    deactivate_failing(ctx, now, opts, &mut report, &mut ops).await?;
    warn_before_deactivation(ctx, now, opts, &mut report, &mut ops).await?;
    ctx.ops.emit(&ops).await;
    reenqueue_stranded(ctx, now, opts, deadline, &mut report).await?;
    page_legacy_attempts(ctx, opts, deadline, &mut report).await?;
    report.duration_ms = started.elapsed().as_millis() as u64;
    if !opts.dry_run {
        let mut metrics = Metrics::new("sweeper");
        for reason in [disabled_reason::STALE, disabled_reason::FAILING] {
            let n = report
                .deactivated_by_reason
                .get(reason)
                .copied()
                .unwrap_or(0);
            metrics.add_by(m::ENDPOINTS_DEACTIVATED, "Reason", reason, n as f64);
        }
        metrics.add(
            m::SWEEP_ENDPOINTS_EXAMINED,
            report.endpoints_examined as f64,
        );
        // Found this run, re-enqueued or not: a count that stays up run after run is a
        // backlog that is not draining (the pending backlog alarm).
        metrics.add(m::PENDING_EVENTS_FOUND, report.pending_found as f64);
        metrics.add(
            m::STRANDED_EVENTS_REENQUEUED,
            report.reenqueued_events as f64,
        );
        metrics.add(m::SWEEP_DURATION, report.duration_ms as f64);
        let recorded = metrics.flush();
        if let Some(exporter) = &ctx.otlp {
            exporter.export_metrics(recorded).await;
        }
    }
    tracing::info!(
        dry_run = report.dry_run,
        endpoints_examined = report.endpoints_examined,
        stale_found = report.stale_found,
        failing_found = report.failing_found,
        deactivated = report.deactivated,
        warned = report.warned,
        deactivated_stale = report
            .deactivated_by_reason
            .get(disabled_reason::STALE)
            .copied()
            .unwrap_or(0),
        deactivated_failing = report
            .deactivated_by_reason
            .get(disabled_reason::FAILING)
            .copied()
            .unwrap_or(0),
        pending_found = report.pending_found,
        pending_complete = report.pending_complete,
        reenqueued_events = report.reenqueued_events,
        errors = report.errors,
        duration_ms = report.duration_ms,
        "sweep finished"
    );
    Ok(report)
}

async fn deactivate_stale(
    ctx: &Context,
    now: Timestamp,
    opts: SweepOptions,
    report: &mut SweepReport,
    ops: &mut Vec<OpsEvent>,
) -> Result<(), SweepError> {
    let cutoff = now.minus(ctx.settings.sweep_after());
    let stale = ctx.store.stale_endpoints(cutoff).await?;
    report.stale_found = stale.len();
    report.endpoints_examined += stale.len();
    for ep in stale {
        if opts.dry_run {
            report.planned.push(Planned::about(
                &ep.workspace,
                &ep.id,
                "deactivate",
                disabled_reason::STALE,
            ));
            continue;
        }
        // The condition re-checks staleness: a success since the index read wins.
        let result = ctx
            .store
            .disable_endpoint(
                &ep.workspace,
                &ep.id,
                disabled_reason::STALE,
                now,
                Some(cutoff),
            )
            .await;
        if report.deactivation(&ep.workspace, &ep.id, disabled_reason::STALE, result)
            && let Ok(Some(ep)) = ctx.store.get_endpoint(&ep.workspace, &ep.id).await
        {
            ops.push(OpsEvent::deactivated(&ep, disabled_reason::STALE, now));
        }
    }
    Ok(())
}

/// Endpoints of workspaces that opted in, whose every delivery has failed for the
/// workspace's number of days, with at least its number of failures. The index holds only
/// endpoints in a failure streak, so the read grows with those, not with all endpoints.
async fn deactivate_failing(
    ctx: &Context,
    now: Timestamp,
    opts: SweepOptions,
    report: &mut SweepReport,
    ops: &mut Vec<OpsEvent>,
) -> Result<(), SweepError> {
    // A policy counts whole days, so nothing younger than one can qualify.
    let candidates = ctx
        .store
        .failing_endpoints(now.minus(Duration::from_secs(86_400)))
        .await?;
    report.failing_found = candidates.len();
    report.endpoints_examined += candidates.len();
    let mut policies: HashMap<String, Option<FailingPolicy>> = HashMap::new();
    for c in candidates {
        let policy = match policies.get(&c.workspace) {
            Some(p) => *p,
            None => {
                let p = ctx
                    .store
                    .get_workspace(&c.workspace)
                    .await?
                    .and_then(|w| w.settings.disable_failing);
                policies.insert(c.workspace.clone(), p);
                p
            }
        };
        let Some(policy) = policy else { continue };
        let Some(ep) = ctx.store.get_endpoint(&c.workspace, &c.id).await? else {
            continue;
        };
        let Some(since) = ep.failing_since else {
            continue;
        };
        let long_enough =
            now.since(since) >= Duration::from_secs(u64::from(policy.after_days) * 86_400);
        if !ep.enabled || !long_enough || ep.consecutive_failures < policy.min_failures {
            continue;
        }
        if opts.dry_run {
            report.planned.push(Planned::about(
                &ep.workspace,
                &ep.id,
                "deactivate",
                disabled_reason::FAILING,
            ));
            continue;
        }
        let result = ctx
            .store
            .disable_failing_endpoint(&ep.workspace, &ep.id, now, since)
            .await;
        if report.deactivation(&ep.workspace, &ep.id, disabled_reason::FAILING, result) {
            ops.push(OpsEvent::deactivated(&ep, disabled_reason::FAILING, now));
        }
    }
    Ok(())
}

/// Legacy attempts moved per request.
const LEGACY_PAGE: i32 = 200;

/// Moves attempts written before listing pages onto them, a workspace at a time while the
/// run's time lasts, then marks the move done so no later run reads for it again. Until
/// then, the attempt listings show what was moved and everything written since; every
/// attempt stays readable by id and among its event's attempts throughout.
async fn page_legacy_attempts(
    ctx: &Context,
    opts: SweepOptions,
    deadline: Instant,
    report: &mut SweepReport,
) -> Result<(), SweepError> {
    if opts.dry_run || ctx.store.legacy_attempts_paged().await? {
        return Ok(());
    }
    let retention = ctx.settings.retention();
    let mut page = PageRequest::default();
    loop {
        let workspaces = ctx.store.list_workspaces(&page).await?;
        for w in workspaces.data {
            loop {
                if Instant::now() + PAGE_RESERVE >= deadline {
                    return Ok(());
                }
                let moved = ctx
                    .store
                    .page_legacy_attempts(&w.name, LEGACY_PAGE, retention)
                    .await?;
                report.legacy_attempts_paged += moved;
                if moved < LEGACY_PAGE as usize {
                    break;
                }
            }
        }
        match workspaces.next {
            Some(next) => page.cursor = Some(next),
            None => break,
        }
    }
    // A pass that moved nothing found nothing left: a pass that moved some may have raced
    // an instance of the previous version still writing copies, so the next run looks again.
    if report.legacy_attempts_paged == 0 {
        ctx.store.mark_legacy_attempts_paged().await?;
    }
    Ok(())
}

/// `endpoint.deactivation_pending`, once per quiet spell, for workspaces that ask for it:
/// endpoints that will meet the one-year rule within the workspace's number of days.
async fn warn_before_deactivation(
    ctx: &Context,
    now: Timestamp,
    opts: SweepOptions,
    report: &mut SweepReport,
    ops: &mut Vec<OpsEvent>,
) -> Result<(), SweepError> {
    let mut warning_days: HashMap<String, u32> = HashMap::new();
    let mut page = PageRequest::default();
    loop {
        let workspaces = ctx.store.list_workspaces(&page).await?;
        for w in workspaces.data {
            if let Some(warn) = w.settings.warn_before_deactivation {
                warning_days.insert(w.name, warn.days);
            }
        }
        match workspaces.next {
            Some(next) => page.cursor = Some(next),
            None => break,
        }
    }
    // Nobody asked: no read of the index at all.
    let Some(longest) = warning_days.values().max().copied() else {
        return Ok(());
    };
    let sweep_after = ctx.settings.sweep_after();
    let window = Duration::from_secs(u64::from(longest) * 86_400).min(sweep_after);
    let candidates = ctx
        .store
        .stale_endpoints(now.minus(sweep_after.saturating_sub(window)))
        .await?;
    report.endpoints_examined += candidates.len();
    for c in candidates {
        let Some(days) = warning_days.get(&c.workspace).copied() else {
            continue;
        };
        let Some(ep) = ctx.store.get_endpoint(&c.workspace, &c.id).await? else {
            continue;
        };
        let activity = ep.activity_at();
        let deactivates_at = activity.plus(sweep_after);
        let warn_from = deactivates_at.minus(Duration::from_secs(u64::from(days) * 86_400));
        let warned = ep.deactivation_warned_at.is_some_and(|w| w >= activity);
        if !ep.enabled || now < warn_from || now >= deactivates_at || warned {
            continue;
        }
        if opts.dry_run {
            report.planned.push(Planned::about(
                &ep.workspace,
                &ep.id,
                "warn",
                disabled_reason::STALE,
            ));
            continue;
        }
        match ctx
            .store
            .mark_deactivation_warned(&ep.workspace, &ep.id, now)
            .await
        {
            Ok(()) => {
                report.warned += 1;
                let mut e = OpsEvent::new(ENDPOINT_DEACTIVATION_PENDING, &ep, now);
                e.reason = Some(disabled_reason::STALE.to_owned());
                e.deactivates_at = Some(deactivates_at);
                ops.push(e);
            }
            Err(e) => {
                report.errors += 1;
                tracing::warn!(endpoint.id = %ep.id, error = %error_chain(&e), "deactivation warning not recorded");
            }
        }
    }
    Ok(())
}

/// Events stored but never confirmed queued (the ingest function died or SQS failed between
/// the two steps) get their tasks sent again. At-least-once: a task that did reach the queue
/// may be delivered twice, which receivers dedupe by `webhook-id`.
///
/// The `pending` index is read a page per shard in turn, each page handled before the next is
/// read, so memory stays at one page however large the backlog (after an SQS outage it can be
/// hundreds of thousands of events), and a page starts only while `deadline` leaves
/// [`PAGE_RESERVE`]. Handled events leave the index; what a run has no time for, the next run
/// finds.
async fn reenqueue_stranded(
    ctx: &Context,
    now: Timestamp,
    opts: SweepOptions,
    deadline: Instant,
    report: &mut SweepReport,
) -> Result<(), SweepError> {
    let cutoff = now.minus(ctx.settings.reconcile_after);
    // Per shard: not read yet (`Some(None)`), where to continue (`Some(Some(_))`), or done.
    let mut shards: Vec<(u32, Option<Option<PendingCursor>>)> =
        (0..SHARDS).map(|s| (s, Some(None))).collect();
    loop {
        let mut read_any = false;
        for (shard, state) in shards.iter_mut() {
            let Some(start) = state.take() else { continue };
            if deadline.saturating_duration_since(Instant::now()) < PAGE_RESERVE {
                tracing::info!(
                    pending_found = report.pending_found,
                    "sweep time is up; stranded events left for the next run"
                );
                return Ok(());
            }
            let (page, next) = ctx
                .store
                .pending_page(*shard, cutoff, start, ctx.pending_page)
                .await?;
            *state = next.map(Some);
            read_any = true;
            report.pending_found += page.len();
            if opts.dry_run {
                for p in page {
                    let event = ctx.store.get_event_by_key(&p.event_key).await?;
                    report.planned.push(Planned {
                        action: "reenqueue",
                        workspace: event
                            .as_ref()
                            .map(|e| e.workspace.clone())
                            .unwrap_or_default(),
                        endpoint_id: None,
                        reason: None,
                        event_id: event.map(|e| e.id),
                    });
                }
                continue;
            }
            let results: Vec<(String, Result<Option<usize>, SweepError>)> =
                futures::stream::iter(page.into_iter().map(|p| p.event_key))
                    .map(|key| async move {
                        let r = reenqueue_one(ctx, &key).await;
                        (key, r)
                    })
                    .buffer_unordered(PENDING_CONCURRENCY)
                    .collect()
                    .await;
            for (key, result) in results {
                match result {
                    Ok(Some(tasks)) => {
                        report.reenqueued_events += 1;
                        report.reenqueued_tasks += tasks;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        report.errors += 1;
                        tracing::warn!(event.key = %key, error = %error_chain(&e), "stranded event not re-enqueued");
                    }
                }
            }
        }
        if !read_any {
            report.pending_complete = true;
            return Ok(());
        }
    }
}

/// Answers how many tasks were queued, or `None` when nothing could be done this run. Only
/// the endpoints whose tasks were never confirmed queued get one: the others already have
/// theirs, and for an ordered endpoint a second copy would arrive after later events.
async fn reenqueue_one(ctx: &Context, event_key: &str) -> Result<Option<usize>, SweepError> {
    let Some((event, unconfirmed)) = ctx.store.pending_event(event_key).await? else {
        return Ok(None);
    };
    let targets: Vec<&String> = match &unconfirmed {
        Some(endpoints) => event
            .endpoint_ids
            .iter()
            .filter(|ep| endpoints.contains(ep))
            .collect(),
        None => event.endpoint_ids.iter().collect(),
    };
    let mut tasks = Vec::with_capacity(targets.len());
    for ep in targets {
        // An ordered endpoint's task goes to its line; one whose endpoint cannot be read
        // goes plain, and the delivery function moves it to its line if it must.
        let endpoint = if ctx.queue.ordered_url().is_some() {
            ctx.store
                .get_endpoint(&event.workspace, ep)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(endpoint.id = %ep, error = %error_chain(&e), "endpoint not read; its task goes unordered first");
                    None
                })
        } else {
            None
        };
        tasks.push(match endpoint {
            Some(endpoint) => DeliveryTask::for_endpoint(&event, event_key, &endpoint),
            None => DeliveryTask::new(&event, event_key, ep),
        });
    }
    let deliveries = tasks.len();
    // Whether the event's listing task was among those not queued is not known: it is
    // listed again, which shows it once all the same.
    tasks.push(DeliveryTask::listing(&event, event_key));
    let unsent = ctx.queue.send_tasks(&tasks).await?;
    if !unsent.is_empty() {
        tracing::warn!(event.id = %event.id, unsent = unsent.len(), "stranded event still not queued");
        if unsent.len() < tasks.len() {
            let left: Vec<String> = unsent.iter().map(|t| t.endpoint_id.clone()).collect();
            ctx.store.narrow_pending(event_key, &left).await?;
        }
        return Ok(None);
    }
    ctx.store.clear_pending(event_key).await?;
    tracing::info!(event.id = %event.id, tasks = deliveries, "stranded event re-enqueued");
    Ok(Some(deliveries))
}
