//! Workspace API keys: created here (shown once), listed, revoked. Root key only.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hookrelay_shared::api::{self, ApiError};
use hookrelay_shared::store::ApiKey;
use hookrelay_shared::{Timestamp, Workspace, ids};
use http::{Response, StatusCode};
use lambda_http::Request;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::validate::Problems;
use crate::{Context, request, store_error};

pub const KEY_PREFIX: &str = "hrk_";

pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
}

/// A key as listed: never its hash, never the key.
#[derive(Serialize)]
pub struct KeyView<'a> {
    id: &'a str,
    workspace: &'a str,
    name: &'a str,
    prefix: &'a str,
    created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
}

pub fn view<'a>(k: &'a ApiKey, key: Option<&'a str>) -> KeyView<'a> {
    KeyView {
        id: &k.id,
        workspace: &k.workspace,
        name: &k.name,
        prefix: &k.prefix,
        created_at: k.created_at,
        key,
    }
}

pub async fn create(
    ctx: &Context,
    ws: &Workspace,
    req: &Request,
) -> Result<Response<String>, ApiError> {
    let body: NewKey = request::json_body(req)?;
    let mut p = Problems::default();
    p.name("name", &body.name);
    p.finish()?;
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
    let stored = ApiKey {
        id: ids::new_id("key"),
        workspace: ws.name.clone(),
        workspace_id: Some(ws.id.clone()),
        name: body.name.trim().to_owned(),
        prefix: key.chars().take(KEY_PREFIX.len() + 6).collect(),
        created_at: Timestamp::now(),
        hash: hash(&key),
    };
    ctx.store.put_api_key(&stored).await.map_err(store_error)?;
    Ok(api::json(StatusCode::CREATED, &view(&stored, Some(&key))))
}

pub async fn list(ctx: &Context, ws: &str, req: &Request) -> Result<Response<String>, ApiError> {
    let page = request::page(&request::query(req))?;
    let keys = ctx
        .store
        .list_api_keys(ws, &page)
        .await
        .map_err(store_error)?;
    let data: Vec<_> = keys.data.iter().map(|k| view(k, None)).collect();
    Ok(api::json(
        StatusCode::OK,
        &serde_json::json!({ "data": data, "next": keys.next }),
    ))
}

pub async fn revoke(ctx: &Context, ws: &str, id: &str) -> Result<Response<String>, ApiError> {
    if !ctx
        .store
        .revoke_api_key(ws, id)
        .await
        .map_err(store_error)?
    {
        return Err(ApiError::not_found(format!("no key {id:?}")));
    }
    ctx.forget_keys();
    Ok(crate::workspaces::no_content())
}
