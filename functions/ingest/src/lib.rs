//! The ingest function: `POST /in/{source}` and `GET /healthz`.

mod accept;
mod envelope;

use std::sync::Arc;

use aws_config::SdkConfig;
use hookrelay_shared::api::{self, ApiError};
use hookrelay_shared::cache::TtlCache;
use hookrelay_shared::config::Settings;
use hookrelay_shared::queue::Queue;
use hookrelay_shared::store::Store;
use hookrelay_shared::telemetry::error_chain;
use hookrelay_shared::{Endpoint, Source};
use http::{Method, Response, StatusCode};
use lambda_http::{Request, RequestExt};

pub use accept::{Accepted, accept};

/// Built once per cold start; every invocation borrows it.
pub struct Context {
    pub store: Store,
    pub queue: Queue,
    pub settings: Settings,
    sources: TtlCache<String, Option<Source>>,
    endpoints: TtlCache<String, Arc<Vec<Endpoint>>>,
}

impl Context {
    pub fn new(aws: &SdkConfig, settings: Settings) -> Self {
        Self {
            store: Store::connect(aws, &settings),
            queue: Queue::connect(aws, &settings),
            sources: TtlCache::new(settings.cache_ttl),
            endpoints: TtlCache::new(settings.cache_ttl),
            settings,
        }
    }

    async fn source(&self, id: &str) -> Result<Option<Source>, ApiError> {
        if let Some(s) = self.sources.get(&id.to_owned()) {
            return Ok(s);
        }
        let source = self.store.get_source(id).await.map_err(unavailable)?;
        self.sources.insert(id.to_owned(), source.clone());
        Ok(source)
    }

    async fn endpoints(&self, ws: &str) -> Result<Arc<Vec<Endpoint>>, ApiError> {
        if let Some(e) = self.endpoints.get(&ws.to_owned()) {
            return Ok(e);
        }
        let eps = Arc::new(
            self.store
                .workspace_endpoints(ws)
                .await
                .map_err(unavailable)?,
        );
        self.endpoints.insert(ws.to_owned(), eps.clone());
        Ok(eps)
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
    let route = route(&path, source_param);
    match (route, req.method()) {
        (Route::Health, &Method::GET | &Method::HEAD) => api::text(StatusCode::OK, "OK"),
        (Route::Health, _) => api::method_not_allowed("GET, HEAD"),
        (Route::Ingest(source_id), &Method::POST) => {
            match accept(ctx, &source_id, req.headers(), req.body().as_ref()).await {
                Ok(accepted) => accepted.into_response(),
                Err(e) => {
                    tracing::info!(source.id = %source_id, status = e.status.as_u16(), code = e.code, "event rejected");
                    e.into_response()
                }
            }
        }
        (Route::Ingest(_), _) => api::method_not_allowed("POST"),
        (Route::Unknown, _) => ApiError::not_found("no such route").into_response(),
    }
}

#[derive(Debug, PartialEq)]
enum Route {
    Health,
    Ingest(String),
    Unknown,
}

/// API Gateway gives the `{source}` path parameter; without it (a function URL, the local
/// stack) the path itself is read.
fn route(path: &str, source_param: Option<String>) -> Route {
    let path = path.trim_end_matches('/');
    if path == "/healthz" || path.ends_with("/healthz") && !path.contains("/in/") {
        return Route::Health;
    }
    if let Some(source) = source_param.filter(|s| !s.is_empty()) {
        return Route::Ingest(source);
    }
    match path.rsplit_once("/in/") {
        Some((_, source)) if !source.is_empty() && !source.contains('/') => {
            Route::Ingest(source.to_owned())
        }
        _ => Route::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/healthz", None), Route::Health);
        assert_eq!(route("/in/src_1", None), Route::Ingest("src_1".into()));
        assert_eq!(
            route("/prod/in/src_1/", None),
            Route::Ingest("src_1".into())
        );
        assert_eq!(
            route("/in/x", Some("src_2".into())),
            Route::Ingest("src_2".into())
        );
        assert_eq!(route("/in/", None), Route::Unknown);
        assert_eq!(route("/in/a/b", None), Route::Unknown);
        assert_eq!(route("/other", None), Route::Unknown);
    }
}
