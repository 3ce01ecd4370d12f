//! One delivery: what the result of the signed POST (made by the shared sender) means for
//! the task: delivered, retried after its schedule's delay, dead-lettered, cancelled.

use std::time::Duration;

use hookrelay_shared::model::attempt_error;
use hookrelay_shared::outbound::{Sent, Try, Verdict, new_attempt};
use hookrelay_shared::retry::{MAX_DELAY, RetryPolicy};
use hookrelay_shared::{Attempt, AttemptStatus, Endpoint, Event, Timestamp};
use http::StatusCode;

use crate::{Context, Outcome, Received};

pub use hookrelay_shared::outbound::send::{batch_body, retry_after};

impl Received {
    /// The request this receive makes.
    pub fn as_try(&self) -> Try<'_> {
        Try {
            task: &self.task,
            attempt: self.attempt,
            sent_at: self.sent_at,
            trace_id: self.trace_id.as_deref(),
            deadline: self.deadline,
        }
    }
}

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
    let mut attempt = new_attempt(&r.as_try(), endpoint, now);
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
    let mut attempt = new_attempt(&r.as_try(), endpoint, Timestamp::now());
    attempt.status = AttemptStatus::Failed;
    attempt.exhausted = true;
    attempt.error_code = Some(attempt_error::RECEIVE_LIMIT.to_owned());
    attempt.error_message = Some(format!(
        "received {} times without an attempt that ended the task",
        r.receive_count
    ));
    Outcome::Exhausted(attempt)
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
    let (mut attempt, verdict, latency) = match ctx
        .sender
        .send(&r.as_try(), events, endpoint, attempt, now)
        .await
    {
        Sent::NoTime => return Outcome::Postponed,
        Sent::Done {
            attempt,
            verdict,
            latency_ms,
        } => (*attempt, verdict, latency_ms),
    };
    let (status, retry_after) = match verdict {
        Verdict::Delivered => {
            log(&attempt, latency);
            return Outcome::Delivered(attempt);
        }
        // A policy refusal will not change by waiting: the task ends here.
        Verdict::Denied => {
            log(&attempt, latency);
            return Outcome::Denied(attempt);
        }
        // The receiver says the endpoint is gone for good: stop, and switch it off.
        Verdict::Gone => {
            attempt.exhausted = true;
            log(&attempt, latency);
            return Outcome::Gone(attempt);
        }
        Verdict::Failed {
            status,
            retry_after,
        } => (status, retry_after),
    };
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
}
