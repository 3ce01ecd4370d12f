//! Spans exported over OTLP/HTTP (protobuf) when a collector is configured, the
//! OpenTelemetry way: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME`. With neither endpoint set nothing is
//! built and the request path pays nothing.
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

const TRACES_PATH: &str = "/v1/traces";

/// Where and as what spans are exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The URL spans are POSTed to, `…/v1/traces` included.
    pub traces_endpoint: String,
    /// The `service.name` resource attribute.
    pub service_name: String,
    pub timeout: Duration,
}

impl Config {
    /// A collector at `traces_endpoint` (the full URL).
    pub fn new(traces_endpoint: impl Into<String>, service_name: impl Into<String>) -> Self {
        Self {
            traces_endpoint: traces_endpoint.into(),
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
        let traces_endpoint = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| {
            set("OTEL_EXPORTER_OTLP_ENDPOINT")
                .map(|base| format!("{}{TRACES_PATH}", base.trim_end_matches('/')))
        })?;
        let service_name = set("OTEL_SERVICE_NAME").unwrap_or_else(|| default_service.to_owned());
        Some(Self::new(traces_endpoint, service_name))
    }
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

/// The OTLP/HTTP span exporter of one function instance.
#[derive(Debug)]
pub struct Exporter {
    inner: opentelemetry_otlp::SpanExporter,
    scope: InstrumentationScope,
    endpoint: String,
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
        let mut inner = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(http)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(config.traces_endpoint.clone())
            .with_timeout(config.timeout)
            // The invocation cannot wait for a retry; the next invocation's spans go anyway.
            .with_retry_policy(RetryPolicy::disabled())
            .build()
            .map_err(|source| OtlpError::Exporter {
                endpoint: config.traces_endpoint.clone(),
                source,
            })?;
        inner.set_resource(
            &Resource::builder_empty()
                .with_service_name(config.service_name.clone())
                .build(),
        );
        Ok(Self {
            inner,
            scope: InstrumentationScope::builder("hookrelay")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
            endpoint: config.traces_endpoint.clone(),
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

    /// Sends `spans` to the collector, waiting at most the configured timeout. Never fails:
    /// a failure is logged at WARN, once per environment.
    pub async fn export(&self, spans: Vec<Span>) {
        let batch: Vec<SpanData> = spans
            .into_iter()
            .filter_map(|s| s.into_data(&self.scope))
            .collect();
        if batch.is_empty() {
            return;
        }
        let count = batch.len();
        let failure = match tokio::time::timeout(self.timeout, self.inner.export(batch)).await {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} ms", self.timeout.as_millis()),
        };
        if self.warned.swap(true, Ordering::Relaxed) {
            tracing::debug!(endpoint = %self.endpoint, spans = count, error = %failure, "spans not exported");
        } else {
            tracing::warn!(
                endpoint = %self.endpoint,
                spans = count,
                error = %failure,
                "spans not exported to the OTLP collector; later failures in this environment are logged at DEBUG"
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
        assert_eq!(c.traces_endpoint, "http://localhost:4318/v1/traces");
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
        assert_eq!(c.traces_endpoint, "https://c.example/otlp/traces");
        assert_eq!(c.service_name, "gateway");
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
