//! The domain: workspaces hold sources (where webhooks come in) and endpoints (where they go);
//! an event is one accepted webhook; an attempt is one try to deliver an event to an endpoint.
//! No AWS types here: the store maps these to items.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::filter;
pub use hookrelay_plugins::{Condition, EndpointPlugin, SourcePlugin, Subject};

/// The endpoints an event goes to: by type, then by content filter. The payload is parsed
/// only when a filter reads it; `headers` (lower-case names) are the request's, empty when
/// there was none (published through the admin API, recovered).
pub fn subscribed<'e>(
    endpoints: &'e [Endpoint],
    event_type: &str,
    payload: &[u8],
    headers: &BTreeMap<String, String>,
) -> Vec<&'e Endpoint> {
    let mut parsed: Option<Option<serde_json::Value>> = None;
    endpoints
        .iter()
        .filter(|ep| {
            if !ep.wants(event_type) {
                return false;
            }
            let Some(f) = &ep.filter else {
                return true;
            };
            let payload = parsed.get_or_insert_with(|| serde_json::from_slice(payload).ok());
            f.matches(&Subject {
                payload: payload.as_ref(),
                headers,
            })
        })
        .collect()
}

pub const DEFAULT_WORKSPACE: &str = "default";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    pub created_at: Timestamp,
    #[serde(default)]
    pub settings: WorkspaceSettings,
    /// Raised by every write of the settings: the `ETag`, and what a write must still find.
    #[serde(default)]
    pub version: u64,
}

/// A workspace's lifecycle rules; everything here is off unless set.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSettings {
    /// Deactivate endpoints whose deliveries have all failed for a while (reason `failing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_failing: Option<FailingPolicy>,
    /// The endpoint (of this workspace) that receives the workspace's operational events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops_endpoint_id: Option<String>,
    /// `endpoint.failing` is emitted when this many deliveries in a row have failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_after: Option<u32>,
    /// Emit `endpoint.deactivation_pending` this many days before the one-year rule would
    /// deactivate an endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_before_deactivation: Option<DeactivationWarning>,
}

impl WorkspaceSettings {
    pub const DEFAULT_FAILING_AFTER: u32 = 5;

