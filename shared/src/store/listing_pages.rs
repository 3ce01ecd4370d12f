//! Listings kept a page at a time: the attempts of a workspace and of each endpoint, and the
//! events of a workspace, of each source and of each type. The delivery function writes an
//! invocation's attempts in one `BatchWriteItem`, and with them one page item per listing
//! naming them, instead of an index copy per attempt and listing (a write unit each). It
//! lists an invocation's newly accepted events the same way, before it delivers them
//! (`DeliveryTask::list`). A page of ten entries is one write unit, so a full batch pays a
//! unit per listing where copies cost ten.
//!
//! A page's key is its listing's partition and the largest id it names; the ids on one page
//! lie within one second of each other (a batch that spans a second boundary writes a page
//! per second). Reading pages by key, newest first, every entry above the next page's key is
//! therefore final and can be shown; and a listing resuming below an id need only re-read
//! the pages of that id's second. Oldest first, every entry below the start of the next
//! page's second is final. An event's page may be written well after its id's second (its
//! delivery waited): the rule holds all the same, since it is about keys, not write times.
//! Attempts of one event stay the table's own partition.
//!
//! Attempts written before pages existed carry keys of the `listing` and `link` indexes
//! instead; the sweeper moves them onto pages ([`Store::page_legacy_attempts`]). Events
//! written before pages keep their index copies until they expire, and event listings read
//! both.

use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use futures::StreamExt;

use super::keys::{
    self, EXPIRES_AT, Item, LINK_PK, LISTING_INDEX, LISTING_PK, LISTING_SK, PK, SK, s,
};
use super::{Result, Store, StoreError};
use crate::Attempt;

/// The id time one page spans.
const SPAN_MS: u64 = 1000;
/// The most entries one page holds (about 80 bytes each): far under DynamoDB's item limit.
const MAX_ENTRIES: usize = 500;
const ENTRIES: &str = "entries";
/// Queries one read may send before it answers with what is final so far.
pub(super) const PAGE_QUERY_BUDGET: u32 = 4;
/// The most queries one read sends even within one second: at least 1 600 pages (a query
/// returns up to 1 MB, 25 pages of 500 entries) and 800 000 entries, far more than one
/// workspace's functions write in a second.
const MAX_QUERIES: u32 = 64;
/// The name of the move of legacy attempts onto pages.
const PAGING_MIGRATION: &str = "attempt-pages";
/// The most pages one query reads.
const MAX_PAGES_PER_QUERY: usize = 1000;

/// One entry on a page: its id, what with the id makes its item's key, and what listings
/// filter on. An attempt's: its event's id and its status. An event's: its item's partition
/// key, empty when that is the one its id and source make (an event received by a source
/// under its own id), and its source. Ten event entries then fit one write unit's kilobyte,
/// where with the key spelled out they take two.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(super) struct Entry(pub String, pub String, pub String);

impl Entry {
    pub fn id(&self) -> &str {
        &self.0
    }
    pub fn attempt_key(&self) -> (String, String) {
        (keys::attempts_of_event(&self.1), self.0.clone())
    }
    pub fn status(&self) -> &str {
        &self.2
    }
    pub fn event_key(&self) -> (String, String) {
        if self.1.is_empty() {
            return keys::event(self.source_id(), self.id());
        }
        (self.1.clone(), keys::EVENT_SK.to_owned())
    }
    pub fn source_id(&self) -> &str {
        &self.2
    }
}

/// The millisecond time of an id's ULID (of a bound [`just_above`] an id too); none for a
/// string that holds no id.
pub(super) fn id_millis(id: &str) -> Option<u64> {
    let (_, tail) = id.split_once('_')?;
    let ulid = ulid::Ulid::from_string(tail.get(..26)?).ok()?;
    Some(ulid.timestamp_ms())
}

