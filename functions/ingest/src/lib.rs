//! The ingest function: `POST /in/{source}` (or a source's custom path) and `GET /healthz`.

pub mod accept;
mod envelope;
pub mod lark;
pub mod plugins;
pub mod proof;
pub mod provider;
mod sparse_json;
mod stamp_lease;
pub mod verify;

use std::sync::Arc;

use aws_config::SdkConfig;
use hookrelay_shared::api::{self, ApiError};
use hookrelay_shared::cache::TtlCache;
use hookrelay_shared::config::Settings;
use hookrelay_shared::held_metrics::{self, HeldMetrics};
use hookrelay_shared::metrics::{self as m, Metrics};
use hookrelay_shared::otlp::{self, Exporter};
use hookrelay_shared::queue::Queue;
use hookrelay_shared::store::Store;
use hookrelay_shared::telemetry::error_chain;
use hookrelay_shared::{Endpoint, Source, ids};
use http::{Method, Response, StatusCode};
use lambda_http::{Request, RequestExt};

use stamp_lease::{Sent, StampLeases};

pub use accept::{MAX_HEADER_BYTES, RequestSpan, SourceRef, accept};

/// The `service.name` of the spans, unless `OTEL_SERVICE_NAME` says otherwise.
pub const SERVICE_NAME: &str = "hookrelay-ingest";

/// Built once per cold start; every invocation borrows it.
pub struct Context {
    pub store: Store,
    pub queue: Queue,
    pub settings: Settings,
    /// Where each request's span goes; `None` (no collector configured) costs nothing.
    pub otlp: Option<Arc<Exporter>>,
    /// Sources and each workspace's endpoints, with the workspace's config stamp they were
    /// read at: used only while the stamp is unchanged (read again once its lease ran out).
    sources: TtlCache<SourceRef, Stamped<Source>>,
    endpoints: TtlCache<String, Stamped<Arc<Vec<Endpoint>>>>,
    stamps: StampLeases,
    /// Requests' routine metric values, written a line per many requests.
    metric_lines: HeldMetrics,
}

#[derive(Clone)]
struct Stamped<T> {
    stamp: u64,
    value: T,
}

/// What an event is routed by: its source and the endpoints of the source's workspace.
pub struct Routing {
    pub source: Source,
    pub endpoints: Arc<Vec<Endpoint>>,
}

impl Context {
    pub fn new(aws: &SdkConfig, settings: Settings) -> Self {
        Self {
            store: Store::connect(aws, &settings),
            queue: Queue::connect(aws, &settings),
            sources: TtlCache::new(settings.cache_ttl),
            endpoints: TtlCache::new(settings.cache_ttl),
            stamps: StampLeases::new(),
            otlp: Exporter::from_env(SERVICE_NAME),
            metric_lines: HeldMetrics::new("ingest", held_metrics::INGEST_ROUTINE),
            settings,
        }
    }

    /// The source and endpoints as they are now: the copies in memory when the workspace's
    /// config stamp has not moved since they were read, else fresh reads. `None` for an
    /// unknown source (not cached, so a source created later is found at once).
    async fn routing(&self, target: &SourceRef) -> Result<Option<Routing>, ApiError> {
        if let Some(cached) = self.sources.get(target) {
            let ws = &cached.value.workspace;
            let stamp = self.stamp(ws).await?;
            if cached.stamp == stamp
                && let Some(eps) = self.endpoints.get(ws).filter(|e| e.stamp == stamp)
            {
                return Ok(Some(Routing {
                    source: cached.value,
                    endpoints: eps.value,
                }));
            }
            return self.read_routing(target, Some(stamp)).await;
        }
        self.read_routing(target, None).await
    }

    /// The workspace's config stamp: the one held while its lease runs, else read.
    async fn stamp(&self, ws: &str) -> Result<u64, ApiError> {
        if let Some(value) = self.stamps.current(ws) {
            return Ok(value);
        }
        let sent = Sent::now();
        let stamp = self.store.config_stamp(ws).await.map_err(unavailable)?;
        self.stamps.hold(ws, stamp, sent);
        Ok(stamp.value)
    }

    /// Reads the source and its workspace's endpoints after reading the stamp they are
    /// cached under, so the copies are at least as new as the stamp says.
    async fn read_routing(
        &self,
        target: &SourceRef,
        stamp: Option<u64>,
    ) -> Result<Option<Routing>, ApiError> {
        let stamp = match stamp {
            Some(s) => s,
            None => {
                // The workspace is known only once the source is read: read it, then the
                // stamp, then everything again below.
                let Some(source) = self.read_source(target).await? else {
                    return Ok(None);
                };
                self.stamp(&source.workspace).await?
            }
        };
        let Some(source) = self.read_source(target).await? else {
            self.sources.remove(target);
            return Ok(None);
        };
        let endpoints = Arc::new(
            self.store
                .workspace_endpoints(&source.workspace)
                .await
                .map_err(unavailable)?,
        );
        self.sources.insert(
            target.clone(),
            Stamped {
                stamp,
                value: source.clone(),
            },
        );
        self.endpoints.insert(
            source.workspace.clone(),
            Stamped {
                stamp,
                value: endpoints.clone(),
            },
        );
        Ok(Some(Routing { source, endpoints }))
    }

