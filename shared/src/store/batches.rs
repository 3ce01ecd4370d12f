//! A batch endpoint's open batch: one item per endpoint holding the members collected so far,
//! in the order they were added, and the batch's number. Adding is one conditional
//! `UpdateItem`, so any number of writers (ingest instances, delivery instances) add to the
//! same batch without losing or reordering a member, and the one whose add fills the batch
//! seals it. The item outlives its batches (their number goes on) and expires with the
//! retention period once the endpoint stops receiving.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::keys::{self, Item, s};
use super::{Result, Store, StoreError};
use crate::{EventRef, Timestamp};

const SEQ: &str = "seq";
const MEMBERS: &str = "members";
const MEMBER_IDS: &str = "member_ids";
const COUNT: &str = "n";
const BYTES: &str = "bytes";
const OPENED_AT: &str = "opened_at";
const SEALED_AT: &str = "sealed_at";
const SETTLED: &str = "settled";

/// An endpoint's batch item as read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchState {
    /// The open (or sealing) batch's number; the next one's once it is sent.
    pub seq: u64,
    pub members: Vec<EventRef>,
    pub bytes: u64,
    /// When the first member was added (unix ms).
    pub opened_at: Option<i64>,
    /// Set while a writer sends the sealed batch (unix ms).
    pub sealed_at: Option<i64>,
    /// The highest batch number whose first attempt has ended.
    pub settled: u64,
}

