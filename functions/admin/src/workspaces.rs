//! Workspaces: `default` always exists; others are created by name.

use hookrelay_shared::api::{self, ApiError};
use hookrelay_shared::{DEFAULT_WORKSPACE, Workspace, WorkspaceSettings};
use http::{Response, StatusCode};
use lambda_http::Request;
use serde::Deserialize;

use crate::preconditions::{IfMatch, with_etag};
use crate::validate::Problems;
use crate::{Context, request, store_error};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkspaceBody {
    name: String,
    #[serde(default)]
    settings: WorkspaceSettings,
}

async fn check_settings(
    ctx: &Context,
    ws: &str,
    settings: &WorkspaceSettings,
) -> Result<(), ApiError> {
    let mut p = Problems::default();
    if let Some(id) = &settings.ops_endpoint_id {
        let exists = id.len() <= 64
            && ctx
                .store
                .get_endpoint(ws, id)
                .await
                .map_err(store_error)?
                .is_some();
        if !exists {
            p.add(
                "settings.ops_endpoint_id",
                "must be an endpoint of this workspace",
            );
        }
    }
    if settings
        .failing_after
        .is_some_and(|n| !(1..=1000).contains(&n))
    {
        p.add("settings.failing_after", "must be 1 to 1000");
    }
    if let Some(w) = &settings.warn_before_deactivation
        && !(1..=hookrelay_shared::DeactivationWarning::MAX_DAYS).contains(&w.days)
    {
        p.add(
            "settings.warn_before_deactivation.days",
            "must be 1 to 90 days",
        );
    }
    if let Some(f) = &settings.disable_failing {
        if !(1..=365).contains(&f.after_days) {
            p.add(
                "settings.disable_failing.after_days",
                "must be 1 to 365 days",
            );
        }
        if !(1..=100_000).contains(&f.min_failures) {
            p.add(
                "settings.disable_failing.min_failures",
                "must be 1 to 100000",
            );
        }
    }
    p.finish()
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let mut p = Problems::default();
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        p.add("name", "must be 1 to 64 lowercase letters, digits, - or _");
    }
    p.finish()
}

pub async fn list(ctx: &Context, req: &Request) -> Result<Response<String>, ApiError> {
    let page = request::page(&request::query(req))?;
    let list = ctx
        .store
        .list_workspaces(&page)
        .await
        .map_err(store_error)?;
    Ok(api::json(StatusCode::OK, &list))
}

pub async fn create(ctx: &Context, req: &Request) -> Result<Response<String>, ApiError> {
    let body: WorkspaceBody = request::json_body(req)?;
    check_name(&body.name)?;
    check_settings(ctx, &body.name, &body.settings).await?;
    let mut ws = ctx
        .store
        .create_workspace(&body.name)
        .await
        .map_err(store_error)?
        .ok_or_else(|| taken(&body.name))?;
    if body.settings != ws.settings {
        ws.settings = body.settings;
        ctx.store
            .put_workspace(&mut ws)
            .await
            .map_err(store_error)?;
    }
    Ok(with_etag(api::json(StatusCode::CREATED, &ws), ws.version))
}

pub fn get(ws: &Workspace) -> Result<Response<String>, ApiError> {
    Ok(with_etag(api::json(StatusCode::OK, ws), ws.version))
}

/// Names are keys: a workspace cannot be renamed; a full update replaces its settings.
pub async fn update(
    ctx: &Context,
    ws: &Workspace,
    req: &Request,
) -> Result<Response<String>, ApiError> {
    let body: WorkspaceBody = request::json_body(req)?;
    if body.name != ws.name {
        let mut e = ApiError::bad_request("immutable_field", "a workspace cannot be renamed");
        e.fields.insert("name".into(), "cannot change".into());
        return Err(e);
    }
    check_settings(ctx, &ws.name, &body.settings).await?;
    let if_match = IfMatch::of(req)?;
    if_match.check(ws.version)?;
    let mut ws = ws.clone();
    if body.settings != ws.settings {
        ws.settings = body.settings;
        ctx.store
            .put_workspace(&mut ws)
            .await
            .map_err(|e| if_match.on_write_error(store_error(e)))?;
    }
    Ok(with_etag(api::json(StatusCode::OK, &ws), ws.version))
}

pub async fn delete(
    ctx: &Context,
    ws: &Workspace,
    req: &Request,
) -> Result<Response<String>, ApiError> {
    IfMatch::of(req)?.check(ws.version)?;
    if ws.name == DEFAULT_WORKSPACE {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "workspace_protected",
            "the default workspace cannot be deleted",
        ));
    }
    if ctx
        .store
        .workspace_in_use(&ws.name)
        .await
        .map_err(store_error)?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "workspace_not_empty",
            "delete the workspace's sources and endpoints first",
        ));
    }
    // Keys first: should the workspace's own delete then fail, it stays, keyless, and the
    // delete can be repeated. Its keys would stop working after it anyway (they name its
    // id), but they must not linger in a namesake's listing.
    ctx.store
        .revoke_workspace_keys(&ws.name)
        .await
        .map_err(store_error)?;
    ctx.forget_keys();
    ctx.store
        .delete_workspace(&ws.name)
        .await
        .map_err(store_error)?;
    Ok(no_content())
}

pub fn no_content() -> Response<String> {
    let mut r = Response::new(String::new());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

fn taken(name: &str) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::CONFLICT,
        "name_taken",
        format!("a workspace named {name:?} exists"),
    );
    e.fields
        .insert("name".into(), "another workspace has this name".into());
    e
}
