//! The domain: workspaces hold sources (where webhooks come in) and endpoints (where they go);
//! an event is one accepted webhook; an attempt is one try to deliver an event to an endpoint.
//! No AWS types here: the store maps these to items.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::filter;

pub const DEFAULT_WORKSPACE: &str = "default";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub id: String,
    pub workspace: String,
    pub name: String,
    pub enabled: bool,
    /// When set, the event type is read from this request header instead of the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type_header: Option<String>,
    /// Used when neither the header nor the body names an event type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_event_type: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub workspace: String,
    pub name: String,
    pub url: String,
    /// Event type filters: exact names, `*`, or `prefix.*`.
    pub events: Vec<String>,
    pub enabled: bool,
    /// Standard Webhooks signing secret (`whsec_…`).
    pub secret: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<Timestamp>,
}

impl Endpoint {
    pub fn wants(&self, event_type: &str) -> bool {
        self.enabled && self.events.iter().any(|f| filter::matches(f, event_type))
    }

    /// The time the one-year rule measures from: the last success, or creation for an
    /// endpoint that never succeeded.
    pub fn activity_at(&self) -> Timestamp {
        self.last_success_at.unwrap_or(self.created_at)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub workspace: String,
    pub source_id: String,
    pub event_type: String,
    pub idempotency_key: String,
    pub received_at: Timestamp,
    /// The request body exactly as received.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// Endpoints the event was fanned out to when it was accepted.
    #[serde(default)]
    pub endpoint_ids: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AttemptStatus {
    Successful,
    Failed,
    Canceled,
}

impl AttemptStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptStatus::Successful => "SUCCESSFUL",
            AttemptStatus::Failed => "FAILED",
            AttemptStatus::Canceled => "CANCELED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRequest {
    pub method: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Milliseconds from sending the request to reading the response (or giving up).
    pub latency: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub id: String,
    pub workspace: String,
    pub event_id: String,
    pub endpoint_id: String,
    pub status: AttemptStatus,
    pub attempt_number: u32,
    pub scheduled_at: Timestamp,
    pub attempted_at: Timestamp,
    pub exhausted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Timestamp>,
    pub request: AttemptRequest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<AttemptResponse>,
}

/// One SQS message: one event to one endpoint, so a retry never resends to another endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeliveryTask {
    pub v: u8,
    pub workspace: String,
    /// The event item's partition key, so the consumer reads it without an index.
    pub event_key: String,
    pub event_id: String,
    pub endpoint_id: String,
}

impl DeliveryTask {
    pub const VERSION: u8 = 1;

    pub fn new(event: &Event, event_key: &str, endpoint_id: &str) -> Self {
        Self {
            v: Self::VERSION,
            workspace: event.workspace.clone(),
            event_key: event_key.to_owned(),
            event_id: event.id.clone(),
            endpoint_id: endpoint_id.to_owned(),
        }
    }
}
