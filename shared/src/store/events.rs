use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValuesOnConditionCheckFailure,
};

use super::codec::{from_item, to_item};
use super::compressed_payload::{PAYLOAD, PAYLOAD_ZSTD, compress_if_cheaper};
use super::keys::{
    self, EXPIRES_AT, Item, LINK_INDEX, LINK_PK, LISTING_INDEX, LISTING_PK, LISTING_SK, PENDING_AT,
    PENDING_SHARD, PK, SK, TYPE_INDEX, TYPE_PK, s,
};
use super::listing_pages::{self, Entry, Listed};
use super::ops::with_key;
use super::page::{Page, PageRequest};
use super::{Result, Store, StoreError};
use crate::payload_objects::{INLINE_PAYLOAD_MAX, PayloadObjectError, PayloadObjects};
use crate::{Endpoint, Event};

/// The S3 key of a payload kept outside the item, and its size.
const PAYLOAD_OBJECT: &str = "payload_object";
const PAYLOAD_SIZE: &str = "payload_size";
const IDEMPOTENCY_KEY: &str = "idempotency_key";

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub event_type: Option<String>,
    pub source_id: Option<String>,
    pub since: Option<crate::Timestamp>,
    pub until: Option<crate::Timestamp>,
}

/// Which of an event's tasks were not confirmed queued when it was stored: the sweeper's
/// reconciliation sends those again, and only those.
#[derive(Debug, Clone, Copy, Default)]
pub enum Pending<'a> {
    /// Every task was queued: the event is not pending.
    #[default]
    No,
    /// Not known which: the sweeper sends the task of every endpoint again.
    All,
    /// These endpoints' tasks (or their batches' memberships) were not confirmed.
    Endpoints(&'a [String]),
}

impl From<bool> for Pending<'_> {
    fn from(pending: bool) -> Self {
        if pending { Pending::All } else { Pending::No }
    }
}

/// The attribute a pending event's unconfirmed endpoints are kept in.
const PENDING_ENDPOINTS: &str = "pending_endpoints";

#[derive(Debug)]
pub enum InsertOutcome {
    /// Stored; the event's item key, which delivery tasks carry.
    Inserted { event_key: String },
    /// The idempotency key was seen before: the stored event.
    Duplicate(Box<Event>),
}

/// What a read of the indexes events were copied to before listing pages found.
struct LegacyFound {
    /// Ids and item keys, in the order read.
    found: Vec<(String, (String, String))>,
    /// Whether the query stopped at its limit.
    more: bool,
}

/// The ids and table keys of index items, those passing `keep`.
fn legacy_keys(items: Vec<Item>, keep: impl Fn(&str) -> bool) -> Vec<(String, (String, String))> {
    items
        .iter()
        .filter_map(|i| {
            let id = keys::get_s(i, LISTING_SK)?;
            Some((
                id.to_owned(),
                (
                    keys::get_s(i, PK)?.to_owned(),
                    keys::get_s(i, SK)?.to_owned(),
                ),
            ))
        })
        .filter(|(id, _)| keep(id))
        .collect()
}

/// The event an item holds, and the S3 key of its payload when the item names one instead.
fn decode_event(mut item: Item) -> Result<(Event, Option<String>)> {
    let object = match item.remove(PAYLOAD_OBJECT) {
        Some(AttributeValue::S(key)) => Some(key),
        _ => None,
    };
    item.remove(PAYLOAD_SIZE);
    let mut event: Event = from_item("event", item)?;
    if event.idempotency_key.is_empty() {
        event.idempotency_key.clone_from(&event.id);
    }
    Ok((event, object))
}

/// How often a batch read or write re-asks for what DynamoDB left unprocessed.
const UNPROCESSED_RETRIES: u32 = 5;

fn endpoint_list(endpoints: &[String]) -> AttributeValue {
    AttributeValue::L(endpoints.iter().map(|e| s(e.as_str())).collect())
}

/// Which way a listing runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    NewestFirst,
    OldestFirst,
}

