//! The delivery function: a batch of SQS delivery tasks becomes concurrent, signed HTTP
//! requests (made by the shared sender, `hookrelay_shared::outbound`); a failed attempt is
//! queued again as a new, delayed message carrying its attempt count.

mod batches;
pub mod circuit;
pub mod listing;
pub mod ordered;
mod outcome;
pub mod send;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use hookrelay_shared::config::Settings;
use hookrelay_shared::queue::Queue;
use hookrelay_shared::store::Store;
use hookrelay_shared::telemetry::error_chain;
use hookrelay_shared::{Attempt, DeliveryTask, Endpoint, Event, Timestamp};

use hookrelay_shared::outbound::Sender;
pub use hookrelay_shared::outbound::guard::NetworkPolicy;
pub use outcome::Outcome;

/// A batch's events by item key.
pub type Events = HashMap<String, Event>;
/// A batch's endpoints by (workspace, id).
pub type Endpoints = HashMap<(String, String), Endpoint>;

/// A success is written at most this often per endpoint: the rule it feeds is in months.
pub const SUCCESS_WRITE_INTERVAL: Duration = Duration::from_secs(3600);

/// The `service.name` of the spans, unless `OTEL_SERVICE_NAME` says otherwise.
pub const SERVICE_NAME: &str = "hookrelay-delivery";

pub struct Context {
    pub store: Store,
    pub queue: Queue,
    pub settings: Settings,
    /// The HTTP client behind the SSRF guard, and the signed request.
    pub sender: Sender,
    pub ops: hookrelay_shared::ops_events::OpsEvents,
    /// Where each attempt's span goes; `None` (no collector configured) costs nothing.
    pub otlp: Option<std::sync::Arc<hookrelay_shared::otlp::Exporter>>,
    /// Until when this instance knows an open circuit's probe is taken, per endpoint.
    probes: std::sync::Mutex<HashMap<(String, String), Timestamp>>,
    /// Invocations' routine metric values, written a line per many invocations.
    pub(crate) metric_lines: hookrelay_shared::held_metrics::HeldMetrics,
}

impl Context {
    pub(crate) fn probe_known(&self, key: &(String, String)) -> Option<Timestamp> {
        self.probes.lock().ok()?.get(key).copied()
    }

    pub(crate) fn remember_probe(&self, key: (String, String), until: Timestamp) {
        if let Ok(mut probes) = self.probes.lock() {
            let now = Timestamp::now();
            // Bounded by the endpoints seen recently.
            probes.retain(|_, at| *at > now);
            probes.insert(key, until);
        }
    }
}

pub use hookrelay_shared::outbound::SenderError as ContextError;

impl Context {
    pub fn new(aws: &SdkConfig, settings: Settings) -> Result<Self, ContextError> {
        Ok(Self {
            ops: hookrelay_shared::ops_events::OpsEvents::connect(aws, &settings, "delivery"),
            probes: Default::default(),
            metric_lines: hookrelay_shared::held_metrics::HeldMetrics::new(
                "delivery",
                hookrelay_shared::held_metrics::DELIVERY_ROUTINE,
            ),
            otlp: hookrelay_shared::otlp::Exporter::from_env(SERVICE_NAME),
            sender: Sender::new(&settings)?,
            store: Store::connect(aws, &settings),
            queue: Queue::connect(aws, &settings),
            settings,
        })
    }
}

/// One received message, parsed.
#[derive(Debug, Clone)]
pub struct Received {
    pub message_id: String,
    pub receipt_handle: String,
    pub task: DeliveryTask,
    /// The attempt this receive would be: the task's attempts so far, plus one.
    pub attempt: u32,
    /// SQS's receive count: only a guard against the queue's `maxReceiveCount`.
    pub receive_count: u32,
    pub sent_at: Option<Timestamp>,
    /// The invocation's X-Ray trace, passed on to the endpoint as `X-Amzn-Trace-Id`.
    pub trace_id: Option<String>,
    /// When the invocation will be stopped: no request may outlive it.
    pub deadline: Option<std::time::Instant>,
}

