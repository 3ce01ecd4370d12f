//! One outbound request: the signed POST of events to an endpoint, through the SSRF guard,
//! and the attempt that records it. The delivery function decides what a result means for
//! its task (retry, dead letter, deactivation); the admin function's test pings send the same
//! request once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, StatusCode};

use super::guard::{self, Denied, DnsFailure, NetworkPolicy};
use crate::config::Settings;
use crate::model::attempt_error;
use crate::telemetry::error_chain;
use crate::{
    Attempt, AttemptRequest, AttemptResponse, AttemptStatus, DeliveryTask, Endpoint, EndpointKind,
    Event, Timestamp, TriggerMode, ids, signature,
};

/// Response bodies are kept for the attempt history up to this size.
pub const MAX_RESPONSE_BODY: usize = 16 * 1024;

/// The time kept back from an invocation's deadline to record what a request did.
const RECORD_RESERVE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error("setting DELIVERY_ALLOW_NETWORKS is invalid")]
    AllowList(#[from] guard::BadAllowEntry),
    #[error("the HTTP client could not be built")]
    Http(#[from] reqwest::Error),
}

/// The HTTP client every delivery goes out through: no redirects, no proxy, every name
/// resolved through the SSRF guard.
pub struct Sender {
    pub http: reqwest::Client,
    pub policy: Arc<NetworkPolicy>,
    delivery_timeout: Duration,
    max_delivery_timeout: Duration,
}

impl Sender {
    pub fn new(settings: &Settings) -> Result<Self, SenderError> {
        let policy = Arc::new(NetworkPolicy::parse(&settings.delivery_allow_networks)?);
        let http = reqwest::Client::builder()
            .user_agent(crate::USER_AGENT)
            // A 3xx is a failed delivery, not something to follow.
            .redirect(reqwest::redirect::Policy::none())
            // Every name goes through the guard; no proxy may connect on our behalf.
            .dns_resolver(Arc::new(guard::GuardedResolver {
                policy: policy.clone(),
            }))
            .no_proxy()
            .timeout(settings.max_delivery_timeout)
            .connect_timeout(settings.delivery_timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(50))
            .build()?;
        Ok(Self {
            http,
            policy,
            delivery_timeout: settings.delivery_timeout,
            max_delivery_timeout: settings.max_delivery_timeout,
        })
    }
}

/// What one request is for: the task, which attempt it is, and how long it may take.
#[derive(Debug, Clone, Copy)]
pub struct Try<'a> {
    pub task: &'a DeliveryTask,
    pub attempt: u32,
    /// When the task was first queued: an initial attempt was scheduled then.
    pub sent_at: Option<Timestamp>,
    /// Passed on to the endpoint as `X-Amzn-Trace-Id`.
    pub trace_id: Option<&'a str>,
    /// The invocation's deadline: the request ends in time to record it.
    pub deadline: Option<Instant>,
}

/// The attempt a try starts as (`CANCELED` until it is made).
pub fn new_attempt(t: &Try, endpoint: Option<&Endpoint>, now: Timestamp) -> Attempt {
    Attempt {
        id: ids::new_id(ids::ATTEMPT),
        workspace: t.task.workspace.clone(),
        event_id: t.task.event_id.clone(),
        endpoint_id: t.task.endpoint_id.clone(),
        status: AttemptStatus::Canceled,
        attempt_number: t.attempt,
        trigger_mode: if t.task.manual {
            TriggerMode::Manual
        } else if t.attempt == 1 {
            TriggerMode::Initial
        } else {
            TriggerMode::Automatic
        },
        scheduled_at: if t.attempt == 1 {
            t.sent_at.unwrap_or(now)
        } else {
            now
        },
        attempted_at: now,
        exhausted: false,
        error_code: None,
        error_message: None,
        next_attempt_at: None,
        request: AttemptRequest {
            method: "POST".to_owned(),
            url: endpoint
                .map(|e| crate::redact::endpoint_url(&e.url, e.kind))
                .unwrap_or_default(),
            headers: BTreeMap::new(),
        },
        response: None,
    }
}

