//! Spans and metrics exported over OTLP/HTTP (protobuf) when a collector is configured, the
//! OpenTelemetry way: `OTEL_EXPORTER_OTLP_ENDPOINT` (a base for `/v1/traces` and
//! `/v1/metrics`), or each signal's own `OTEL_EXPORTER_OTLP_{TRACES,METRICS}_ENDPOINT`;
//! `OTEL_TRACES_EXPORTER=none` or `OTEL_METRICS_EXPORTER=none` turns one signal off,
//! `OTEL_SERVICE_NAME` names the service. With no endpoint set nothing is built and the
//! request path pays nothing. The metrics are the EMF metrics' values (EMF stays on).
//!
//! The spans carry the ids hookrelay already sends in `traceparent` headers, so they are
//! built as `SpanData` from those ids and handed to the OTLP exporter directly: the SDK's
//! tracer would draw ids of its own. Lambda freezes the environment once the handler
//! returns, so each invocation exports its spans before it answers, bounded by a short
//! timeout: a slow or dead collector costs at most that, and never fails a request.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, RetryPolicy, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};

/// How long an invocation waits for the collector. The ADOT layer listens on localhost and
/// answers in about a millisecond; a collector that takes longer is treated as down.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(1);

mod metrics;
pub use metrics::otel_name;

const TRACES_PATH: &str = "/v1/traces";
const METRICS_PATH: &str = "/v1/metrics";

/// Where and as what spans and metrics are exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The URL spans are POSTed to, `…/v1/traces` included; `None`: spans are not exported.
    pub traces_endpoint: Option<String>,
    /// The URL metrics are POSTed to, `…/v1/metrics` included.
    pub metrics_endpoint: Option<String>,
    /// Headers sent with the metrics (`OTEL_EXPORTER_OTLP_HEADERS`, then
    /// `OTEL_EXPORTER_OTLP_METRICS_HEADERS`); the span exporter reads its own.
    pub metrics_headers: Vec<(String, String)>,
    /// The `service.name` resource attribute.
    pub service_name: String,
    pub timeout: Duration,
}

impl Config {
    /// A collector at `base` (what `OTEL_EXPORTER_OTLP_ENDPOINT` names): both signals.
    pub fn new(base: &str, service_name: impl Into<String>) -> Self {
        let base = base.trim_end_matches('/');
        Self {
            traces_endpoint: Some(format!("{base}{TRACES_PATH}")),
            metrics_endpoint: Some(format!("{base}{METRICS_PATH}")),
            metrics_headers: Vec::new(),
            service_name: service_name.into(),
            timeout: EXPORT_TIMEOUT,
        }
    }

    /// The configuration the environment gives, `None` when no endpoint is set (or
    /// `OTEL_SDK_DISABLED=true`). `default_service` names the service when
    /// `OTEL_SERVICE_NAME` does not.
    pub fn from_env(default_service: &str) -> Option<Self> {
        Self::from_vars(|name| std::env::var(name).ok(), default_service)
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>, default_service: &str) -> Option<Self> {
        let set = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return None;
        }
        // The signal's own variable is the URL as it is; the general one is a base that
        // each signal's path is appended to, as the specification says.
        let endpoint = |signal: &str, path: &str| {
            if set(&format!("OTEL_{signal}_EXPORTER"))
                .is_some_and(|v| v.eq_ignore_ascii_case("none"))
            {
                return None;
            }
            set(&format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")).or_else(|| {
                set("OTEL_EXPORTER_OTLP_ENDPOINT")
                    .map(|base| format!("{}{path}", base.trim_end_matches('/')))
            })
        };
        let traces_endpoint = endpoint("TRACES", TRACES_PATH);
        let metrics_endpoint = endpoint("METRICS", METRICS_PATH);
        if traces_endpoint.is_none() && metrics_endpoint.is_none() {
            return None;
        }
        let mut metrics_headers = headers(set("OTEL_EXPORTER_OTLP_HEADERS").as_deref());
        for (k, v) in headers(set("OTEL_EXPORTER_OTLP_METRICS_HEADERS").as_deref()) {
            metrics_headers.retain(|(known, _)| !known.eq_ignore_ascii_case(&k));
            metrics_headers.push((k, v));
        }
        Some(Self {
            traces_endpoint,
            metrics_endpoint,
            metrics_headers,
            service_name: set("OTEL_SERVICE_NAME").unwrap_or_else(|| default_service.to_owned()),
            timeout: EXPORT_TIMEOUT,
        })
    }
}

