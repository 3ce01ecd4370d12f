//! Connections opened during a function's init. The first request an SDK client sends pays
//! for credentials, endpoint resolution, a TCP connect and a TLS handshake; on a small Lambda
//! that is most of a cold start's first request. One cheap request per service, both at
//! once, leaves a pooled connection behind for the handler. An on-demand cold start's first
//! caller still waits for init, so it gains the two handshakes done side by side rather than
//! one after the other; an environment started before its first event (provisioned
//! concurrency, proactive initialisation) has them done before anyone waits.

use std::time::Duration;

use crate::queue::Queue;
use crate::store::Store;

/// The most init spends on it: a service that does not answer by then is left to the first
/// request, as it would be without warming.
pub const WARM_TIMEOUT: Duration = Duration::from_secs(2);

/// `WARM_CONNECTIONS=false` leaves the connections to the first request (to measure what
/// warming saves).
pub const SWITCH: &str = "WARM_CONNECTIONS";

/// Opens the table's and the delivery queue's connections at once. Never fails: a refusal
/// still leaves the handshake done, and anything else is the first request's to meet.
pub async fn connections(store: &Store, queue: &Queue) {
    if std::env::var(SWITCH).is_ok_and(|v| v.trim().eq_ignore_ascii_case("false")) {
        return;
    }
    let work = async { tokio::join!(store.warm(), queue.warm()) };
    match tokio::time::timeout(WARM_TIMEOUT, work).await {
        Ok((table, queue)) => {
            for (what, result) in [("table", table), ("queue", queue)] {
                if let Err(e) = result {
                    tracing::debug!(what, error = %e, "warm-up request failed");
                }
            }
        }
        Err(_) => tracing::debug!(
            timeout_ms = WARM_TIMEOUT.as_millis() as u64,
            "warm-up did not finish in time"
        ),
    }
}
