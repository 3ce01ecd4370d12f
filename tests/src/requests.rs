//! AWS requests per event: a scenario run through the real handlers on the local stack,
//! with the SDK's request counter read before and after each phase. Shared by the bounded
//! test in `make test` and the cost benchmark in `make bench`.

use std::time::{Duration, Instant};

use hookrelay_shared::requests::{self, Counts};
use serde::Serialize;
use serde_json::json;
use tracing::Instrument;

use hookrelay_shared::store::{AttemptFilter, PageRequest, Store};

use crate::faulty::{Faults, FaultyReceiver};
use crate::{Stack, create_endpoint, create_source, request};

#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub events: usize,
    /// Endpoints each event goes to.
    pub fanout: usize,
    /// Share of delivery requests the receivers answer 500 (retried).
    pub failure_ratio: f64,
    pub body_bytes: usize,
    /// The most tasks one delivery invocation takes (the template's `DeliveryBatchSize`).
    /// Ten is what a busy queue gives; one is what a queue gives at a low rate with no
    /// batching window, where each task is received as it arrives.
    pub batch_size: usize,
    /// The config lease the API records (`CONFIG_LEASE_MS`): how long each ingest instance
    /// trusts the workspace's config stamp. At a busy rate an instance reads it once a lease;
    /// at a low rate, where events come further apart than the lease, once an event, as
    /// with a lease of zero.
    pub config_lease_ms: u64,
}

/// Ingest instances taking the scenario's events side by side, each its own warm function
/// with its own memory, each one request at a time, as Lambda runs them.
pub const INGEST_INSTANCES: usize = 8;

/// A full batch, as the event source mapping takes from a busy queue.
pub const FULL_BATCH: usize = 10;

#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    /// `"DynamoDB.PutItem"` → requests.
    pub requests: std::collections::BTreeMap<String, u64>,
    pub seconds: f64,
    /// Log and metric lines written, in bytes (what CloudWatch Logs would ingest).
    pub log_bytes: u64,
    /// Of which metric (EMF) lines: they pass any application log level.
    pub metric_bytes: u64,
    /// Of which lines at WARN or above: with the metric lines, what `LogLevel=WARN` keeps.
    pub warn_log_bytes: u64,
}

/// A mark to measure a phase from.
pub struct Mark {
    counts: Counts,
    logs: u64,
    metrics: u64,
    warnings: u64,
    at: Instant,
}

impl Mark {
    pub fn now() -> Self {
        Self {
            counts: requests::snapshot(),
            logs: logged(),
            metrics: hookrelay_shared::metrics::emitted_bytes(),
            warnings: hookrelay_shared::telemetry::warn_log_bytes(),
            at: Instant::now(),
        }
    }

    pub fn phase(&self) -> Phase {
        Phase::of(
            requests::since(&self.counts),
            self.at.elapsed().as_secs_f64(),
            logged() - self.logs,
            hookrelay_shared::metrics::emitted_bytes() - self.metrics,
            hookrelay_shared::telemetry::warn_log_bytes() - self.warnings,
        )
    }
}