/// A task, or a dead letter moved back as it is (SQS's own DLQ redrive): its task, with
/// attempts counted afresh, as the admin API's redrive does.
fn parse_body(body: &str) -> Result<DeliveryTask, serde_json::Error> {
    match serde_json::from_str::<DeliveryTask>(body) {
        Ok(task) => Ok(task),
        Err(e) => match serde_json::from_str::<hookrelay_shared::DeadLetter>(body) {
            Ok(letter) => Ok(DeliveryTask {
                attempts: 0,
                not_before: None,
                manual: false,
                ..letter.task
            }),
            Err(_) => Err(e),
        },
    }
}

fn parse_task(msg: &SqsMessage, message_id: String, body: &str) -> Option<Received> {
    let task: DeliveryTask = match parse_body(body) {
        Ok(t) => t,
        Err(e) => {
            // It can never succeed: drop it rather than let it cycle to the DLQ.
            tracing::error!(message.id = %message_id, error = %e, "malformed delivery task dropped");
            return None;
        }
    };
    let receive_count = msg
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1u32)
        .max(1);
    let attempt = task.attempts.saturating_add(1);
    let sent_at = msg
        .attributes
        .get("SentTimestamp")
        .and_then(|t| t.parse().ok())
        .and_then(Timestamp::from_unix_millis);
    Some(Received {
        message_id,
        receipt_handle: msg.receipt_handle.clone().unwrap_or_default(),
        task,
        attempt,
        receive_count,
        sent_at,
        trace_id: None,
        deadline: None,
    })
}

/// Sends a batch's deliveries concurrently, at most `delivery_concurrency` at once; each is
/// bounded by its own timeout, so one slow endpoint never holds the others.
pub async fn deliver_all(
    ctx: &Context,
    received: Vec<Received>,
    events: &Events,
    endpoints: &Endpoints,
) -> Vec<(Received, Outcome)> {
    futures::stream::iter(received)
        .map(|r| async move {
            let outcome = deliver_one(ctx, &r, events, endpoints, Way::Unordered).await;
            (r, outcome)
        })
        .buffer_unordered(ctx.settings.delivery_concurrency)
        .collect()
        .await
}

/// Which queue a task came from: what a task that cannot go now does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Way {
    /// The deliveries queue: a task that waits is queued again as a new, delayed message.
    Unordered,
    /// The ordered queue: a task that waits keeps its message and holds its line, so an open
    /// circuit does not park it (its line's one message in flight is already its probe).
    Ordered,
}

/// One task's delivery, or why it was not attempted.
pub(crate) async fn deliver_one(
    ctx: &Context,
    r: &Received,
    events: &Events,
    endpoints: &Endpoints,
    way: Way,
) -> Outcome {
    // An event stored under another id belongs to an earlier request with the same
    // idempotency key: this task is a duplicate's and is not delivered.
    let found: Vec<&Event> = task_event_refs(&r.task)
        .filter_map(|(key, id)| events.get(key).filter(|e| &e.id == id))
        .collect();
    let not_stored_yet = found.is_empty()
        && task_event_refs(&r.task).any(|(key, _)| !events.contains_key(key))
        && r.sent_at
            .is_some_and(|at| Timestamp::now().since(at) < STORE_GRACE);
    let endpoint = endpoints.get(&(r.task.workspace.clone(), r.task.endpoint_id.clone()));
    let max_receives = match way {
        Way::Unordered => DELIVERIES_MAX_RECEIVE_COUNT,
        Way::Ordered => ORDERED_MAX_RECEIVE_COUNT,
    };
    if r.receive_count >= max_receives {
        send::receive_limit(r, endpoint)
    } else if not_stored_yet {
        Outcome::NotStoredYet
    } else if way == Way::Unordered
        && let Some(wait) = circuit::parked(ctx, r, endpoint).await
    {
        Outcome::Parked(wait)
    } else if let Some(wait) = rate_limited(ctx, r, endpoint).await {
        Outcome::Deferred(wait)
    } else {
        batches::wait_turn(ctx, &r.task, r.deadline).await;
        let outcome = send::deliver(ctx, r, &found, endpoint).await;
        if !matches!(outcome, Outcome::Postponed) {
            batches::settle_turn(ctx, &r.task).await;
        }
        outcome
    }
}

