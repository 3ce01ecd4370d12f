use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};

use super::codec::{from_item, to_item};
use super::events::backoff;
use super::item_size::{MAX_ITEM_BYTES, item_bytes};
use super::keys::{self, EXPIRES_AT, Item, LISTING_INDEX, s};
use super::listing_pages::{self, Entry, Listed};
use super::ops::with_key;
use super::page::{self, Page, PageRequest};
use super::{Result, Store, StoreError};
use crate::Attempt;

const UNPROCESSED_RETRIES: u32 = 5;

/// The largest attempt item written as it is: a quarter of DynamoDB's limit, far above what a
/// capped response (16 KiB of body, 8 KiB of headers) and an endpoint's bounded headers make.
const ATTEMPT_ITEM_BUDGET: usize = MAX_ITEM_BYTES / 4;
/// An error message kept in an attempt cut down to fit.
const MAX_ERROR_MESSAGE: usize = 2048;

#[derive(Debug, Clone, Default)]
pub struct AttemptFilter {
    pub event_id: Option<String>,
    pub endpoint_id: Option<String>,
    pub status: Option<crate::AttemptStatus>,
}

impl Store {
    /// The item an attempt is stored as: always one DynamoDB accepts. The delivery function
    /// already caps what a receiver sends back; an attempt that is still too large is
    /// stored without its headers and response body, marked `truncated`, rather than lost
    /// (or, in a `BatchWriteItem`, costing its neighbours theirs).
    pub fn attempt_item(a: &Attempt, retention: Duration) -> Result<super::keys::Item> {
        let item = Self::attempt_item_as_is(a, retention)?;
        if item_bytes(&item) <= ATTEMPT_ITEM_BUDGET {
            return Ok(item);
        }
        let mut slim = a.clone();
        slim.request.headers.clear();
        if let Some(msg) = slim.error_message.as_mut() {
            let mut cut = msg.len().min(MAX_ERROR_MESSAGE);
            while !msg.is_char_boundary(cut) {
                cut -= 1;
            }
            msg.truncate(cut);
        }
        let response = slim.response.get_or_insert(crate::AttemptResponse {
            status: None,
            latency: 0,
            headers: Default::default(),
            body: None,
            truncated: true,
        });
        response.headers.clear();
        response.body = None;
        response.truncated = true;
        Self::attempt_item_as_is(&slim, retention)
    }

    fn attempt_item_as_is(a: &Attempt, retention: Duration) -> Result<super::keys::Item> {
        let mut item = with_key(
            to_item("attempt", a)?,
            (keys::attempts_of_event(&a.event_id), a.id.clone()),
        );
        item.insert(
            EXPIRES_AT.into(),
            AttributeValue::N(a.attempted_at.plus(retention).unix_seconds().to_string()),
        );
        Ok(item)
    }

    /// Writes attempts, and the listing pages that name them, in batches of 25, retrying
    /// what DynamoDB leaves unprocessed.
    pub async fn put_attempts(&self, attempts: &[Attempt], retention: Duration) -> Result<()> {
        let mut items = Vec::with_capacity(attempts.len() + 2);
        for a in attempts {
            items.push(Self::attempt_item(a, retention)?);
        }
        let listed: Vec<Listed> = attempts
            .iter()
            .map(|a| Listed::attempt(a, retention))
            .collect();
        items.extend(listing_pages::page_items(&listed)?);
        self.put_items(items).await
    }

