//! The metrics of one flush as an OTLP `ExportMetricsServiceRequest`: the same values the
//! EMF lines carry, each a delta over the flush's interval (a Lambda instance sees only its
//! own invocations, so it cannot keep a cumulative total that means anything). Counts are
//! monotonic sums; latencies and attempts per success are histograms.
//!
//! Names follow OpenTelemetry's convention (lower case, dotted namespace): `IngestLatency`
//! is `hookrelay.ingest_latency`, with the unit `ms`; dimensions become attributes
//! (`function`, and `reason` where EMF has `Reason`).

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::metrics::{Recorded, Series, Unit};

/// Histogram bucket bounds in the metric's unit: milliseconds from a fast accept to a
/// receiver's 30 s timeout, or attempts up to a long retry schedule.
const MS_BOUNDS: &[f64] = &[
    5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
];
const COUNT_BOUNDS: &[f64] = &[1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0];

/// `IngestLatency` → `hookrelay.ingest_latency`.
pub fn otel_name(name: &str) -> String {
    let mut out = String::from("hookrelay.");
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

fn nanos(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000)
}

/// The request for `recorded`, `None` when it holds nothing.
pub fn request(
    recorded: &Recorded,
    resource: &[(&'static str, String)],
    scope_version: &str,
) -> Option<ExportMetricsServiceRequest> {
    if recorded.series.is_empty() {
        return None;
    }
    let start = nanos(recorded.start_ms);
    let time = nanos(recorded.end_ms);
    let metrics = recorded
        .series
        .iter()
        .map(|s| metric(s, &recorded.function, start, time))
        .collect();
    let resource = resource.iter().map(|(k, v)| string(k, v)).collect();
    Some(ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "hookrelay".to_owned(),
                    version: scope_version.to_owned(),
                    ..Default::default()
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    })
}

fn metric(series: &Series, function: &str, start: u64, time: u64) -> Metric {
    let mut attributes = vec![string("function", function)];
    if let Some((key, value)) = &series.dimension {
        attributes.push(string(&key.to_ascii_lowercase(), value));
    }
    let data = if series.is_distribution() {
        let bounds = match series.unit {
            Unit::Milliseconds => MS_BOUNDS,
            Unit::Count => COUNT_BOUNDS,
        };
        let mut bucket_counts = vec![0_u64; bounds.len() + 1];
        for v in &series.values {
            // A bucket holds the values up to and including its upper bound.
            let i = bounds.partition_point(|b| b < v);
            bucket_counts[i] += 1;
        }
        metric::Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                attributes,
                start_time_unix_nano: start,
                time_unix_nano: time,
                count: series.values.len() as u64,
                sum: Some(series.values.iter().sum()),
                bucket_counts,
                explicit_bounds: bounds.to_vec(),
                min: series.values.iter().copied().reduce(f64::min),
                max: series.values.iter().copied().reduce(f64::max),
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Delta as i32,
        })
    } else {
        metric::Data::Sum(Sum {
            data_points: vec![NumberDataPoint {
                attributes,
                start_time_unix_nano: start,
                time_unix_nano: time,
                value: Some(number_data_point::Value::AsDouble(
                    series.values.iter().sum(),
                )),
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Delta as i32,
            is_monotonic: true,
        })
    };
    Metric {
        name: otel_name(series.name),
        unit: match series.unit {
            Unit::Milliseconds => "ms",
            Unit::Count => "1",
        }
        .to_owned(),
        data: Some(data),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{
        ATTEMPTS_PER_SUCCESS, DELIVERY_LATENCY, EVENTS_REJECTED, INGEST_LATENCY, Metrics,
    };

    #[test]
    fn names_follow_the_otel_convention() {
        assert_eq!(otel_name("IngestLatency"), "hookrelay.ingest_latency");
        assert_eq!(otel_name("EventsReceived"), "hookrelay.events_received");
        for (name, _) in crate::metrics::ALL {
            let n = otel_name(name);
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.'),
                "{n}"
            );
        }
    }

    #[test]
    fn counts_are_delta_sums_and_latencies_histograms() {
        let mut m = Metrics::new("delivery");
        m.add(DELIVERY_LATENCY, 3.0);
        m.add(DELIVERY_LATENCY, 40.0);
        m.add(DELIVERY_LATENCY, 40_000.0);
        m.add(ATTEMPTS_PER_SUCCESS, 2.0);
        m.add_by(EVENTS_REJECTED, "Reason", "invalid_signature", 1.0);
        m.add_by(EVENTS_REJECTED, "Reason", "invalid_signature", 1.0);
        let recorded = m.flush();
        assert!(recorded.end_ms >= recorded.start_ms);
        let who = [("service.name", "hookrelay-delivery".to_owned())];
        let req = request(&recorded, &who, "1.0.0").unwrap();
        let rm = &req.resource_metrics[0];
        let metrics = &rm.scope_metrics[0].metrics;
        assert_eq!(metrics.len(), 3);
        let by_name = |n: &str| metrics.iter().find(|m| m.name == n).unwrap();

        let latency = by_name("hookrelay.delivery_latency");
        assert_eq!(latency.unit, "ms");
        let Some(metric::Data::Histogram(h)) = &latency.data else {
            panic!("{latency:?}")
        };
        assert_eq!(
            h.aggregation_temporality,
            AggregationTemporality::Delta as i32
        );
        let p = &h.data_points[0];
        assert_eq!(p.count, 3);
        assert_eq!(p.sum, Some(40_043.0));
        assert_eq!((p.min, p.max), (Some(3.0), Some(40_000.0)));
        assert_eq!(p.bucket_counts.len(), MS_BOUNDS.len() + 1);
        assert_eq!(p.bucket_counts[0], 1, "3 ms is in the first bucket");
        assert_eq!(p.bucket_counts[3], 1, "40 ms is in (25, 50]");
        assert_eq!(*p.bucket_counts.last().unwrap(), 1, "past the last bound");
        assert_eq!(p.bucket_counts.iter().sum::<u64>(), p.count);

        assert!(matches!(
            by_name("hookrelay.attempts_per_success").data,
            Some(metric::Data::Histogram(_))
        ));

        let rejected = by_name("hookrelay.events_rejected");
        assert_eq!(rejected.unit, "1");
        let Some(metric::Data::Sum(sum)) = &rejected.data else {
            panic!("{rejected:?}")
        };
        assert!(sum.is_monotonic);
        assert_eq!(
            sum.aggregation_temporality,
            AggregationTemporality::Delta as i32
        );
        let p = &sum.data_points[0];
        assert_eq!(p.value, Some(number_data_point::Value::AsDouble(2.0)));
        let attrs: Vec<(&str, String)> = p
            .attributes
            .iter()
            .map(|kv| (kv.key.as_str(), format!("{:?}", kv.value)))
            .collect();
        assert_eq!(attrs.len(), 2);
        assert_eq!(attrs[0].0, "function");
        assert_eq!(attrs[1].0, "reason");
        assert!(attrs[1].1.contains("invalid_signature"));
    }

    #[test]
    fn an_empty_flush_exports_nothing_and_the_next_delta_starts_where_it_ended() {
        let mut m = Metrics::new("ingest");
        let first = m.flush();
        assert!(request(&first, &[], "v").is_none());
        m.add(INGEST_LATENCY, 1.0);
        let second = m.flush();
        assert_eq!(second.start_ms, first.end_ms);
    }
}
