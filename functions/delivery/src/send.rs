//! One delivery: the signed POST of an event's stored body to one endpoint, and what its
//! result means for the task.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hookrelay_shared::model::attempt_error;
use hookrelay_shared::retry::{MAX_DELAY, RetryPolicy};
use hookrelay_shared::telemetry::error_chain;
use hookrelay_shared::{
    Attempt, AttemptRequest, AttemptResponse, AttemptStatus, Endpoint, EndpointKind, Event,
    Timestamp, TriggerMode, ids, signature,
};
use http::{HeaderMap, StatusCode};

use crate::guard::{Denied, DnsFailure};
use crate::{Context, Outcome, Received};

/// Response bodies are kept for the attempt history up to this size.
pub const MAX_RESPONSE_BODY: usize = 16 * 1024;

/// Delivers a task: one event, or the events of a batch (those still stored, in order).
pub async fn deliver(
    ctx: &Context,
    r: &Received,
    events: &[&Event],
    endpoint: Option<&Endpoint>,
) -> Outcome {
    if events.is_empty() {
        tracing::warn!(event.id = %r.task.event_id, "event expired, deleted or stored by an earlier request with its idempotency key; task dropped");
        return Outcome::Dropped;
    }
    let now = Timestamp::now();
    let mut attempt = new_attempt(r, endpoint, now);
    let endpoint = match endpoint {
        None => {
            attempt.error_code = Some(attempt_error::ENDPOINT_NOT_FOUND.to_owned());
            return Outcome::Canceled(attempt);
        }
        Some(ep) if !ep.enabled => {
            attempt.error_code = Some(attempt_error::ENDPOINT_DISABLED.to_owned());
            return Outcome::Canceled(attempt);
        }
        Some(ep) => ep,
    };
    deliver_enabled(ctx, r, events, endpoint, attempt, now).await
}

/// The task reached the queue's receive limit without an attempt that ended it: SQS would
/// move it to the dead-letter queue on the next receive, bare. It is dead-lettered now, with
/// its letter, an attempt saying why and `attempt.exhausted`; nothing is sent.
pub fn receive_limit(r: &Received, endpoint: Option<&Endpoint>) -> Outcome {
    let mut attempt = new_attempt(r, endpoint, Timestamp::now());
    attempt.status = AttemptStatus::Failed;
    attempt.exhausted = true;
    attempt.error_code = Some(attempt_error::RECEIVE_LIMIT.to_owned());
    attempt.error_message = Some(format!(
        "received {} times without an attempt that ended the task",
        r.receive_count
    ));
    Outcome::Exhausted(attempt)
}

fn new_attempt(r: &Received, endpoint: Option<&Endpoint>, now: Timestamp) -> Attempt {
    Attempt {
        id: ids::new_id(ids::ATTEMPT),
        workspace: r.task.workspace.clone(),
        event_id: r.task.event_id.clone(),
        endpoint_id: r.task.endpoint_id.clone(),
        status: AttemptStatus::Canceled,
        attempt_number: r.attempt,
        trigger_mode: if r.task.manual {
            TriggerMode::Manual
        } else if r.attempt == 1 {
            TriggerMode::Initial
        } else {
            TriggerMode::Automatic
        },
        scheduled_at: if r.attempt == 1 {
            r.sent_at.unwrap_or(now)
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
                .map(|e| hookrelay_shared::redact::endpoint_url(&e.url, e.kind))
                .unwrap_or_default(),
            headers: BTreeMap::new(),
        },
        response: None,
    }
}

