//! Delivery loops: an endpoint may be another hookrelay (or this one under another name), so
//! every delivery says how many hookrelay deliveries its events came through, and ingest
//! refuses an event that has come through too many. Endpoints on the deployment's own hosts
//! are refused when they are saved; this bounds what gets past that (a CNAME, a second
//! deployment pointing back at the first).

use http::HeaderMap;

use crate::Event;

/// Sent with every delivery: one more than the most hops of the events it carries.
pub const HEADER: &str = "hookrelay-hops";

/// The most hops an accepted event may have come through: a chain of three deployments is
/// the longest we know of in use. A longer chain is refused with `508 Loop Detected`. In a
/// loop each event feeds every endpoint in it, so `k` endpoints make up to `k^MAX_HOPS`
/// events from one before it stops (two make 8).
pub const MAX_HOPS: u32 = 3;

/// The hops a request says its event came through: none when the header is absent or not a
/// number (a sender that is not hookrelay).
pub fn of_request(headers: &HeaderMap) -> u32 {
    headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The header value a delivery of `events` carries.
pub fn outgoing(events: &[&Event]) -> u32 {
    events
        .iter()
        .map(|e| e.hops)
        .max()
        .unwrap_or(0)
        .saturating_add(1)
}
