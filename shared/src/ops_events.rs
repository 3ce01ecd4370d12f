//! Operational events: every lifecycle change of an endpoint, and every task that ran out of
//! attempts, made visible. Each goes to EventBridge (source `hookrelay`, detail-type the
//! event's type, on the bus `OPS_EVENT_BUS`) and, when the workspace names an ops endpoint,
//! through the ordinary pipeline to it: stored, signed, retried, with attempts. They carry
//! ids, names, URLs (token-bearing ones masked), times and counts, never secrets. Emitting
//! never fails the work that
//! caused it: a failure is logged and counted.

use std::time::Duration;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde::Serialize;

use crate::cache::TtlCache;
use crate::metrics::{self as m, Metrics};
use crate::queue::Queue;
use crate::store::Store;
use crate::telemetry::error_chain;
use crate::{Endpoint, Event, Timestamp, WorkspaceSettings, ids};

/// EventBridge's `source` for every operational event.
pub const SOURCE: &str = "hookrelay";
/// The `source_id` of operational events stored as events of a workspace.
pub const OPS_SOURCE_ID: &str = "ops";

string_values! {
    /// Every operational event type.
    TYPES;
    ENDPOINT_DEACTIVATED = "endpoint.deactivated",
    ENDPOINT_REACTIVATED = "endpoint.reactivated",
    ENDPOINT_FAILING = "endpoint.failing",
    ENDPOINT_DEACTIVATION_PENDING = "endpoint.deactivation_pending",
    ATTEMPT_EXHAUSTED = "attempt.exhausted",
}

/// The endpoint an operational event is about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointInfo {
    pub id: String,
    pub name: String,
    pub url: String,
}

impl From<&Endpoint> for EndpointInfo {
    fn from(e: &Endpoint) -> Self {
        Self {
            id: e.id.clone(),
            name: e.name.clone(),
            // A bot's URL is its bearer token: the event shows it masked.
            url: crate::redact::endpoint_url(&e.url, e.kind),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered_events: Option<usize>,
}

/// One operational event: EventBridge's `detail`, and the `data` of the event an ops
/// endpoint receives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpsEvent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub workspace: String,
    pub endpoint: EndpointInfo,
    pub at: Timestamp,
    /// Why an endpoint was deactivated: one of `model::disabled_reason`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub counts: Counts,
    /// For `attempt.exhausted`: the event that was not delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error_code: Option<String>,
    /// For `endpoint.deactivation_pending`: when the one-year rule will apply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deactivates_at: Option<Timestamp>,
}

impl OpsEvent {
    pub fn new(kind: &'static str, endpoint: &Endpoint, at: Timestamp) -> Self {
        Self {
            kind,
            workspace: endpoint.workspace.clone(),
            endpoint: endpoint.into(),
            at,
            reason: None,
            counts: Counts::default(),
            event_id: None,
            event_type: None,
            last_status: None,
            last_error_code: None,
            deactivates_at: None,
        }
    }

    pub fn deactivated(endpoint: &Endpoint, reason: &str, at: Timestamp) -> Self {
        let mut e = Self::new(ENDPOINT_DEACTIVATED, endpoint, at);
        e.reason = Some(reason.to_owned());
        e.counts.consecutive_failures = Some(endpoint.consecutive_failures);
        e
    }
}

pub struct OpsEvents {
    client: aws_sdk_eventbridge::Client,
    bus: String,
    store: Store,
    queue: Queue,
    retention: Duration,
    settings: TtlCache<String, WorkspaceSettings>,
    /// The emitting function, the metrics' `Function` dimension.
    function: &'static str,
}

impl OpsEvents {
    pub fn connect(
        aws: &aws_config::SdkConfig,
        settings: &crate::config::Settings,
        function: &'static str,
    ) -> Self {
        Self {
            function,
            client: crate::requests::eventbridge(aws),
            bus: settings.ops_event_bus.clone(),
            store: Store::connect(aws, settings),
            queue: Queue::connect(aws, settings),
            retention: settings.retention(),
            settings: TtlCache::new(settings.cache_ttl),
        }
    }

