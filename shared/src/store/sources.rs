use aws_sdk_dynamodb::types::AttributeValue;

use super::codec::{from_item, to_item};
use super::keys::{self, GSI1, GSI1PK, GSI1SK, PK, SK, s};
use super::page::{self, Page, PageRequest};
use super::{Result, Store, StoreError};
use crate::Source;

impl Store {
    pub async fn put_source(&self, source: &Source) -> Result<()> {
        let (pk, sk) = keys::source(&source.id);
        let mut item = to_item("source", source)?;
        item.insert(PK.into(), s(pk));
        item.insert(SK.into(), s(sk));
        item.insert(GSI1PK.into(), s(keys::sources_list(&source.workspace)));
        item.insert(GSI1SK.into(), s(&source.id));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("PutItem", e))?;
        Ok(())
    }

    pub async fn get_source(&self, id: &str) -> Result<Option<Source>> {
        let (pk, sk) = keys::source(id);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(keys::key(pk, sk)))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        out.item.map(|i| from_item("source", i)).transpose()
    }

    pub async fn list_sources(&self, ws: &str, req: &PageRequest) -> Result<Page<Source>> {
        self.query_gsi1_page("source", keys::sources_list(ws), req)
            .await
    }

    /// A page of one gsi1 partition, newest first.
    pub(super) async fn query_gsi1_page<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        partition: String,
        req: &PageRequest,
    ) -> Result<Page<T>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", GSI1PK)
            .expression_attribute_values(":pk", AttributeValue::S(partition))
            .scan_index_forward(false)
            .limit(req.limit())
            .set_exclusive_start_key(req.start_key()?)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        let data = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|i| from_item(what, i))
            .collect::<Result<Vec<T>>>()?;
        Ok(Page {
            data,
            next: out.last_evaluated_key.as_ref().and_then(page::encode),
        })
    }
}
