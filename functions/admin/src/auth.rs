//! Who is calling: the root admin key (everything) or a workspace API key (its own
//! workspace only). Keys are compared in constant time or by hash, never stored in clear.

use hookrelay_shared::Workspace;
use hookrelay_shared::api::ApiError;
use hookrelay_shared::store::ApiKey;
use http::{HeaderMap, StatusCode, header};
use subtle::ConstantTimeEq;

use crate::keys::{KEY_PREFIX, hash};
use crate::{Context, store_error};

#[derive(Debug, thiserror::Error)]
#[error("the admin key must be at least 16 characters")]
pub struct AdminKeyError;

pub struct AdminKey(String);

#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    Root,
    Workspace(ApiKey),
}

impl Principal {
    /// May this caller act on workspace `ws`? Checked on the name, before any read.
    pub fn reaches(&self, ws: &str) -> Result<(), ApiError> {
        match self {
            Principal::Root => Ok(()),
            Principal::Workspace(key) if key.workspace == ws => Ok(()),
            Principal::Workspace(_) => Err(forbidden()),
        }
    }

    /// Is the workspace read under the key's name the one the key was made for? A deleted
    /// workspace's keys reach neither it nor a new workspace given its name.
    pub fn holds(&self, ws: Option<&Workspace>) -> Result<(), ApiError> {
        let Principal::Workspace(key) = self else {
            return Ok(());
        };
        let same = ws.is_some_and(|ws| match &key.workspace_id {
            Some(id) => bool::from(id.as_bytes().ct_eq(ws.id.as_bytes())),
            // Made before keys named their workspace's id: a key older than its workspace
            // was made for an earlier one of that name.
            None => key.created_at >= ws.created_at,
        });
        if same {
            Ok(())
        } else {
            Err(unauthorized("the key is not valid"))
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
    let key = match ctx.key_cache.get(&digest) {
        Some(key) => key,
        None => {
            let found = ctx
                .store
                .api_key_by_hash(&digest)
                .await
                .map_err(store_error)?;
            ctx.key_cache.insert(digest, found.clone());
            found
        }
    };
    key.map(Principal::Workspace)
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
        assert!(Principal::Root.reaches("b").is_ok());
    }

    fn key(ws: &str, id: Option<&str>, created_at: i64) -> Principal {
        Principal::Workspace(ApiKey {
            id: "key_1".into(),
            workspace: ws.into(),
            workspace_id: id.map(str::to_owned),
            name: "ci".into(),
            prefix: "hrk_".into(),
            created_at: hookrelay_shared::Timestamp::from_unix_millis(created_at).unwrap(),
            hash: "00".into(),
        })
    }

    fn workspace(id: &str, created_at: i64) -> Workspace {
        Workspace {
            id: id.into(),
            name: "a".into(),
            created_at: hookrelay_shared::Timestamp::from_unix_millis(created_at).unwrap(),
            settings: Default::default(),
            version: 0,
        }
    }

    #[test]
    fn keys_reach_their_own_workspace_not_a_namesake() {
        assert!(key("a", None, 0).reaches("b").is_err());
        assert!(key("a", None, 0).reaches("a").is_ok());

        let k = key("a", Some("wsp_1"), 2_000);
        assert!(k.holds(Some(&workspace("wsp_1", 1_000))).is_ok());
        let e = k.holds(Some(&workspace("wsp_2", 3_000))).unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert!(k.holds(None).is_err());
        assert!(Principal::Root.holds(None).is_ok());

        // Keys from before the id was recorded: only a workspace older than the key.
        let old = key("a", None, 2_000);
        assert!(old.holds(Some(&workspace("wsp_1", 1_000))).is_ok());
        assert!(old.holds(Some(&workspace("wsp_2", 3_000))).is_err());
    }
}