impl BatchState {
    fn from_item(item: &Item) -> Self {
        let n = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok())
        };
        let members = item
            .get(MEMBERS)
            .and_then(|v| v.as_l().ok())
            .map(|l| {
                l.iter()
                    .filter_map(|m| {
                        let m = m.as_m().ok()?;
                        Some(EventRef {
                            event_key: m.get("k")?.as_s().ok()?.clone(),
                            event_id: m.get("i")?.as_s().ok()?.clone(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            seq: n(SEQ).unwrap_or(1).max(1) as u64,
            members,
            bytes: n(BYTES).unwrap_or(0).max(0) as u64,
            opened_at: n(OPENED_AT),
            sealed_at: n(SEALED_AT),
            settled: n(SETTLED).unwrap_or(0).max(0) as u64,
        }
    }

    pub fn contains(&self, event_id: &str) -> bool {
        self.members.iter().any(|m| m.event_id == event_id)
    }
}

/// What an add did.
#[derive(Debug, Clone, PartialEq)]
pub enum Added {
    /// Added; the batch as it is now.
    Added(BatchState),
    /// The event is in the open batch already (an add repeated after a crash).
    AlreadyIn(BatchState),
    /// The open batch has no room (by count or bytes): seal it, then add again.
    Full(BatchState),
    /// Another writer is sending the open batch: add again in a moment.
    Sealing(BatchState),
}

/// One event joining a batch.
#[derive(Debug, Clone, Copy)]
pub struct NewMember<'a> {
    pub event: &'a EventRef,
    /// Its payload's size.
    pub bytes: u64,
    pub now: Timestamp,
    /// When the batch item may expire (unix seconds) if nothing more happens to it.
    pub expires_at: i64,
}

/// The limits an add checks.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub size: u32,
    pub max_bytes: u64,
}

impl Store {
    /// Adds `member` (`len` bytes of payload) to the endpoint's open batch, opening one if
    /// there is none, unless the batch is full, being sealed, or holds it already.
    pub async fn add_to_batch(
        &self,
        ws: &str,
        endpoint_id: &str,
        add: NewMember<'_>,
        limits: BatchLimits,
    ) -> Result<Added> {
        let NewMember {
            event: member,
            bytes: len,
            now,
            expires_at,
        } = add;
        let entry = AttributeValue::M(HashMap::from([
            ("k".to_owned(), s(&member.event_key)),
            ("i".to_owned(), s(&member.event_id)),
        ]));
        // An event bigger than the byte limit still goes, alone.
        let room = limits.max_bytes.checked_sub(len).map_or(-1, |r| r as i64);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::key_of(keys::batch_state(ws, endpoint_id))))
            .update_expression(
                "SET #m = list_append(if_not_exists(#m, :empty), :entry), \
                 #open = if_not_exists(#open, :now), #seq = if_not_exists(#seq, :one), \
                 expires_at = :exp \
                 ADD #n :one, #b :len, #ids :idset",
            )
            .condition_expression(
                "attribute_not_exists(#sealed) AND NOT contains(#ids, :id) AND \
                 (attribute_not_exists(#n) OR (#n < :size AND #b <= :room))",
            )
            .expression_attribute_names("#m", MEMBERS)
            .expression_attribute_names("#open", OPENED_AT)
            .expression_attribute_names("#seq", SEQ)
            .expression_attribute_names("#n", COUNT)
            .expression_attribute_names("#b", BYTES)
            .expression_attribute_names("#ids", MEMBER_IDS)
            .expression_attribute_names("#sealed", SEALED_AT)
            .expression_attribute_values(":empty", AttributeValue::L(Vec::new()))
            .expression_attribute_values(":entry", AttributeValue::L(vec![entry]))
            .expression_attribute_values(":now", n(now.unix_millis()))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":exp", n(expires_at))
            .expression_attribute_values(":len", n(len as i64))
            .expression_attribute_values(
                ":idset",
                AttributeValue::Ss(vec![member.event_id.clone()]),
            )
            .expression_attribute_values(":id", s(&member.event_id))
            .expression_attribute_values(":size", n(i64::from(limits.size)))
            .expression_attribute_values(":room", n(room))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Added::Added(BatchState::from_item(
                &out.attributes.unwrap_or_default(),
            ))),
            Err(e) => {
                let old = refused_item(&e).ok_or_else(|| StoreError::dynamo("UpdateItem", e))?;
                let state = match old {
                    Some(item) => BatchState::from_item(&item),
                    // Not returned with the refusal: read it.
                    None => self.batch_state(ws, endpoint_id).await?.unwrap_or_default(),
                };
                Ok(if state.contains(&member.event_id) {
                    Added::AlreadyIn(state)
                } else if state.sealed_at.is_some() {
                    Added::Sealing(state)
                } else {
                    Added::Full(state)
                })
            }
        }
    }

    /// The endpoint's batch item, strongly consistent.
    pub async fn batch_state(&self, ws: &str, endpoint_id: &str) -> Result<Option<BatchState>> {
        let item = self.get(keys::batch_state(ws, endpoint_id), true).await?;
        Ok(item.as_ref().map(BatchState::from_item))
    }

    /// Seals open batch `seq` for sending: answers its members if this call sealed it. A
    /// batch another writer sealed before `stale_before` (it died before sending) is taken
    /// over; its members, and so its id, are the same.
    pub async fn seal_batch(
        &self,
        ws: &str,
        endpoint_id: &str,
        seq: u64,
        now: Timestamp,
        stale_before: Timestamp,
    ) -> Result<Option<BatchState>> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::key_of(keys::batch_state(ws, endpoint_id))))
            .update_expression("SET #sealed = :now")
            .condition_expression(
                "#seq = :seq AND attribute_exists(#n) AND \
                 (attribute_not_exists(#sealed) OR #sealed < :stale)",
            )
            .expression_attribute_names("#sealed", SEALED_AT)
            .expression_attribute_names("#seq", SEQ)
            .expression_attribute_names("#n", COUNT)
            .expression_attribute_values(":now", n(now.unix_millis()))
            .expression_attribute_values(":seq", n(seq as i64))
            .expression_attribute_values(":stale", n(stale_before.unix_millis()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Some(BatchState::from_item(
                &out.attributes.unwrap_or_default(),
            ))),
            Err(e) if is_refused(&e) => Ok(None),
            Err(e) => Err(StoreError::dynamo("UpdateItem", e)),
        }
    }

    /// Empties sealed batch `seq` once it is queued: the next add opens batch `seq + 1`.
    pub async fn reset_batch(&self, ws: &str, endpoint_id: &str, seq: u64) -> Result<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::key_of(keys::batch_state(ws, endpoint_id))))
            .update_expression("REMOVE #m, #ids, #n, #b, #open, #sealed ADD #seq :one")
            .condition_expression("#seq = :seq AND attribute_exists(#sealed)")
            .expression_attribute_names("#m", MEMBERS)
            .expression_attribute_names("#ids", MEMBER_IDS)
            .expression_attribute_names("#n", COUNT)
            .expression_attribute_names("#b", BYTES)
            .expression_attribute_names("#open", OPENED_AT)
            .expression_attribute_names("#sealed", SEALED_AT)
            .expression_attribute_names("#seq", SEQ)
            .expression_attribute_values(":seq", n(seq as i64))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        // Refused: reset already by a writer that took the batch over.
        done_unless_failed(result)
    }

    /// Records that batch `seq`'s first attempt has ended: the next batch may go.
    pub async fn settle_batch(&self, ws: &str, endpoint_id: &str, seq: u64) -> Result<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::key_of(keys::batch_state(ws, endpoint_id))))
            .update_expression("SET #settled = :seq")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(#settled) OR #settled < :seq)",
            )
            .expression_attribute_names("#settled", SETTLED)
            .expression_attribute_values(":seq", n(seq as i64))
            .send()
            .await;
        // Refused: a later batch is settled already.
        done_unless_failed(result)
    }
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A conditional update that either happened or was refused is done; only a failure is an
/// error.
fn done_unless_failed<O, R>(
    result: std::result::Result<O, SdkError<UpdateItemError, R>>,
) -> Result<()>
where
    SdkError<UpdateItemError, R>: Into<aws_sdk_dynamodb::Error>,
{
    match result {
        Ok(_) => Ok(()),
        Err(e) if is_refused(&e) => Ok(()),
        Err(e) => Err(StoreError::dynamo("UpdateItem", e)),
    }
}

fn is_refused<R>(e: &SdkError<UpdateItemError, R>) -> bool {
    matches!(
        e.as_service_error(),
        Some(UpdateItemError::ConditionalCheckFailedException(_))
    )
}

/// For a refused conditional update, the item as it was (when DynamoDB returned it); `None`
/// for any other error.
fn refused_item<R>(e: &SdkError<UpdateItemError, R>) -> Option<Option<Item>> {
    match e.as_service_error() {
        Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
            Some(c.item.clone().filter(|i| !i.is_empty()))
        }
        _ => None,
    }
}