/// What a receiver's answer (or its absence) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// The SSRF guard refused the address: waiting will not change it.
    Denied,
    /// `410 Gone`: the receiver says the endpoint is gone for good.
    Gone,
    /// Anything else: the status, if there was an answer, and its `Retry-After`.
    Failed {
        status: Option<StatusCode>,
        retry_after: Option<Duration>,
    },
}

/// A request made, or not.
#[derive(Debug)]
pub enum Sent {
    /// Too little of the invocation left to send and record.
    NoTime,
    Done {
        attempt: Box<Attempt>,
        verdict: Verdict,
        latency_ms: u64,
    },
}

impl Sender {
    /// Sends `events` to `endpoint` once, recording the request and answer in `attempt`.
    pub async fn send(
        &self,
        t: &Try<'_>,
        events: &[&Event],
        endpoint: &Endpoint,
        mut attempt: Attempt,
        now: Timestamp,
    ) -> Sent {
        attempt.status = AttemptStatus::Failed;
        let mut timeout = endpoint
            .timeout_seconds
            .map(|s| Duration::from_secs(u64::from(s)))
            .unwrap_or(self.delivery_timeout)
            .min(self.max_delivery_timeout);
        if let Some(deadline) = t.deadline {
            // Leave time to record the outcome before the invocation is stopped.
            let left = deadline
                .saturating_duration_since(Instant::now())
                .saturating_sub(RECORD_RESERVE);
            if left < Duration::from_secs(1) {
                return Sent::NoTime;
            }
            timeout = timeout.min(left);
        }
        let started = Instant::now();
        let result = post(
            self,
            events,
            t.task.batch.as_ref().map(|b| b.id.as_str()),
            endpoint,
            now,
            t.trace_id,
            timeout,
            &mut attempt.request.headers,
        )
        .await;
        let latency_ms = started.elapsed().as_millis() as u64;
        let verdict = match result {
            Ok(resp) => {
                let retry_after = retry_after(&resp.headers, now);
                let (headers, headers_cut) = capped(header_map(&resp.headers, false));
                attempt.response = Some(AttemptResponse {
                    status: Some(resp.status.as_u16()),
                    latency: latency_ms,
                    headers,
                    body: resp.body,
                    truncated: resp.body_cut || headers_cut,
                });
                let refusal = (endpoint.kind == EndpointKind::LarkBot && resp.status.is_success())
                    .then(|| {
                        super::lark::refusal(
                            attempt.response.as_ref().and_then(|a| a.body.as_deref()),
                        )
                    })
                    .flatten();
                if let Some(refusal) = refusal {
                    // A bot that refuses a message answers 200: it is a failure all the same.
                    attempt.error_code = Some(attempt_error::LARK_REFUSED.to_owned());
                    attempt.error_message = Some(refusal);
                    Verdict::Failed {
                        status: None,
                        retry_after: None,
                    }
                } else if resp.status.is_success() {
                    attempt.status = AttemptStatus::Successful;
                    Verdict::Delivered
                } else if resp.status == StatusCode::GONE {
                    attempt.error_code = Some(attempt_error::HTTP_STATUS.to_owned());
                    Verdict::Gone
                } else {
                    attempt.error_code = Some(attempt_error::HTTP_STATUS.to_owned());
                    Verdict::Failed {
                        status: Some(resp.status),
                        retry_after,
                    }
                }
            }
            Err(failure) => {
                attempt.response = Some(AttemptResponse {
                    status: None,
                    latency: latency_ms,
                    headers: BTreeMap::new(),
                    body: None,
                    truncated: false,
                });
                attempt.error_code = Some(failure.code.to_owned());
                attempt.error_message = Some(failure.message);
                if failure.code == attempt_error::DENIED {
                    Verdict::Denied
                } else {
                    Verdict::Failed {
                        status: None,
                        retry_after: None,
                    }
                }
            }
        };
        Sent::Done {
            attempt: Box::new(attempt),
            verdict,
            latency_ms,
        }
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap, now: Timestamp) -> Option<Duration> {
    let v = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    let at_ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64;
    Some(Timestamp::from_unix_millis(at_ms)?.since(now))
}

struct Failure {
    code: &'static str,
    message: String,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Option<String>,
    /// The receiver sent more body than the history keeps.
    body_cut: bool,
}

/// What goes out: the body, its content type and the `webhook-id` it is signed with.
struct Outgoing {
    body: Vec<u8>,
    content_type: String,
    message_id: String,
    /// Standard Webhooks signature headers; a Lark bot signs inside the body instead.
    signed: bool,
}

async fn outgoing(
    events: &[&Event],
    batch_id: Option<&str>,
    endpoint: &Endpoint,
    now: Timestamp,
    budget: Duration,
) -> Result<Outgoing, Failure> {
    let first = events[0];
    if endpoint.kind == EndpointKind::LarkBot {
        let bot = endpoint.lark.clone().unwrap_or_default();
        let body = super::lark::message(&bot, first, now, budget)
            .await
            .map_err(|message| Failure {
                code: attempt_error::TEMPLATE,
                message,
            })?;
        return Ok(Outgoing {
            body,
            content_type: "application/json".to_owned(),
            message_id: first.id.clone(),
            signed: false,
        });
    }
    Ok(match batch_id {
        Some(id) => Outgoing {
            body: batch_body(events),
            content_type: "application/json".to_owned(),
            message_id: id.to_owned(),
            signed: true,
        },
        None => Outgoing {
            body: first.payload.clone(),
            content_type: first
                .content_type
                .clone()
                .unwrap_or_else(|| "application/json".to_owned()),
            message_id: first.id.clone(),
            signed: true,
        },
    })
}

/// What a request to an endpoint would carry, before signing: what the admin API's dry run
/// answers.
#[derive(Debug, Clone)]
pub struct Preview {
    /// With tokens masked, as attempts show it.
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// Builds the request `endpoint` would get for `event` (its plugins run), without sending or
/// signing it; on failure, the attempt error code and message a delivery would record.
pub async fn preview(
    endpoint: &Endpoint,
    event: &Event,
    now: Timestamp,
    budget: Duration,
) -> Result<Preview, (&'static str, String)> {
    let failed = |f: Failure| (f.code, f.message);
    let url = url::Url::parse(&endpoint.url)
        .map_err(|e| (attempt_error::CONNECTION, format!("invalid URL: {e}")))?;
    let mut out = outgoing(&[event], None, endpoint, now, budget)
        .await
        .map_err(failed)?;
    let (mut url, mut headers) = (url, endpoint.headers.clone());
    if !endpoint.plugins.is_empty() {
        let shaped = reshape(endpoint, event, &out, &url).map_err(failed)?;
        (url, out.body, out.content_type, headers) =
            (shaped.url, shaped.body, shaped.content_type, shaped.headers);
    }
    headers.insert("content-type".to_owned(), out.content_type);
    Ok(Preview {
        url: crate::redact::endpoint_url(url.as_str(), endpoint.kind),
        headers,
        body: out.body,
    })
}

/// The most a plugin may make of a request's body.
pub const MAX_PLUGIN_BODY: usize = 1024 * 1024;

/// What an endpoint's plugins leave of a request.
struct Shaped {
    /// Its query may have changed.
    url: url::Url,
    body: Vec<u8>,
    content_type: String,
    /// The endpoint's own headers, as the plugins set them.
    headers: BTreeMap<String, String>,
}

/// Runs the endpoint's plugins on what would be sent.
fn reshape(
    endpoint: &Endpoint,
    first: &Event,
    out: &Outgoing,
    url: &url::Url,
) -> Result<Shaped, Failure> {
    use hookrelay_plugins::outbound::{self, Outbound};
    let mut headers: BTreeMap<String, String> = endpoint
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    headers.insert("content-type".to_owned(), out.content_type.clone());
    let request = Outbound {
        url: url.to_string(),
        headers,
        body: out.body.clone(),
        event: serde_json::json!({
            "id": first.id,
            "type": first.event_type,
            "source_id": first.source_id,
            "received_at": first.received_at,
        }),
    };
    let failed = |index: usize, e: &dyn std::fmt::Display| Failure {
        code: attempt_error::PLUGIN,
        message: format!("the endpoint's plugin {index} failed: {e}"),
    };
    let mut shaped = outbound::run(&endpoint.plugins, request, MAX_PLUGIN_BODY)
        .map_err(|(i, e)| failed(i, &e))?;
    let url = url::Url::parse(&shaped.url).map_err(|e| failed(0, &e))?;
    let content_type = shaped
        .headers
        .remove("content-type")
        .unwrap_or_else(|| out.content_type.clone());
    Ok(Shaped {
        url,
        body: shaped.body,
        content_type,
        headers: shaped.headers,
    })
}

/// A batch's body: a JSON array of the events' payloads as received; a payload that is not
/// JSON (a source with `accept_raw`) becomes a JSON string.
pub fn batch_body(events: &[&Event]) -> Vec<u8> {
    let mut body =
        Vec::with_capacity(events.iter().map(|e| e.payload.len() + 1).sum::<usize>() + 2);
    body.push(b'[');
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        if serde_json::from_slice::<serde::de::IgnoredAny>(&e.payload).is_ok() {
            body.extend_from_slice(&e.payload);
        } else {
            let text = String::from_utf8_lossy(&e.payload);
            body.extend(serde_json::to_vec(&text).unwrap_or_default());
        }
    }
    body.push(b']');
    body
}

#[allow(clippy::too_many_arguments)]
async fn post(
    sender: &Sender,
    events: &[&Event],
    batch_id: Option<&str>,
    endpoint: &Endpoint,
    now: Timestamp,
    trace_id: Option<&str>,
    timeout: Duration,
    sent: &mut BTreeMap<String, String>,
) -> Result<Answer, Failure> {
    let url = url::Url::parse(&endpoint.url).map_err(|e| Failure {
        code: attempt_error::CONNECTION,
        message: format!("invalid URL: {e}"),
    })?;
    sender.policy.check_url(&url).map_err(|e| Failure {
        code: attempt_error::DENIED,
        message: e.to_string(),
    })?;
    let mut out = outgoing(events, batch_id, endpoint, now, timeout).await?;
    let mut custom_headers = endpoint.headers.clone();
    let mut url = url;
    if !endpoint.plugins.is_empty() {
        let shaped = reshape(endpoint, events[0], &out, &url)?;
        url = shaped.url;
        out.body = shaped.body;
        out.content_type = shaped.content_type;
        custom_headers = shaped.headers;
    }
    let timestamp = now.unix_seconds();
    let signatures = endpoint
        .signing_secrets(now)
        .into_iter()
        .map(|secret| signature::sign(secret, &out.message_id, timestamp, &out.body))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure {
            code: attempt_error::SIGNING,
            message: e.to_string(),
        })?
        .join(" ");