    async fn read_source(&self, target: &SourceRef) -> Result<Option<Source>, ApiError> {
        Ok(match target {
            SourceRef::Id(id) if ids::has_prefix(id, ids::SOURCE) => {
                self.store.get_source(id).await.map_err(unavailable)?
            }
            SourceRef::Id(_) => None,
            // Longer than any mount path can be (and than a DynamoDB key may be).
            SourceRef::Path(path) if path.len() > 256 => None,
            // A path claim outlives its move for a moment: the source must still say so.
            SourceRef::Path(path) => self
                .store
                .source_for_path(path)
                .await
                .map_err(unavailable)?
                .filter(|s| s.path.as_deref() == Some(path.as_str())),
        })
    }
}

fn unavailable(e: impl std::error::Error) -> ApiError {
    tracing::error!(error = %error_chain(&e), "storage unavailable");
    ApiError::unavailable("the event store is unavailable; retry later")
}

/// Routes one request. Never fails: every outcome is an HTTP answer.
pub async fn handle(ctx: &Context, req: Request) -> Response<String> {
    let path = req.uri().path().to_owned();
    let source_param = req.path_parameters().first("source").map(str::to_owned);
    let target = match (route(&path, source_param), req.method()) {
        (Route::Health, &Method::GET | &Method::HEAD) => return api::text(StatusCode::OK, "OK"),
        (Route::Health, _) => return api::method_not_allowed("GET, HEAD"),
        (Route::Ingest(target), &Method::POST) => target,
        (Route::Ingest(_), _) => return api::method_not_allowed("POST"),
    };
    let started = std::time::Instant::now();
    let start_time = std::time::SystemTime::now();
    let mut metrics = Metrics::new("ingest");
    let mut span = RequestSpan::new(req.headers());
    let resp = match accept(
        ctx,
        &target,
        req.headers(),
        req.body().as_ref(),
        &mut metrics,
        &mut span,
    )
    .await
    {
        Ok(resp) => {
            if resp.headers().contains_key("idempotent-replayed") {
                metrics.add(m::EVENTS_DUPLICATED, 1.0);
            } else if resp.headers().contains_key("hookrelay-event-id") {
                metrics.add(m::EVENTS_RECEIVED, 1.0);
            }
            resp
        }
        Err(e) => {
            tracing::info!(source = ?target, status = e.status.as_u16(), code = e.code, "event rejected");
            metrics.add_by(m::EVENTS_REJECTED, "Reason", e.code, 1.0);
            e.into_response()
        }
    };
    metrics.add(m::INGEST_LATENCY, started.elapsed().as_secs_f64() * 1000.0);
    let recorded = metrics.take();
    ctx.metric_lines.hold(&recorded);
    if let Some(exporter) = &ctx.otlp {
        exporter
            .export_all(
                request_span(&span, &target, req.headers(), &resp, start_time),
                recorded,
            )
            .await;
    }
    resp
}

/// The request's SERVER span, with the event, source and workspace it concerned.
fn request_span(
    span: &RequestSpan,
    target: &SourceRef,
    headers: &http::HeaderMap,
    resp: &Response<String>,
    start: std::time::SystemTime,
) -> Vec<otlp::Span> {
    let route = match target {
        SourceRef::Id(_) => "/in/{source}",
        SourceRef::Path(path) => path.as_str(),
    };
    let Some(mut s) = otlp::Span::server(&span.trace, headers, "POST", route, resp.status(), start)
    else {
        return Vec::new();
    };
    if let Some(id) = resp
        .headers()
        .get("hookrelay-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty())
    {
        s = s.str("hookrelay.event.id", id);
    }
    if let Some(id) = &span.source_id {
        s = s.str("hookrelay.source.id", id.as_str());
    }
    if let Some(ws) = &span.workspace {
        s = s.str("hookrelay.workspace", ws.as_str());
    }
    vec![s]
}

#[derive(Debug, PartialEq)]
enum Route {
    Health,
    Ingest(SourceRef),
}

/// API Gateway gives the `{source}` path parameter; without it (a function URL, the local
/// stack) the path itself is read. Any other path may be a source's custom mount.
fn route(path: &str, source_param: Option<String>) -> Route {
    let path = path.trim_end_matches('/');
    if path == "/healthz" {
        return Route::Health;
    }
    if let Some(source) = source_param.filter(|s| !s.is_empty()) {
        return Route::Ingest(SourceRef::Id(source));
    }
    match path.strip_prefix("/in/") {
        Some(source) if !source.is_empty() && !source.contains('/') => {
            Route::Ingest(SourceRef::Id(source.to_owned()))
        }
        _ if path.is_empty() => Route::Ingest(SourceRef::Path("/".to_owned())),
        _ => Route::Ingest(SourceRef::Path(path.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let id = |s: &str| Route::Ingest(SourceRef::Id(s.into()));
        let path = |s: &str| Route::Ingest(SourceRef::Path(s.into()));
        assert_eq!(route("/healthz", None), Route::Health);
        assert_eq!(route("/in/src_1", None), id("src_1"));
        assert_eq!(route("/in/src_1/", None), id("src_1"));
        assert_eq!(route("/in/x", Some("src_2".into())), id("src_2"));
        assert_eq!(route("/in/a/b", None), path("/in/a/b"));
        assert_eq!(route("/log", None), path("/log"));
        assert_eq!(route("/hooks/github/", None), path("/hooks/github"));
        assert_eq!(route("", None), path("/"));
    }
}
