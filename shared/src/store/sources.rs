use aws_sdk_dynamodb::types::AttributeValue;

use super::codec::{from_item, to_item};
use super::keys::{self, LISTING_INDEX, LISTING_PK, LISTING_SK, s};
use super::ops::with_key;
use super::page::{Page, PageRequest};
use super::{Result, Store};
use crate::Source;

impl Store {
    /// Writes a source's settings. Versioned: `source.version` must still be the stored one
    /// ([`super::StoreError::Conflict`] otherwise); on success it is the new one.
    pub async fn put_source(&self, source: &mut Source) -> Result<()> {
        let expected = source.version;
        let written = Source {
            version: expected + 1,
            ..source.clone()
        };
        let mut item = with_key(to_item("source", &written)?, keys::source(&source.id));
        item.insert(LISTING_PK.into(), s(keys::sources_list(&source.workspace)));
        item.insert(LISTING_SK.into(), s(&source.id));
        self.put_versioned(item, expected).await?;
        source.version = expected + 1;
        self.bump_config(&source.workspace).await
    }

    /// Strongly consistent: ingest reads it after a newer config stamp.
    pub async fn get_source(&self, id: &str) -> Result<Option<Source>> {
        let item = self.get(keys::source(id), true).await?;
        item.map(|i| from_item("source", i)).transpose()
    }

    pub async fn list_sources(&self, ws: &str, req: &PageRequest) -> Result<Page<Source>> {
        self.query_listing_page("source", keys::sources_list(ws), req)
            .await
    }

    /// A page of one listing partition, newest first.
    pub(super) async fn query_listing_page<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        partition: String,
        req: &PageRequest,
    ) -> Result<Page<T>> {
        let query = self
            .client
            .query()
            .index_name(LISTING_INDEX)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", LISTING_PK)
            .expression_attribute_values(":pk", AttributeValue::S(partition));
        self.page(what, query, req).await
    }
}

impl Store {
    /// Mounts a source on a custom path, unless another source holds it. Answers whether
    /// the path is now this source's.
    pub async fn claim_source_path(&self, path: &str, source_id: &str) -> Result<bool> {
        let mut item = with_key(Default::default(), keys::source_path(path));
        item.insert("source_id".into(), s(source_id));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR source_id = :id")
            .expression_attribute_values(":id", s(source_id))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(super::StoreError::dynamo("PutItem", e)),
        }
    }

    /// The source mounted on a custom path.
    pub async fn source_for_path(&self, path: &str) -> Result<Option<Source>> {
        let Some(item) = self.get(keys::source_path(path), true).await? else {
            return Ok(None);
        };
        match keys::get_s(&item, "source_id") {
            Some(id) => self.get_source(id).await,
            None => Ok(None),
        }
    }
}

impl Store {
    /// Removes a source and its custom path. Answers whether it existed.
    pub async fn delete_source(&self, source: &Source) -> Result<bool> {
        if let Some(path) = &source.path {
            self.release_source_path(path, &source.id).await?;
        }
        let existed = self.delete(keys::source(&source.id)).await?;
        self.bump_config(&source.workspace).await?;
        Ok(existed)
    }

    /// Frees a custom path if this source holds it.
    pub async fn release_source_path(&self, path: &str, source_id: &str) -> Result<()> {
        self.delete_if_owned(keys::source_path(path), "source_id", source_id)
            .await
    }
}
