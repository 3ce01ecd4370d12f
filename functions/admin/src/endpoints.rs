use std::collections::HashMap;

use hookrelay_shared::api::{self, ApiError};
use hookrelay_shared::{Endpoint, RetryConfig, Timestamp, signature};
use http::{Response, StatusCode};
use lambda_http::Request;
use serde::Deserialize;

use crate::validate::Problems;
use crate::{Context, request, store_error};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateEndpoint {
    name: String,
    url: String,
    #[serde(default = "all_events")]
    events: Vec<String>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    headers: HashMap<String, String>,
    #[serde(default)]
    retry: Option<RetryConfig>,
    #[serde(default)]
    timeout_seconds: Option<u32>,
}

fn all_events() -> Vec<String> {
    vec!["*".to_owned()]
}

fn yes() -> bool {
    true
}

/// Validates a create or full-update body and applies it to `endpoint`.
fn apply(ctx: &Context, body: CreateEndpoint, endpoint: &mut Endpoint) -> Result<(), ApiError> {
    let mut p = Problems::default();
    p.name("name", &body.name);
    p.url("url", &body.url);
    p.event_filters("events", &body.events);
    p.headers("headers", &body.headers);
    if let Some(r) = &body.retry {
        p.schedule("retry.schedule", &r.schedule);
    }
    if let Some(t) = body.timeout_seconds {
        let max = ctx.settings.max_delivery_timeout.as_secs();
        if t == 0 || u64::from(t) > max {
            p.add("timeout_seconds", format!("must be 1 to {max} seconds"));
        }
    }
    p.finish()?;
    endpoint.name = body.name.trim().to_owned();
    endpoint.url = body.url;
    endpoint.events = body.events;
    if body.enabled && !endpoint.enabled {
        endpoint.disabled_reason = None;
        endpoint.disabled_at = None;
    }
    endpoint.enabled = body.enabled;
    endpoint.headers = body.headers.into_iter().collect();
    endpoint.retry = body.retry;
    endpoint.timeout_seconds = body.timeout_seconds;
    endpoint.updated_at = Timestamp::now();
    Ok(())
}

pub async fn create(ctx: &Context, ws: &str, req: &Request) -> Result<Response<String>, ApiError> {
    let body: CreateEndpoint = request::json_body(req)?;
    let mut endpoint = Endpoint::new(ws, body.name.trim(), &body.url, Vec::new());
    apply(ctx, body, &mut endpoint)?;
    ctx.store
        .put_endpoint(&endpoint)
        .await
        .map_err(store_error)?;
    Ok(api::json(StatusCode::CREATED, &endpoint))
}

/// `PUT`: replaces every setting; the id, secret and health are kept.
pub async fn update(
    ctx: &Context,
    ws: &str,
    id: &str,
    req: &Request,
) -> Result<Response<String>, ApiError> {
    let body: CreateEndpoint = request::json_body(req)?;
    let mut endpoint = find(ctx, ws, id).await?;
    apply(ctx, body, &mut endpoint)?;
    ctx.store
        .put_endpoint(&endpoint)
        .await
        .map_err(store_error)?;
    Ok(api::json(StatusCode::OK, &endpoint))
}

pub async fn delete(ctx: &Context, ws: &str, id: &str) -> Result<Response<String>, ApiError> {
    if !ctx
        .store
        .delete_endpoint(ws, id)
        .await
        .map_err(store_error)?
    {
        return Err(ApiError::not_found(format!("no endpoint {id:?}")));
    }
    Ok(crate::workspaces::no_content())
}

async fn find(ctx: &Context, ws: &str, id: &str) -> Result<Endpoint, ApiError> {
    ctx.store
        .get_endpoint(ws, id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("no endpoint {id:?}")))
}

pub async fn get(ctx: &Context, ws: &str, id: &str) -> Result<Response<String>, ApiError> {
    let endpoint = find(ctx, ws, id).await?;
    Ok(api::json(StatusCode::OK, &endpoint))
}

/// `POST …/endpoints/{id}/secret/rotate`: a new secret signs from now on; the old one
/// signs too until the grace period ends, so receivers can switch without losing events.
pub async fn rotate_secret(
    ctx: &Context,
    ws: &str,
    id: &str,
) -> Result<Response<String>, ApiError> {
    let now = Timestamp::now();
    let endpoint = ctx
        .store
        .rotate_secret(
            ws,
            id,
            &signature::generate_secret(),
            now.plus(ctx.settings.secret_grace),
            now,
        )
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("no endpoint {id:?}")))?;
    tracing::info!(endpoint.id = %id, "endpoint secret rotated");
    Ok(api::json(StatusCode::OK, &endpoint))
}

pub async fn list(ctx: &Context, ws: &str, req: &Request) -> Result<Response<String>, ApiError> {
    let page = request::page(&request::query(req))?;
    let endpoints = ctx
        .store
        .list_endpoints(ws, &page)
        .await
        .map_err(store_error)?;
    Ok(api::json(StatusCode::OK, &endpoints))
}
