//! Metric values held across a function instance's invocations and written as one line.
//!
//! Ingest answers one request per invocation, and an EMF line per request was ingest's
//! largest log cost (about 400 bytes an event, $0.20 per million at CloudWatch Logs' price);
//! at a low rate a delivery invocation carries one task and paid the same for its line. A
//! busy instance instead holds its invocations' routine values ([`INGEST_ROUTINE`],
//! [`DELIVERY_ROUTINE`]) and writes them together: counts summed, latencies side by side
//! for the percentiles, at most [`MAX_VALUES`] of them (EMF's limit per metric). A line is
//! written at the end of the invocation that finds the held values [`HOLD`] old or full,
//! and at once, with everything held, for any rejection, failure or drop, so alarms and the
//! dashboard's error widgets see those as before. The values carry the time of the first
//! held one, so they land in the minute they were counted.
//!
//! The trade: Lambda may retire an instance holding values (counted in the last
//! [`HOLD`] before its last request, when no later request came to write them); those
//! routine counts are then missing from CloudWatch. Rejections and failures never are.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::metrics::{self as m, Metrics, Recorded};

/// How long routine values wait for others before they are written.
pub const HOLD: Duration = Duration::from_secs(10);
/// The most values of one metric a line holds (EMF's limit).
pub const MAX_VALUES: usize = 100;
/// Ingest's values that are held; any other is written at once.
pub const INGEST_ROUTINE: &[&str] = &[
    m::EVENTS_RECEIVED,
    m::EVENTS_DUPLICATED,
    m::INGEST_LATENCY,
    m::TASKS_ENQUEUED,
];
/// Delivery's: successes and their latencies. A failure, exhaustion, denial, park or
/// deferral is written at once.
pub const DELIVERY_ROUTINE: &[&str] = &[
    m::DELIVERIES_SUCCEEDED,
    m::DELIVERY_LATENCY,
    m::ATTEMPTS_PER_SUCCESS,
];

pub struct HeldMetrics {
    function: String,
    routine: &'static [&'static str],
    held: Mutex<Option<Held>>,
}

struct Held {
    metrics: Metrics,
    since: Instant,
    since_ms: i64,
}