/// How long a task waits when its endpoint's rate limit is reached; `None` when it may go.
/// A manual retry or test goes regardless, as it does past an open circuit.
async fn rate_limited(
    ctx: &Context,
    r: &Received,
    endpoint: Option<&Endpoint>,
) -> Option<Duration> {
    let ep = endpoint?;
    let limit = ep.rate_limit.as_ref()?;
    if r.task.manual {
        return None;
    }
    let scope = hookrelay_shared::rate_limit::endpoint_scope(&ep.workspace, &ep.id);
    match hookrelay_shared::rate_limit::check(&ctx.store, &scope, limit, Timestamp::now(), true)
        .await
    {
        hookrelay_shared::rate_limit::Decision::Go => None,
        // SQS delays are whole seconds, and a task back before its window would count
        // against the limit twice: rounded up.
        hookrelay_shared::rate_limit::Decision::Wait(wait) => Some(Duration::from_secs(
            u64::try_from(wait.as_millis().div_ceil(1000))
                .unwrap_or(900)
                .max(1),
        )),
    }
}

/// The item keys of a task's events: one, or a batch's.
fn task_event_keys(task: &DeliveryTask) -> impl Iterator<Item = &String> + Send + '_ {
    task_event_refs(task).map(|(key, _)| key)
}

/// The item keys and ids of a task's events.
fn task_event_refs(
    task: &DeliveryTask,
) -> Box<dyn Iterator<Item = (&String, &String)> + Send + '_> {
    match &task.batch {
        Some(b) => Box::new(b.events.iter().map(|e| (&e.event_key, &e.event_id))),
        None => Box::new(std::iter::once((&task.event_key, &task.event_id))),
    }
}

/// A task due this close to now is attempted rather than re-queued once more.
const HOP_SLACK: Duration = Duration::from_secs(1);

/// The deliveries queue's `maxReceiveCount` (the template's redrive policy; a test keeps
/// the two equal): on this receive a task that does not end is dead-lettered by the function
/// itself, with its letter, instead of being moved bare by SQS on the next one.
pub const DELIVERIES_MAX_RECEIVE_COUNT: u32 = 25;

/// The ordered queue's `maxReceiveCount` (the template's; a test keeps the two equal). A
/// message there is received once per attempt and once more each time the head of its line
/// fails (it is handed back unsent with it), so the guard is SQS's largest.
pub const ORDERED_MAX_RECEIVE_COUNT: u32 = 1000;

/// Tasks are queued before their event is stored: a task this young whose event is not
/// there yet waits for it instead of ending.
pub const STORE_GRACE: Duration = Duration::from_secs(30);

/// A task younger than this whose event is missing is most likely racing its own store
/// write, which takes milliseconds; older ones wait out `NOT_STORED_DELAY` instead.
const STORE_RACE_WINDOW: Duration = Duration::from_secs(2);
const STORE_RACE_PAUSE: Duration = Duration::from_millis(100);

/// The attempts to record: a batch's one attempt stands for each of its events.
fn attempts_of(outcomes: &[(Received, Outcome)]) -> Vec<Attempt> {
    let mut attempts = Vec::new();
    for (r, o) in outcomes {
        let Some(a) = o.attempt() else { continue };
        attempts.push(a.clone());
        if let Some(batch) = &r.task.batch {
            for e in batch.events.iter().skip(1) {
                let mut copy = a.clone();
                copy.id = hookrelay_shared::ids::new_id(hookrelay_shared::ids::ATTEMPT);
                copy.event_id = e.event_id.clone();
                attempts.push(copy);
            }
        }
    }
    attempts
}

