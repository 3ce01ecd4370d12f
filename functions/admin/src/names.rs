//! Unique names of sources and endpoints within a workspace (`409 name_taken` otherwise).

use hookrelay_shared::api::ApiError;
use hookrelay_shared::store::{Claim, NameKind};
use http::StatusCode;

use crate::{Context, store_error};

/// Claims `name` for `id`. A claim left by an entity that no longer exists (its writer
/// stopped between the claim and the write) is taken over.
pub async fn claim(
    ctx: &Context,
    ws: &str,
    kind: NameKind,
    name: &str,
    id: &str,
) -> Result<(), ApiError> {
    let store = &ctx.store;
    let owner = match store
        .claim_name(ws, kind, name, id, None)
        .await
        .map_err(store_error)?
    {
        Claim::Held => return Ok(()),
        Claim::TakenBy(owner) => owner,
    };
    let owner_exists = match kind {
        NameKind::Source => store
            .get_source(&owner)
            .await
            .map_err(store_error)?
            .is_some_and(|s| s.workspace == ws && s.name == name),
        NameKind::Endpoint => store
            .get_endpoint(ws, &owner)
            .await
            .map_err(store_error)?
            .is_some_and(|e| e.name == name),
    };
    if !owner_exists
        && store
            .claim_name(ws, kind, name, id, Some(&owner))
            .await
            .map_err(store_error)?
            == Claim::Held
    {
        return Ok(());
    }
    let what = match kind {
        NameKind::Source => "source",
        NameKind::Endpoint => "endpoint",
    };
    let mut e = ApiError::new(
        StatusCode::CONFLICT,
        "name_taken",
        format!("another {what} of this workspace is named {name:?}"),
    );
    e.fields
        .insert("name".into(), format!("another {what} has this name"));
    Err(e)
}

pub async fn release(
    ctx: &Context,
    ws: &str,
    kind: NameKind,
    name: &str,
    id: &str,
) -> Result<(), ApiError> {
    ctx.store
        .release_name(ws, kind, name, id)
        .await
        .map_err(store_error)
}