fn logged() -> u64 {
    hookrelay_shared::telemetry::log_bytes() + hookrelay_shared::metrics::emitted_bytes()
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestReport {
    pub scenario: Scenario,
    pub tasks: usize,
    /// HTTP requests the receivers saw (first attempts and retries).
    pub deliveries: usize,
    /// Invocations of the delivery function (event source mapping rounds).
    pub delivery_invocations: usize,
    pub ingest: Phase,
    pub delivery: Phase,
    /// DynamoDB item sizes (its own rules), which set write and read units.
    pub item_bytes: ItemBytes,
    /// Write units of the attempt listing pages the run wrote (the workspace's and every
    /// endpoint's), each page costing one per started KB.
    pub attempt_page_write_units: u64,
    /// Write units of the event listing pages the run wrote (the workspace's, every
    /// source's and every type's).
    pub event_page_write_units: u64,
    /// Event listing page items the run wrote.
    pub event_pages: u64,
    /// Ingest instances the events were spread over ([`INGEST_INSTANCES`]).
    pub ingest_instances: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemBytes {
    pub event: usize,
    pub attempt: usize,
}

/// The page items under partitions starting with `prefix`, and their write units.
async fn page_write_units(stack: &Stack, prefix: &str) -> (u64, u64) {
    let ddb = aws_sdk_dynamodb::Client::new(&stack.aws);
    let mut pages = ddb
        .scan()
        .table_name(&stack.settings.table_name)
        .filter_expression("begins_with(pk, :p)")
        .expression_attribute_values(
            ":p",
            aws_sdk_dynamodb::types::AttributeValue::S(prefix.to_owned()),
        )
        .into_paginator()
        .items()
        .send();
    let (mut items, mut units) = (0, 0);
    while let Some(item) = pages.next().await {
        let item = item.expect("scan");
        items += 1;
        units += item_size(&item).div_ceil(1024).max(1) as u64;
    }
    (items, units)
}

/// An item's size as DynamoDB counts it against write units: the store's own measure.
pub use hookrelay_shared::store::item_bytes as item_size;

impl Phase {
    fn of(
        counts: Counts,
        seconds: f64,
        log_bytes: u64,
        metric_bytes: u64,
        warn_log_bytes: u64,
    ) -> Self {
        Self {
            requests: counts
                .into_iter()
                .map(|((service, op), n)| (format!("{service}.{op}"), n))
                .collect(),
            seconds,
            log_bytes,
            metric_bytes,
            warn_log_bytes,
        }
    }

    pub fn empty() -> Self {
        Self::of(Counts::new(), 0.0, 0, 0, 0)
    }

    pub fn add(&mut self, other: Phase) {
        for (k, n) in other.requests {
            *self.requests.entry(k).or_default() += n;
        }
        self.seconds += other.seconds;
        self.log_bytes += other.log_bytes;
        self.metric_bytes += other.metric_bytes;
        self.warn_log_bytes += other.warn_log_bytes;
    }

    pub fn get(&self, op: &str) -> u64 {
        self.requests.get(op).copied().unwrap_or(0)
    }

    /// Every request of one service.
    pub fn service(&self, service: &str) -> u64 {
        self.requests
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{service}.")))
            .map(|(_, n)| n)
            .sum()
    }
}

/// Runs `scenario` on a fresh stack. Warm functions: the settings cache holds sources and
/// endpoints between requests, as a warm Lambda does.
pub async fn run(scenario: Scenario) -> RequestReport {
    // Retries come back at once: the run counts requests, not the schedule's waits.
    let mut stack = Stack::with_schedule("0,0,0").await;
    stack.settings.cache_ttl = Duration::from_secs(300);
    stack.settings.config_lease = Duration::from_millis(scenario.config_lease_ms);
    stack.mapping.batch_size = scenario.batch_size;
    let faults = Faults {
        error: scenario.failure_ratio,
        hang: 0.0,
        drop: 0.0,
        slow: 0.0,
    };
    let mut receivers = Vec::new();
    for i in 0..scenario.fanout {
        let r = FaultyReceiver::start(faults, 7 + i as u64).await;
        create_endpoint(&stack, json!({"name": format!("e{i}"), "url": r.url})).await;
        receivers.push(r);
    }
    let source = create_source(&stack, json!({"name": "s"})).await;
    let ingest: Vec<_> = (0..INGEST_INSTANCES).map(|_| stack.ingest()).collect();
    let delivery = stack.delivery();

    // In rounds of 100 events, each accepted and then delivered: the local SQS emulator slows
    // as its queue grows, and AWS's does not, so the queue is kept short. Each phase's
    // requests are summed over the rounds.
    let tasks = scenario.events * scenario.fanout;
    let mut invocations = 0;
    let mut ingest_phase = Phase::empty();
    let mut delivery_phase = Phase::empty();
    let deadline = Instant::now() + Duration::from_secs(900);
    for round in (0..scenario.events).collect::<Vec<_>>().chunks(100) {
        let mark = Mark::now();
        futures::future::join_all(ingest.iter().enumerate().map(|(i, instance)| {
            let source = &source;
            let events = round.iter().copied().skip(i).step_by(INGEST_INSTANCES);
            async move {
                for n in events {
                    let body = crate::bodies::invoice_event(n as u64, scenario.body_bytes);
                    let resp = hookrelay_ingest::handle(
                        instance,
                        request("POST", &format!("/in/{source}"), &[], body.as_bytes()),
                    )
                    .instrument(invocation_span())
                    .await;
                    assert_eq!(resp.status(), 202, "{}", resp.body());
                }
            }
        }))
        .await;
        ingest_phase.add(mark.phase());

        let mark = Mark::now();
        // Until every task is delivered or dead-lettered: the queue holds nothing, visible,
        // in flight or delayed (a task parked by the circuit breaker waits out a delay).
        while Instant::now() < deadline {
            if stack
                .deliver_once(&delivery, Duration::from_secs(1))
                .instrument(invocation_span())
                .await
                .is_some()
            {
                invocations += 1;
            } else if stack.queue_empty(&stack.settings.delivery_queue_url).await {
                break;
            }
        }
        delivery_phase.add(mark.phase());
    }

    let retention = stack.settings.retention();
    let event = stack
        .store
        .list_events(
            "default",
            &PageRequest {
                limit: Some(1),
                cursor: None,
            },
        )
        .await
        .expect("events")
        .data
        .pop()
        .expect("an event");
    let attempt = stack
        .store
        .find_attempts(
            "default",
            &AttemptFilter {
                event_id: Some(event.id.clone()),
                endpoint_id: None,
                status: None,
            },
            &PageRequest {
                limit: Some(1),
                cursor: None,
            },
        )
        .await
        .expect("attempts")
        .data
        .pop()
        .expect("an attempt");
    let item_bytes = ItemBytes {
        event: item_size(&Store::event_item(&event, &source, false, retention).expect("item")),
        attempt: item_size(&Store::attempt_item(&attempt, retention).expect("item")),
    };
    let (_, attempt_page_write_units) = page_write_units(&stack, "PAGE#default#ATT").await;
    let (event_pages, event_page_write_units) = page_write_units(&stack, "PAGE#default#EVT").await;
    RequestReport {
        item_bytes,
        attempt_page_write_units,
        event_page_write_units,
        event_pages,
        ingest_instances: INGEST_INSTANCES,
        tasks,
        deliveries: receivers.iter().map(|r| r.seen().len()).sum(),
        delivery_invocations: invocations,
        scenario,
        ingest: ingest_phase,
        delivery: delivery_phase,
    }
}

/// The span the Lambda runtime opens around each invocation: every log line inside it
/// carries the request and trace ids, and the log volume counts them as it would in AWS.
fn invocation_span() -> tracing::Span {
    let id = ulid::Ulid::new().to_string().to_lowercase();
    tracing::info_span!(
        "Lambda runtime invoke",
        requestId = %format!("{}-{}-{}-{}-{}", &id[..8], &id[8..12], &id[12..16], &id[16..20], &id[20..26].repeat(2)),
        xrayTraceId = %format!("Root=1-{}-{};Parent={};Sampled=1", &id[..8], &id[2..26], &id[10..26]),
    )
}