/// Handles one SQS batch. Answers the messages to retry; a failure of our own dependencies
/// fails the affected messages, never silently drops them.
pub async fn handle(ctx: &Context, event: SqsEvent) -> SqsBatchResponse {
    handle_traced(ctx, event, None, None).await
}

/// [`handle`], with the invocation's X-Ray trace id passed on to endpoints and its deadline
/// bounding every request.
pub async fn handle_traced(
    ctx: &Context,
    event: SqsEvent,
    trace_id: Option<&str>,
    deadline: Option<std::time::Instant>,
) -> SqsBatchResponse {
    let started = Timestamp::now();
    let batching_url = ctx.queue.batching_url().map(str::to_owned);
    let batching_arn_suffix = batching_url
        .as_deref()
        .and_then(|u| u.rsplit('/').next())
        .map(|name| format!(":{name}"));
    let from_batching = |msg: &SqsMessage| {
        batching_arn_suffix.as_deref().is_some_and(|suffix| {
            msg.event_source_arn
                .as_deref()
                .is_some_and(|arn| arn.ends_with(suffix))
        })
    };
    let ordered_url = ctx.queue.ordered_url().map(str::to_owned);
    let ordered_arn_suffix = ordered_url
        .as_deref()
        .and_then(|u| u.rsplit('/').next())
        .map(|name| format!(":{name}"));
    let from_ordered = |msg: &SqsMessage| {
        ordered_arn_suffix.as_deref().is_some_and(|suffix| {
            msg.event_source_arn
                .as_deref()
                .is_some_and(|arn| arn.ends_with(suffix))
        })
    };
    // The batching queue carries timers (and, from before batches were kept in DynamoDB,
    // tasks); the deliveries queue and the ordered queue carry tasks.
    let mut timers = Vec::new();
    let mut received = Vec::new();
    let mut in_line = Vec::new();
    for msg in &event.records {
        let Some(message_id) = msg.message_id.clone().filter(|id| !id.is_empty()) else {
            continue;
        };
        let body = msg.body.as_deref().unwrap_or_default();
        if from_ordered(msg) {
            if let Some(mut r) = parse_task(msg, message_id, body) {
                r.trace_id = trace_id.map(str::to_owned);
                r.deadline = deadline;
                in_line.push((ordered::group_of(msg, &r.task), r));
            }
            continue;
        }
        if from_batching(msg)
            && let Some(t) = batches::parse_timer(
                &message_id,
                msg.receipt_handle.as_deref().unwrap_or_default(),
                body,
            )
        {
            timers.push(t);
            continue;
        }
        if let Some(mut r) = parse_task(msg, message_id, body) {
            r.trace_id = trace_id.map(str::to_owned);
            r.deadline = deadline;
            received.push(r);
        }
    }
    let mut response = SqsBatchResponse::default();
    if let Some(url) = ordered_url.as_deref() {
        ordered::handle(ctx, url, in_line, &mut response).await;
    }
    // A long wait goes on in hops of at most SQS's longest delay, none of them an attempt.
    let now = Timestamp::now();
    let (hops, received): (Vec<Received>, Vec<Received>) = received.into_iter().partition(|r| {
        r.task
            .not_before
            .is_some_and(|at| at.since(now) > HOP_SLACK)
    });
    if !hops.is_empty() {
        let requeue = hops
            .into_iter()
            .map(|r| {
                let wait = r.task.not_before.map_or(Duration::ZERO, |at| at.since(now));
                let task = r.task.clone();
                (r, task, wait.min(outcome::MAX_DELAY))
            })
            .collect();
        let delays = outcome::requeue_tasks(ctx, requeue, &mut response).await;
        if !delays.is_empty()
            && let Err(e) = ctx.queue.delay(&delays).await
        {
            tracing::warn!(error = %error_chain(&e), "visibility not changed; default timeout applies");
        }
    }
    if received.is_empty() && timers.is_empty() {
        return response;
    }

    let event_keys: HashSet<String> = received
        .iter()
        .flat_map(|r| task_event_keys(&r.task).cloned())
        .collect();
    let endpoint_refs: HashSet<(String, String)> = received
        .iter()
        .map(|r| (r.task.workspace.clone(), r.task.endpoint_id.clone()))
        .chain(
            timers
                .iter()
                .map(|t| (t.timer.workspace.clone(), t.timer.endpoint_id.clone())),
        )
        .collect();
    let (mut events, endpoints) = match ctx
        .store
        .load_for_delivery(&event_keys, &endpoint_refs)
        .await
    {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = %error_chain(&e), "batch read failed; the whole batch is retried");
            for r in &received {
                response.add_failure(r.message_id.clone());
            }
            for t in &timers {
                response.add_failure(t.message_id.clone());
            }
            return response;
        }
    };

    let racing: HashSet<String> = received
        .iter()
        .filter(|r| {
            r.sent_at
                .is_some_and(|at| Timestamp::now().since(at) < STORE_RACE_WINDOW)
        })
        .flat_map(|r| task_event_keys(&r.task).cloned())
        .filter(|k| !events.contains_key(k))
        .collect();
    if !racing.is_empty() {
        // Ingest queues a task just before it stores the event, so a task picked up at once
        // can overtake its event by a few milliseconds; one more read after a pause saves it
        // a whole visibility delay.
        tokio::time::sleep(STORE_RACE_PAUSE).await;
        match ctx.store.load_for_delivery(&racing, &HashSet::new()).await {
            Ok((more, _)) => events.extend(more),
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), events = racing.len(), "second read of young events failed")
            }
        }
    }

    let (listed, received) = listing::list_new(ctx, received, &events).await;
    if !timers.is_empty() {
        batches::on_timers(ctx, timers, &endpoints, &mut response).await;
    }
    // A single task for an enabled batch endpoint joins its open batch; one whose event is
    // missing goes the single way, which waits for it or ends it.
    let (to_batch, received) = divert(
        received,
        batching_url.is_some(),
        &events,
        &endpoints,
        |ep| ep.batching().is_some(),
    );
    if !to_batch.is_empty() {
        batches::add_all(ctx, to_batch, &events, &endpoints, &mut response).await;
    }
    // A task for an enabled ordered endpoint that came the unordered way (the sweeper's
    // reconciliation, an operational event, a task queued before the endpoint was ordered)
    // joins the end of its line.
    let (to_line, received) = divert(received, ordered_url.is_some(), &events, &endpoints, |ep| {
        ep.ordered().is_some()
    });
    if !to_line.is_empty() {
        ordered::join_lines(ctx, to_line, &events, &endpoints, &mut response).await;
    }

    let mut outcomes = deliver_all(ctx, received, &events, &endpoints).await;
    outcomes.extend(listed);

    record(
        ctx,
        outcomes,
        (&events, &endpoints),
        &mut response,
        None,
        started,
    )
    .await;
    response
}

