//! The admin function: the management API under `/workspaces/{ws}/…`, behind a bearer key.

mod auth;
mod config;
mod console;
mod deadline;
mod dlq;
mod dry_run;
mod endpoints;
mod events;
mod keys;
mod names;
mod preconditions;
mod request;
mod secrets;
mod sources;
mod validate;
mod workspaces;

use aws_config::SdkConfig;
use hookrelay_shared::api::{self, ApiError};
use hookrelay_shared::config::Settings;
use hookrelay_shared::queue::Queue;
use hookrelay_shared::store::{Store, StoreError};
use http::{Method, Response};
use lambda_http::Request;

pub use auth::AdminKeyError;
pub use console::{
    CONTENT_SECURITY_POLICY as CONSOLE_CONTENT_SECURITY_POLICY, FILE_NAMES as CONSOLE_FILES,
};
pub use deadline::Deadline;
/// What `/dlq?queue=` takes.
pub use dlq::QUEUES as DEAD_LETTER_QUEUES;

/// The answers whose shape differs from the model, so the OpenAPI document can be checked
/// against what the code really writes.
pub mod views {
    pub use crate::dry_run::Outcome as DryRunOutcome;
    pub use crate::events::{
        EventView, PAYLOAD_ENCODINGS, linked_view as linked_event, view as event,
    };
    pub use crate::keys::{KeyView, view as key};
    pub use crate::sources::{SourceView, view as source};
}

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error(transparent)]
    AdminKey(#[from] AdminKeyError),
    #[error("the delivery client could not be built")]
    Sender(#[from] hookrelay_shared::outbound::SenderError),
}

/// The `service.name` of the spans, unless `OTEL_SERVICE_NAME` says otherwise.
pub const SERVICE_NAME: &str = "hookrelay-admin";

pub struct Context {
    /// Sends test pings exactly as deliveries go out: signed, through the SSRF guard.
    pub sender: hookrelay_shared::outbound::Sender,
    pub store: Store,
    pub queue: Queue,
    pub settings: Settings,
    pub ops: hookrelay_shared::ops_events::OpsEvents,
    /// Events a recovery reads per step (and records its progress after).
    pub recovery_page: i32,
    admin_key: auth::AdminKey,
    /// Published events' SERVER spans over OTLP, when a collector is configured.
    pub otlp: Option<std::sync::Arc<hookrelay_shared::otlp::Exporter>>,
    /// Key hash → the key (or none), for the cache TTL: revocation takes that long. A
    /// workspace's deletion needs no wait: the workspace is read on every request and a key
    /// must match it (see `auth::Principal::holds`).
    key_cache: hookrelay_shared::cache::TtlCache<String, Option<hookrelay_shared::store::ApiKey>>,
}

impl Context {
    pub fn new(
        aws: &SdkConfig,
        settings: Settings,
        admin_key: String,
    ) -> Result<Self, ContextError> {
        Ok(Self {
            sender: hookrelay_shared::outbound::Sender::new(&settings)?,
            store: Store::connect(aws, &settings).answering_changes(settings.config_lease),
            queue: Queue::connect(aws, &settings),
            ops: hookrelay_shared::ops_events::OpsEvents::connect(aws, &settings, "admin"),
            key_cache: hookrelay_shared::cache::TtlCache::new(settings.cache_ttl),
            recovery_page: endpoints::RECOVERY_PAGE,
            settings,
            admin_key: auth::AdminKey::new(admin_key)?,
            otlp: hookrelay_shared::otlp::Exporter::from_env(SERVICE_NAME),
        })
    }

    fn forget_keys(&self) {
        self.key_cache.clear();
    }
}

/// Routes one request within the invocation's deadline. Never fails: every outcome is an
/// HTTP answer.
pub async fn handle(ctx: &Context, req: Request) -> Response<String> {
    let deadline = Deadline::of_invocation(&req);
    handle_with_deadline(ctx, req, deadline).await
}

/// [`handle`], answering by `deadline`. Long work (test pings, dead-letter redrive,
/// recovery) stops in time by itself and reports its progress; anything else still running
/// at the deadline is cut off with `deadline_exceeded` rather than left to the gateway's
/// timeout, which would answer nothing useful.
pub async fn handle_with_deadline(
    ctx: &Context,
    req: Request,
    deadline: Deadline,
) -> Response<String> {
    // The answer to a change waits out the config lease (see `Store::changes_settled`):
    // the work stops early enough for that wait to fit too.
    let deadline = deadline.less(deadline::ANSWER_RESERVE + ctx.settings.config_lease);
    // On the heap: the router's future is as large as its largest handler's, and a caller
    // that holds several admin calls in one future (a test, the config sync CLI) would
    // otherwise carry them all on its stack.
    let routed = tokio::time::timeout_at(
        deadline.instant().into(),
        Box::pin(route(ctx, &req, deadline)),
    )
    .await
    .unwrap_or_else(|_| Err(deadline_exceeded("the call")));
    // Whatever the answer, a change already made governs every event that follows it.
    ctx.store.changes_settled().await;
    match routed {
        Ok(resp) => resp,
        Err(e) => {
            tracing::info!(method = %req.method(), status = e.status.as_u16(), code = e.code, "admin request refused");
            e.into_response()
        }
    }
}

/// The answer to work that ran out of time before it could do anything worth reporting.
pub(crate) fn deadline_exceeded(what: &str) -> ApiError {
    ApiError::new(
        http::StatusCode::SERVICE_UNAVAILABLE,
        "deadline_exceeded",
        format!("{what} could not finish within the function's time limit; call again"),
    )
}

/// The OpenAPI 3.1 description of the admin and ingest APIs, served without a key.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

async fn route(
    ctx: &Context,
    req: &Request,
    deadline: Deadline,
) -> Result<Response<String>, ApiError> {
    if console::owns(req.uri().path()) {
        return Ok(console::serve(req.method(), req.uri().path()));
    }
    let path = req.uri().path().trim_end_matches('/');
    if path == "/openapi.json" {
        return match *req.method() {
            Method::GET => Ok(api::json_raw(http::StatusCode::OK, OPENAPI.to_owned())),
            _ => Err(not_allowed("GET")),
        };
    }
    let principal = auth::authenticate(ctx, req.headers()).await?;
    let m = req.method();
    if (path.ends_with("/dlq") || path.contains("/dlq/")) && !path.contains("/workspaces") {
        principal.root_only()?;
    }
    if let Some((_, dlq_path)) = path
        .split_once("/dlq")
        .filter(|(pre, _)| !pre.contains("/workspaces"))
    {
        return match (dlq_path, m) {
            ("", &Method::GET) => dlq::peek(ctx, req, deadline).await,
            ("/redrive", &Method::POST) => dlq::redrive(ctx, req, deadline).await,
            ("", _) => Err(not_allowed("GET")),
            ("/redrive", _) => Err(not_allowed("POST")),
            _ => Err(ApiError::not_found("no such route")),
        };
    }
    if path == "/workspaces" || path.ends_with("/workspaces") && !path.contains("/workspaces/") {
        principal.root_only()?;
        return match *m {
            Method::GET => workspaces::list(ctx, req).await,
            Method::POST => workspaces::create(ctx, req).await,
            _ => Err(not_allowed("GET, POST")),
        };
    }
    let rest = path
        .split_once("/workspaces/")
        .map(|(_, rest)| rest)
        .ok_or_else(|| ApiError::not_found("no such route"))?;
    let segments: Vec<&str> = rest.split('/').collect();
    // Far longer than any name or id: DynamoDB would refuse such a key.
    if segments.iter().any(|s| s.len() > 256) {
        return Err(ApiError::not_found("no such route"));
    }
    let ws_name = segments[0];
    // Checked before any read, so another workspace's existence is not revealed either.
    principal.reaches(ws_name)?;
    if segments.get(1) == Some(&"keys") || segments.len() == 1 && m == Method::DELETE {
        principal.root_only()?;
    }
    let workspace = ctx
        .store
        .get_workspace(ws_name)
        .await
        .map_err(store_error)?;
    // A key whose workspace was deleted (and maybe recreated under its name) is no key.
    principal.holds(workspace.as_ref())?;
    let workspace =
        workspace.ok_or_else(|| ApiError::not_found(format!("no workspace {ws_name:?}")))?;
    let ws = workspace.name.as_str();
    match (&segments[1..], m) {
        ([], &Method::GET) => workspaces::get(&workspace),
        ([], &Method::PUT) => workspaces::update(ctx, &workspace, req).await,
        ([], &Method::DELETE) => workspaces::delete(ctx, &workspace, req).await,
        ([], _) => Err(not_allowed("GET, PUT, DELETE")),
        (["sources"], &Method::GET) => sources::list(ctx, ws, req).await,
        (["sources"], &Method::POST) => sources::create(ctx, ws, req).await,
        (["sources", id], &Method::GET) => sources::get(ctx, ws, id).await,
        (["sources", id], &Method::PUT) => sources::update(ctx, ws, id, req).await,
        (["sources", id], &Method::DELETE) => sources::delete(ctx, ws, id, req).await,
        (["endpoints"], &Method::GET) => endpoints::list(ctx, ws, req).await,
        (["endpoints"], &Method::POST) => endpoints::create(ctx, ws, req, deadline).await,
        (["endpoints", id], &Method::GET) => endpoints::get(ctx, ws, id).await,
        (["endpoints", id], &Method::PUT) => endpoints::update(ctx, ws, id, req, deadline).await,
        (["endpoints", id], &Method::DELETE) => endpoints::delete(ctx, ws, id, req).await,
        (["endpoints", id, "test"], &Method::POST) => endpoints::test(ctx, ws, id, deadline).await,
        (["sources", id, "dry-run"], &Method::POST) => dry_run::source(ctx, ws, id, req).await,
        (["endpoints", id, "dry-run"], &Method::POST) => dry_run::endpoint(ctx, ws, id, req).await,
        (["endpoints", id, "enable"], &Method::POST) => {
            endpoints::enable(ctx, ws, id, req, deadline).await
        }
        (["endpoints", id, "secret", "rotate"], &Method::POST) => {
            endpoints::rotate_secret(ctx, ws, id).await
        }
        (["endpoints", id, "secret"], &Method::GET) => {
            principal.root_only()?;
            endpoints::reveal_secret(ctx, ws, id).await
        }
        (["events"], &Method::GET) => events::list(ctx, ws, req).await,
        (["events"], &Method::POST) => events::publish(ctx, ws, req).await,
        (["events", id], &Method::GET) => events::get(ctx, ws, id).await,
        (["events", id, "retry"], &Method::POST) => events::retry(ctx, ws, id, req).await,
        (["attempts"], &Method::GET) => events::list_attempts(ctx, ws, req).await,
        (["attempts", id], &Method::GET) => events::get_attempt(ctx, ws, id).await,
        (["config", "sync"], &Method::POST) => config::sync(ctx, ws, req).await,
        (["config", "dump"], &Method::GET) => config::dump(ctx, ws).await,
        (["config", "sync"], _) => Err(not_allowed("POST")),
        (["config", "dump"], _) => Err(not_allowed("GET")),
        (["keys"], &Method::GET) => keys::list(ctx, ws, req).await,
        (["keys"], &Method::POST) => keys::create(ctx, &workspace, req).await,
        (["keys", id], &Method::DELETE) => keys::revoke(ctx, ws, id).await,
        (["keys"], _) => Err(not_allowed("GET, POST")),
        (["keys", _], _) => Err(not_allowed("DELETE")),
        (["sources"] | ["endpoints"] | ["events"], _) => Err(not_allowed("GET, POST")),
        (["sources", _] | ["endpoints", _], _) => Err(not_allowed("GET, PUT, DELETE")),
        (["events", _] | ["attempts"] | ["attempts", _] | ["endpoints", _, "secret"], _) => {
            Err(not_allowed("GET"))
        }
        (
            ["endpoints", _, "secret", "rotate"]
            | ["events", _, "retry"]
            | ["endpoints", _, "test"]
            | ["endpoints", _, "enable"]
            | ["sources", _, "dry-run"]
            | ["endpoints", _, "dry-run"],
            _,
        ) => Err(not_allowed("POST")),
        _ => Err(ApiError::not_found("no such route")),
    }
}

fn not_allowed(allow: &'static str) -> ApiError {
    let mut e = ApiError::new(
        http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this route accepts {allow}"),
    );
    e.allow = Some(allow);
    e
}

pub(crate) fn queue_error(e: hookrelay_shared::queue::QueueError) -> ApiError {
    tracing::error!(error = %hookrelay_shared::telemetry::error_chain(&e), "queue error");
    ApiError::unavailable("the queue is unavailable; retry later")
}

pub(crate) fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::BadCursor => ApiError::bad_request("invalid_cursor", "the cursor is not valid"),
        StoreError::Conflict => preconditions::conflict(),
        other => {
            let msg = hookrelay_shared::telemetry::error_chain(&other);
            tracing::error!(error = %msg, "storage error");
            ApiError::unavailable("storage is unavailable; retry later")
        }
    }
}