/// An event listed by id with its item key.
type IdAndKey = (String, (String, String));

/// What two reads of one listing found (its pages and the index of events stored before
/// them), merged in `order`, each id once, at most `limit`; and where the next page starts.
/// A read that may hold more gives the last id it considered (`bounds`): past the one
/// nearest the listing's start, either read may be missing ids, so nothing past it is shown
/// and the next page starts there.
fn merge_listed(
    order: Order,
    mut listed: Vec<IdAndKey>,
    bounds: [Option<String>; 2],
    limit: usize,
) -> (Vec<IdAndKey>, Option<String>) {
    let before = |a: &str, b: &str| match order {
        Order::NewestFirst => a > b,
        Order::OldestFirst => a < b,
    };
    let known = bounds
        .into_iter()
        .flatten()
        .reduce(|k, b| if before(&b, &k) { b } else { k });
    listed.retain(|(id, _)| known.as_deref().is_none_or(|k| !before(k, id)));
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    if order == Order::NewestFirst {
        listed.reverse();
    }
    listed.dedup_by(|a, b| a.0 == b.0);
    if listed.len() > limit {
        listed.truncate(limit);
        let next = listed.last().map(|(id, _)| id.clone());
        return (listed, next);
    }
    (listed, known)
}

impl Store {
    /// The item key of the event with `idempotency_key` in `scope`: what tasks carry.
    pub fn event_key(scope: &str, idempotency_key: &str) -> String {
        keys::event(scope, idempotency_key).0
    }