    /// Writes items in batches of 25, retrying what DynamoDB leaves unprocessed; a batch
    /// DynamoDB refuses whole is written one item at a time.
    pub(super) async fn put_items(&self, items: Vec<Item>) -> Result<()> {
        let mut writes = Vec::with_capacity(items.len());
        for item in items {
            writes.push(
                WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(item)).build()?)
                    .build(),
            );
        }
        let mut first_error = None;
        for chunk in writes.chunks(25) {
            let mut pending = chunk.to_vec();
            for round in 0..=UNPROCESSED_RETRIES {
                let out = match self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending.clone())
                    .send()
                    .await
                {
                    Ok(out) => out,
                    Err(e) => {
                        // DynamoDB refuses a whole batch for one bad item: the others are
                        // written one by one, so it costs no neighbour its history.
                        tracing::warn!(error = %crate::telemetry::error_chain(&e), items = pending.len(), "BatchWriteItem refused; writing its items one by one");
                        for w in &pending {
                            let Some(item) = w.put_request().map(|p| p.item().clone()) else {
                                continue;
                            };
                            if let Err(e) = self.put(item).await {
                                first_error.get_or_insert(e);
                            }
                        }
                        break;
                    }
                };
                let left = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                    .unwrap_or_default();
                if left.is_empty() {
                    break;
                }
                if round == UNPROCESSED_RETRIES {
                    return Err(StoreError::Unprocessed {
                        op: "BatchWriteItem",
                        left: left.len(),
                    });
                }
                pending = left;
                backoff(round).await;
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Attempts of a workspace, newest first, optionally of one event, one endpoint or one
    /// status. An event's attempts are its own table partition (a few per endpoint), so an
    /// endpoint given too is a filter there; otherwise the workspace's or the endpoint's
    /// listing pages ([`listing_pages`]) are read, a status checked on their entries, and
    /// the page is read back from the table with one `BatchGetItem`.
    pub async fn find_attempts(
        &self,
        ws: &str,
        filter: &AttemptFilter,
        req: &PageRequest,
    ) -> Result<Page<Attempt>> {
        if let Some(event_id) = &filter.event_id {
            return self.find_attempts_of_event(ws, event_id, filter, req).await;
        }
        let pages = match &filter.endpoint_id {
            Some(ep) => keys::attempt_pages_of_endpoint(ws, ep),
            None => keys::attempt_pages(ws),
        };
        let below = listing_pages::cursor_id(req, &pages)?;
        let limit = usize::try_from(req.limit()).unwrap_or(1);
        let status = filter.status.map(crate::AttemptStatus::as_str);
        let keep = |e: &Entry| status.is_none_or(|st| e.status() == st);
        let mut found = self
            .read_pages(&pages, (None, below.as_deref()), limit + 1, &keep)
            .await?;
        let next_below = if found.entries.len() > limit {
            found.entries.truncate(limit);
            found.entries.last().map(|e| e.id().to_owned())
        } else {
            found.resume_below
        };
        let wanted: Vec<Item> = found
            .entries
            .iter()
            .map(|e| keys::key_of(e.attempt_key()))
            .collect();
        let data = self
            .in_table(wanted)
            .await?
            .into_iter()
            .map(|i| from_item("attempt", i))
            .collect::<Result<_>>()?;
        Ok(Page {
            data,
            next: next_below.and_then(|sk| page::encode(&keys::key(pages, sk))),
        })
    }

    async fn find_attempts_of_event(
        &self,
        ws: &str,
        event_id: &str,
        filter: &AttemptFilter,
        req: &PageRequest,
    ) -> Result<Page<Attempt>> {
        // Event ids are global: the workspace check keeps another's attempts out.
        let mut conditions = vec!["workspace = :ws"];
        let mut query = self
            .client
            .query()
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_values(":pk", s(keys::attempts_of_event(event_id)))
            .expression_attribute_values(":ws", s(ws));
        if let Some(ep) = &filter.endpoint_id {
            conditions.push("endpoint_id = :ep");
            query = query.expression_attribute_values(":ep", s(ep));
        }
        if let Some(st) = filter.status {
            conditions.push("#status = :st");
            query = query
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":st", s(st.as_str()));
        }
        self.page(
            "attempt",
            query.filter_expression(conditions.join(" AND ")),
            req,
        )
        .await
    }

    /// Whether the event was ever delivered to the endpoint: a successful attempt among all
    /// of the event's attempts, read to the end of its partition if need be.
    pub async fn delivered(&self, ws: &str, event_id: &str, endpoint_id: &str) -> Result<bool> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk")
            .filter_expression("workspace = :ws AND endpoint_id = :ep AND #status = :ok")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":pk", s(keys::attempts_of_event(event_id)))
            .expression_attribute_values(":ws", s(ws))
            .expression_attribute_values(":ep", s(endpoint_id))
            .expression_attribute_values(":ok", s(crate::AttemptStatus::Successful.as_str()))
            .projection_expression("#pk")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StoreError::dynamo("Query", e))?;
            if page.count > 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// One attempt of a workspace: found on the listing pages of its second, or for an
    /// attempt written before pages, through the `listing` index.
    pub async fn get_attempt(&self, ws: &str, id: &str) -> Result<Option<Attempt>> {
        if let Some(entry) = self.page_entry(&keys::attempt_pages(ws), id).await? {
            let item = self.get(entry.attempt_key(), false).await?;
            return item
                .filter(|i| keys::get_s(i, "workspace") == Some(ws))
                .map(|i| from_item("attempt", i))
                .transpose();
        }
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(LISTING_INDEX)
            .key_condition_expression("gsi1pk = :pk AND gsi1sk = :id")
            .expression_attribute_values(":pk", s(keys::attempts_list(ws)))
            .expression_attribute_values(":id", s(id))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        self.one_in_table(out.items.unwrap_or_default().into_iter().next())
            .await?
            .map(|i| from_item("attempt", i))
            .transpose()
    }
}