impl HeldMetrics {
    /// Holds `routine` values of `function`.
    pub fn new(function: &str, routine: &'static [&'static str]) -> Self {
        Self {
            function: function.to_owned(),
            routine,
            held: Mutex::new(None),
        }
    }

    /// Holds one invocation's values, and prints the held lines when they are due.
    pub fn hold(&self, invocation: &Recorded) {
        for (metrics, timestamp_ms) in self.due(invocation, Instant::now()) {
            metrics.print(timestamp_ms);
        }
    }

    /// Adds the values; hands back what is to be written now, each with its timestamp.
    fn due(&self, invocation: &Recorded, now: Instant) -> Vec<(Metrics, i64)> {
        // A poisoned lock only means a panic elsewhere mid-update: the values are still sums.
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut lines = Vec::new();
        // A line takes at most MAX_VALUES of one metric: what is held goes first when this
        // invocation's values (a delivery batch's ten latencies) would take it over.
        let incoming = invocation
            .series
            .iter()
            .map(|s| s.values.len())
            .max()
            .unwrap_or(0);
        if held
            .as_ref()
            .is_some_and(|h| h.metrics.most_values() + incoming > MAX_VALUES)
        {
            lines.extend(held.take().map(|h| (h.metrics, h.since_ms)));
        }
        let h = held.get_or_insert_with(|| Held {
            metrics: Metrics::new(&self.function),
            since: now,
            since_ms: invocation.start_ms,
        });
        h.metrics.absorb(invocation);
        let write = h.metrics.holds_other_than(self.routine)
            || h.metrics.most_values() >= MAX_VALUES
            || now.duration_since(h.since) >= HOLD;
        if write && !h.metrics.is_empty() {
            lines.extend(held.take().map(|h| (h.metrics, h.since_ms)));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn request(accepted: bool, latency: f64) -> Recorded {
        let mut m = Metrics::new("ingest");
        if accepted {
            m.add(m::EVENTS_RECEIVED, 1.0);
            m.add(m::TASKS_ENQUEUED, 2.0);
        } else {
            m.add_by(m::EVENTS_REJECTED, "Reason", "invalid_signature", 1.0);
        }
        m.add(m::INGEST_LATENCY, latency);
        m.take()
    }

    fn docs(metrics: &Metrics) -> Vec<Value> {
        metrics
            .render(1_700_000_000_000)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn routine_values_wait_and_are_written_summed_when_the_hold_ends() {
        let held = HeldMetrics::new("ingest", INGEST_ROUTINE);
        let t0 = Instant::now();
        let first = request(true, 12.3456);
        for i in 0..5 {
            let r = if i == 0 {
                first.clone()
            } else {
                request(true, 8.0)
            };
            assert!(held.due(&r, t0 + Duration::from_secs(i)).is_empty());
        }
        let (metrics, at) = held.due(&request(true, 9.0), t0 + HOLD).pop().unwrap();
        assert_eq!(
            at, first.start_ms,
            "stamped when the first value was counted"
        );
        let doc = &docs(&metrics)[0];
        assert_eq!(doc["EventsReceived"], 6.0);
        assert_eq!(doc["TasksEnqueued"], 12.0);
        assert_eq!(
            doc["IngestLatency"],
            serde_json::json!([12.35, 8.0, 8.0, 8.0, 8.0, 9.0])
        );
        // Nothing left behind: the next request starts a new hold.
        assert!(held.due(&request(true, 1.0), t0 + HOLD).is_empty());
    }

    #[test]
    fn a_rejection_is_written_at_once_with_what_was_held() {
        let held = HeldMetrics::new("ingest", INGEST_ROUTINE);
        let t0 = Instant::now();
        assert!(held.due(&request(true, 5.0), t0).is_empty());
        let (metrics, _) = held.due(&request(false, 1.0), t0).pop().unwrap();
        let docs = docs(&metrics);
        assert_eq!(docs.len(), 2, "a line per dimension set: {docs:?}");
        assert_eq!(docs[0]["EventsReceived"], 1.0);
        assert_eq!(docs[1]["Reason"], "invalid_signature");
        assert_eq!(docs[1]["EventsRejected"], 1.0);
    }

    #[test]
    fn delivery_keeps_each_success_attempt_number_and_writes_a_failure_at_once() {
        let held = HeldMetrics::new("delivery", DELIVERY_ROUTINE);
        let t0 = Instant::now();
        for attempt in [1.0, 3.0] {
            let mut m = Metrics::new("delivery");
            m.add(m::DELIVERIES_SUCCEEDED, 1.0);
            m.add(m::DELIVERY_LATENCY, 40.0);
            m.add(m::ATTEMPTS_PER_SUCCESS, attempt);
            assert!(held.due(&m.take(), t0).is_empty());
        }
        let mut failed = Metrics::new("delivery");
        failed.add(m::DELIVERIES_FAILED, 1.0);
        failed.add(m::DELIVERY_LATENCY, 15_000.0);
        let (metrics, _) = held.due(&failed.take(), t0).pop().unwrap();
        let doc = &docs(&metrics)[0];
        assert_eq!(doc["DeliveriesSucceeded"], 2.0);
        assert_eq!(doc["DeliveriesFailed"], 1.0);
        assert_eq!(doc["AttemptsPerSuccess"], serde_json::json!([1.0, 3.0]));
        assert_eq!(
            doc["DeliveryLatency"],
            serde_json::json!([40.0, 40.0, 15000.0])
        );
    }

    #[test]
    fn a_line_never_holds_more_values_than_emf_takes() {
        let held = HeldMetrics::new("ingest", INGEST_ROUTINE);
        let t0 = Instant::now();
        for _ in 1..MAX_VALUES {
            assert!(held.due(&request(true, 3.0), t0).is_empty());
        }
        let (metrics, _) = held.due(&request(true, 3.0), t0).pop().unwrap();
        let doc = &docs(&metrics)[0];
        assert_eq!(doc["IngestLatency"].as_array().unwrap().len(), MAX_VALUES);
        assert_eq!(doc["EventsReceived"], MAX_VALUES as f64);
    }

    #[test]
    fn a_batch_that_would_overfill_the_line_writes_what_was_held_first() {
        let held = HeldMetrics::new("delivery", DELIVERY_ROUTINE);
        let t0 = Instant::now();
        let batch = |n: usize| {
            let mut m = Metrics::new("delivery");
            for _ in 0..n {
                m.add(m::DELIVERIES_SUCCEEDED, 1.0);
                m.add(m::DELIVERY_LATENCY, 20.0);
            }
            m.take()
        };
        for _ in 0..9 {
            assert!(held.due(&batch(10), t0).is_empty());
        }
        assert!(held.due(&batch(5), t0).is_empty());
        let written = held.due(&batch(10), t0);
        assert_eq!(written.len(), 1, "the 95 held, not 105 in one line");
        let doc = &docs(&written[0].0)[0];
        assert_eq!(doc["DeliveryLatency"].as_array().unwrap().len(), 95);
        assert_eq!(doc["DeliveriesSucceeded"], 95.0);
        // The batch that did not fit starts the next hold.
        let rest = held.due(&batch(90), t0);
        let doc = &docs(&rest[0].0)[0];
        assert_eq!(doc["DeliveryLatency"].as_array().unwrap().len(), 100);
    }
}