    let mut headers = HeaderMap::new();
    for (name, value) in &custom_headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    }
    let mut fixed = vec![
        ("content-type", out.content_type.clone()),
        ("user-agent", crate::USER_AGENT.to_owned()),
        (
            crate::hops::HEADER,
            crate::hops::outgoing(events).to_string(),
        ),
    ];
    if out.signed {
        fixed.extend([
            ("webhook-id", out.message_id.clone()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signatures),
        ]);
    }
    for (name, value) in fixed {
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    if let Some(v) = trace_id.and_then(|t| http::HeaderValue::from_str(t).ok()) {
        headers.insert("x-amzn-trace-id", v);
    }
    // Each attempt is a span of its own under the span that accepted the event (a batch's,
    // under its first event's).
    if let Some(trace) = events.first().and_then(|e| e.trace.as_ref()) {
        if let Ok(v) = http::HeaderValue::from_str(&trace.child_traceparent()) {
            headers.insert(crate::trace_context::TRACEPARENT, v);
        }
        if let Some(v) = trace
            .state
            .as_deref()
            .and_then(|s| http::HeaderValue::from_str(s).ok())
        {
            headers.insert(crate::trace_context::TRACESTATE, v);
        }
    }
    *sent = header_map(&headers, true);

    let mut resp = sender
        .http
        .post(url)
        .headers(headers)
        .timeout(timeout)
        .body(out.body)
        .send()
        .await
        .map_err(classify)?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let mut body = Vec::new();
    while body.len() < MAX_RESPONSE_BODY {
        match resp.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            // The status is what counts; a body cut short is still recorded as far as it got.
            Err(_) => break,
        }
    }
    let body_cut = body.len() > MAX_RESPONSE_BODY;
    body.truncate(MAX_RESPONSE_BODY);
    Ok(Answer {
        status,
        headers,
        body: (!body.is_empty()).then(|| String::from_utf8_lossy(&body).into_owned()),
        body_cut,
    })
}