async fn deliver_enabled(
    ctx: &Context,
    r: &Received,
    events: &[&Event],
    endpoint: &Endpoint,
    mut attempt: Attempt,
    now: Timestamp,
) -> Outcome {
    attempt.status = AttemptStatus::Failed;

    let policy = endpoint_policy(ctx, endpoint);
    if r.attempt > policy.max_attempts() {
        // Back after its last attempt because dead-lettering failed: no more requests.
        attempt.exhausted = true;
        attempt.error_code = Some(attempt_error::EXHAUSTED.to_owned());
        return Outcome::Exhausted(attempt);
    }
    let mut timeout = endpoint
        .timeout_seconds
        .map(|s| Duration::from_secs(u64::from(s)))
        .unwrap_or(ctx.settings.delivery_timeout)
        .min(ctx.settings.max_delivery_timeout);
    if let Some(deadline) = r.deadline {
        // Leave time to record the outcome before the invocation is stopped.
        let left = deadline
            .saturating_duration_since(Instant::now())
            .saturating_sub(Duration::from_secs(2));
        if left < Duration::from_secs(1) {
            return Outcome::Postponed;
        }
        timeout = timeout.min(left);
    }

    let started = Instant::now();
    let result = post(
        ctx,
        events,
        r.task.batch.as_ref().map(|b| b.id.as_str()),
        endpoint,
        now,
        r.trace_id.as_deref(),
        timeout,
        &mut attempt.request.headers,
    )
    .await;
    let latency = started.elapsed().as_millis() as u64;
    let (status, retry_after) = match result {
        Ok(resp) => {
            let retry_after = retry_after(&resp.headers, now);
            let (headers, headers_cut) = capped(header_map(&resp.headers, false));
            attempt.response = Some(AttemptResponse {
                status: Some(resp.status.as_u16()),
                latency,
                headers,
                body: resp.body,
                truncated: resp.body_cut || headers_cut,
            });
            let refusal = (endpoint.kind == EndpointKind::LarkBot && resp.status.is_success())
                .then(|| {
                    crate::lark::refusal(attempt.response.as_ref().and_then(|a| a.body.as_deref()))
                })
                .flatten();
            if let Some(refusal) = refusal {
                // A bot that refuses a message answers 200: it is a failure all the same.
                attempt.error_code = Some(attempt_error::LARK_REFUSED.to_owned());
                attempt.error_message = Some(refusal);
                (None, None)
            } else if resp.status.is_success() {
                attempt.status = AttemptStatus::Successful;
                log(&attempt, latency);
                return Outcome::Delivered(attempt);
            } else {
                attempt.error_code = Some(attempt_error::HTTP_STATUS.to_owned());
                (Some(resp.status), retry_after)
            }
        }
        Err(failure) => {
            attempt.response = Some(AttemptResponse {
                status: None,
                latency,
                headers: BTreeMap::new(),
                body: None,
                truncated: false,
            });
            attempt.error_code = Some(failure.code.to_owned());
            attempt.error_message = Some(failure.message);
            if failure.code == attempt_error::DENIED {
                // A policy refusal will not change by waiting: the task ends here.
                log(&attempt, latency);
                return Outcome::Denied(attempt);
            }
            (None, None)
        }
    };

    if status == Some(StatusCode::GONE) {
        // The receiver says the endpoint is gone for good: stop, and switch it off.
        attempt.exhausted = true;
        log(&attempt, latency);
        return Outcome::Gone(attempt);
    }
    let outcome = match policy.delay_after(r.attempt) {
        Some(scheduled) => {
            let delay = match (status, retry_after) {
                (
                    Some(StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE),
                    Some(asked),
                ) => bounded_retry_after(asked, scheduled),
                _ => scheduled,
            };
            attempt.next_attempt_at = Some(now.plus(delay));
            Outcome::Retry { attempt, delay }
        }
        None => {
            attempt.exhausted = true;
            Outcome::Exhausted(attempt)
        }
    };
    if let Some(a) = outcome.attempt() {
        log(a, latency);
    }
    outcome
}

fn endpoint_policy<'a>(ctx: &'a Context, ep: &Endpoint) -> std::borrow::Cow<'a, RetryPolicy> {
    match ep
        .retry
        .as_ref()
        .map(|r| RetryPolicy::from_seconds(&r.schedule))
    {
        Some(Ok(p)) => std::borrow::Cow::Owned(p),
        Some(Err(e)) => {
            tracing::warn!(endpoint.id = %ep.id, error = %e, "invalid endpoint schedule; using the default");
            std::borrow::Cow::Borrowed(&ctx.settings.retry)
        }
        None => std::borrow::Cow::Borrowed(&ctx.settings.retry),
    }
}

/// A receiver's `Retry-After` is honoured within bounds: never sooner than the schedule,
/// never later than twice it (nor SQS's 12 h cap).
pub fn bounded_retry_after(asked: Duration, scheduled: Duration) -> Duration {
    asked
        .clamp(scheduled, scheduled.saturating_mul(2))
        .min(MAX_DELAY)
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

fn log(a: &Attempt, duration_ms: u64) {
    tracing::info!(
        event.id = %a.event_id,
        endpoint.id = %a.endpoint_id,
        attempt = a.attempt_number,
        status = a.status.as_str(),
        http_status = a.response.as_ref().and_then(|r| r.status),
        error_code = a.error_code.as_deref(),
        exhausted = a.exhausted,
        duration_ms,
        "delivery attempt"
    );
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
        let body = crate::lark::message(&bot, first, now, budget)
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
    ctx: &Context,
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
    ctx.policy.check_url(&url).map_err(|e| Failure {
        code: attempt_error::DENIED,
        message: e.to_string(),
    })?;
    let out = outgoing(events, batch_id, endpoint, now, timeout).await?;
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
    for (name, value) in &endpoint.headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    }
    let mut fixed = vec![
        ("content-type", out.content_type.clone()),
        ("user-agent", hookrelay_shared::USER_AGENT.to_owned()),
        (
            hookrelay_shared::hops::HEADER,
            hookrelay_shared::hops::outgoing(events).to_string(),
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
    *sent = header_map(&headers, true);

    let mut resp = ctx
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
    fn retry_after_is_bounded_by_the_schedule() {
        let s = Duration::from_secs(60);
        assert_eq!(bounded_retry_after(Duration::from_secs(5), s), s);
        assert_eq!(
            bounded_retry_after(Duration::from_secs(90), s),
            Duration::from_secs(90)
        );
        assert_eq!(
            bounded_retry_after(Duration::from_secs(9999), s),
            Duration::from_secs(120)
        );
        let long = Duration::from_secs(36_000);
        assert_eq!(
            bounded_retry_after(Duration::from_secs(80_000), long),
            MAX_DELAY
        );
    }

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