/// Writes the attempts and settles the outcomes (deletes, retries, letters) of a batch read
/// from the deliveries queue, or the ordered queue at `ordered_url`, while its metrics and
/// spans go to the collector: a healthy one adds nothing to the batch's time, and a dead one
/// at most its timeout.
pub(crate) async fn record(
    ctx: &Context,
    outcomes: Vec<(Received, Outcome)>,
    (events, endpoints): (&Events, &Endpoints),
    response: &mut SqsBatchResponse,
    ordered_url: Option<&str>,
    started: Timestamp,
) {
    let attempts = attempts_of(&outcomes);
    let recorded = outcome::flush_metrics(ctx, &outcomes, started);
    let spans = match &ctx.otlp {
        Some(_) => attempt_spans(&outcomes, events),
        None => Vec::new(),
    };
    let write = async {
        if let Err(e) = ctx
            .store
            .put_attempts(&attempts, ctx.settings.retention())
            .await
        {
            tracing::error!(error = %error_chain(&e), attempts = attempts.len(), "attempt history not written");
        }
        outcome::settle(ctx, outcomes, events, endpoints, response, ordered_url).await;
    };
    let export = async {
        if let Some(exporter) = &ctx.otlp {
            exporter.export_all(spans, recorded).await;
        }
    };
    tokio::join!(write, export);
}

