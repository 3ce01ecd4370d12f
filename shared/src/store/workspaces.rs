use aws_sdk_dynamodb::operation::put_item::PutItemError;

use super::codec::{from_item, to_item};
use super::keys::{self, LISTING_PK, LISTING_SK, s};
use super::ops::with_key;
use super::{Result, Store, StoreError};
use crate::{DEFAULT_WORKSPACE, Timestamp, Workspace, ids};

impl Store {
    pub async fn get_workspace(&self, name: &str) -> Result<Option<Workspace>> {
        // Consistent: an `ETag` read here is what a write must still find.
        match self.get(keys::workspace(name), true).await? {
            Some(item) => Ok(Some(from_item("workspace", item)?)),
            // `default` always exists, written or not.
            None if name == DEFAULT_WORKSPACE => Ok(Some(Workspace {
                id: format!("{}_default", ids::WORKSPACE),
                name: DEFAULT_WORKSPACE.to_owned(),
                created_at: Timestamp::from_unix_millis(0).unwrap_or_else(Timestamp::now),
                settings: Default::default(),
                version: 0,
            })),
            None => Ok(None),
        }
    }

    /// Creates the workspace unless it exists; answers the stored one either way.
    pub async fn ensure_workspace(&self, name: &str) -> Result<Workspace> {
        match self.create_workspace(name).await? {
            Some(ws) => Ok(ws),
            None => self
                .get_workspace(name)
                .await?
                .ok_or(StoreError::Unprocessed {
                    op: "PutItem (workspace vanished)",
                    left: 1,
                }),
        }
    }
}

impl Store {
    /// Writes a workspace's settings (the workspace item is created for `default`, which
    /// exists unwritten).
    ///
    /// Versioned: `ws.version` must still be the stored one ([`StoreError::Conflict`]
    /// otherwise); on success it is the new one.
    pub async fn put_workspace(&self, ws: &mut Workspace) -> Result<()> {
        let expected = ws.version;
        let written = Workspace {
            version: expected + 1,
            ..ws.clone()
        };
        let mut item = with_key(to_item("workspace", &written)?, keys::workspace(&ws.name));
        item.insert(LISTING_PK.into(), s(keys::WORKSPACES_LIST));
        item.insert(LISTING_SK.into(), s(&ws.id));
        self.put_versioned(item, expected).await?;
        ws.version = expected + 1;
        Ok(())
    }

    /// Creates a workspace; `None` if the name is taken.
    pub async fn create_workspace(&self, name: &str) -> Result<Option<Workspace>> {
        let ws = Workspace {
            // `default` keeps one well-known id, written or not.
            id: if name == DEFAULT_WORKSPACE {
                format!("{}_default", ids::WORKSPACE)
            } else {
                ids::new_id(ids::WORKSPACE)
            },
            name: name.to_owned(),
            created_at: Timestamp::now(),
            settings: Default::default(),
            version: 1,
        };
        let mut item = with_key(to_item("workspace", &ws)?, keys::workspace(name));
        item.insert(LISTING_PK.into(), s(keys::WORKSPACES_LIST));
        item.insert(LISTING_SK.into(), s(&ws.id));
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
        {
            Ok(_) => Ok(Some(ws)),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(StoreError::dynamo("PutItem", e)),
        }
    }

    /// Workspaces, newest first. `default` is written on first listing so it always shows.
    pub async fn list_workspaces(
        &self,
        req: &super::PageRequest,
    ) -> Result<super::Page<Workspace>> {
        if req.cursor.is_none() {
            self.ensure_workspace(DEFAULT_WORKSPACE).await?;
        }
        self.query_listing_page("workspace", keys::WORKSPACES_LIST.to_owned(), req)
            .await
    }

    pub async fn delete_workspace(&self, name: &str) -> Result<bool> {
        self.delete(keys::workspace(name)).await
    }

    /// Does the workspace still hold sources or endpoints?
    pub async fn workspace_in_use(&self, name: &str) -> Result<bool> {
        let one = super::PageRequest {
            limit: Some(1),
            cursor: None,
        };
        Ok(!self.list_endpoints(name, &one).await?.data.is_empty()
            || !self.list_sources(name, &one).await?.data.is_empty())
    }
}
