//! A workspace's configuration stamp: a counter every change to its sources or endpoints
//! raises before the change is answered. Ingest keeps sources and endpoints in memory and
//! reads only this one small item per event (strongly consistent), so a change made through
//! the API governs the very next event, in AWS as locally, at one read unit per event.

use aws_sdk_dynamodb::types::AttributeValue;

use super::keys;
use super::{Result, Store, StoreError};

impl Store {
    /// The workspace's current stamp; 0 before its first change.
    pub async fn config_stamp(&self, ws: &str) -> Result<u64> {
        let item = self.get(keys::config_stamp(ws), true).await?;
        Ok(item
            .as_ref()
            .and_then(|i| i.get(keys::STAMP))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }

    /// Raises the stamp: every cached copy of this workspace's configuration is stale from
    /// now on. Called after the change is written, so a reader that sees the new stamp reads
    /// the change too.
    pub(super) async fn bump_config(&self, ws: &str) -> Result<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::key_of(keys::config_stamp(ws))))
            .update_expression("ADD #v :one")
            .expression_attribute_names("#v", keys::STAMP)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("UpdateItem", e))?;
        Ok(())
    }
}