fn classify(e: reqwest::Error) -> Failure {
    // The URL may carry a bot's token; the attempt already shows it, masked.
    let e = e.without_url();
    let message = error_chain(&e);
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if err.downcast_ref::<Denied>().is_some() {
            return Failure {
                code: attempt_error::DENIED,
                message,
            };
        }
        if err.downcast_ref::<DnsFailure>().is_some() {
            return Failure {
                code: attempt_error::DNS,
                message,
            };
        }
        source = err.source();
    }
    let lower = message.to_lowercase();
    let code = if e.is_timeout() {
        attempt_error::TIMEOUT
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        attempt_error::TLS
    } else {
        attempt_error::CONNECTION
    };
    Failure { code, message }
}

/// Response headers are the receiver's to choose: keep the attempt item well under
/// DynamoDB's 400 KB, whatever they send. Answers whether anything was cut.
fn capped(headers: BTreeMap<String, String>) -> (BTreeMap<String, String>, bool) {
    const MAX_VALUE: usize = 1024;
    const MAX_TOTAL: usize = 8 * 1024;
    let mut total = 0;
    let mut cut_any = false;
    let mut out = BTreeMap::new();
    for (k, mut v) in headers {
        if v.len() > MAX_VALUE {
            let mut cut = MAX_VALUE;
            while !v.is_char_boundary(cut) {
                cut -= 1;
            }
            v.truncate(cut);
            cut_any = true;
        }
        total += k.len() + v.len();
        if total > MAX_TOTAL {
            return (out, true);
        }
        out.insert(k, v);
    }
    (out, cut_any)
}

