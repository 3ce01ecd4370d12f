//! Rate limits, per source (ingest answers `429` with `Retry-After`) and per endpoint
//! (deliveries over the limit wait on the queue: deferred, not failed, no attempt used).
//!
//! Serverless, so the count lives in DynamoDB: one counter item per source or endpoint and
//! window (`RATE#{scope}#{window}`, expiring a minute after it), raised by one `UpdateItem`
//! per request that answers the new count. A window lasts `burst / per_second` seconds (at
//! least one) and lets `burst` requests through, so the average is `per_second` and a burst
//! of up to `burst` goes at once; at a window's edge up to twice `burst` may pass in a short
//! while (a fixed window, not a sliding one). A delivery over the limit is deferred to the
//! window its place in the queue falls in (the `n`-th over the limit waits `n / burst`
//! windows more), so a backlog drains at the limit instead of every deferred task coming
//! back at once. Only sources and endpoints with a limit pay for the count: one write unit
//! per request or delivery.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// `{"per_second": 10, "burst": 20}`: on average `per_second`, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_second: u32,
    /// Default: `per_second`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

/// The highest `per_second`: one counter item takes at most 1000 writes a second (a
/// DynamoDB partition's limit).
pub const MAX_PER_SECOND: u32 = 1000;
/// The largest burst, in seconds' worth of the rate.
pub const MAX_BURST_SECONDS: u32 = 60;
/// SQS's longest delay: a deferral never waits longer, it comes back and looks again.
const MAX_DEFER: Duration = Duration::from_secs(900);

/// What the counter said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Go,
    /// Over the limit: try again after this long.
    Wait(Duration),
}

impl RateLimit {
    /// Why the limit is not one this accepts, if it is not.
    pub fn problem(&self) -> Option<String> {
        if !(1..=MAX_PER_SECOND).contains(&self.per_second) {
            return Some(format!("per_second must be 1 to {MAX_PER_SECOND}"));
        }
        let max_burst = self.per_second.saturating_mul(MAX_BURST_SECONDS);
        match self.burst {
            Some(b) if b < self.per_second || b > max_burst => Some(format!(
                "burst must be per_second ({}) to {MAX_BURST_SECONDS} times it ({max_burst})",
                self.per_second
            )),
            _ => None,
        }
    }

    pub fn burst(&self) -> u32 {
        self.burst.unwrap_or(self.per_second).max(1)
    }

    /// The window's length in milliseconds: `burst / per_second` seconds, at least one.
    fn window_ms(&self) -> u64 {
        let ms = u64::from(self.burst()) * 1000 / u64::from(self.per_second.max(1));
        ms.max(1000)
    }

    /// The window `now` falls in (its index, counted from the epoch) and when it ends.
    pub fn window(&self, now: Timestamp) -> (u64, Timestamp) {
        let w = self.window_ms();
        let ms = u64::try_from(now.unix_millis()).unwrap_or(0);
        let index = ms / w;
        let end = Timestamp::from_unix_millis(((index + 1) * w) as i64).unwrap_or(now);
        (index, end)
    }

    /// Whether the `count`-th request of the window that ends at `end` may go. With
    /// `queued`, one over the limit waits for the window its place in line falls in;
    /// without, for the next window (a sender told to come back holds no place).
    pub fn decide(&self, count: u64, now: Timestamp, end: Timestamp, queued: bool) -> Decision {
        let burst = u64::from(self.burst());
        if count <= burst {
            return Decision::Go;
        }
        let windows_ahead = if queued {
            (count - burst - 1) / burst
        } else {
            0
        };
        let wait =
            end.since(now) + Duration::from_millis(self.window_ms().saturating_mul(windows_ahead));
        Decision::Wait(wait.clamp(Duration::from_millis(1), MAX_DEFER))
    }
}

/// Counts a request against `limit` in `scope` (`SRC#{id}`, `EP#{ws}#{id}`) and decides
/// (`queued`: see [`RateLimit::decide`]).
/// A count that cannot be made lets the request go: without the store nothing else would
/// work either, and a limit is not worth refusing traffic that is otherwise fine.
pub async fn check(
    store: &crate::store::Store,
    scope: &str,
    limit: &RateLimit,
    now: Timestamp,
    queued: bool,
) -> Decision {
    let (window, end) = limit.window(now);
    match store.count_in_window(scope, window, end).await {
        Ok(count) => limit.decide(count, now, end, queued),
        Err(e) => {
            tracing::warn!(scope, error = %crate::telemetry::error_chain(&e), "rate limit not counted; letting the request go");
            Decision::Go
        }
    }
}

/// The counter scope of a source's ingest limit.
pub fn source_scope(source_id: &str) -> String {
    format!("SRC#{source_id}")
}

/// The counter scope of an endpoint's delivery limit.
pub fn endpoint_scope(ws: &str, endpoint_id: &str) -> String {
    format!("EP#{ws}#{endpoint_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_unix_millis(ms).unwrap()
    }

    #[test]
    fn a_window_lets_burst_through_and_spreads_the_rest() {
        let limit = RateLimit {
            per_second: 10,
            burst: Some(20),
        };
        assert_eq!(limit.window_ms(), 2000);
        let now = at(10_500);
        let (index, end) = limit.window(now);
        assert_eq!((index, end), (5, at(12_000)));
        assert_eq!(limit.decide(20, now, end, true), Decision::Go);
        assert_eq!(
            limit.decide(21, now, end, true),
            Decision::Wait(Duration::from_millis(1500))
        );
        assert_eq!(
            limit.decide(41, now, end, true),
            Decision::Wait(Duration::from_millis(3500)),
            "the 21st over the limit goes a window later"
        );
        assert_eq!(
            limit.decide(41, now, end, false),
            Decision::Wait(Duration::from_millis(1500)),
            "a sender told to come back is told the window's end"
        );
        assert_eq!(
            limit.decide(1_000_000, now, end, true),
            Decision::Wait(MAX_DEFER)
        );
    }

    #[test]
    fn bounds() {
        let ok = RateLimit {
            per_second: 5,
            burst: None,
        };
        assert_eq!(ok.problem(), None);
        assert_eq!(ok.window_ms(), 1000);
        for bad in [(0, None), (1001, None), (5, Some(4)), (5, Some(301))] {
            let l = RateLimit {
                per_second: bad.0,
                burst: bad.1,
            };
            assert!(l.problem().is_some(), "{l:?}");
        }
    }
}