/// Splits off the single tasks that go another way (a batch, an ordered line): those whose
/// queue is configured (`way_open`), whose event is stored, and whose endpoint is enabled and
/// `takes` them.
fn divert(
    received: Vec<Received>,
    way_open: bool,
    events: &Events,
    endpoints: &Endpoints,
    takes: impl Fn(&hookrelay_shared::Endpoint) -> bool,
) -> (Vec<Received>, Vec<Received>) {
    received.into_iter().partition(|r| {
        way_open
            && r.task.batch.is_none()
            && events
                .get(&r.task.event_key)
                .is_some_and(|e| e.id == r.task.event_id)
            && endpoints
                .get(&(r.task.workspace.clone(), r.task.endpoint_id.clone()))
                .is_some_and(|ep| ep.enabled && takes(ep))
    })
}

/// One CLIENT span per request made: the span id of the `traceparent` it carried, under the
/// span that accepted its (first) event.
fn attempt_spans(
    outcomes: &[(Received, Outcome)],
    events: &Events,
) -> Vec<hookrelay_shared::otlp::Span> {
    use hookrelay_shared::otlp::{Kind, Span, system_time};
    let mut spans = Vec::new();
    for (r, o) in outcomes {
        let Some(a) = o.attempt() else { continue };
        // No header: the request was never made (a cancelled attempt).
        let Some(sent) = a
            .request
            .headers
            .get(hookrelay_shared::trace_context::TRACEPARENT)
        else {
            continue;
        };
        let mut ids = sent.split('-').skip(1);
        let (Some(trace_id), Some(span_id), Some(flags)) = (ids.next(), ids.next(), ids.next())
        else {
            continue;
        };
        if flags != "01" {
            continue;
        }
        let parent = task_event_refs(&r.task)
            .next()
            .and_then(|(key, _)| events.get(key))
            .and_then(|e| e.trace.as_ref());
        let start = system_time(a.attempted_at);
        let latency = a.response.as_ref().map_or(0, |resp| resp.latency);
        let mut span = Span::new(Kind::Client, "POST", trace_id, span_id, start)
            .ended_at(start + Duration::from_millis(latency))
            .str("http.request.method", "POST")
            .str("url.full", a.request.url.as_str())
            .str("hookrelay.event.id", a.event_id.as_str())
            .str("hookrelay.endpoint.id", a.endpoint_id.as_str())
            .str("hookrelay.attempt.id", a.id.as_str())
            .str("hookrelay.workspace", a.workspace.as_str())
            .int("hookrelay.attempt.number", i64::from(a.attempt_number));
        if let Some(p) = parent {
            span = span.child_of(&p.span_id, false);
            span.trace_state = p.state.clone();
        }
        if let Some(status) = a.response.as_ref().and_then(|resp| resp.status) {
            span = span.int("http.response.status_code", i64::from(status));
        }
        if a.status != hookrelay_shared::AttemptStatus::Successful {
            let code = a.error_code.as_deref().unwrap_or("failed");
            span = span
                .str("error.type", code)
                .failed(a.error_message.clone().unwrap_or_else(|| code.to_owned()));
        }
        spans.push(span);
    }
    spans
}
