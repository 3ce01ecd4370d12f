use hookrelay_shared::api::{self, ApiError};
use hookrelay_shared::{Source, Timestamp, ids};
use http::{Response, StatusCode};
use lambda_http::Request;
use serde::{Deserialize, Serialize};

use crate::validate::Problems;
use crate::{Context, request, store_error};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSource {
    name: String,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    event_type_header: Option<String>,
    #[serde(default)]
    default_event_type: Option<String>,
}

fn yes() -> bool {
    true
}

/// A source as the API shows it: with the path senders post to.
#[derive(Serialize)]
struct SourceView<'a> {
    #[serde(flatten)]
    source: &'a Source,
    ingest_path: String,
}

fn view(source: &Source) -> SourceView<'_> {
    SourceView {
        ingest_path: format!("/in/{}", source.id),
        source,
    }
}

pub async fn create(ctx: &Context, ws: &str, req: &Request) -> Result<Response<String>, ApiError> {
    let body: CreateSource = request::json_body(req)?;
    let mut p = Problems::default();
    p.name("name", &body.name);
    if let Some(h) = &body.event_type_header {
        p.header_name("event_type_header", h);
    }
    if let Some(t) = &body.default_event_type
        && (t.is_empty() || t.len() > 128)
    {
        p.add("default_event_type", "must be 1 to 128 characters");
    }
    p.finish()?;
    let now = Timestamp::now();
    let source = Source {
        id: ids::new_id(ids::SOURCE),
        workspace: ws.to_owned(),
        name: body.name.trim().to_owned(),
        enabled: body.enabled,
        event_type_header: body.event_type_header.map(|h| h.to_ascii_lowercase()),
        default_event_type: body.default_event_type,
        created_at: now,
        updated_at: now,
    };
    ctx.store.put_source(&source).await.map_err(store_error)?;
    Ok(api::json(StatusCode::CREATED, &view(&source)))
}

pub async fn get(ctx: &Context, ws: &str, id: &str) -> Result<Response<String>, ApiError> {
    let source = ctx
        .store
        .get_source(id)
        .await
        .map_err(store_error)?
        .filter(|s| s.workspace == ws)
        .ok_or_else(|| ApiError::not_found(format!("no source {id:?}")))?;
    Ok(api::json(StatusCode::OK, &view(&source)))
}

pub async fn list(ctx: &Context, ws: &str, req: &Request) -> Result<Response<String>, ApiError> {
    let page = request::page(&request::query(req))?;
    let sources = ctx
        .store
        .list_sources(ws, &page)
        .await
        .map_err(store_error)?;
    let data: Vec<_> = sources.data.iter().map(view).collect();
    Ok(api::json(
        StatusCode::OK,
        &serde_json::json!({ "data": data, "next": sources.next }),
    ))
}
