//! A local OTLP/HTTP collector on 127.0.0.1: decodes and keeps every span POSTed to
//! `/v1/traces` (protobuf, as the functions export), and hands out exporters pointed at it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hookrelay_shared::otlp::{Config, Exporter};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
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

#[derive(Default)]
struct Seen {
    spans: Vec<ExportedSpan>,
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
        exporter_to(&format!("{}/v1/traces", self.url), service)
    }

    pub fn spans(&self) -> Vec<ExportedSpan> {
        self.seen.lock().expect("lock").spans.clone()
    }

    /// The `Content-Type` of every export request received.
    pub fn content_types(&self) -> Vec<String> {
        self.seen.lock().expect("lock").content_types.clone()
    }
}

/// An exporter to `traces_endpoint` (the full URL).
pub fn exporter_to(traces_endpoint: &str, service: &str) -> Arc<Exporter> {
    Arc::new(Exporter::new(&Config::new(traces_endpoint, service)).expect("exporter"))
}

/// A URL on 127.0.0.1 where nothing listens: a port bound and released.
pub async fn dead_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}/v1/traces")
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
    seen.content_types.push(
        headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
    );
    for rs in request.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
            .map(text)
            .unwrap_or_default();
        for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
            seen.spans.push(ExportedSpan {
                service: service.clone(),
                kind: span.kind(),
                status: span.status.as_ref().map_or(SpanStatus::Unset, |s| s.code()),
                name: span.name,
                trace_id: hex::encode(&span.trace_id),
                span_id: hex::encode(&span.span_id),
                parent_span_id: hex::encode(&span.parent_span_id),
                attributes: span
                    .attributes
                    .iter()
                    .filter_map(|kv| {
                        let v = kv.value.as_ref()?.value.as_ref()?;
                        Some((kv.key.clone(), text(v)))
                    })
                    .collect(),
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
