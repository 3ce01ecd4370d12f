//! Who is calling: the root admin key (everything) or a workspace API key (its own
//! workspace only). Keys are compared in constant time or by hash, never stored in clear.

use hookrelay_shared::api::ApiError;
use http::{HeaderMap, StatusCode, header};
use subtle::ConstantTimeEq;

use crate::keys::{KEY_PREFIX, hash};
use crate::{Context, store_error};

#[derive(Debug, thiserror::Error)]
#[error("the admin key must be at least 16 characters")]
pub struct AdminKeyError;

pub struct AdminKey(String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Root,
    Workspace(String),
}

impl Principal {
    /// May this caller act on workspace `ws`?
    pub fn reaches(&self, ws: &str) -> Result<(), ApiError> {
        match self {
            Principal::Root => Ok(()),
            Principal::Workspace(own) if own == ws => Ok(()),
            Principal::Workspace(_) => Err(forbidden()),
        }
    }

    pub fn root_only(&self) -> Result<(), ApiError> {
        match self {
            Principal::Root => Ok(()),
            Principal::Workspace(_) => Err(forbidden()),
        }
    }
}

fn forbidden() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "this key does not reach that resource",
    )
}

fn unauthorized(msg: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", msg)
}

impl AdminKey {
    pub fn new(key: String) -> Result<Self, AdminKeyError> {
        if key.trim().len() < 16 {
            return Err(AdminKeyError);
        }
        Ok(Self(key.trim().to_owned()))
    }

    fn is(&self, presented: &str) -> bool {
        bool::from(presented.as_bytes().ct_eq(self.0.as_bytes()))
    }
}

fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("send `Authorization: Bearer <key>`"))?;
    value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <key>`"))
}

pub async fn authenticate(ctx: &Context, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let presented = bearer(headers)?;
    if ctx.admin_key.is(presented) {
        return Ok(Principal::Root);
    }
    if !presented.starts_with(KEY_PREFIX) || presented.len() > 128 {
        return Err(unauthorized("the key is not valid"));
    }
    let digest = hash(presented);
    let workspace = match ctx.key_cache.get(&digest) {
        Some(ws) => ws,
        None => {
            let found = ctx
                .store
                .api_key_by_hash(&digest)
                .await
                .map_err(store_error)?
                .map(|k| k.workspace);
            ctx.key_cache.insert(digest, found.clone());
            found
        }
    };
    workspace
        .map(Principal::Workspace)
        .ok_or_else(|| unauthorized("the key is not valid"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn reads_bearer_keys() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h).unwrap_err().status, StatusCode::UNAUTHORIZED);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h).unwrap_err().status, StatusCode::UNAUTHORIZED);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer  k1 "),
        );
        assert_eq!(bearer(&h).unwrap(), "k1");
        let key = AdminKey::new("k".repeat(20)).unwrap();
        assert!(key.is(&"k".repeat(20)));
        assert!(!key.is("kkk"));
        assert!(AdminKey::new("short".into()).is_err());
        assert!(Principal::Workspace("a".into()).reaches("b").is_err());
        assert!(Principal::Workspace("a".into()).reaches("a").is_ok());
        assert!(Principal::Root.reaches("b").is_ok());
    }
}