    pub fn failing_after(&self) -> u32 {
        self.failing_after.unwrap_or(Self::DEFAULT_FAILING_AFTER)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeactivationWarning {
    #[serde(default = "DeactivationWarning::default_days")]
    pub days: u32,
}

impl DeactivationWarning {
    pub const MAX_DAYS: u32 = 90;

    fn default_days() -> u32 {
        30
    }
}

/// An endpoint is `failing` once every delivery for `after_days` has failed, and at least
/// `min_failures` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailingPolicy {
    #[serde(default = "FailingPolicy::default_days")]
    pub after_days: u32,
    #[serde(default = "FailingPolicy::default_min_failures")]
    pub min_failures: u32,
}

impl FailingPolicy {
    fn default_days() -> u32 {
        5
    }
    fn default_min_failures() -> u32 {
        10
    }
}

impl Default for FailingPolicy {
    fn default() -> Self {
        Self {
            after_days: Self::default_days(),
            min_failures: Self::default_min_failures(),
        }
    }
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
    /// For generic sources: a JSON pointer (`/type`) to the event type in the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type_pointer: Option<String>,
    /// Used when neither the header nor the body names an event type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_event_type: Option<String>,
    /// How a request proves where it came from.
    #[serde(default)]
    pub verification: Verification,
    /// Signed timestamps older or newer than this are refused (default 300 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_tolerance_seconds: Option<u32>,
    /// A custom path the source is also mounted on (`/log`), besides `/in/{id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What senders get back instead of `202 {"id": …}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<SourceResponse>,
    /// Accept bodies that are not JSON (stored as received) instead of answering 415.
    #[serde(default)]
    pub accept_raw: bool,
    /// Requests over it are answered `429` with `Retry-After`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<crate::rate_limit::RateLimit>,
    /// Run in order on each verified request, before its event is stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<SourcePlugin>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Raised by every write of the settings: the `ETag`, and what a write must still find.
    #[serde(default)]
    pub version: u64,
}

impl Source {
    pub fn new(workspace: &str, name: &str) -> Self {
        let now = Timestamp::now();
        Self {
            id: crate::ids::new_id(crate::ids::SOURCE),
            workspace: workspace.to_owned(),
            name: name.to_owned(),
            enabled: true,
            event_type_header: None,
            event_type_pointer: None,
            default_event_type: None,
            verification: Verification::None,
            timestamp_tolerance_seconds: None,
            path: None,
            response: None,
            accept_raw: false,
            rate_limit: None,
            plugins: Vec::new(),
            version: 0,
            created_at: now,
            updated_at: now,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceResponse {
    pub status: u16,
    #[serde(default = "SourceResponse::default_content_type")]
    pub content_type: String,
    #[serde(default)]
    pub body: String,
}

impl SourceResponse {
    fn default_content_type() -> String {
        "application/json".to_owned()
    }
}

/// A source's proof of origin. Secrets are the provider's signing secrets as the provider
/// shows them (`whsec_…` for Stripe and Standard Webhooks).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Verification {
    #[default]
    None,
    Github {
        secret: String,
    },
    Stripe {
        secret: String,
    },
    Lark {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        verification_token: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        encrypt_key: Option<String>,
    },
    StandardWebhooks {
        secret: String,
    },
    Shopify {
        secret: String,
    },
    Slack {
        secret: String,
    },
    Hmac {
        header: String,
        secret: String,
        #[serde(default)]
        algorithm: HmacAlgorithm,
        #[serde(default)]
        encoding: SignatureEncoding,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
    },
    BasicAuth {
        username: String,
        password: String,
    },
    ApiKey {
        header: String,
        value: String,
    },
}

impl Verification {
    pub fn kind(&self) -> &'static str {
        match self {
            Verification::None => "none",
            Verification::Github { .. } => "github",
            Verification::Stripe { .. } => "stripe",
            Verification::Lark { .. } => "lark",
            Verification::StandardWebhooks { .. } => "standard_webhooks",
            Verification::Shopify { .. } => "shopify",
            Verification::Slack { .. } => "slack",
            Verification::Hmac { .. } => "hmac",
            Verification::BasicAuth { .. } => "basic_auth",
            Verification::ApiKey { .. } => "api_key",
        }
    }

    /// The values that prove a request (secrets, tokens, passwords), in a fixed order per
    /// kind, so two settings of the same kind pair up secret for secret.
    pub fn secrets_mut(&mut self) -> Vec<&mut String> {
        match self {
            Verification::None => Vec::new(),
            Verification::Github { secret }
            | Verification::Stripe { secret }
            | Verification::StandardWebhooks { secret }
            | Verification::Shopify { secret }
            | Verification::Slack { secret }
            | Verification::Hmac { secret, .. } => vec![secret],
            Verification::Lark {
                verification_token,
                encrypt_key,
            } => verification_token
                .iter_mut()
                .chain(encrypt_key.iter_mut())
                .collect(),
            Verification::BasicAuth { password, .. } => vec![password],
            Verification::ApiKey { value, .. } => vec![value],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    Sha1,
    #[default]
    Sha256,
    Sha512,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    #[default]
    Hex,
    Base64,
    Base64url,
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
    /// This endpoint's own retry schedule, instead of the deployment's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryConfig>,
    /// Per-request timeout; the deployment's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    /// What the URL is: an ordinary webhook receiver, or a Lark/Feishu custom bot.
    #[serde(default, skip_serializing_if = "EndpointKind::is_webhook")]
    pub kind: EndpointKind,
    /// How a Lark/Feishu bot message is built and signed (for `kind: lark_bot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lark: Option<LarkBot>,
    /// One request per event (the default), or events collected into JSON arrays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryConfig>,
    /// Deliveries over it wait on the queue (deferred, no attempt used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<crate::rate_limit::RateLimit>,
    /// Conditions on the payload and headers an event must also meet (besides `events`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Condition>,
    /// Run in order on each request to the endpoint, before it is signed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<EndpointPlugin>,
    /// After a rotation, the old secret keeps signing until `previous_secret_expires_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Raised by every write of the settings, a rotation and a deactivation: the `ETag`, and
    /// what a write must still find. Delivery health counters and recovery progress do not
    /// raise it.
    #[serde(default)]
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_at: Option<Timestamp>,
    #[serde(default)]
    pub consecutive_failures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<Timestamp>,
    /// When the current streak of failures began; cleared by a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<Timestamp>,
    /// While its circuit is open (`consecutive_failures` at the breaker's threshold): when
    /// the next probe may go. Tasks meanwhile wait on the queue, not sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_at: Option<Timestamp>,
    /// While its circuit is open: the probes sent so far. Each failed one doubles the wait
    /// before the next; a success clears it. Counted apart from `consecutive_failures`,
    /// which a batch of failures can raise by many at once.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub probes: u32,
    /// When the endpoint was last turned back on: counts as activity for the sweeper.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled_at: Option<Timestamp>,
    /// When `endpoint.deactivation_pending` was last emitted for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deactivation_warned_at: Option<Timestamp>,
    /// A recovery of missed events that a reactivation started and has not finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Recovery>,
}

/// The events a reactivation with `recover_since` re-enqueues, and how far it got: kept on
/// the endpoint so that a call cut short by its time limit (or failing) loses nothing, and the
/// next `enable` carries on where it stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    /// Events received from this time…
    pub since: Timestamp,
    /// …until the reactivation: later events were fanned out to the endpoint as usual.
    pub until: Timestamp,
    /// Where the next step starts (after the last event examined).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Events re-enqueued so far.
    pub recovered: usize,
}

impl Recovery {
    /// A recovery of the events from `since` to `until`, not started.
    pub fn new(since: Timestamp, until: Timestamp) -> Self {
        Self {
            since,
            until,
            cursor: None,
            recovered: 0,
        }
    }
}

/// An endpoint's `disabled_reason` (and the `reason` of `endpoint.deactivated`).
pub mod disabled_reason {
    string_values! {
        ALL;
        /// The endpoint answered 410 Gone.
        GONE = "gone",
        /// No success for `SWEEP_AFTER_DAYS` (the one-year rule).
        STALE = "stale",
        /// Every delivery failed for the workspace's `disable_failing` period.
        FAILING = "failing",
        /// Disabled through the admin API.
        MANUAL = "manual",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointKind {
    #[default]
    Webhook,
    LarkBot,
}

impl EndpointKind {
    pub fn is_webhook(&self) -> bool {
        *self == EndpointKind::Webhook
    }
}

/// A Lark/Feishu custom bot: the message type, its templates, and the bot's signing secret.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LarkBot {
    /// The bot's "signature verification" secret; requests carry `timestamp` and `sign`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default)]
    pub msg_type: LarkMessageType,
    /// The rich-text title (`post`), a template over the event's fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The message text, a template over the event's fields; each line of a `post` is a
    /// paragraph. Unset: the event type and its JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LarkMessageType {
    #[default]
    Text,
    Post,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    #[serde(default)]
    pub mode: DeliveryMode,
    /// For `mode: batch`: when a batch is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchConfig>,
    /// `fifo`: events arrive in accept order, one in flight at a time per line (see
    /// `ordering`).
    #[serde(default, skip_serializing_if = "DeliveryOrdering::is_unordered")]
    pub ordering: DeliveryOrdering,
    /// With `ordering: fifo`: a JSON pointer into the payload; each value found there is a
    /// line of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering_key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryOrdering {
    #[default]
    Unordered,
    Fifo,
}

impl DeliveryOrdering {
    pub fn is_unordered(&self) -> bool {
        *self == DeliveryOrdering::Unordered
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryMode {
    #[default]
    Single,
    Batch,
}

/// A batch is sent when `size` events have collected or `interval` seconds have passed
/// since the first of them, whichever comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    #[serde(default = "BatchConfig::default_size")]
    pub size: u32,
    #[serde(default = "BatchConfig::default_interval")]
    pub interval: u32,
}

impl BatchConfig {
    pub const MAX_SIZE: u32 = 100;
    pub const MAX_INTERVAL: u32 = 300;

    fn default_size() -> u32 {
        10
    }
    fn default_interval() -> u32 {
        10
    }
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            size: Self::default_size(),
            interval: Self::default_interval(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryConfig {
    /// Seconds before each retry.
    pub schedule: Vec<u64>,
}

impl Endpoint {
    /// A new enabled endpoint with a fresh signing secret.
    pub fn new(workspace: &str, name: &str, url: &str, events: Vec<String>) -> Self {
        let now = Timestamp::now();
        Self {
            id: crate::ids::new_id(crate::ids::ENDPOINT),
            workspace: workspace.to_owned(),
            name: name.to_owned(),
            url: url.to_owned(),
            events,
            enabled: true,
            secret: crate::signature::generate_secret(),
            version: 0,
            rate_limit: None,
            filter: None,
            plugins: Vec::new(),
            headers: BTreeMap::new(),
            retry: None,
            timeout_seconds: None,
            kind: EndpointKind::Webhook,
            lark: None,
            delivery: None,
            previous_secret: None,
            previous_secret_expires_at: None,
            created_at: now,
            updated_at: now,
            last_success_at: None,
            last_failure_at: None,
            consecutive_failures: 0,
            disabled_reason: None,
            disabled_at: None,
            failing_since: None,
            probe_at: None,
            probes: 0,
            enabled_at: None,
            deactivation_warned_at: None,
            recovery: None,
        }
    }

    /// The secrets that sign a request at `now`: the current one, and the previous one
    /// while its grace period lasts.
    pub fn signing_secrets(&self, now: Timestamp) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let (Some(prev), Some(until)) = (&self.previous_secret, self.previous_secret_expires_at)
            && now < until
        {
            secrets.push(prev);
        }
        secrets
    }

    /// The batch settings when this endpoint receives batches.
    pub fn batching(&self) -> Option<BatchConfig> {
        self.delivery
            .as_ref()
            .filter(|d| d.mode == DeliveryMode::Batch)
            .map(|d| d.batch.unwrap_or_default())
    }

    pub fn wants(&self, event_type: &str) -> bool {
        self.enabled && self.events.iter().any(|f| filter::matches(f, event_type))
    }

    /// The time the one-year rule measures from: the last success, or creation for an
    /// endpoint that never succeeded.
    pub fn activity_at(&self) -> Timestamp {
        let last = self.last_success_at.unwrap_or(self.created_at);
        self.enabled_at.map_or(last, |at| at.max(last))
    }

    /// Turns the endpoint back on: a fresh start for the failure counters and the
    /// sweeper's clock.
    pub fn reactivate(&mut self, now: Timestamp) {
        self.enabled = true;
        self.disabled_reason = None;
        self.disabled_at = None;
        self.consecutive_failures = 0;
        self.failing_since = None;
        self.probe_at = None;
        self.probes = 0;
        self.enabled_at = Some(now);
        self.updated_at = now;
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub workspace: String,
    pub source_id: String,
    pub event_type: String,
    /// The sender's key, or the event's id when it gave none (a stored item then leaves it
    /// out).
    #[serde(default)]
    pub idempotency_key: String,
    pub received_at: Timestamp,
    /// The request body exactly as received. Absent from an item whose payload is kept in
    /// S3; the store reads it back.
    #[serde(default, with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// Endpoints the event was fanned out to when it was accepted.
    #[serde(default)]
    pub endpoint_ids: Vec<String>,
    /// The request's content type, kept for bodies that are not JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// How many hookrelay deliveries the event came through before it arrived (its
    /// `hookrelay-hops` header); 0 for an event from anywhere else.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hops: u32,
    /// The W3C trace the event belongs to and the span that accepted it: every delivery
    /// attempt is a child span. None for events stored before traces were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<crate::trace_context::TraceContext>,
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

/// Why an attempt happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TriggerMode {
    /// The first try after the event was accepted.
    Initial,
    /// A retry on the schedule.
    Automatic,
    /// Asked for through the admin API.
    Manual,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRequest {
    pub method: String,
    pub url: String,
    /// Headers sent, with secret-looking values redacted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Milliseconds from sending the request to reading the response (or giving up).
    pub latency: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The response body, cut at 16 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The body or the headers were cut to fit the attempt history (16 KiB of body, 8 KiB of
    /// headers, a whole attempt well inside DynamoDB's 400 KB item).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// An attempt's `error_code`: why it did not succeed.
pub mod attempt_error {
    string_values! {
        ALL;
        /// The request did not finish within the endpoint's timeout.
        TIMEOUT = "TIMEOUT",
        /// No connection, or it broke (also an unusable URL).
        CONNECTION = "CONNECTION",
        /// The endpoint's host name did not resolve.
        DNS = "DNS",
        /// The TLS handshake or the certificate failed.
        TLS = "TLS",
        /// The SSRF guard refused the address; not retried.
        DENIED = "DENIED",
        /// The request could not be signed.
        SIGNING = "SIGNING",
        /// The endpoint answered something other than 2xx.
        HTTP_STATUS = "HTTP_STATUS",
        /// A Lark/Feishu bot answered 2xx with a non-zero `code`.
        LARK_REFUSED = "LARK_REFUSED",
        /// A Lark/Feishu bot's `title` or `template` failed to render, or hit a render bound
        /// (instructions, time, size).
        TEMPLATE = "TEMPLATE",
        /// One of the endpoint's plugins threw, ran out of time or memory, or answered
        /// something unusable; retried like a failed request.
        PLUGIN = "PLUGIN",
        /// The endpoint is disabled: the task is canceled.
        ENDPOINT_DISABLED = "ENDPOINT_DISABLED",
        /// The endpoint was deleted: the task is canceled.
        ENDPOINT_NOT_FOUND = "ENDPOINT_NOT_FOUND",
        /// The task came back after its last attempt; nothing was sent.
        EXHAUSTED = "EXHAUSTED",
        /// SQS was about to move the task to the dead-letter queue on its own (its receives
        /// reached the queue's `maxReceiveCount`, e.g. invocations that kept crashing): it
        /// was dead-lettered with a letter instead; nothing was sent.
        RECEIVE_LIMIT = "RECEIVE_LIMIT",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub id: String,
    pub workspace: String,
    pub event_id: String,
    pub endpoint_id: String,
    pub status: AttemptStatus,
    pub attempt_number: u32,
    pub trigger_mode: TriggerMode,
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
    /// Set for a retry asked for through the admin API.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manual: bool,
    /// Set on a batch: every event it carries (the first is `event_key`/`event_id`), sent
    /// as one JSON array and retried as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<TaskBatch>,
    /// Attempts made so far, counted by hookrelay: a receive that sends nothing (the event
    /// not stored yet, a postponement, a crash, a parked task) is not an attempt.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
    /// Not to be attempted before this time: a wait longer than SQS's longest delay (15 min)
    /// is re-queued in hops until it has passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Timestamp>,
    /// For an ordered endpoint: the line (SQS message group) the task waits in on the
    /// ordered queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Set on the one task of a newly accepted event that lists it (in its workspace's,
    /// source's and type's listings) when it is received: the event is not in any listing
    /// until then. A task with no endpoint only lists ([`DeliveryTask::listing`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub list: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskBatch {
    /// The batch's `webhook-id`: derived from its endpoint, number and members, so it is the
    /// same on every retry and on a second send after a crash.
    pub id: String,
    pub events: Vec<EventRef>,
    /// The batch's place in its endpoint's line (1, 2, …): a batch waits, briefly, for the
    /// first attempt of the one before it, so consecutive batches arrive in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// A batch endpoint's open batch is due: sent to the batching queue with the batch's
/// interval as its delay when the batch opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchTimer {
    pub v: u8,
    pub workspace: String,
    pub endpoint_id: String,
    /// The open batch this timer is for; a later one ignores it.
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EventRef {
    pub event_key: String,
    pub event_id: String,
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
            manual: false,
            batch: None,
            attempts: 0,
            not_before: None,
            group: None,
            list: false,
        }
    }

    /// The task that only lists an event: for an event none of whose tasks is received at
    /// once (no endpoint, or only ordered, delayed or batch ones).
    pub fn listing(event: &Event, event_key: &str) -> Self {
        Self {
            list: true,
            ..Self::new(event, event_key, "")
        }
    }

    /// Whether the task only lists its event.
    pub fn lists_only(&self) -> bool {
        self.list && self.endpoint_id.is_empty()
    }

    /// The task for an endpoint, in its line when the endpoint is ordered.
    pub fn for_endpoint(event: &Event, event_key: &str, endpoint: &Endpoint) -> Self {
        Self {
            group: endpoint
                .ordered()
                .map(|o| crate::ordering::group(&endpoint.id, &o, &event.payload)),
            ..Self::new(event, event_key, &endpoint.id)
        }
    }
}

/// What the dead-letter queue holds: the task and why it ended there, so an operator can
/// see what failed without reading the attempts, and a redrive can send it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub task: DeliveryTask,
    /// `exhausted` (every attempt failed).
    pub reason: String,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_code: Option<String>,
    pub endpoint_url: String,
    pub event_type: String,
    pub failed_at: Timestamp,
}