    /// The item an event is stored as.
    pub fn event_item<'a>(
        event: &Event,
        scope: &str,
        pending: impl Into<Pending<'a>>,
        retention: Duration,
    ) -> Result<Item> {
        let (pk, sk) = keys::event(scope, &event.idempotency_key);
        // No index keys: the delivery function lists the event on pages (`listing_pages`).
        let mut item = with_key(to_item("event", event)?, (pk, sk));
        if event.idempotency_key == event.id {
            // Most events carry no key of their own: a copy of the id would cost bytes in
            // every item, enough to make a 1 KiB event two write units.
            item.remove(IDEMPOTENCY_KEY);
        }
        item.insert(
            EXPIRES_AT.into(),
            AttributeValue::N(event.received_at.plus(retention).unix_seconds().to_string()),
        );
        let pending = pending.into();
        if !matches!(pending, Pending::No) {
            item.insert(PENDING_SHARD.into(), s(keys::shard_of(&event.id)));
            item.insert(PENDING_AT.into(), s(event.received_at.to_string()));
        }
        if let Pending::Endpoints(endpoints) = pending {
            item.insert(PENDING_ENDPOINTS.into(), endpoint_list(endpoints));
        }
        if event.payload.len() <= INLINE_PAYLOAD_MAX {
            compress_if_cheaper(&mut item);
        }
        Ok(item)
    }

    /// Stores an event once per idempotency key within `scope`. When `pending` (some of its
    /// tasks could not be queued), the event is also placed in the sparse `pending` index,
    /// where the sweeper finds it, queues what was not and calls [`Store::clear_pending`].
    pub async fn insert_event<'a>(
        &self,
        event: &Event,
        scope: &str,
        pending: impl Into<Pending<'a>>,
        retention: Duration,
    ) -> Result<InsertOutcome> {
        let pk = Self::event_key(scope, &event.idempotency_key);
        let mut item = Self::event_item(event, scope, pending, retention)?;
        if event.payload.len() > INLINE_PAYLOAD_MAX {
            let objects = self.payloads.as_ref().ok_or(PayloadObjectError::NoBucket {
                size: event.payload.len(),
            })?;
            let key = PayloadObjects::key(&event.workspace, &event.id);
            objects
                .put(&key, &event.payload, event.content_type.as_deref())
                .await?;
            item.remove(PAYLOAD);
            item.remove(PAYLOAD_ZSTD);
            item.insert(PAYLOAD_OBJECT.into(), s(key));
            item.insert(
                PAYLOAD_SIZE.into(),
                AttributeValue::N(event.payload.len().to_string()),
            );
        }
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // TTL deletes late: an expired event no longer counts as the original.
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(
                ":now",
                AttributeValue::N(crate::Timestamp::now().unix_seconds().to_string()),
            )
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(InsertOutcome::Inserted { event_key: pk }),
            Err(e) => match e.into_service_error() {
                PutItemError::ConditionalCheckFailedException(ccf) => {
                    let existing =
                        match ccf.item {
                            Some(item) => self.event_of(item).await?,
                            None => self.get_event_by_key(&pk).await?.ok_or(
                                StoreError::Unprocessed {
                                    op: "PutItem (duplicate vanished)",
                                    left: 1,
                                },
                            )?,
                        };
                    Ok(InsertOutcome::Duplicate(Box::new(existing)))
                }
                other => Err(StoreError::dynamo("PutItem", other)),
            },
        }
    }

    /// Marks an event's tasks as queued: it leaves the `pending` index.
    pub async fn clear_pending(&self, event_key: &str) -> Result<()> {
        self.update_event(
            event_key,
            "REMOVE pending_shard, pending_at, pending_endpoints",
            "attribute_exists(pk)",
            None,
        )
        .await
    }

    /// Keeps a pending event pending for `endpoints` only: the others' tasks are now queued.
    pub async fn narrow_pending(&self, event_key: &str, endpoints: &[String]) -> Result<()> {
        self.update_event(
            event_key,
            "SET pending_endpoints = :endpoints",
            "attribute_exists(pending_shard)",
            Some((":endpoints", endpoint_list(endpoints))),
        )
        .await
    }

    async fn update_event(
        &self,
        event_key: &str,
        update: &str,
        condition: &str,
        value: Option<(&str, AttributeValue)>,
    ) -> Result<()> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::key(
                event_key.to_owned(),
                keys::EVENT_SK.to_owned(),
            )))
            .update_expression(update)
            .condition_expression(condition);
        if let Some((name, v)) = value {
            request = request.expression_attribute_values(name, v);
        }
        request
            .send()
            .await
            .map_err(|e| StoreError::dynamo("UpdateItem", e))?;
        Ok(())
    }

    /// A pending event by its item key, with the endpoints whose tasks were not confirmed
    /// queued; `None` for those when not known (all of them, then).
    pub async fn pending_event(
        &self,
        event_key: &str,
    ) -> Result<Option<(Event, Option<Vec<String>>)>> {
        let Some(mut item) = self
            .get((event_key.to_owned(), keys::EVENT_SK.to_owned()), true)
            .await?
        else {
            return Ok(None);
        };
        let endpoints = match item.remove(PENDING_ENDPOINTS) {
            Some(AttributeValue::L(list)) => Some(
                list.into_iter()
                    .filter_map(|v| v.as_s().ok().cloned())
                    .collect(),
            ),
            _ => None,
        };
        Ok(Some((self.event_of(item).await?, endpoints)))
    }

    pub async fn get_event_by_key(&self, event_key: &str) -> Result<Option<Event>> {
        let item = self
            .get((event_key.to_owned(), keys::EVENT_SK.to_owned()), true)
            .await?;
        match item {
            Some(item) => Ok(Some(self.event_of(item).await?)),
            None => Ok(None),
        }
    }

    /// Lists newly stored events, each under its item key, on its workspace's, source's and
    /// type's listing pages ([`listing_pages`]): what makes them show in listings and reads
    /// by id. Repeating it is harmless: a listing shows an event once.
    pub async fn list_new_events(
        &self,
        events: &[(&str, &Event)],
        retention: Duration,
    ) -> Result<()> {
        let listed: Vec<Listed> = events
            .iter()
            .map(|(key, e)| Listed::event(e, key, retention))
            .collect();
        self.put_items(listing_pages::page_items(&listed)?).await
    }

    /// An event by id within a workspace, with its item key: found on its workspace's
    /// listing pages, or for an event stored before pages, through the `listing` index.
    pub async fn get_event(&self, ws: &str, id: &str) -> Result<Option<(String, Event)>> {
        if let Some(entry) = self.page_entry(&keys::event_pages(ws), id).await? {
            let (pk, sk) = entry.event_key();
            return match self.get((pk.clone(), sk), false).await? {
                Some(item) => {
                    let event = self.event_of(item).await?;
                    Ok((event.workspace == ws && event.id == id).then_some((pk, event)))
                }
                None => Ok(None),
            };
        }
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(LISTING_INDEX)
            .key_condition_expression("#pk = :pk AND #sk = :sk")
            .expression_attribute_names("#pk", LISTING_PK)
            .expression_attribute_names("#sk", LISTING_SK)
            .expression_attribute_values(":pk", s(keys::events_list(ws)))
            .expression_attribute_values(":sk", s(id))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        let found = out.items.unwrap_or_default().into_iter().next();
        let Some(item) = self.one_in_table(found).await? else {
            return Ok(None);
        };
        let key = keys::get_s(&item, PK).unwrap_or_default().to_owned();
        Ok(Some((key, self.event_of(item).await?)))
    }

    pub async fn list_events(&self, ws: &str, req: &PageRequest) -> Result<Page<Event>> {
        self.find_events(ws, &EventFilter::default(), req).await
    }

    /// Events of a workspace, newest first, by type, source and time range, from the
    /// listing pages the filter picks: the type's (a type rarely spans sources, so a source
    /// given too is checked on the entries), the source's, else the workspace's. The range
    /// bounds the pages read (ids are ULIDs, so they sort by time). Events stored before
    /// pages are read from the indexes they were copied to, and the two merged.
    pub async fn find_events(
        &self,
        ws: &str,
        filter: &EventFilter,
        req: &PageRequest,
    ) -> Result<Page<Event>> {
        let lo = crate::ids::time_bound(crate::ids::EVENT, filter.since, false);
        let hi = filter
            .until
            .map(|t| crate::ids::time_bound(crate::ids::EVENT, Some(t), true));
        let pages = match (&filter.event_type, &filter.source_id) {
            (Some(t), _) => keys::event_pages_of_type(ws, t),
            (None, Some(src)) => keys::event_pages_of_source(ws, src),
            (None, None) => keys::event_pages(ws),
        };
        let cursor = listing_pages::cursor_id(req, &pages)?;
        // Below the cursor, and at or below `until`.
        let below = match (cursor, hi) {
            (Some(c), Some(h)) => Some(if c.as_str() <= h.as_str() {
                c
            } else {
                format!("{h}~")
            }),
            (Some(c), None) => Some(c),
            (None, Some(h)) => Some(format!("{h}~")),
            (None, None) => None,
        };
        let limit = usize::try_from(req.limit()).unwrap_or(1);
        let source = filter.source_id.as_deref();
        let keep = |e: &Entry| source.is_none_or(|src| e.source_id() == src);
        let (paged, legacy) = futures::try_join!(
            self.read_pages(&pages, (Some(&lo), below.as_deref()), limit + 1, &keep),
            self.legacy_events(ws, filter, &lo, below.as_deref(), limit + 1),
        )?;
        let (merged, next_below) = merge_listed(
            Order::NewestFirst,
            paged
                .entries
                .iter()
                .map(|e| (e.id().to_owned(), e.event_key()))
                .chain(legacy.found.iter().cloned())
                .collect(),
            [
                if paged.entries.len() > limit {
                    paged.entries.last().map(|e| e.id().to_owned())
                } else {
                    paged.resume_below.clone()
                },
                legacy
                    .more
                    .then(|| legacy.found.last().map(|(id, _)| id.clone()))
                    .flatten(),
            ],
            limit,
        );
        let data = self.events_by_key(merged, false).await?;
        Ok(Page {
            data: data.into_iter().map(|(_, e)| e).collect(),
            next: next_below.and_then(|sk| super::page::encode(&keys::key(pages, sk))),
        })
    }

    /// Events by id and item key, in the order asked, each read as it is in the table (one
    /// `BatchGetItem` for up to 100); those gone since they were listed are left out, and so
    /// is an entry whose key now holds another event (an idempotency key used again after
    /// the event that had it expired). A payload kept in S3 is read back only
    /// `with_objects`: listings never show one.
    async fn events_by_key(
        &self,
        wanted: Vec<IdAndKey>,
        with_objects: bool,
    ) -> Result<Vec<(String, Event)>> {
        // One key asked once: `BatchGetItem` refuses a request naming a key twice.
        let mut asked = HashSet::new();
        let keys: Vec<Item> = wanted
            .iter()
            .filter(|(_, k)| asked.insert(k.clone()))
            .map(|(_, (pk, sk))| keys::key(pk.clone(), sk.clone()))
            .collect();
        let items = self.in_table(keys).await?;
        let mut by_id = HashMap::with_capacity(items.len());
        for item in items {
            let key = keys::get_s(&item, PK).unwrap_or_default().to_owned();
            let event = if with_objects {
                self.event_of(item).await?
            } else {
                decode_event(item)?.0
            };
            by_id.insert(event.id.clone(), (key, event));
        }
        Ok(wanted
            .into_iter()
            .filter_map(|(id, _)| by_id.remove(&id))
            .collect())
    }

    /// Up to `limit` ids and item keys of the events stored before listing pages, newest
    /// first, from `lo` to below `below`, through the index `filter` picks.
    async fn legacy_events(
        &self,
        ws: &str,
        filter: &EventFilter,
        lo: &str,
        below: Option<&str>,
        limit: usize,
    ) -> Result<LegacyFound> {
        let (index, pk_attr, partition) = match (&filter.event_type, &filter.source_id) {
            (Some(t), _) => (TYPE_INDEX, TYPE_PK, keys::events_of_type(ws, t)),
            (None, Some(src)) => (LINK_INDEX, LINK_PK, keys::events_of_source(ws, src)),
            (None, None) => (LISTING_INDEX, LISTING_PK, keys::events_list(ws)),
        };
        let hi = below.unwrap_or("evt_~");
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .scan_index_forward(false)
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
            .expression_attribute_names("#pk", pk_attr)
            .expression_attribute_names("#sk", LISTING_SK)
            .expression_attribute_values(":pk", s(partition))
            .expression_attribute_values(":lo", s(lo))
            .expression_attribute_values(":hi", s(hi))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX));
        if let (Some(_), Some(src)) = (&filter.event_type, &filter.source_id) {
            query = query
                .filter_expression("source_id = :src")
                .expression_attribute_values(":src", s(src));
        }
        let out = query
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        Ok(LegacyFound {
            more: out.last_evaluated_key.is_some(),
            found: legacy_keys(out.items.unwrap_or_default(), |id| id < hi),
        })
    }

    /// Up to `limit` events of a workspace received from `since` to `until`, oldest first,
    /// with their item keys, starting after `cursor`. Answers the cursor of the next page,
    /// none when the range is done: what a recovery pages through, one step at a time.
    pub async fn events_between(
        &self,
        ws: &str,
        since: crate::Timestamp,
        until: crate::Timestamp,
        cursor: Option<&str>,
        limit: i32,
    ) -> Result<(Vec<(String, Event)>, Option<String>)> {
        let pages = keys::event_pages(ws);
        let lo = crate::ids::time_bound(crate::ids::EVENT, Some(since), false);
        let hi = crate::ids::time_bound(crate::ids::EVENT, Some(until), true);
        let req = PageRequest {
            limit: None,
            cursor: cursor.map(str::to_owned),
        };
        let after = match listing_pages::cursor_id(&req, &pages) {
            Err(StoreError::BadCursor) => {
                listing_pages::legacy_cursor_id(&req, &keys::events_list(ws))?
            }
            found => found?,
        };
        // Ids from `lo` on: `lo` itself is no event's id (its random part is zero).
        let after = after.filter(|a| a.as_str() > lo.as_str()).unwrap_or(lo);
        let limit = usize::try_from(limit.max(1)).unwrap_or(1);
        let paged = self
            .read_pages_oldest_first(&pages, Some(&after), &hi, limit + 1)
            .await?;
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(LISTING_INDEX)
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
            .expression_attribute_names("#pk", LISTING_PK)
            .expression_attribute_names("#sk", LISTING_SK)
            .expression_attribute_values(":pk", s(keys::events_list(ws)))
            .expression_attribute_values(":lo", s(&after))
            .expression_attribute_values(":hi", s(&hi))
            .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        let legacy_more = out.last_evaluated_key.is_some();
        let legacy = legacy_keys(out.items.unwrap_or_default(), |id| id > after.as_str());
        let (merged, next_after) = merge_listed(
            Order::OldestFirst,
            paged
                .iter()
                .map(|e| (e.id().to_owned(), e.event_key()))
                .chain(legacy.iter().cloned())
                .collect(),
            [
                (paged.len() > limit)
                    .then(|| paged.last().map(|e| e.id().to_owned()))
                    .flatten(),
                legacy_more
                    .then(|| legacy.last().map(|(id, _)| id.clone()))
                    .flatten(),
            ],
            limit,
        );
        let events = self.events_by_key(merged, true).await?;
        Ok((
            events,
            next_after.and_then(|id| super::page::encode(&keys::key(pages, id))),
        ))
    }

    /// The [`Store::events_between`] cursor that starts just after this event.
    pub fn event_cursor(ws: &str, event_id: &str) -> Option<String> {
        super::page::encode(&keys::key(keys::event_pages(ws), event_id.to_owned()))
    }

    /// What a delivery batch needs, in as few reads as DynamoDB allows: events by item key
    /// and endpoints by (workspace, id).
    pub async fn load_for_delivery(
        &self,
        event_keys: &HashSet<String>,
        endpoints: &HashSet<(String, String)>,
    ) -> Result<(HashMap<String, Event>, HashMap<(String, String), Endpoint>)> {
        let mut keys_wanted: Vec<Item> = event_keys
            .iter()
            .map(|k| keys::key(k.clone(), keys::EVENT_SK.to_owned()))
            .collect();
        keys_wanted.extend(endpoints.iter().map(|(ws, id)| {
            let (pk, sk) = keys::endpoint(ws, id);
            keys::key(pk, sk)
        }));
        let items = self.batch_get(keys_wanted, true).await?;
        let mut event_items = Vec::new();
        let mut eps = HashMap::new();
        for item in items {
            let pk = keys::get_s(&item, PK).unwrap_or_default().to_owned();
            if keys::get_s(&item, SK) == Some(keys::EVENT_SK) {
                event_items.push((pk, item));
            } else {
                let ep: Endpoint = from_item("endpoint", item)?;
                eps.insert((ep.workspace.clone(), ep.id.clone()), ep);
            }
        }
        // Large payloads come from S3 side by side: a batch waits for its slowest read once.
        let events =
            futures::future::try_join_all(event_items.into_iter().map(|(pk, item)| async move {
                Ok::<_, StoreError>((pk, self.event_of(item).await?))
            }))
            .await?
            .into_iter()
            .collect();
        Ok((events, eps))
    }

    /// The event an item holds, its payload read back from S3 when the item names an object.
    async fn event_of(&self, item: Item) -> Result<Event> {
        let (mut event, object) = decode_event(item)?;
        if let Some(key) = object {
            let objects = self
                .payloads
                .as_ref()
                .ok_or(PayloadObjectError::NoBucket { size: 0 })?;
            event.payload = objects.get(&key).await?;
        }
        Ok(event)
    }

    /// A link that reads an event's payload object for a while without credentials; none
    /// when the payload is in the item.
    pub async fn payload_link(&self, event: &Event) -> Result<Option<String>> {
        match &self.payloads {
            Some(objects) if event.payload.len() > INLINE_PAYLOAD_MAX => Ok(Some(
                objects
                    .link(&PayloadObjects::key(&event.workspace, &event.id))
                    .await?,
            )),
            _ => Ok(None),
        }
    }

    /// Items by key, 100 to a request, re-asking for what DynamoDB leaves unprocessed; in no
    /// particular order.
    pub(super) async fn batch_get(
        &self,
        keys_wanted: Vec<Item>,
        consistent: bool,
    ) -> Result<Vec<Item>> {
        let mut found = Vec::with_capacity(keys_wanted.len());
        for chunk in keys_wanted.chunks(100) {
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(chunk.to_vec()))
                .consistent_read(consistent)
                .build()?;
            for round in 0..=UNPROCESSED_RETRIES {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request.clone())
                    .send()
                    .await
                    .map_err(|e| StoreError::dynamo("BatchGetItem", e))?;
                if let Some(mut responses) = out.responses {
                    found.extend(responses.remove(&self.table).unwrap_or_default());
                }
                match out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys.is_empty())
                {
                    None => break,
                    Some(left) if round == UNPROCESSED_RETRIES => {
                        return Err(StoreError::Unprocessed {
                            op: "BatchGetItem",
                            left: left.keys.len(),
                        });
                    }
                    Some(left) => {
                        request = left;
                        backoff(round).await;
                    }
                }
            }
        }
        Ok(found)
    }
}

