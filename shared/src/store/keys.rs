//! Key layout of the single table. Every key string is built here and nowhere else.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

/// Listings per workspace, newest first. Its key attributes keep the names they had when the
/// index was `gsi1`, so items written before need no rewrite.
pub const LISTING_INDEX: &str = "listing";
/// Sparse: events by source and attempts by endpoint, newest first; sorted by `gsi1sk`.
pub const LINK_INDEX: &str = "link";
/// Sparse: events by type, newest first; sorted by `gsi1sk`.
pub const TYPE_INDEX: &str = "type";
pub const SWEEP_INDEX: &str = "sweep";
pub const PENDING_INDEX: &str = "pending";
pub const FAILING_INDEX: &str = "failing";
/// Shards of the sparse GSIs: spreads the write traffic of `last_success_at` and pending
/// markers over partitions; the sweeper queries each shard.
pub const SHARDS: u32 = 8;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const LISTING_PK: &str = "gsi1pk";
pub const LISTING_SK: &str = "gsi1sk";
pub const LINK_PK: &str = "link_pk";
pub const TYPE_PK: &str = "type_pk";
pub const SWEEP_SHARD: &str = "sweep_shard";
pub const SWEEP_AT: &str = "sweep_at";
pub const PENDING_SHARD: &str = "pending_shard";
pub const FAILING_SHARD: &str = "failing_shard";
pub const FAILING_SINCE: &str = "failing_since";
pub const PENDING_AT: &str = "pending_at";
pub const EXPIRES_AT: &str = "expires_at";

pub type Item = HashMap<String, AttributeValue>;

pub fn workspace(name: &str) -> (String, String) {
    (format!("WS#{name}"), "WS".to_owned())
}
pub const WORKSPACES_LIST: &str = "WS";

pub fn source(id: &str) -> (String, String) {
    (format!("SRC#{id}"), "SRC".to_owned())
}
pub fn api_key(hash: &str) -> (String, String) {
    (format!("KEY#{hash}"), "KEY".to_owned())
}
pub fn api_keys_list(ws: &str) -> String {
    format!("{ws}#KEY")
}

/// A one-time migration's mark that it is done.
pub fn migration(name: &str) -> (String, String) {
    (format!("MIGRATION#{name}"), "MIGRATION".to_owned())
}

/// A custom mount path of a source: the path is global, like a route.
pub fn source_path(path: &str) -> (String, String) {
    (format!("PATH#{path}"), "PATH".to_owned())
}
/// The claim on a source's or endpoint's name within its workspace.
pub fn name_claim(ws: &str, kind: &str, name: &str) -> (String, String) {
    (format!("NAME#{ws}#{kind}#{name}"), "NAME".to_owned())
}
/// The counter raised on every change to a workspace's sources and endpoints.
pub fn config_stamp(ws: &str) -> (String, String) {
    (format!("CFG#{ws}"), "CFG".to_owned())
}
pub const STAMP: &str = "v";
/// On a config stamp: how long, in milliseconds, a reader may trust it without reading it again.
pub const STAMP_LEASE: &str = "lease_ms";
/// On a config stamp: the stamp its lease was recorded with. A raise that records none (by
/// the sweeper, delivery, or an admin function from before leases) leaves the two apart,
/// and a stamp whose lease is not its own is trusted for no time at all.
pub const STAMP_LEASE_OF: &str = "lease_of";

/// A batch endpoint's open batch.
/// A rate limit's counter for one window: `scope` is `SRC#{id}` or `EP#{ws}#{id}`.
pub fn rate_window(scope: &str, window: u64) -> (String, String) {
    (format!("RATE#{scope}#{window}"), "RATE".to_owned())
}

pub fn batch_state(ws: &str, endpoint_id: &str) -> (String, String) {
    (format!("BATCH#{ws}#{endpoint_id}"), "BATCH".to_owned())
}

