//! A circuit breaker per endpoint. After `CIRCUIT_BREAKER_AFTER` failures in a row an
//! endpoint's circuit is open: its tasks are parked (re-queued with a delay, no request, no
//! attempt, no in-flight slot held) and one task at a time goes as a probe, claimed with a
//! conditional write so concurrent invocations never send two. The first success closes it
//! (the failure streak resets); each failed probe doubles the wait before the next, up to
//! 15 minutes. A dead endpoint so costs one request per probe interval, and the healthy
//! endpoints sharing its batches are never held up by it.

use std::time::Duration;

use hookrelay_shared::telemetry::error_chain;
use hookrelay_shared::{Endpoint, Timestamp};

use crate::{Context, Received};

/// The longest wait between probes (and SQS's longest delay).
const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(900);

/// Whether `endpoint`'s circuit is open.
pub fn is_open(ctx: &Context, endpoint: &Endpoint) -> bool {
    let after = ctx.settings.circuit_breaker_after;
    after > 0 && endpoint.enabled && endpoint.consecutive_failures >= after
}

/// The wait before the next probe once `probes` have been sent since the circuit opened:
/// the base interval, doubled for each failed probe. The failure streak is not the measure:
/// a batch that fails at once raises it by as many tasks as it held, and would push the
/// first probe out by minutes after a blip of a second.
pub fn probe_interval(ctx: &Context, probes: u32) -> Duration {
    ctx.settings
        .circuit_probe_interval
        .saturating_mul(1 << probes.min(10))
        .min(MAX_PROBE_INTERVAL)
}

/// `None` when the task may be sent (closed circuit, or this task won the probe); else how
/// long it waits on the queue before it looks again. A manual retry always goes.
pub async fn parked(ctx: &Context, r: &Received, endpoint: Option<&Endpoint>) -> Option<Duration> {
    let ep = endpoint?;
    if r.task.manual || !is_open(ctx, ep) {
        return None;
    }
    let now = Timestamp::now();
    let interval = probe_interval(ctx, ep.probes);
    let next = now.plus(interval);
    // A probe known to be taken (the endpoint as read, or this instance's last claim) costs
    // no conditional write that is bound to fail.
    let key = (ep.workspace.clone(), ep.id.clone());
    let known = [ep.probe_at, ctx.probe_known(&key)]
        .into_iter()
        .flatten()
        .filter(|at| *at > now)
        .max();
    if let Some(until) = known {
        return Some(
            until
                .since(now)
                .clamp(Duration::from_secs(1), MAX_PROBE_INTERVAL),
        );
    }
    match ctx
        .store
        .claim_probe(
            &ep.workspace,
            &ep.id,
            ctx.settings.circuit_breaker_after,
            now,
            next,
        )
        .await
    {
        Ok(true) => {
            tracing::info!(endpoint.id = %ep.id, streak = ep.consecutive_failures, "circuit open: probing");
            ctx.remember_probe(key, next);
            None
        }
        Ok(false) => {
            // Another task is the probe, or the circuit closed meanwhile (the task comes back
            // soon and goes then).
            ctx.remember_probe(key, now.plus(Duration::from_secs(1)));
            Some(Duration::from_secs(1))
        }
        Err(e) => {
            // Unknown: sending is what the task would do without a breaker.
            tracing::warn!(endpoint.id = %ep.id, error = %error_chain(&e), "probe not claimed; sending");
            None
        }
    }
}
