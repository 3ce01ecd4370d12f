use hookrelay_shared::api::{self, ApiError};
use hookrelay_shared::model::SourcePlugin;
use hookrelay_shared::rate_limit::RateLimit;
use hookrelay_shared::{Source, SourceResponse, Timestamp, Verification};
use http::{Response, StatusCode};
use lambda_http::Request;
use serde::{Deserialize, Serialize};

use hookrelay_shared::store::NameKind;

use crate::preconditions::{IfMatch, with_etag};
use crate::validate::Problems;
use crate::{Context, names, request, store_error};

/// A source's settings, as the API and config files give them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSource {
    pub name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type_header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type_pointer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_event_type: Option<String>,
    #[serde(default)]
    pub verification: Verification,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_tolerance_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<SourceResponse>,
    #[serde(default)]
    pub accept_raw: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<SourcePlugin>,
}

impl CreateSource {
    /// The settings of a stored source: what a config dump writes (secrets masked; sync
    /// keeps the stored ones).
    pub fn of(s: &Source) -> Self {
        let s = &crate::secrets::source(s);
        Self {
            name: s.name.clone(),
            enabled: s.enabled,
            event_type_header: s.event_type_header.clone(),
            event_type_pointer: s.event_type_pointer.clone(),
            default_event_type: s.default_event_type.clone(),
            verification: s.verification.clone(),
            timestamp_tolerance_seconds: s.timestamp_tolerance_seconds,
            path: s.path.clone(),
            response: s.response.clone(),
            accept_raw: s.accept_raw,
            rate_limit: s.rate_limit,
            plugins: s.plugins.clone(),
        }
    }
}

fn yes() -> bool {
    true
}

/// A source as the API shows it: with the path senders post to, and its secrets masked.
#[derive(Serialize)]
pub struct SourceView {
    #[serde(flatten)]
    source: Source,
    ingest_path: String,
}

pub fn view(source: &Source) -> SourceView {
    SourceView {
        ingest_path: source
            .path
            .clone()
            .unwrap_or_else(|| format!("/in/{}", source.id)),
        source: crate::secrets::source(source),
    }
}

/// Validates a create or full-update body and applies it to `source`.
pub fn apply(mut body: CreateSource, source: &mut Source) -> Result<Option<String>, ApiError> {
    crate::secrets::keep_verification(&mut body.verification, Some(&source.verification))?;
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
    if let Some(ptr) = &body.event_type_pointer
        && !ptr.starts_with('/')
    {
        p.add("event_type_pointer", "must be a JSON pointer such as /type");
    }
    if let Some(t) = body.timestamp_tolerance_seconds
        && !(1..=86_400).contains(&t)
    {
        p.add("timestamp_tolerance_seconds", "must be 1 to 86400");
    }
    if let Some(path) = &body.path {
        p.mount_path("path", path);
    }
    if let Some(r) = &body.response {
        if !(200..=299).contains(&r.status) {
            p.add("response.status", "must be a 2xx status");
        }
        let media_type = r.content_type.split(';').next().unwrap_or_default().trim();
        if http::HeaderValue::from_str(&r.content_type).is_err()
            || media_type.split('/').filter(|p| !p.is_empty()).count() != 2
        {
            p.add(
                "response.content_type",
                "must be a media type such as text/plain",
            );
        }
        if r.body.len() > 4096 {
            p.add("response.body", "must be at most 4096 bytes");
        }
    }
    p.verification("verification", &body.verification);
    p.rate_limit("rate_limit", body.rate_limit.as_ref());
    p.source_plugins("plugins", &body.plugins);
    p.finish()?;
    source.name = body.name.trim().to_owned();
    source.enabled = body.enabled;
    source.event_type_header = body.event_type_header.map(|h| h.to_ascii_lowercase());
    source.event_type_pointer = body.event_type_pointer;
    source.default_event_type = body.default_event_type;
    source.verification = body.verification;
    source.timestamp_tolerance_seconds = body.timestamp_tolerance_seconds;
    source.response = body.response;
    source.accept_raw = body.accept_raw;
    source.rate_limit = body.rate_limit;
    source.plugins = body.plugins;
    source.updated_at = Timestamp::now();
    Ok(body.path.map(|p| p.trim_end_matches('/').to_owned()))
}

