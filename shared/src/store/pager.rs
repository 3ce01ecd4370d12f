//! One page of a listing query, newest first, filled across as many requests as it takes
//! within a budget.
//!
//! A listing whose index already holds only what it lists (no filter expression) is one
//! `Query` for `limit + 1` items, plus the `BatchGetItem` that reads an index page back. A
//! listing narrowed further by a filter expression asks DynamoDB to evaluate more each time
//! (4×, 16×, … the page) until the page is full, the partition ends or [`QUERY_BUDGET`]
//! queries are spent. Only in that last case can a page be short, or even empty, and still
//! carry a cursor: the items evaluated so far did not match, and more may.
//!
//! The extra item asked for tells whether anything follows, so a cursor is given only when
//! more items exist (or the budget ran out). A cursor is the key of the last item shown,
//! which the next page starts after.

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use serde::de::DeserializeOwned;

use super::codec::from_item;
use super::keys::{self, Item, PK, SK};
use super::page::{self, Page, PageRequest};
use super::{Result, Store, StoreError};

/// Queries one page may send before it answers with what it has.
pub const QUERY_BUDGET: u32 = 4;
/// The most items one filtered query asks DynamoDB to evaluate (it stops at 1 MB anyway).
const MAX_EVALUATED: usize = 4096;

impl Store {
    /// One page of `query` (a key condition on `:pk`, optionally a filter expression).
    pub(super) async fn page<T: DeserializeOwned>(
        &self,
        what: &'static str,
        query: QueryFluentBuilder,
        req: &PageRequest,
    ) -> Result<Page<T>> {
        let index = query.get_index_name().clone();
        let (pk_attr, sk_attr) =
            keys::key_attributes(index.as_deref()).ok_or(StoreError::BadCursor)?;
        let mut start = req.start_key()?;
        if let Some(start) = &start {
            let partition = query
                .get_expression_attribute_values()
                .as_ref()
                .and_then(|v| v.get(":pk"));
            if !is_key_of(start, pk_attr, sk_attr) || partition != start.get(pk_attr) {
                return Err(StoreError::BadCursor);
            }
        }
        let filtered = query.get_filter_expression().is_some();
        let limit = usize::try_from(req.limit()).unwrap_or(1);
        let mut kept: Vec<Item> = Vec::new();
        let mut next = None;
        for round in 0..QUERY_BUDGET {
            let ask = if filtered {
                ((limit + 1) << (2 * (round + 1))).min(MAX_EVALUATED)
            } else {
                limit + 1 - kept.len()
            };
            let out = query
                .clone()
                .table_name(&self.table)
                .scan_index_forward(false)
                .limit(i32::try_from(ask).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| {
                    // A cursor from another listing can still fail DynamoDB's own key checks.
                    if req.cursor.is_some()
                        && e.as_service_error().and_then(|s| s.meta().code())
                            == Some("ValidationException")
                    {
                        StoreError::BadCursor
                    } else {
                        StoreError::dynamo("Query", e)
                    }
                })?;
            kept.extend(out.items.unwrap_or_default());
            if kept.len() > limit {
                kept.truncate(limit);
                next = kept.last().and_then(|i| cursor_of(i, pk_attr, sk_attr));
                break;
            }
            match out.last_evaluated_key {
                None => break,
                Some(last) if round + 1 == QUERY_BUDGET => next = page::encode(&last),
                Some(last) => start = Some(last),
            }
        }
        if index.is_some() {
            kept = self.in_table(kept).await?;
        }
        Ok(Page {
            data: kept
                .into_iter()
                .map(|i| from_item(what, i))
                .collect::<Result<_>>()?,
            next,
        })
    }
}

/// Whether `key` has exactly the attributes a start key of this index (or the table) has.
fn is_key_of(key: &Item, pk_attr: &str, sk_attr: &str) -> bool {
    let wanted = [PK, SK, pk_attr, sk_attr];
    key.keys().all(|k| wanted.contains(&k.as_str())) && wanted.iter().all(|k| key.contains_key(*k))
}

/// The cursor that starts the next page after `item`: its table and index keys.
fn cursor_of(item: &Item, pk_attr: &str, sk_attr: &str) -> Option<String> {
    let key: Item = [PK, SK, pk_attr, sk_attr]
        .into_iter()
        .filter_map(|k| Some((k.to_owned(), item.get(k)?.clone())))
        .collect();
    page::encode(&key)
}