/// The smallest id of this kind in the second after `id`'s: no page holding an id below
/// `id` has a key at or above it.
fn span_end(id: &str) -> String {
    let prefix = id.split_once('_').map_or(crate::ids::ATTEMPT, |(p, _)| p);
    let end = (id_millis(id).unwrap_or(0) / SPAN_MS + 1) * SPAN_MS;
    if end >= 1 << 48 {
        // Past the last time a ULID holds: above every id.
        return format!("{prefix}_~");
    }
    format!("{prefix}_{}", ulid::Ulid::from_parts(end, 0))
}

/// A page's sort key: its newest id, then a digest of what it names. The same entries
/// written again land on the same item, and another set with the same newest id (an event
/// listed again in another batch) on an item of its own, never over one naming others. It
/// sorts just above the id (`#` is below every id character) and below every larger id.
fn page_key(newest: &str, entries: &[Entry]) -> String {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    for e in entries {
        digest.update(e.0.as_bytes());
        digest.update([0]);
    }
    let sum = digest.finalize();
    let tag: String = sum.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("{newest}#{tag}")
}

/// The smallest id of this kind in `id`'s second: no page keyed at or above `id` names an id
/// below it.
fn second_start(id: &str) -> String {
    let prefix = id.split_once('_').map_or(crate::ids::ATTEMPT, |(p, _)| p);
    let start = id_millis(id).unwrap_or(0) / SPAN_MS * SPAN_MS;
    format!("{prefix}_{}", ulid::Ulid::from_parts(start, 0))
}

/// A bound just above `id` and below every larger id of the same length.
fn just_above(id: &str) -> String {
    format!("{id}~")
}

/// An attempt or an event as its listings know it.
pub(super) struct Listed {
    /// The page partitions of the listings it is in.
    pub listings: [String; 2],
    /// A third listing (an event's type).
    pub also: Option<String>,
    pub entry: Entry,
    /// When its item expires (epoch seconds): a page lives as long as its longest entry.
    pub expires_at: i64,
}

impl Listed {
    pub fn attempt(a: &Attempt, retention: Duration) -> Self {
        Self::attempt_of(
            &a.workspace,
            &a.endpoint_id,
            Entry(
                a.id.clone(),
                a.event_id.clone(),
                a.status.as_str().to_owned(),
            ),
            a.attempted_at.plus(retention).unix_seconds(),
        )
    }

    pub fn attempt_of(ws: &str, endpoint_id: &str, entry: Entry, expires_at: i64) -> Self {
        Listed {
            listings: [
                keys::attempt_pages(ws),
                keys::attempt_pages_of_endpoint(ws, endpoint_id),
            ],
            also: None,
            entry,
            expires_at,
        }
    }

    /// An event stored under `event_key`: in its workspace's, its source's and its type's
    /// listings.
    pub fn event(e: &crate::Event, event_key: &str, retention: Duration) -> Self {
        Listed {
            listings: [
                keys::event_pages(&e.workspace),
                keys::event_pages_of_source(&e.workspace, &e.source_id),
            ],
            also: Some(keys::event_pages_of_type(&e.workspace, &e.event_type)),
            entry: Entry(
                e.id.clone(),
                if keys::event(&e.source_id, &e.id).0 == event_key {
                    String::new()
                } else {
                    event_key.to_owned()
                },
                e.source_id.clone(),
            ),
            expires_at: e.received_at.plus(retention).unix_seconds(),
        }
    }
}

/// The page items that list these entries: one per listing and second of id time.
pub(super) fn page_items(listed: &[Listed]) -> Result<Vec<Item>> {
    let mut pages: BTreeMap<(String, u64), (Vec<Entry>, i64)> = BTreeMap::new();
    for l in listed {
        let second = id_millis(l.entry.id()).unwrap_or(0) / SPAN_MS;
        for pk in l.listings.iter().chain(&l.also) {
            let page = pages.entry((pk.clone(), second)).or_default();
            page.0.push(l.entry.clone());
            page.1 = page.1.max(l.expires_at);
        }
    }
    let mut items = Vec::new();
    for ((pk, _), (mut entries, expires)) in pages {
        entries.sort();
        entries.dedup();
        for chunk in entries.chunks(MAX_ENTRIES) {
            let Some(last) = chunk.last() else { continue };
            let listed: AttributeValue =
                serde_dynamo::to_attribute_value(chunk).map_err(|source| StoreError::Encode {
                    what: "listing page",
                    source,
                })?;
            items.push(Item::from([
                (PK.to_owned(), s(pk.clone())),
                (SK.to_owned(), s(page_key(last.id(), chunk))),
                (ENTRIES.to_owned(), listed),
                (
                    EXPIRES_AT.to_owned(),
                    AttributeValue::N(expires.to_string()),
                ),
            ]));
        }
    }
    Ok(items)
}

