use std::collections::HashMap;

use hookrelay_shared::api::{self, ApiError};
use hookrelay_shared::{Endpoint, Timestamp, ids, signature};
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
}

fn all_events() -> Vec<String> {
    vec!["*".to_owned()]
}

fn yes() -> bool {
    true
}

pub async fn create(ctx: &Context, ws: &str, req: &Request) -> Result<Response<String>, ApiError> {
    let body: CreateEndpoint = request::json_body(req)?;
    let mut p = Problems::default();
    p.name("name", &body.name);
    p.url("url", &body.url);
    p.event_filters("events", &body.events);
    p.headers("headers", &body.headers);
    p.finish()?;
    let now = Timestamp::now();
    let endpoint = Endpoint {
        id: ids::new_id(ids::ENDPOINT),
        workspace: ws.to_owned(),
        name: body.name.trim().to_owned(),
        url: body.url,
        events: body.events,
        enabled: body.enabled,
        secret: signature::generate_secret(),
        headers: body.headers.into_iter().collect(),
        created_at: now,
        updated_at: now,
        last_success_at: None,
        disabled_reason: None,
        disabled_at: None,
    };
    ctx.store
        .put_endpoint(&endpoint)
        .await
        .map_err(store_error)?;
    Ok(api::json(StatusCode::CREATED, &endpoint))
}

pub async fn get(ctx: &Context, ws: &str, id: &str) -> Result<Response<String>, ApiError> {
    let endpoint = ctx
        .store
        .get_endpoint(ws, id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("no endpoint {id:?}")))?;
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