/// Headers as recorded in the attempt history: values of secret-looking headers redacted.
fn header_map(headers: &HeaderMap, redact: bool) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(k, v)| {
            let name = k.as_str();
            let value = if redact && is_sensitive(name) || name == "set-cookie" {
                "[redacted]".to_owned()
            } else {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            };
            (name.to_owned(), value)
        })
        .collect()
}

fn is_sensitive(name: &str) -> bool {
    const MARKERS: [&str; 6] = ["auth", "token", "secret", "key", "password", "cookie"];
    name != "webhook-signature" && MARKERS.iter().any(|m| name.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_retry_after_seconds_and_dates() {
        let now = Timestamp::parse("2026-11-23T10:00:00.000Z").unwrap();
        let mut h = HeaderMap::new();
        h.insert("retry-after", "120".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(120)));
        h.insert(
            "retry-after",
            "Mon, 23 Nov 2026 10:05:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(300)));
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn redacts_secret_looking_headers() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer x".parse().unwrap());
        h.insert("x-api-key", "k".parse().unwrap());
        h.insert("webhook-signature", "v1,abc".parse().unwrap());
        h.insert("x-team", "blue".parse().unwrap());
        let m = header_map(&h, true);
        assert_eq!(m["authorization"], "[redacted]");
        assert_eq!(m["x-api-key"], "[redacted]");
        assert_eq!(m["webhook-signature"], "v1,abc");
        assert_eq!(m["x-team"], "blue");
    }
}