fn entries_of(page: &Item) -> Result<Vec<Entry>> {
    let Some(listed) = page.get(ENTRIES) else {
        return Ok(Vec::new());
    };
    serde_dynamo::from_attribute_value(listed.clone()).map_err(|source| StoreError::Decode {
        what: "listing page",
        source,
    })
}

/// Appends `next` unless it repeats the entry before it: an entry named on two pages (a
/// move of legacy attempts that stopped between its writes and ran again, an event listed
/// again by a repeated task) shows once.
fn show(entries: &mut Vec<Entry>, next: Option<Entry>) {
    if let Some(e) = next
        && entries.last().is_none_or(|last| last.id() != e.id())
    {
        entries.push(e);
    }
}

/// The id a page listing's cursor resumes below (or after): a cursor is the key of the
/// page partition it was made for and an id; one from another listing is refused.
pub(super) fn cursor_id(req: &super::page::PageRequest, partition: &str) -> Result<Option<String>> {
    let Some(key) = req.start_key()? else {
        return Ok(None);
    };
    if keys::get_s(&key, PK) != Some(partition) || key.len() != 2 {
        return Err(StoreError::BadCursor);
    }
    let id = keys::get_s(&key, SK).ok_or(StoreError::BadCursor)?;
    id_millis(id).ok_or(StoreError::BadCursor)?;
    Ok(Some(id.to_owned()))
}

/// The id a cursor of the `listing` index resumes after: a recovery's cursor saved before
/// events were listed on pages (that index's `LastEvaluatedKey`), when its partition is
/// `index_partition`. Such a recovery goes on from where it stopped.
pub(super) fn legacy_cursor_id(
    req: &super::page::PageRequest,
    index_partition: &str,
) -> Result<Option<String>> {
    let Some(key) = req.start_key()? else {
        return Ok(None);
    };
    if keys::get_s(&key, LISTING_PK) != Some(index_partition) {
        return Err(StoreError::BadCursor);
    }
    let id = keys::get_s(&key, LISTING_SK).ok_or(StoreError::BadCursor)?;
    id_millis(id).ok_or(StoreError::BadCursor)?;
    Ok(Some(id.to_owned()))
}

/// What a read of page entries found.
pub(super) struct Found {
    /// Newest first, at most what was asked for.
    pub entries: Vec<Entry>,
    /// Set when the query budget ran out first: every entry at or above it was considered,
    /// none below it was. A later read resumes below it.
    pub resume_below: Option<String>,
}