/// Mounts the source on `path` unless another source holds it.
async fn claim(ctx: &Context, source: &Source, path: &str) -> Result<(), ApiError> {
    if ctx
        .store
        .claim_source_path(path, &source.id)
        .await
        .map_err(store_error)?
    {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "path_taken",
            format!("another source is mounted on {path}"),
        ))
    }
}

pub async fn create(ctx: &Context, ws: &str, req: &Request) -> Result<Response<String>, ApiError> {
    let body: CreateSource = request::json_body(req)?;
    let mut source = Source::new(ws, body.name.trim());
    let path = apply(body, &mut source)?;
    save(ctx, None, &mut source, path).await?;
    Ok(with_etag(
        api::json(StatusCode::CREATED, &view(&source)),
        source.version,
    ))
}

/// `PUT`: replaces every setting; the id, and the path claim when unchanged, are kept.
pub async fn update(
    ctx: &Context,
    ws: &str,
    id: &str,
    req: &Request,
) -> Result<Response<String>, ApiError> {
    let body: CreateSource = request::json_body(req)?;
    let if_match = IfMatch::of(req)?;
    let mut source = find(ctx, ws, id).await?;
    if_match.check(source.version)?;
    let old = source.clone();
    let new_path = apply(body, &mut source)?;
    save(ctx, Some(&old), &mut source, new_path)
        .await
        .map_err(|e| if_match.on_write_error(e))?;
    Ok(with_etag(
        api::json(StatusCode::OK, &view(&source)),
        source.version,
    ))
}

/// Writes a created (`old` is none) or updated source, moving its name and path claims
/// when they changed.
pub async fn save(
    ctx: &Context,
    old: Option<&Source>,
    source: &mut Source,
    new_path: Option<String>,
) -> Result<(), ApiError> {
    let old_name = old.map(|o| o.name.as_str());
    let old_path = old.and_then(|o| o.path.clone());
    let renamed = old_name != Some(source.name.as_str());
    let claimed_path = new_path.clone().filter(|p| old_path.as_ref() != Some(p));
    if renamed {
        names::claim(
            ctx,
            &source.workspace,
            NameKind::Source,
            &source.name,
            &source.id,
        )
        .await?;
    }
    if let Some(path) = &claimed_path {
        claim(ctx, source, path).await?;
    }
    source.path = new_path;
    if let Err(e) = ctx.store.put_source(source).await {
        // Lost a race (or failed): give back what this write claimed.
        source.path = old_path.clone();
        if let Some(path) = claimed_path {
            ctx.store
                .release_source_path(&path, &source.id)
                .await
                .map_err(store_error)?;
        }
        if renamed {
            release_name(ctx, source, &source.name).await?;
        }
        return Err(store_error(e));
    }
    if let Some(old_path) = old_path
        && source.path.as_ref() != Some(&old_path)
    {
        ctx.store
            .release_source_path(&old_path, &source.id)
            .await
            .map_err(store_error)?;
    }
    if let Some(old_name) = old_name
        && old_name != source.name
    {
        release_name(ctx, source, old_name).await?;
    }
    Ok(())
}

/// Gives back the source's claim on `name`.
async fn release_name(ctx: &Context, source: &Source, name: &str) -> Result<(), ApiError> {
    names::release(ctx, &source.workspace, NameKind::Source, name, &source.id).await
}

/// Deletes a source with its name and path claims.
pub async fn remove(ctx: &Context, source: &Source) -> Result<(), ApiError> {
    ctx.store.delete_source(source).await.map_err(store_error)?;
    release_name(ctx, source, &source.name).await
}

pub async fn delete(
    ctx: &Context,
    ws: &str,
    id: &str,
    req: &Request,
) -> Result<Response<String>, ApiError> {
    let if_match = IfMatch::of(req)?;
    let source = find(ctx, ws, id).await?;
    if_match.check(source.version)?;
    remove(ctx, &source).await?;
    Ok(crate::workspaces::no_content())
}

pub(crate) async fn find(ctx: &Context, ws: &str, id: &str) -> Result<Source, ApiError> {
    ctx.store
        .get_source(id)
        .await
        .map_err(store_error)?
        .filter(|s| s.workspace == ws)
        .ok_or_else(|| ApiError::not_found(format!("no source {id:?}")))
}

pub async fn get(ctx: &Context, ws: &str, id: &str) -> Result<Response<String>, ApiError> {
    let source = find(ctx, ws, id).await?;
    Ok(with_etag(
        api::json(StatusCode::OK, &view(&source)),
        source.version,
    ))
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