pub fn sources_list(ws: &str) -> String {
    format!("{ws}#SRC")
}

pub fn endpoint(ws: &str, id: &str) -> (String, String) {
    (format!("WS#{ws}"), format!("EP#{id}"))
}
pub const ENDPOINT_SK_PREFIX: &str = "EP#";

/// Events are keyed by their idempotency key within a scope (the source they came through).
pub fn event(scope: &str, idempotency_key: &str) -> (String, String) {
    (format!("EVT#{scope}#{idempotency_key}"), "EVT".to_owned())
}
pub const EVENT_SK: &str = "EVT";
pub fn events_list(ws: &str) -> String {
    format!("{ws}#EVT")
}

/// Events of one source (the `link` index).
pub fn events_of_source(ws: &str, source_id: &str) -> String {
    format!("{ws}#EVT#SRC#{}", tail(source_id))
}
/// Events of one type (the `type` index).
pub fn events_of_type(ws: &str, event_type: &str) -> String {
    format!("{ws}#EVT#TYPE#{}", tail(event_type))
}
/// A user-chosen last key segment, with `#` escaped: a workspace name may hold `#` too, so
/// without it `{ws}#EVT#TYPE#{t}` of one workspace could spell another workspace's key.
fn tail(segment: &str) -> std::borrow::Cow<'_, str> {
    if segment.contains(['#', '%']) {
        segment.replace('%', "%25").replace('#', "%23").into()
    } else {
        segment.into()
    }
}

/// The partition and sort key attributes of a paged index, or of the table (`None`).
pub fn key_attributes(index: Option<&str>) -> Option<(&'static str, &'static str)> {
    match index {
        None => Some((PK, SK)),
        Some(LISTING_INDEX) => Some((LISTING_PK, LISTING_SK)),
        Some(LINK_INDEX) => Some((LINK_PK, LISTING_SK)),
        Some(TYPE_INDEX) => Some((TYPE_PK, LISTING_SK)),
        Some(_) => None,
    }
}

pub const ATTEMPTS_OF_EVENT_PREFIX: &str = "ATT#";
pub fn attempts_of_event(event_id: &str) -> String {
    format!("{ATTEMPTS_OF_EVENT_PREFIX}{event_id}")
}
/// The pages of a workspace's attempt listing (see `attempt_pages`).
pub fn attempt_pages(ws: &str) -> String {
    format!("PAGE#{ws}#ATT")
}
/// The pages of one endpoint's attempt listing.
pub fn attempt_pages_of_endpoint(ws: &str, endpoint_id: &str) -> String {
    format!("PAGE#{ws}#ATT#EP#{}", tail(endpoint_id))
}
/// The pages of a workspace's event listing (see `listing_pages`).
pub fn event_pages(ws: &str) -> String {
    format!("PAGE#{ws}#EVT")
}
/// The pages of one source's events.
pub fn event_pages_of_source(ws: &str, source_id: &str) -> String {
    format!("PAGE#{ws}#EVT#SRC#{}", tail(source_id))
}
/// The pages of one event type's events.
pub fn event_pages_of_type(ws: &str, event_type: &str) -> String {
    format!("PAGE#{ws}#EVT#TYPE#{}", tail(event_type))
}
/// The legacy partition of a workspace's attempts in the `listing` index, from before
/// listing pages; the sweeper empties it.
pub fn attempts_list(ws: &str) -> String {
    format!("{ws}#ATT")
}

/// A shard chosen from the id's random tail, so no hashing is needed and it is stable.
pub fn shard_of(id: &str) -> String {
    let last = id.bytes().last().unwrap_or(b'0');
    (u32::from(last) % SHARDS).to_string()
}

pub fn key(pk: String, sk: String) -> Item {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(pk)),
        (SK.to_owned(), AttributeValue::S(sk)),
    ])
}

pub fn key_of((pk, sk): (String, String)) -> Item {
    key(pk, sk)
}

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}