pub(super) async fn backoff(round: u32) {
    tokio::time::sleep(Duration::from_millis(25u64 << round.min(6))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: &[u32]) -> Vec<IdAndKey> {
        n.iter()
            .map(|i| (format!("evt_{i:02}"), (format!("k{i}"), "EVT".to_owned())))
            .collect()
    }

    fn just_ids(listed: &[IdAndKey]) -> Vec<&str> {
        listed.iter().map(|(id, _)| id.as_str()).collect()
    }

    #[test]
    fn newest_first_shows_nothing_below_the_higher_bound() {
        // Pages read down to 05 and may hold more; the legacy index down to 07.
        let mut both = ids(&[9, 8, 6, 5]);
        both.extend(ids(&[9, 7, 3]));
        let bounds = [Some("evt_05".to_owned()), Some("evt_07".to_owned())];
        let (shown, next) = merge_listed(Order::NewestFirst, both, bounds, 10);
        assert_eq!(just_ids(&shown), ["evt_09", "evt_08", "evt_07"]);
        assert_eq!(next.as_deref(), Some("evt_07"));
    }

    #[test]
    fn oldest_first_shows_nothing_above_the_lower_bound() {
        let mut both = ids(&[1, 2, 4, 6]);
        both.extend(ids(&[2, 3, 9]));
        let bounds = [Some("evt_06".to_owned()), Some("evt_03".to_owned())];
        let (shown, next) = merge_listed(Order::OldestFirst, both, bounds, 10);
        assert_eq!(just_ids(&shown), ["evt_01", "evt_02", "evt_03"]);
        assert_eq!(next.as_deref(), Some("evt_03"));
    }

    #[test]
    fn a_full_page_starts_the_next_after_its_last_id() {
        let (shown, next) = merge_listed(Order::NewestFirst, ids(&[1, 2, 3, 4]), [None, None], 2);
        assert_eq!(just_ids(&shown), ["evt_04", "evt_03"]);
        assert_eq!(next.as_deref(), Some("evt_03"));
        let (shown, next) = merge_listed(Order::OldestFirst, ids(&[4, 3, 2, 1]), [None, None], 3);
        assert_eq!(just_ids(&shown), ["evt_01", "evt_02", "evt_03"]);
        assert_eq!(next.as_deref(), Some("evt_03"));
        let (shown, next) = merge_listed(Order::OldestFirst, ids(&[2, 1]), [None, None], 3);
        assert_eq!(just_ids(&shown), ["evt_01", "evt_02"]);
        assert_eq!(next, None, "all read: the listing is done");
    }
}
