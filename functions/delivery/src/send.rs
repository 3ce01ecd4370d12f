//! One delivery: the signed POST of an event's stored body to one endpoint, and what its
//! result means for the task.

use std::time::Instant;

use hookrelay_shared::telemetry::error_chain;
use hookrelay_shared::{
    Attempt, AttemptRequest, AttemptResponse, AttemptStatus, Endpoint, Event, Timestamp, ids,
    signature,
};
use http::StatusCode;

use crate::{Context, Outcome, Received};

pub async fn deliver(
    ctx: &Context,
    r: &Received,
    event: Option<&Event>,
    endpoint: Option<&Endpoint>,
) -> Outcome {
    let Some(event) = event else {
        tracing::warn!(event.id = %r.task.event_id, "event expired or deleted; task dropped");
        return Outcome::Dropped;
    };
    let now = Timestamp::now();
    let mut attempt = Attempt {
        id: ids::new_id(ids::ATTEMPT),
        workspace: r.task.workspace.clone(),
        event_id: event.id.clone(),
        endpoint_id: r.task.endpoint_id.clone(),
        status: AttemptStatus::Canceled,
        attempt_number: r.attempt,
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
            url: endpoint.map(|e| e.url.clone()).unwrap_or_default(),
        },
        response: None,
    };
    let endpoint = match endpoint {
        None => {
            attempt.error_code = Some("ENDPOINT_NOT_FOUND".to_owned());
            return Outcome::Canceled(attempt);
        }
        Some(ep) if !ep.enabled => {
            attempt.error_code = Some("ENDPOINT_DISABLED".to_owned());
            return Outcome::Canceled(attempt);
        }
        Some(ep) => ep,
    };

    let started = Instant::now();
    let result = post(ctx, event, endpoint, now).await;
    let latency = started.elapsed().as_millis() as u64;
    let status = match result {
        Ok(status) => {
            attempt.response = Some(AttemptResponse {
                status: Some(status.as_u16()),
                latency,
            });
            if status.is_success() {
                attempt.status = AttemptStatus::Successful;
                log(&attempt, latency);
                return Outcome::Delivered(attempt);
            }
            Some(status)
        }
        Err(failure) => {
            attempt.response = Some(AttemptResponse {
                status: None,
                latency,
            });
            attempt.error_code = Some(failure.code.to_owned());
            attempt.error_message = Some(failure.message);
            None
        }
    };
    attempt.status = AttemptStatus::Failed;

    if status == Some(StatusCode::GONE) {
        // The receiver says the endpoint is gone for good: stop, and switch it off.
        attempt.exhausted = true;
        log(&attempt, latency);
        return Outcome::Gone(attempt);
    }
    let outcome = match ctx.settings.retry.delay_after(r.attempt) {
        Some(delay) => {
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

async fn post(
    ctx: &Context,
    event: &Event,
    endpoint: &Endpoint,
    now: Timestamp,
) -> Result<StatusCode, Failure> {
    let timestamp = now.unix_seconds();
    let signature = signature::sign(&endpoint.secret, &event.id, timestamp, &event.payload)
        .map_err(|e| Failure {
            code: "SIGNING_FAILED",
            message: e.to_string(),
        })?;
    let mut req = ctx
        .http
        .post(&endpoint.url)
        .header(http::header::CONTENT_TYPE, "application/json");
    for (name, value) in &endpoint.headers {
        req = req.header(name, value);
    }
    let resp = req
        .header("webhook-id", &event.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(event.payload.clone())
        .send()
        .await
        .map_err(|e| Failure {
            code: if e.is_timeout() {
                "TIMEOUT"
            } else if e.is_connect() {
                "CONNECTION_ERROR"
            } else if e.is_builder() {
                "URL_INVALID"
            } else {
                "REQUEST_ERROR"
            },
            message: error_chain(&e),
        })?;
    Ok(resp.status())
}
