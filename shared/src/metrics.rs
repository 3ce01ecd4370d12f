//! CloudWatch metrics in Embedded Metric Format: one JSON document per line on stdout, which
//! Lambda ships to CloudWatch Logs and CloudWatch turns into metrics without an API call.
//! Dimensions stay low-cardinality: the function, and for rejections the reason code; never
//! an event or endpoint id. Every name is declared here and documented in docs/metrics.md.
//!
//! The functions log in Lambda's JSON format with an application log level (the template's
//! `LogLevel`). Lambda's log-level filter reads a line's `level` key, and treats a line whose
//! `level` is missing or invalid, or whose `timestamp` is not RFC 3339, as INFO: at WARN or
//! ERROR such a line is dropped before CloudWatch sees it, and with it every metric and alarm.
//! So each metric line carries a `timestamp` and the least verbose level Lambda knows,
//! [`LOG_LEVEL`], which passes every application log level. The functions never log at that
//! level themselves (`tracing` has no FATAL), so it names the metric lines alone.

use std::collections::BTreeMap;

use serde_json::{Value, json};

pub const NAMESPACE: &str = "HookRelay";

/// The `level` of every metric line.
pub const LOG_LEVEL: &str = "FATAL";

/// Lambda's application log levels, most verbose first: a filter set to one of them keeps
/// the lines at that level and the ones after it.
pub const LAMBDA_LOG_LEVELS: &[&str] = &["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/// Whether Lambda's filter at `application_level` keeps a line at `line_level`. A level Lambda
/// does not know counts as INFO, as Lambda counts it.
pub fn passes_log_filter(line_level: &str, application_level: &str) -> bool {
    let rank = |l: &str| {
        LAMBDA_LOG_LEVELS
            .iter()
            .position(|k| k.eq_ignore_ascii_case(l))
    };
    let info = rank("INFO").unwrap_or(2);
    rank(line_level).unwrap_or(info) >= rank(application_level).unwrap_or(info)
}

pub const EVENTS_RECEIVED: &str = "EventsReceived";
pub const EVENTS_REJECTED: &str = "EventsRejected";
pub const EVENTS_DUPLICATED: &str = "EventsDuplicated";
pub const INGEST_LATENCY: &str = "IngestLatency";
pub const TASKS_ENQUEUED: &str = "TasksEnqueued";
pub const ENQUEUE_FAILURES: &str = "EnqueueFailures";
pub const DELIVERIES_SUCCEEDED: &str = "DeliveriesSucceeded";
pub const DELIVERIES_FAILED: &str = "DeliveriesFailed";
pub const DELIVERIES_EXHAUSTED: &str = "DeliveriesExhausted";
pub const DELIVERIES_DENIED: &str = "DeliveriesDenied";
pub const DELIVERIES_PARKED: &str = "DeliveriesParked";
pub const DELIVERIES_DEFERRED: &str = "DeliveriesDeferred";
pub const INGEST_RATE_LIMITED: &str = "IngestRateLimited";
pub const INGEST_DROPPED: &str = "IngestDropped";
pub const PLUGIN_FAILURES: &str = "PluginFailures";
pub const DELIVERY_LATENCY: &str = "DeliveryLatency";
pub const ATTEMPTS_PER_SUCCESS: &str = "AttemptsPerSuccess";
pub const ENDPOINTS_DEACTIVATED: &str = "EndpointsDeactivated";
pub const STRANDED_EVENTS_REENQUEUED: &str = "StrandedEventsReenqueued";
pub const SWEEP_DURATION: &str = "SweepDuration";
pub const SWEEP_ENDPOINTS_EXAMINED: &str = "SweepEndpointsExamined";
pub const PENDING_EVENTS_FOUND: &str = "PendingEventsFound";
pub const OPS_EVENTS: &str = "OpsEvents";
pub const OPS_EVENTS_FAILED: &str = "OpsEventsFailed";

static EMITTED_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Bytes of metric documents this process has written (they are log lines too, and billed
/// as log ingestion).
pub fn emitted_bytes() -> u64 {
    EMITTED_BYTES.load(std::sync::atomic::Ordering::Relaxed)
}

/// Every metric the code emits, with its unit.
pub const ALL: &[(&str, Unit)] = &[
    (EVENTS_RECEIVED, Unit::Count),
    (EVENTS_REJECTED, Unit::Count),
    (EVENTS_DUPLICATED, Unit::Count),
    (INGEST_LATENCY, Unit::Milliseconds),
    (TASKS_ENQUEUED, Unit::Count),
    (ENQUEUE_FAILURES, Unit::Count),
    (DELIVERIES_SUCCEEDED, Unit::Count),
    (DELIVERIES_FAILED, Unit::Count),
    (DELIVERIES_EXHAUSTED, Unit::Count),
    (DELIVERIES_DENIED, Unit::Count),
    (DELIVERIES_PARKED, Unit::Count),
    (DELIVERIES_DEFERRED, Unit::Count),
    (INGEST_RATE_LIMITED, Unit::Count),
    (INGEST_DROPPED, Unit::Count),
    (PLUGIN_FAILURES, Unit::Count),
    (DELIVERY_LATENCY, Unit::Milliseconds),
    (ATTEMPTS_PER_SUCCESS, Unit::Count),
    (ENDPOINTS_DEACTIVATED, Unit::Count),
    (STRANDED_EVENTS_REENQUEUED, Unit::Count),
    (SWEEP_DURATION, Unit::Milliseconds),
    (SWEEP_ENDPOINTS_EXAMINED, Unit::Count),
    (PENDING_EVENTS_FOUND, Unit::Count),
    (OPS_EVENTS, Unit::Count),
    (OPS_EVENTS_FAILED, Unit::Count),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

fn unit_of(name: &str) -> Unit {
    ALL.iter()
        .find(|(n, _)| *n == name)
        .map_or(Unit::Count, |(_, u)| *u)
}

/// An optional extra dimension (name, value) besides `Function`.
type ExtraDimension = Option<(String, String)>;

/// Metrics of one invocation, written as EMF lines by [`Metrics::flush`].
#[derive(Debug)]
pub struct Metrics {
    function: String,
    /// When the values began to be counted: the start of an exported delta.
    started_ms: i64,
    /// (extra dimension, metric) → values.
    values: BTreeMap<(ExtraDimension, &'static str), Vec<f64>>,
}

/// The values of one flush, for an exporter besides EMF (OTLP): each a delta over
/// `start_ms..end_ms`, as a function instance sees only its own invocations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recorded {
    pub function: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub series: Vec<Series>,
}

/// The values of one metric under one dimension set.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: &'static str,
    pub unit: Unit,
    /// The dimension besides `Function`, e.g. (`Reason`, `invalid_signature`).
    pub dimension: Option<(String, String)>,
    pub values: Vec<f64>,
}

impl Series {
    /// A metric whose single values matter (a latency, attempts per success), not only
    /// their sum: exported as a histogram, where a count is exported as a sum.
    pub fn is_distribution(&self) -> bool {
        self.unit == Unit::Milliseconds || self.name == ATTEMPTS_PER_SUCCESS
    }
}

impl Metrics {
    pub fn new(function: &str) -> Self {
        Self {
            function: function.to_owned(),
            started_ms: crate::Timestamp::now().unix_millis(),
            values: BTreeMap::new(),
        }
    }

    /// Values counted since `start_ms` (the work's start), not since this value was made.
    pub fn since(mut self, start_ms: i64) -> Self {
        self.started_ms = start_ms;
        self
    }

    pub fn add(&mut self, name: &'static str, value: f64) {
        self.values.entry((None, name)).or_default().push(value);
    }

    /// A value under one more dimension, e.g. `Reason` of a rejection.
    pub fn add_by(&mut self, name: &'static str, dimension: &str, key: &str, value: f64) {
        self.values
            .entry((Some((dimension.to_owned(), key.to_owned())), name))
            .or_default()
            .push(value);
    }

    /// The EMF documents: one per dimension set.
    pub fn render(&self, timestamp_ms: i64) -> Vec<String> {
        let timestamp = crate::Timestamp::from_unix_millis(timestamp_ms)
            .unwrap_or_else(crate::Timestamp::now)
            .to_string();
        let mut groups: BTreeMap<ExtraDimension, Vec<(&'static str, &Vec<f64>)>> = BTreeMap::new();
        for ((dim, name), values) in &self.values {
            groups.entry(dim.clone()).or_default().push((name, values));
        }
        groups
            .into_iter()
            .map(|(dim, metrics)| {
                let mut dims = vec!["Function".to_owned()];
                let mut doc = serde_json::Map::new();
                doc.insert("level".into(), Value::String(LOG_LEVEL.to_owned()));
                doc.insert("timestamp".into(), Value::String(timestamp.clone()));
                doc.insert("Function".into(), Value::String(self.function.clone()));
                if let Some((k, v)) = &dim {
                    dims.push(k.clone());
                    doc.insert(k.clone(), Value::String(v.clone()));
                }
                let defs: Vec<Value> = metrics
                    .iter()
                    .map(|(n, _)| json!({"Name": n, "Unit": unit_of(n).as_str()}))
                    .collect();
                for (n, values) in &metrics {
                    let v = if values.len() == 1 {
                        json!(values[0])
                    } else {
                        json!(values)
                    };
                    doc.insert((*n).to_owned(), v);
                }
                doc.insert(
                    "_aws".into(),
                    json!({
                        "Timestamp": timestamp_ms,
                        "CloudWatchMetrics": [{
                            "Namespace": NAMESPACE,
                            "Dimensions": [dims],
                            "Metrics": defs,
                        }]
                    }),
                );
                Value::Object(doc).to_string()
            })
            .collect()
    }

    /// Prints the documents, one per line, for Lambda to ship, and hands back what they
    /// held; the next values count from now.
    pub fn flush(&mut self) -> Recorded {
        self.print(crate::Timestamp::now().unix_millis());
        self.take()
    }

    /// Prints the documents stamped `timestamp_ms`, keeping the values.
    pub(crate) fn print(&self, timestamp_ms: i64) {
        for line in self.render(timestamp_ms) {
            EMITTED_BYTES.fetch_add(line.len() as u64 + 1, std::sync::atomic::Ordering::Relaxed);
            println!("{line}");
        }
    }

    /// Hands back the values without printing them (for [`crate::held_metrics`], which
    /// prints them later with others); the next values count from now.
    pub fn take(&mut self) -> Recorded {
        let now = crate::Timestamp::now().unix_millis();
        let recorded = Recorded {
            function: self.function.clone(),
            start_ms: self.started_ms,
            end_ms: now.max(self.started_ms),
            series: std::mem::take(&mut self.values)
                .into_iter()
                .map(|((dimension, name), values)| Series {
                    name,
                    unit: unit_of(name),
                    dimension,
                    values,
                })
                .collect(),
        };
        self.started_ms = now;
        recorded
    }

    /// Adds another invocation's values: a count to the sum (one value, however many
    /// invocations), a distribution's value (a time, attempts per success) beside the
    /// others, each kept for percentiles and averages, to 0.01.
    pub(crate) fn absorb(&mut self, recorded: &Recorded) {
        for series in &recorded.series {
            let values = self
                .values
                .entry((series.dimension.clone(), series.name))
                .or_default();
            if series.is_distribution() {
                values.extend(series.values.iter().map(|v| (v * 100.0).round() / 100.0));
            } else {
                let sum: f64 = values.iter().chain(&series.values).sum();
                *values = vec![sum];
            }
        }
    }

    /// The most values any one metric holds.
    pub(crate) fn most_values(&self) -> usize {
        self.values.values().map(Vec::len).max().unwrap_or(0)
    }

    /// Whether it holds a value of a metric outside `names`, or under a dimension.
    pub(crate) fn holds_other_than(&self, names: &[&str]) -> bool {
        self.values
            .keys()
            .any(|(dim, name)| dim.is_some() || !names.contains(name))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_emf_documents() {
        let mut m = Metrics::new("ingest");
        m.add(EVENTS_RECEIVED, 1.0);
        m.add(INGEST_LATENCY, 12.0);
        m.add(INGEST_LATENCY, 8.0);
        m.add_by(EVENTS_REJECTED, "Reason", "invalid_signature", 1.0);
        let lines = m.render(1_700_000_000_000);
        assert_eq!(lines.len(), 2);
        let plain: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(plain["Function"], "ingest");
        assert_eq!(plain["EventsReceived"], 1.0);
        assert_eq!(plain["IngestLatency"], json!([12.0, 8.0]));
        let cw = &plain["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "HookRelay");
        assert_eq!(cw["Dimensions"], json!([["Function"]]));
        assert!(
            cw["Metrics"]
                .as_array()
                .unwrap()
                .contains(&json!({"Name": "IngestLatency", "Unit": "Milliseconds"}))
        );
        let by: Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(by["Reason"], "invalid_signature");
        assert_eq!(
            by["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function", "Reason"]])
        );
    }

    #[test]
    fn metric_lines_carry_a_level_and_timestamp_lambda_reads() {
        let mut m = Metrics::new("delivery");
        m.add(DELIVERIES_SUCCEEDED, 1.0);
        m.add_by(EVENTS_REJECTED, "Reason", "x", 1.0);
        for line in m.render(1_700_000_000_123) {
            let doc: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(doc["level"], LOG_LEVEL);
            assert!(LAMBDA_LOG_LEVELS.contains(&doc["level"].as_str().unwrap()));
            let ts = doc["timestamp"].as_str().unwrap();
            assert_eq!(ts, "2023-11-14T22:13:20.123Z");
            // RFC 3339, and the same instant as the EMF timestamp.
            assert_eq!(
                crate::Timestamp::parse(ts).unwrap().unix_millis(),
                doc["_aws"]["Timestamp"].as_i64().unwrap()
            );
            assert!(!line.contains('\n'), "one document per line");
        }
    }

    #[test]
    fn metric_lines_pass_every_application_log_level() {
        for level in LAMBDA_LOG_LEVELS {
            assert!(passes_log_filter(LOG_LEVEL, level), "{level}");
        }
        // What the filter does to other lines, as Lambda documents it.
        assert!(!passes_log_filter("INFO", "WARN"));
        assert!(passes_log_filter("WARN", "WARN"));
        assert!(
            !passes_log_filter("bogus", "WARN"),
            "an unknown level counts as INFO"
        );
        assert!(passes_log_filter("bogus", "INFO"));
    }
}
