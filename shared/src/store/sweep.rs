//! The sweeper's reads: all are queries on sparse, sharded GSIs with a range condition, so
//! they touch only what is stale or stranded, never the whole table.

use aws_sdk_dynamodb::types::AttributeValue;

use super::keys::{
    self, FAILING_INDEX, FAILING_SHARD, FAILING_SINCE, Item, PENDING_INDEX, PK, SHARDS, SK,
    SWEEP_INDEX, s,
};
use super::{Result, Store, StoreError};
use crate::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRef {
    pub workspace: String,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEvent {
    pub event_key: String,
}

/// Where the next page of a shard of the `pending` index starts.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingCursor(Item);

impl Store {
    /// Enabled endpoints whose last activity is before `cutoff`.
    pub async fn stale_endpoints(&self, cutoff: Timestamp) -> Result<Vec<EndpointRef>> {
        let items = self
            .query_shards(SWEEP_INDEX, "sweep_shard", "sweep_at", cutoff)
            .await?;
        Ok(items.iter().filter_map(endpoint_ref).collect())
    }

    /// Enabled endpoints whose current failure streak began before `cutoff`.
    pub async fn failing_endpoints(&self, cutoff: Timestamp) -> Result<Vec<EndpointRef>> {
        let items = self
            .query_shards(FAILING_INDEX, FAILING_SHARD, FAILING_SINCE, cutoff)
            .await?;
        Ok(items.iter().filter_map(endpoint_ref).collect())
    }

    /// One page of events accepted before `cutoff` whose tasks were never confirmed queued,
    /// from one shard of the `pending` index, starting after `start`. Answers where the next
    /// page starts, none when the shard is done. A backlog is read a page at a time, so the
    /// sweeper's memory does not grow with it; events it queues leave the index, so a later
    /// run starts again from the front and finds only what is left.
    pub async fn pending_page(
        &self,
        shard: u32,
        cutoff: Timestamp,
        start: Option<PendingCursor>,
        limit: i32,
    ) -> Result<(Vec<PendingEvent>, Option<PendingCursor>)> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(PENDING_INDEX)
            .key_condition_expression("#shard = :shard AND #at < :cutoff")
            .expression_attribute_names("#shard", "pending_shard")
            .expression_attribute_names("#at", "pending_at")
            .expression_attribute_values(":shard", AttributeValue::S(shard.to_string()))
            .expression_attribute_values(":cutoff", s(cutoff.to_string()))
            .set_exclusive_start_key(start.map(|c| c.0))
            .limit(limit.max(1))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        let events = out
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|item| {
                Some(PendingEvent {
                    event_key: keys::get_s(item, PK)?.to_owned(),
                })
            })
            .collect();
        Ok((events, out.last_evaluated_key.map(PendingCursor)))
    }

    async fn query_shards(
        &self,
        index: &str,
        shard_attr: &str,
        at_attr: &str,
        cutoff: Timestamp,
    ) -> Result<Vec<Item>> {
        let mut all = Vec::new();
        for shard in 0..SHARDS {
            let mut pages = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .key_condition_expression("#shard = :shard AND #at < :cutoff")
                .expression_attribute_names("#shard", shard_attr)
                .expression_attribute_names("#at", at_attr)
                .expression_attribute_values(":shard", AttributeValue::S(shard.to_string()))
                .expression_attribute_values(":cutoff", s(cutoff.to_string()))
                .into_paginator()
                .items()
                .send();
            while let Some(item) = pages.next().await {
                all.push(item.map_err(|e| StoreError::dynamo("Query", e))?);
            }
        }
        Ok(all)
    }
}

fn endpoint_ref(item: &Item) -> Option<EndpointRef> {
    let ws = keys::get_s(item, PK)?.strip_prefix("WS#")?;
    let id = keys::get_s(item, SK)?.strip_prefix(keys::ENDPOINT_SK_PREFIX)?;
    Some(EndpointRef {
        workspace: ws.to_owned(),
        id: id.to_owned(),
    })
}
