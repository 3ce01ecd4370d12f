//! A local OTLP/HTTP collector on 127.0.0.1: decodes and keeps every span POSTed to
//! `/v1/traces` and every metric data point POSTed to `/v1/metrics` (protobuf, as the
//! functions export), and hands out exporters pointed at it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hookrelay_shared::otlp::{Config, Exporter};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as SpanStatus;
use prost::Message;

/// One span as the collector received it, ids in hex.
#[derive(Debug, Clone)]
pub struct ExportedSpan {
    /// The `service.name` of the resource it came with.
    pub service: String,
    pub name: String,
    pub kind: SpanKind,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub status: SpanStatus,
    pub attributes: BTreeMap<String, String>,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
}

impl ExportedSpan {
    pub fn attr(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("", String::as_str)
    }
}

/// One metric data point as the collector received it.
#[derive(Debug, Clone)]
pub struct ExportedPoint {
    pub service: String,
    /// The `service.instance.id` of the resource it came with.
    pub instance: String,
    pub name: String,
    pub unit: String,
    pub attributes: BTreeMap<String, String>,
    /// A sum's value, or a histogram's sum.
    pub value: f64,
    /// A histogram's count; `None` for a sum.
    pub count: Option<u64>,
    pub delta: bool,
    pub start_unix_nano: u64,
    pub time_unix_nano: u64,
}

impl ExportedPoint {
    pub fn attr(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("", String::as_str)
    }
}

#[derive(Default)]
struct Seen {
    spans: Vec<ExportedSpan>,
    points: Vec<ExportedPoint>,
    content_types: Vec<String>,
}

#[derive(Clone)]
pub struct Collector {
    /// The base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` would name it.
    pub url: String,
    seen: Arc<Mutex<Seen>>,
}

impl Collector {
    pub async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let app = Router::new()
            .route("/v1/traces", post(traces))
            .route("/v1/metrics", post(metrics))
            .with_state(seen.clone());
        let addr = crate::serve_on_loopback(app).await;
        Self {
            url: format!("http://{addr}"),
            seen,
        }
    }

    /// An exporter to this collector, as a function configured with
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` pointing here builds it.
    pub fn exporter(&self, service: &str) -> Arc<Exporter> {
        exporter_to(&self.url, service)
    }

    pub fn spans(&self) -> Vec<ExportedSpan> {
        self.seen.lock().expect("lock").spans.clone()
    }

    pub fn points(&self) -> Vec<ExportedPoint> {
        self.seen.lock().expect("lock").points.clone()
    }

    /// The points named `name` (`hookrelay.…`) from `service`.
    pub fn points_of(&self, service: &str, name: &str) -> Vec<ExportedPoint> {
        self.points()
            .into_iter()
            .filter(|p| p.service == service && p.name == name)
            .collect()
    }

    /// The `Content-Type` of every export request received.
    pub fn content_types(&self) -> Vec<String> {
        self.seen.lock().expect("lock").content_types.clone()
    }
}

/// An exporter to the collector at `base` (as `OTEL_EXPORTER_OTLP_ENDPOINT` names it).
pub fn exporter_to(base: &str, service: &str) -> Arc<Exporter> {
    Arc::new(Exporter::new(&Config::new(base, service)).expect("exporter"))
}

/// A base URL on 127.0.0.1 where nothing listens: a port bound and released.
pub async fn dead_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn service_of(resource: Option<&opentelemetry_proto::tonic::resource::v1::Resource>) -> String {
    resource_attr(resource, "service.name")
}

fn resource_attr(
    resource: Option<&opentelemetry_proto::tonic::resource::v1::Resource>,
    key: &str,
) -> String {
    resource
        .iter()
        .flat_map(|r| &r.attributes)
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
        .map(text)
        .unwrap_or_default()
}

fn attributes(
    kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue],
) -> BTreeMap<String, String> {
    kvs.iter()
        .filter_map(|kv| {
            let v = kv.value.as_ref()?.value.as_ref()?;
            Some((kv.key.clone(), text(v)))
        })
        .collect()
}

async fn metrics(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Vec<u8>) {
    let Ok(request) = ExportMetricsServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new());
    };
    let mut seen = seen.lock().expect("lock");
    seen.content_types.push(content_type(&headers));
    for rm in request.resource_metrics {
        let service = service_of(rm.resource.as_ref());
        let instance = resource_attr(rm.resource.as_ref(), "service.instance.id");
        for m in rm.scope_metrics.into_iter().flat_map(|s| s.metrics) {
            let point = |attrs: &[_], value, count, temporality: i32, start, time| ExportedPoint {
                service: service.clone(),
                instance: instance.clone(),
                name: m.name.clone(),
                unit: m.unit.clone(),
                attributes: attributes(attrs),
                value,
                count,
                delta: temporality == 1,
                start_unix_nano: start,
                time_unix_nano: time,
            };
            match &m.data {
                Some(metric::Data::Sum(sum)) => {
                    for p in &sum.data_points {
                        let value = match p.value {
                            Some(number_data_point::Value::AsDouble(d)) => d,
                            Some(number_data_point::Value::AsInt(i)) => i as f64,
                            None => f64::NAN,
                        };
                        let got = point(
                            &p.attributes,
                            value,
                            None,
                            sum.aggregation_temporality,
                            p.start_time_unix_nano,
                            p.time_unix_nano,
                        );
                        seen.points.push(got);
                    }
                }
                Some(metric::Data::Histogram(h)) => {
                    for p in &h.data_points {
                        let got = point(
                            &p.attributes,
                            p.sum.unwrap_or(f64::NAN),
                            Some(p.count),
                            h.aggregation_temporality,
                            p.start_time_unix_nano,
                            p.time_unix_nano,
                        );
                        seen.points.push(got);
                    }
                }
                _ => {}
            }
        }
    }
    (
        StatusCode::OK,
        ExportMetricsServiceResponse::default().encode_to_vec(),
    )
}

async fn traces(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Vec<u8>) {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new());
    };
    let mut seen = seen.lock().expect("lock");
    seen.content_types.push(content_type(&headers));
    for rs in request.resource_spans {
        let service = service_of(rs.resource.as_ref());
        for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
            seen.spans.push(ExportedSpan {
                service: service.clone(),
                kind: span.kind(),
                status: span.status.as_ref().map_or(SpanStatus::Unset, |s| s.code()),
                name: span.name,
                trace_id: hex::encode(&span.trace_id),
                span_id: hex::encode(&span.span_id),
                parent_span_id: hex::encode(&span.parent_span_id),
                attributes: attributes(&span.attributes),
                start_unix_nano: span.start_time_unix_nano,
                end_unix_nano: span.end_time_unix_nano,
            });
        }
    }
    (
        StatusCode::OK,
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

fn text(v: &Value) -> String {
    match v {
        Value::StringValue(s) => s.clone(),
        Value::IntValue(i) => i.to_string(),
        Value::BoolValue(b) => b.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    }
}