/// The resource of every export. Each function instance writes its own delta series, and
/// OTLP wants one writer per series: `service.instance.id` (new per process) and, on Lambda,
/// `faas.instance` (the environment's log stream) keep concurrent instances apart.
fn resource_attributes(service_name: &str) -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("service.name", service_name.to_owned()),
        (
            "service.instance.id",
            ulid::Ulid::new().to_string().to_lowercase(),
        ),
    ];
    let lambda = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(function) = lambda("AWS_LAMBDA_FUNCTION_NAME") {
        out.push(("cloud.provider", "aws".to_owned()));
        out.push(("faas.name", function));
        if let Some(stream) = lambda("AWS_LAMBDA_LOG_STREAM_NAME") {
            out.push(("faas.instance", stream));
        }
    }
    out
}

/// `key=value,…` with percent-encoded values, as the OTLP exporter specification writes
/// headers; a pair without `=` or with an empty key is skipped.
fn headers(list: Option<&str>) -> Vec<(String, String)> {
    list.unwrap_or_default()
        .split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let k = k.trim();
            let v = percent_encoding::percent_decode_str(v.trim()).decode_utf8_lossy();
            (!k.is_empty()).then(|| (k.to_owned(), v.into_owned()))
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("the HTTP client for OTLP export could not be built")]
    Client(#[source] reqwest::Error),
    #[error("the OTLP exporter for {endpoint:?} could not be built")]
    Exporter {
        endpoint: String,
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

/// The OTLP/HTTP exporter of one function instance.
#[derive(Debug)]
pub struct Exporter {
    spans: Option<opentelemetry_otlp::SpanExporter>,
    scope: InstrumentationScope,
    traces_endpoint: String,
    /// Metrics are encoded here (the SDK's metric types are built only by its own readers)
    /// and POSTed with the same client.
    http: reqwest::Client,
    metrics_endpoint: Option<String>,
    /// Who is exporting: the service, this process, the Lambda function and environment.
    resource: Vec<(&'static str, String)>,
    metrics_headers: reqwest::header::HeaderMap,
    timeout: Duration,
    /// A failure is logged once per environment: a collector that is down stays down, and a
    /// line per invocation would only cost log ingestion.
    warned: AtomicBool,
}

impl Exporter {
    /// Builds the exporter; no connection is made until spans are exported.
    pub fn new(config: &Config) -> Result<Self, OtlpError> {
        // The workspace's reqwest (opentelemetry-http implements its client for it), so the
        // export adds no HTTP stack of its own.
        let http = reqwest::Client::builder()
            .user_agent(crate::USER_AGENT)
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .map_err(OtlpError::Client)?;
        let resource = resource_attributes(&config.service_name);
        let spans = match &config.traces_endpoint {
            None => None,
            Some(endpoint) => {
                let mut spans = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_http_client(http.clone())
                    .with_protocol(Protocol::HttpBinary)
                    .with_endpoint(endpoint.clone())
                    .with_timeout(config.timeout)
                    // The invocation cannot wait for a retry; the next invocation's spans go
                    // anyway.
                    .with_retry_policy(RetryPolicy::disabled())
                    .build()
                    .map_err(|source| OtlpError::Exporter {
                        endpoint: endpoint.clone(),
                        source,
                    })?;
                spans.set_resource(
                    &Resource::builder_empty()
                        .with_attributes(resource.iter().map(|(k, v)| KeyValue::new(*k, v.clone())))
                        .build(),
                );
                Some(spans)
            }
        };
        Ok(Self {
            spans,
            scope: InstrumentationScope::builder("hookrelay")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
            traces_endpoint: config.traces_endpoint.clone().unwrap_or_default(),
            http,
            metrics_endpoint: config.metrics_endpoint.clone(),
            resource,
            metrics_headers: config
                .metrics_headers
                .iter()
                .filter_map(|(k, v)| {
                    let name = reqwest::header::HeaderName::from_bytes(k.as_bytes()).ok()?;
                    let value = reqwest::header::HeaderValue::from_str(v).ok()?;
                    Some((name, value))
                })
                .collect(),
            timeout: config.timeout,
            warned: AtomicBool::new(false),
        })
    }

    /// The exporter the environment configures, if any. A configuration that cannot be
    /// used is logged and exports nothing: telemetry never stops the function.
    pub fn from_env(default_service: &str) -> Option<std::sync::Arc<Self>> {
        let config = Config::from_env(default_service)?;
        match Self::new(&config) {
            Ok(e) => Some(std::sync::Arc::new(e)),
            Err(e) => {
                tracing::warn!(
                    error = %crate::telemetry::error_chain(&e),
                    "OTLP export is configured but unusable; spans are not exported"
                );
                None
            }
        }
    }

    /// Sends an invocation's spans and metrics to the collector at once, waiting at most the
    /// configured timeout. Never fails: a failure is logged at WARN, once per environment.
    pub async fn export_all(&self, spans: Vec<Span>, metrics: crate::metrics::Recorded) {
        tokio::join!(self.export(spans), self.export_metrics(metrics));
    }

    /// Sends `spans` to the collector (see [`Exporter::export_all`]).
    pub async fn export(&self, spans: Vec<Span>) {
        let Some(exporter) = &self.spans else {
            return;
        };
        let batch: Vec<SpanData> = spans
            .into_iter()
            .filter_map(|s| s.into_data(&self.scope))
            .collect();
        if batch.is_empty() {
            return;
        }
        let count = batch.len();
        let failure = match tokio::time::timeout(self.timeout, exporter.export(batch)).await {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} ms", self.timeout.as_millis()),
        };
        self.failed("spans", &self.traces_endpoint, count, &failure);
    }

    /// Sends one flush's metrics to the collector (see [`Exporter::export_all`]).
    pub async fn export_metrics(&self, recorded: crate::metrics::Recorded) {
        let Some(endpoint) = &self.metrics_endpoint else {
            return;
        };
        let Some(request) = metrics::request(&recorded, &self.resource, env!("CARGO_PKG_VERSION"))
        else {
            return;
        };
        let count = recorded.series.len();
        let sent = self
            .http
            .post(endpoint)
            .headers(self.metrics_headers.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
            .body(prost::Message::encode_to_vec(&request))
            .send();
        let failure = match tokio::time::timeout(self.timeout, sent).await {
            Ok(Ok(resp)) if resp.status().is_success() => return,
            Ok(Ok(resp)) => format!("the collector answered {}", resp.status()),
            Ok(Err(e)) => crate::telemetry::error_chain(&e),
            Err(_) => format!("no answer within {} ms", self.timeout.as_millis()),
        };
        self.failed("metrics", endpoint, count, &failure);
    }

    fn failed(&self, signal: &str, endpoint: &str, count: usize, failure: &str) {
        if self.warned.swap(true, Ordering::Relaxed) {
            tracing::debug!(endpoint, signal, count, error = %failure, "telemetry not exported");
        } else {
            tracing::warn!(
                endpoint,
                signal,
                count,
                error = %failure,
                "telemetry not exported to the OTLP collector; later failures in this environment are logged at DEBUG"
            );
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A request hookrelay answered.
    Server,
    /// A request hookrelay made.
    Client,
}

/// One finished span, with the ids hookrelay gave it.
#[derive(Debug, Clone)]
pub struct Span {
    pub name: String,
    pub kind: Kind,
    /// 32 lower-case hex digits.
    pub trace_id: String,
    /// 16 lower-case hex digits.
    pub span_id: String,
    pub parent_span_id: Option<String>,
    /// The parent is another process's span (the sender's), not one of ours.
    pub parent_is_remote: bool,
    pub sampled: bool,
    pub trace_state: Option<String>,
    pub start: SystemTime,
    pub end: SystemTime,
    /// `Some(description)` for a span that failed.
    pub error: Option<String>,
    attributes: Vec<KeyValue>,
}

impl Span {
    /// A span started at `start` and ended now.
    pub fn new(
        kind: Kind,
        name: impl Into<String>,
        trace_id: &str,
        span_id: &str,
        start: SystemTime,
    ) -> Self {
        Self {
            name: name.into(),
            kind,
            trace_id: trace_id.to_owned(),
            span_id: span_id.to_owned(),
            parent_span_id: None,
            parent_is_remote: false,
            sampled: true,
            trace_state: None,
            start,
            end: SystemTime::now().max(start),
            error: None,
            attributes: Vec::new(),
        }
    }

    /// The SERVER span of a request that accepted an event under `trace`: the span id the
    /// event carries, under the sender's span when its `traceparent` was continued. `None`
    /// when the sender's trace is not sampled.
    pub fn server(
        trace: &crate::trace_context::TraceContext,
        headers: &http::HeaderMap,
        method: &str,
        route: &str,
        status: http::StatusCode,
        start: SystemTime,
    ) -> Option<Self> {
        if !trace.sampled {
            return None;
        }
        let mut s = Self::new(
            Kind::Server,
            format!("{method} {route}"),
            &trace.trace_id,
            &trace.span_id,
            start,
        )
        .str("http.request.method", method)
        .str("http.route", route)
        .int("http.response.status_code", i64::from(status.as_u16()));
        s.trace_state = trace.state.clone();
        if let Some(parent) = crate::trace_context::incoming_parent(headers) {
            s = s.child_of(&parent, true);
        }
        // A server span is an error only for what the server got wrong, not for a refusal.
        if status.is_server_error() {
            s = s.failed(status.canonical_reason().unwrap_or("server error"));
        }
        Some(s)
    }

    pub fn child_of(mut self, parent_span_id: &str, remote: bool) -> Self {
        self.parent_span_id = Some(parent_span_id.to_owned());
        self.parent_is_remote = remote;
        self
    }

    pub fn ended_at(mut self, end: SystemTime) -> Self {
        self.end = end.max(self.start);
        self
    }

    pub fn failed(mut self, description: impl Into<String>) -> Self {
        self.error = Some(description.into());
        self
    }

    pub fn str(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.attributes.push(KeyValue::new(key, value.into()));
        self
    }

    pub fn int(mut self, key: &'static str, value: i64) -> Self {
        self.attributes.push(KeyValue::new(key, value));
        self
    }

    /// The SDK's form; `None` for ids that are not valid (nothing to join a trace with).
    fn into_data(self, scope: &InstrumentationScope) -> Option<SpanData> {
        let trace_id = TraceId::from_hex(&self.trace_id)
            .ok()
            .filter(|t| *t != TraceId::INVALID)?;
        let span_id = SpanId::from_hex(&self.span_id)
            .ok()
            .filter(|s| *s != SpanId::INVALID)?;
        let parent_span_id = match &self.parent_span_id {
            Some(p) => SpanId::from_hex(p).ok()?,
            None => SpanId::INVALID,
        };
        let flags = if self.sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let state = self
            .trace_state
            .as_deref()
            .and_then(|s| s.parse::<TraceState>().ok())
            .unwrap_or_default();
        Some(SpanData {
            span_context: SpanContext::new(trace_id, span_id, flags, false, state),
            parent_span_id,
            parent_span_is_remote: self.parent_is_remote,
            span_kind: match self.kind {
                Kind::Server => SpanKind::Server,
                Kind::Client => SpanKind::Client,
            },
            name: Cow::Owned(self.name),
            start_time: self.start,
            end_time: self.end,
            attributes: self.attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: match self.error {
                Some(description) => Status::error(description),
                None => Status::Unset,
            },
            instrumentation_scope: scope.clone(),
        })
    }
}

/// A [`crate::Timestamp`] as the spans' clock.
pub fn system_time(t: crate::Timestamp) -> SystemTime {
    let ms = t.unix_millis();
    match u64::try_from(ms) {
        Ok(ms) => SystemTime::UNIX_EPOCH + Duration::from_millis(ms),
        Err(_) => SystemTime::UNIX_EPOCH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn nothing_is_exported_without_an_endpoint() {
        assert_eq!(Config::from_vars(vars(&[]), "hookrelay-ingest"), None);
        assert_eq!(
            Config::from_vars(
                vars(&[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", " "),
                    ("OTEL_SERVICE_NAME", "x")
                ]),
                "hookrelay-ingest"
            ),
            None
        );
        assert_eq!(
            Config::from_vars(
                vars(&[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"),
                    ("OTEL_SDK_DISABLED", "true"),
                ]),
                "hookrelay-ingest"
            ),
            None
        );
    }

    #[test]
    fn the_general_endpoint_is_a_base_and_the_signals_own_a_url() {
        let c = Config::from_vars(
            vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318/")]),
            "hookrelay-delivery",
        )
        .unwrap();
        assert_eq!(
            c.traces_endpoint.as_deref(),
            Some("http://localhost:4318/v1/traces")
        );
        assert_eq!(
            c.metrics_endpoint.as_deref(),
            Some("http://localhost:4318/v1/metrics")
        );
        assert_eq!(
            c,
            Config::new("http://localhost:4318", "hookrelay-delivery")
        );
        assert_eq!(c.service_name, "hookrelay-delivery");
        assert_eq!(c.timeout, EXPORT_TIMEOUT);
        let c = Config::from_vars(
            vars(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://wrong:4318"),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "https://c.example/otlp/traces",
                ),
                ("OTEL_SERVICE_NAME", "gateway"),
            ]),
            "hookrelay-delivery",
        )
        .unwrap();
        assert_eq!(
            c.traces_endpoint.as_deref(),
            Some("https://c.example/otlp/traces")
        );
        assert_eq!(
            c.metrics_endpoint.as_deref(),
            Some("http://wrong:4318/v1/metrics")
        );
        assert_eq!(c.service_name, "gateway");
    }

    #[test]
    fn headers_are_read_as_the_specification_writes_them() {
        let c = Config::from_vars(
            vars(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "api-key=a%20b, x-team = one ,broken,=empty",
                ),
                ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "X-Team=two"),
            ]),
            "hookrelay-ingest",
        )
        .unwrap();
        assert_eq!(
            c.metrics_headers,
            vec![
                ("api-key".to_owned(), "a b".to_owned()),
                ("X-Team".to_owned(), "two".to_owned())
            ]
        );
    }

    #[test]
    fn a_signal_can_be_turned_off_or_configured_alone() {
        let c = Config::from_vars(
            vars(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"),
                ("OTEL_METRICS_EXPORTER", "none"),
            ]),
            "hookrelay-ingest",
        )
        .unwrap();
        assert!(c.traces_endpoint.is_some());
        assert_eq!(c.metrics_endpoint, None);
        let c = Config::from_vars(
            vars(&[(
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                "http://m:4318/v1/metrics",
            )]),
            "hookrelay-ingest",
        )
        .unwrap();
        assert_eq!(c.traces_endpoint, None);
        assert_eq!(
            c.metrics_endpoint.as_deref(),
            Some("http://m:4318/v1/metrics")
        );
        assert_eq!(
            Config::from_vars(
                vars(&[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"),
                    ("OTEL_METRICS_EXPORTER", "none"),
                    ("OTEL_TRACES_EXPORTER", "none"),
                ]),
                "hookrelay-ingest"
            ),
            None
        );
    }

    #[test]
    fn spans_keep_the_ids_they_are_given() {
        let scope = InstrumentationScope::builder("t").build();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let data = Span::new(
            Kind::Client,
            "POST",
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "00f067aa0ba902b7",
            start,
        )
        .child_of("53995c3f42cd8ad8", false)
        .ended_at(start + Duration::from_millis(12))
        .failed("http_status")
        .int("http.response.status_code", 500)
        .into_data(&scope)
        .unwrap();
        assert_eq!(
            data.span_context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(data.span_context.span_id().to_string(), "00f067aa0ba902b7");
        assert_eq!(data.parent_span_id.to_string(), "53995c3f42cd8ad8");
        assert_eq!(data.span_kind, SpanKind::Client);
        assert_eq!(
            data.end_time.duration_since(data.start_time).unwrap(),
            Duration::from_millis(12)
        );
        assert!(matches!(data.status, Status::Error { .. }));
        assert!(data.span_context.is_sampled());

        let bad = Span::new(Kind::Server, "x", "zz", "00f067aa0ba902b7", start);
        assert!(bad.into_data(&scope).is_none());
    }
}