    /// A workspace's settings, cached for the TTL.
    pub async fn workspace_settings(&self, ws: &str) -> Option<WorkspaceSettings> {
        if let Some(s) = self.settings.get(&ws.to_owned()) {
            return Some(s);
        }
        match self.store.get_workspace(ws).await {
            Ok(found) => {
                let s = found.map(|w| w.settings).unwrap_or_default();
                self.settings.insert(ws.to_owned(), s.clone());
                Some(s)
            }
            Err(e) => {
                tracing::warn!(workspace = ws, error = %error_chain(&e), "workspace settings not read");
                None
            }
        }
    }

    /// Emits each event to EventBridge and to its workspace's ops endpoint. Never fails.
    pub async fn emit(&self, events: &[OpsEvent]) {
        if events.is_empty() {
            return;
        }
        let mut failed = self.put_events(events).await;
        for e in events {
            if !self.deliver(e).await {
                failed += 1;
            }
        }
        for e in events {
            tracing::info!(
                ops_event = e.kind,
                workspace = %e.workspace,
                endpoint.id = %e.endpoint.id,
                reason = e.reason.as_deref(),
                "operational event"
            );
        }
        let mut metrics = Metrics::new(self.function);
        for e in events {
            metrics.add_by(m::OPS_EVENTS, "Type", e.kind, 1.0);
        }
        if failed > 0 {
            metrics.add(m::OPS_EVENTS_FAILED, failed as f64);
        }
        metrics.flush();
    }

    /// Answers how many entries EventBridge did not take.
    async fn put_events(&self, events: &[OpsEvent]) -> usize {
        let mut failed = 0;
        for chunk in events.chunks(10) {
            let entries: Vec<PutEventsRequestEntry> = chunk
                .iter()
                .filter_map(|e| {
                    let detail = serde_json::to_string(e).ok()?;
                    Some(
                        PutEventsRequestEntry::builder()
                            .source(SOURCE)
                            .detail_type(e.kind)
                            .detail(detail)
                            .event_bus_name(&self.bus)
                            .resources(format!("hookrelay:endpoint/{}", e.endpoint.id))
                            .build(),
                    )
                })
                .collect();
            match self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => {
                    let n = out.failed_entry_count().max(0) as usize;
                    if n > 0 {
                        tracing::warn!(failed = n, "EventBridge refused operational events");
                    }
                    failed += n;
                }
                Err(e) => {
                    tracing::warn!(error = %aws_sdk_eventbridge::error::DisplayErrorContext(&e), "operational events not put on EventBridge");
                    failed += chunk.len();
                }
            }
        }
        failed
    }

    /// Publishes the event to the workspace's ops endpoint, unless there is none or the
    /// event is about that very endpoint (its own failures would feed themselves). Answers
    /// false on a failure.
    async fn deliver(&self, e: &OpsEvent) -> bool {
        let Some(settings) = self.workspace_settings(&e.workspace).await else {
            return false;
        };
        let Some(ops_endpoint) = settings.ops_endpoint_id else {
            return true;
        };
        if ops_endpoint == e.endpoint.id {
            return true;
        }
        let id = ids::new_id(ids::EVENT);
        let payload = serde_json::json!({"event_type": e.kind, "data": e});
        let event = Event {
            id: id.clone(),
            workspace: e.workspace.clone(),
            source_id: OPS_SOURCE_ID.to_owned(),
            event_type: e.kind.to_owned(),
            idempotency_key: id.clone(),
            received_at: Timestamp::now(),
            payload: payload.to_string().into_bytes(),
            endpoint_ids: vec![ops_endpoint],
            content_type: None,
            hops: 0,
            trace: None,
        };
        let scope = format!("{OPS_SOURCE_ID}:{}", e.workspace);
        // The ops endpoint's kind is not read here: if it batches, the delivery function
        // adds the task to its batch; if it is ordered, moves it to its line.
        let batching = crate::publish::Targets::default();
        match crate::publish::publish(
            &self.store,
            &self.queue,
            &event,
            &scope,
            self.retention,
            &batching,
        )
        .await
        {
            Ok(_) => true,
            Err(err) => {
                tracing::warn!(ops_event = e.kind, error = %error_chain(&err), "operational event not delivered to the ops endpoint");
                false
            }
        }
    }
}
