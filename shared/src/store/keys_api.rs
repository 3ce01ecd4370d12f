//! Workspace API keys: stored only as a SHA-256 hash; the key itself is shown once.

use serde::{Deserialize, Serialize};

use super::codec::{from_item, to_item};
use super::keys::{self, LISTING_PK, LISTING_SK, s};
use super::ops::with_key;
use super::page::{Page, PageRequest};
use super::{Result, Store};
use crate::Timestamp;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub workspace: String,
    /// The id of the workspace the key was made for. Names are reused (delete a workspace,
    /// create another with its name) but ids are not, so a key reaches its own workspace
    /// only, never a namesake. Absent on keys made before it was recorded: those are held
    /// to their workspace's creation time instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    pub name: String,
    /// The first characters of the key, to tell keys apart in a listing.
    pub prefix: String,
    pub created_at: Timestamp,
    /// Hex SHA-256 of the key; the key itself is never stored.
    pub hash: String,
}

impl Store {
    pub async fn put_api_key(&self, key: &ApiKey) -> Result<()> {
        let mut item = with_key(to_item("api key", key)?, keys::api_key(&key.hash));
        item.insert(LISTING_PK.into(), s(keys::api_keys_list(&key.workspace)));
        item.insert(LISTING_SK.into(), s(&key.id));
        self.put(item).await
    }

    pub async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>> {
        let item = self.get(keys::api_key(hash), true).await?;
        item.map(|i| from_item("api key", i)).transpose()
    }

    pub async fn list_api_keys(&self, ws: &str, req: &PageRequest) -> Result<Page<ApiKey>> {
        self.query_listing_page("api key", keys::api_keys_list(ws), req)
            .await
    }

    /// Revokes every key of a workspace, for its deletion. Answers how many there were.
    pub async fn revoke_workspace_keys(&self, ws: &str) -> Result<usize> {
        let req = PageRequest {
            limit: Some(100),
            cursor: None,
        };
        let mut revoked = 0;
        // Each round deletes the page it read, so the next first page holds what is left.
        loop {
            let page = self.list_api_keys(ws, &req).await?;
            if page.data.is_empty() {
                return Ok(revoked);
            }
            for k in &page.data {
                self.delete(keys::api_key(&k.hash)).await?;
                revoked += 1;
            }
        }
    }

    /// Revokes a key of a workspace by id. Answers whether it existed.
    pub async fn revoke_api_key(&self, ws: &str, id: &str) -> Result<bool> {
        let mut req = PageRequest {
            limit: Some(100),
            cursor: None,
        };
        loop {
            let page = self.list_api_keys(ws, &req).await?;
            if let Some(k) = page.data.iter().find(|k| k.id == id) {
                return self.delete(keys::api_key(&k.hash)).await;
            }
            match page.next {
                Some(next) => req.cursor = Some(next),
                None => return Ok(false),
            }
        }
    }
}