impl Store {
    /// Up to `want` entries of the page partition `pk` below `below` (all when none) and not
    /// below `from`, newest first, that pass `keep`.
    pub(super) async fn read_pages(
        &self,
        pk: &str,
        (from, below): (Option<&str>, Option<&str>),
        want: usize,
        keep: &(dyn Fn(&Entry) -> bool + Sync),
    ) -> Result<Found> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .scan_index_forward(false)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":pk", s(pk));
        // A page's key is the largest id on it: one keyed below `from` names none at or
        // above it.
        query = match (from, below) {
            (Some(from), Some(below)) => query
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
                .expression_attribute_values(":lo", s(from))
                .expression_attribute_values(":hi", s(span_end(below))),
            (None, Some(below)) => query
                .key_condition_expression("#pk = :pk AND #sk < :hi")
                .expression_attribute_values(":hi", s(span_end(below))),
            (Some(from), None) => query
                .key_condition_expression("#pk = :pk AND #sk >= :lo")
                .expression_attribute_values(":lo", s(from)),
            (None, None) => query.key_condition_expression("#pk = :pk"),
        };
        if from.is_some() || below.is_some() {
            query = query.expression_attribute_names("#sk", SK);
        }
        let mut waiting: BinaryHeap<Entry> = BinaryHeap::new();
        let mut entries = Vec::new();
        let mut start = None;
        let mut last_key: Option<String> = None;
        let mut first_second: Option<u64> = None;
        let mut round = 0u32;
        let mut ask = (want + 1).min(MAX_PAGES_PER_QUERY);
        loop {
            let out = query
                .clone()
                .limit(i32::try_from(ask).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::dynamo("Query", e))?;
            for page in out.items.unwrap_or_default() {
                let key = keys::get_s(&page, SK).unwrap_or_default().to_owned();
                // Nothing on this page or after it lists an id above its key.
                while waiting.peek().is_some_and(|top| top.id() > key.as_str()) {
                    show(&mut entries, waiting.pop());
                    if entries.len() == want {
                        return Ok(Found {
                            entries,
                            resume_below: None,
                        });
                    }
                }
                for e in entries_of(&page)? {
                    if below.is_none_or(|b| e.id() < b)
                        && from.is_none_or(|f| e.id() >= f)
                        && keep(&e)
                    {
                        waiting.push(e);
                    }
                }
                first_second = first_second.or(id_millis(&key).map(|ms| ms / SPAN_MS));
                last_key = Some(key);
            }
            match out.last_evaluated_key {
                Some(key) => start = Some(key),
                None => {
                    while entries.len() < want && !waiting.is_empty() {
                        show(&mut entries, waiting.pop());
                    }
                    return Ok(Found {
                        entries,
                        resume_below: None,
                    });
                }
            }
            round += 1;
            ask = ask.saturating_mul(4).min(MAX_PAGES_PER_QUERY);
            // A read resuming below a page re-reads that page's second (its pages may name
            // ids below it): one that stopped within the second it began in would resume
            // where it began, and a listing would go round for ever. So the budget ends a
            // read only once it has left that second; a second's pages are bounded by the
            // batches a workspace's functions write in it.
            let same_second = last_key
                .as_deref()
                .and_then(id_millis)
                .map(|ms| ms / SPAN_MS)
                == first_second;
            if (round >= PAGE_QUERY_BUDGET && !same_second) || round >= MAX_QUERIES {
                break;
            }
        }
        // Everything shown is above the last page's key; everything still waiting, and
        // every page not read, is at or below it.
        Ok(Found {
            entries,
            resume_below: last_key.as_deref().map(just_above),
        })
    }

    /// Up to `want` entries of the page partition `pk` above `after` (all when none) and not
    /// above `to`, oldest first. Reads pages until it has them, so it suits a bounded
    /// `want`, as a recovery's steps are.
    pub(super) async fn read_pages_oldest_first(
        &self,
        pk: &str,
        after: Option<&str>,
        to: &str,
        want: usize,
    ) -> Result<Vec<Entry>> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(pk))
            // A page keyed past `to`'s second names nothing at or below `to`.
            .expression_attribute_values(":hi", s(span_end(to)));
        query = match after {
            // A page keyed at or below `after` names nothing above it.
            Some(after) => query
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
                .expression_attribute_values(":lo", s(just_above(after))),
            None => query.key_condition_expression("#pk = :pk AND #sk < :hi"),
        };
        let mut pages = query
            .limit(i32::try_from((want + 1).min(MAX_PAGES_PER_QUERY)).unwrap_or(i32::MAX))
            .into_paginator()
            .items()
            .send();
        let mut waiting: BinaryHeap<std::cmp::Reverse<Entry>> = BinaryHeap::new();
        let mut entries: Vec<Entry> = Vec::new();
        let push = |entries: &mut Vec<Entry>, e: Entry| {
            if entries.last().is_none_or(|last| last.id() != e.id()) {
                entries.push(e);
            }
        };
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StoreError::dynamo("Query", e))?;
            let key = keys::get_s(&page, SK).unwrap_or_default().to_owned();
            // Pages not read yet are keyed above this one: nothing on them is below the
            // start of its second.
            let start = second_start(&key);
            while waiting
                .peek()
                .is_some_and(|top| top.0.id() < start.as_str())
            {
                if let Some(std::cmp::Reverse(e)) = waiting.pop() {
                    push(&mut entries, e);
                }
                if entries.len() == want {
                    return Ok(entries);
                }
            }
            for e in entries_of(&page)? {
                if after.is_none_or(|a| e.id() > a) && e.id() <= to {
                    waiting.push(std::cmp::Reverse(e));
                }
            }
        }
        while entries.len() < want {
            let Some(std::cmp::Reverse(e)) = waiting.pop() else {
                break;
            };
            push(&mut entries, e);
        }
        Ok(entries)
    }

    /// Moves up to `limit` of a workspace's attempts written before listing pages (with
    /// copies in the `listing` and `link` indexes instead) onto pages, and drops their index
    /// keys, which also drops the copies. Answers how many it moved: fewer than `limit` when
    /// none are left. Safe to repeat: a page names an attempt once however often it is
    /// written, and an attempt whose keys are gone is not read again.
    pub async fn page_legacy_attempts(
        &self,
        ws: &str,
        limit: i32,
        retention: Duration,
    ) -> Result<usize> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(LISTING_INDEX)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", LISTING_PK)
            .expression_attribute_values(":pk", s(keys::attempts_list(ws)))
            .limit(limit.max(1))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        let mut listed = Vec::new();
        for item in out.items.unwrap_or_default() {
            let (Some(pk), Some(id)) = (keys::get_s(&item, PK), keys::get_s(&item, SK)) else {
                continue;
            };
            let Some(event_id) = pk.strip_prefix(keys::ATTEMPTS_OF_EVENT_PREFIX) else {
                continue;
            };
            let attempted = i64::try_from(id_millis(id).unwrap_or(0) / 1000).unwrap_or(i64::MAX);
            let retention = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
            listed.push(Listed::attempt_of(
                ws,
                keys::get_s(&item, "endpoint_id").unwrap_or_default(),
                Entry(
                    id.to_owned(),
                    event_id.to_owned(),
                    keys::get_s(&item, "status").unwrap_or_default().to_owned(),
                ),
                attempted.saturating_add(retention),
            ));
        }
        self.put_items(page_items(&listed)?).await?;
        futures::stream::iter(&listed)
            .map(|l| async move {
                let (pk, sk) = l.entry.attempt_key();
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .key(PK, s(pk))
                    .key(SK, s(sk))
                    .update_expression("REMOVE #lpk, #lsk, #link")
                    .condition_expression("attribute_exists(#pk)")
                    .expression_attribute_names("#pk", PK)
                    .expression_attribute_names("#lpk", LISTING_PK)
                    .expression_attribute_names("#lsk", LISTING_SK)
                    .expression_attribute_names("#link", LINK_PK)
                    .send()
                    .await
                    .map(|_| ())
                    .or_else(|e| {
                        // Expired or deleted since the index saw it: nothing to drop.
                        if e.as_service_error()
                            .is_some_and(|s| s.is_conditional_check_failed_exception())
                        {
                            Ok(())
                        } else {
                            Err(StoreError::dynamo("UpdateItem", e))
                        }
                    })
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<()>>>()?;
        Ok(listed.len())
    }

    /// Whether the sweeper has moved every attempt written before listing pages.
    pub async fn legacy_attempts_paged(&self) -> Result<bool> {
        Ok(self
            .get(keys::migration(PAGING_MIGRATION), false)
            .await?
            .is_some())
    }

    /// Marks the move of legacy attempts done, so later sweeps skip it.
    pub async fn mark_legacy_attempts_paged(&self) -> Result<()> {
        let (pk, sk) = keys::migration(PAGING_MIGRATION);
        self.put(keys::key(pk, sk)).await
    }

    /// The entry of `id` in the page partition `pk`, from the pages of its second.
    pub(super) async fn page_entry(&self, pk: &str, id: &str) -> Result<Option<Entry>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :id AND :end")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":id", s(id))
            .expression_attribute_values(":end", s(span_end(id)))
            .into_paginator()
            .items()
            .send()
            .collect::<Vec<_>>()
            .await;
        for page in out {
            let page = page.map_err(|e| StoreError::dynamo("Query", e))?;
            if let Some(e) = entries_of(&page)?.into_iter().find(|e| e.id() == id) {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_ends_at_the_next_second_and_bounds_its_ids() {
        let id = crate::ids::new_id(crate::ids::ATTEMPT);
        let end = span_end(&id);
        assert!(end.as_str() > id.as_str());
        let (at, end_at) = (id_millis(&id).unwrap(), id_millis(&end).unwrap());
        assert_eq!(end_at % SPAN_MS, 0);
        assert!(end_at - at <= SPAN_MS);
        let above = just_above(&id);
        assert!(above.as_str() > id.as_str());
        // A listing resumes below such a bound: it must name the same second.
        assert_eq!(id_millis(&above), Some(at));
        assert_eq!(span_end(&above), end);
        assert_eq!(id_millis("att_nonsense"), None);
        let mut later = id.clone();
        later.replace_range(later.len() - 1.., "Z");
        assert!(later == id || later.as_str() > above.as_str());
    }

    fn received(source: &str, key: Option<&str>) -> crate::Event {
        let id = crate::ids::new_id(crate::ids::EVENT);
        crate::Event {
            idempotency_key: key.map_or_else(|| id.clone(), str::to_owned),
            id,
            workspace: crate::ids::new_id(crate::ids::WORKSPACE),
            source_id: source.to_owned(),
            event_type: "invoice.payment_succeeded".into(),
            received_at: crate::Timestamp::now(),
            payload: Vec::new(),
            endpoint_ids: vec![],
            content_type: None,
            hops: 0,
            trace: None,
        }
    }

    #[test]
    fn an_event_entry_spells_its_key_only_when_its_id_and_source_do_not_make_it() {
        let source = crate::ids::new_id(crate::ids::SOURCE);
        let retention = Duration::from_secs(86_400);
        let plain = received(&source, None);
        let key = keys::event(&source, &plain.id).0;
        let listed = Listed::event(&plain, &key, retention);
        assert_eq!(listed.entry.1, "");
        assert_eq!(listed.entry.event_key(), keys::event(&source, &plain.id));

        let keyed = received(&source, Some("sender-key-1"));
        let key = keys::event(&source, "sender-key-1").0;
        let listed = Listed::event(&keyed, &key, retention);
        assert_eq!(listed.entry.event_key(), (key, keys::EVENT_SK.to_owned()));

        // Published through the API: its key's scope is not its source.
        let published = received("api", None);
        let key = keys::event(&format!("api:{}", published.workspace), &published.id).0;
        assert_eq!(
            Listed::event(&published, &key, retention)
                .entry
                .event_key()
                .0,
            key
        );
    }

    #[test]
    fn a_page_of_ten_received_events_is_one_write_unit() {
        let source = crate::ids::new_id(crate::ids::SOURCE);
        let workspace = crate::ids::new_id(crate::ids::WORKSPACE);
        // All ten within one millisecond, as a busy batch's are; random parts as long as
        // real ones.
        let ms = crate::Timestamp::now().unix_millis() as u64;
        let listed: Vec<Listed> = (0..10u128)
            .map(|i| {
                let mut e = received(&source, None);
                e.id = format!(
                    "{}_{}",
                    crate::ids::EVENT,
                    ulid::Ulid::from_parts(ms, (i + 1) << 70)
                );
                e.idempotency_key = e.id.clone();
                e.workspace = workspace.clone();
                let key = keys::event(&source, &e.id).0;
                Listed::event(&e, &key, Duration::from_secs(86_400))
            })
            .collect();
        let items = page_items(&listed).unwrap();
        assert_eq!(
            items.len(),
            3,
            "the workspace's, the source's and the type's"
        );
        for item in &items {
            assert_eq!(entries_of(item).unwrap().len(), 10);
            assert!(super::super::item_bytes(item) <= 1024, "{item:?}");
        }
    }
}
