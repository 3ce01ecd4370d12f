//! A workspace whose events and attempts interleave a few that a filter wants with many it
//! does not, as a filtered listing meets them: the wanted ones spread across the whole range.

use std::collections::BTreeMap;

use futures::StreamExt;
use hookrelay_shared::{
    Attempt, AttemptRequest, AttemptStatus, Event, Timestamp, TriggerMode, ids,
};

use crate::{Stack, admin_call};

pub const WS: &str = "default";
pub const SOURCE: &str = "src_wanted";
pub const TYPE: &str = "order.refunded";
pub const ENDPOINT: &str = "ep_wanted";

/// Ids of what each filter should list, newest first.
#[derive(Debug, Default)]
pub struct Seeded {
    pub events: Vec<String>,
    pub by_source: Vec<String>,
    pub by_type: Vec<String>,
    pub by_source_and_type: Vec<String>,
    pub attempts: Vec<String>,
    pub by_endpoint: Vec<String>,
    pub by_endpoint_failed: Vec<String>,
    /// Attempts per event id, newest first.
    pub by_event: BTreeMap<String, Vec<String>>,
}

/// `n` events, one attempt each, one millisecond apart; every 41st event is from
/// [`SOURCE`] and of [`TYPE`], and its attempt went to [`ENDPOINT`]. Between them come events
/// of the source with other types and of the type from other sources, so a combined filter
/// has something to drop. Written through the store's own item builders.
pub async fn seed(stack: &Stack, n: u64) -> Seeded {
    let start = Timestamp::now().unix_millis() as u64 - n;
    let retention = stack.settings.retention();
    let mut seeded = Seeded::default();
    let mut events = Vec::new();
    let mut attempts = Vec::new();
    for i in 0..n {
        let at = start + i;
        let wanted = i % 41 == 0;
        let source_id = if wanted || i % 41 == 20 {
            SOURCE.to_owned()
        } else {
            format!("src_o{}", i % 4)
        };
        let event_type = if wanted || i % 41 == 10 {
            TYPE.to_owned()
        } else {
            format!("t.{}", i % 6)
        };
        let event = Event {
            id: format!(
                "{}_{}",
                ids::EVENT,
                ulid::Ulid::from_parts(at, u128::from(i))
            ),
            workspace: WS.to_owned(),
            source_id,
            event_type,
            idempotency_key: format!("k{i}"),
            received_at: Timestamp::from_unix_millis(at as i64).expect("a time"),
            payload: br#"{"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#.to_vec(),
            content_type: None,
            endpoint_ids: vec![],
            hops: 0,
            trace: None,
        };
        let endpoint_id = if wanted {
            ENDPOINT.to_owned()
        } else {
            format!("ep_o{}", i % 4)
        };
        let failed = if wanted { i > 0 } else { i % 3 == 0 };
        let mut attempt = attempt(
            at,
            i,
            &endpoint_id,
            if failed {
                AttemptStatus::Failed
            } else {
                AttemptStatus::Successful
            },
        );
        attempt.event_id = event.id.clone();
        let (src, ty) = (event.source_id == SOURCE, event.event_type == TYPE);
        seeded.events.push(event.id.clone());
        if src {
            seeded.by_source.push(event.id.clone());
        }
        if ty {
            seeded.by_type.push(event.id.clone());
        }
        if src && ty {
            seeded.by_source_and_type.push(event.id.clone());
        }
        seeded.attempts.push(attempt.id.clone());
        if attempt.endpoint_id == ENDPOINT {
            seeded.by_endpoint.push(attempt.id.clone());
            if failed {
                seeded.by_endpoint_failed.push(attempt.id.clone());
            }
        }
        seeded
            .by_event
            .entry(event.id.clone())
            .or_default()
            .push(attempt.id.clone());
        events.push(event);
        attempts.push(attempt);
    }
    futures::stream::iter(&events)
        .for_each_concurrent(16, |e| async move {
            stack
                .store
                .insert_event(e, &e.source_id, false, retention)
                .await
                .expect("event stored");
        })
        .await;
    // As the delivery function lists them, in its batches of ten.
    let keys: Vec<String> = events
        .iter()
        .map(|e| hookrelay_shared::store::Store::event_key(&e.source_id, &e.idempotency_key))
        .collect();
    let listed: Vec<(&str, &Event)> = keys.iter().map(String::as_str).zip(&events).collect();
    for batch in listed.chunks(10) {
        stack
            .store
            .list_new_events(batch, retention)
            .await
            .expect("events listed");
    }
    stack
        .store
        .put_attempts(&attempts, retention)
        .await
        .expect("attempts stored");
    for list in [
        &mut seeded.events,
        &mut seeded.by_source,
        &mut seeded.by_type,
        &mut seeded.by_source_and_type,
        &mut seeded.attempts,
        &mut seeded.by_endpoint,
        &mut seeded.by_endpoint_failed,
    ] {
        list.reverse();
    }
    seeded
}

/// Ids on every page of an admin listing `path`, following cursors, newest first as listed.
/// A page that carries a cursor must be full.
pub async fn all_ids(stack: &Stack, path: &str, limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..200 {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut uri = format!("{path}{sep}limit={limit}");
        if let Some(c) = &cursor {
            uri.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = admin_call(stack, "GET", &uri, None).await;
        assert_eq!(status, 200, "{uri}: {page}");
        let data = page["data"].as_array().expect("a data array");
        ids.extend(
            data.iter()
                .map(|d| d["id"].as_str().expect("an id").to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => {
                assert_eq!(data.len(), limit, "{uri}: a page with a cursor is full");
                cursor = Some(next.to_owned());
            }
            None => return ids,
        }
    }
    panic!("{path}: no last page after 200");
}

/// An attempt of the default workspace made at `at_ms`, its id and its event's id from that
/// time and `n`.
pub fn attempt(at_ms: u64, n: u64, endpoint: &str, status: AttemptStatus) -> Attempt {
    let at = Timestamp::from_unix_millis(at_ms as i64).expect("a time");
    Attempt {
        id: format!(
            "{}_{}",
            ids::ATTEMPT,
            ulid::Ulid::from_parts(at_ms, u128::from(n))
        ),
        workspace: WS.to_owned(),
        event_id: format!(
            "{}_{}",
            ids::EVENT,
            ulid::Ulid::from_parts(at_ms, u128::from(n))
        ),
        endpoint_id: endpoint.to_owned(),
        status,
        attempt_number: 1,
        trigger_mode: TriggerMode::Initial,
        scheduled_at: at,
        attempted_at: at,
        exhausted: false,
        error_code: None,
        error_message: None,
        next_attempt_at: None,
        request: AttemptRequest {
            method: "POST".into(),
            url: "https://example.com/hook".into(),
            headers: BTreeMap::new(),
        },
        response: None,
    }
}

/// An event as the store wrote it before listing pages: with the keys of its copies in the
/// `listing` index, and in the filter indexes when `filter_keys` (events from before those
/// lack them).
pub async fn put_legacy_event(
    stack: &Stack,
    source: &str,
    event_type: &str,
    filter_keys: bool,
) -> String {
    use aws_sdk_dynamodb::types::AttributeValue;
    let id = hookrelay_shared::ids::new_id(hookrelay_shared::ids::EVENT);
    let event = Event {
        id: id.clone(),
        workspace: "default".into(),
        source_id: source.into(),
        event_type: event_type.into(),
        idempotency_key: format!("legacy-{id}"),
        received_at: Timestamp::now(),
        payload: br#"{"legacy": true}"#.to_vec(),
        endpoint_ids: Vec::new(),
        content_type: None,
        hops: 0,
        trace: None,
    };
    let mut item = hookrelay_shared::store::Store::event_item(
        &event,
        source,
        false,
        std::time::Duration::from_secs(86_400),
    )
    .expect("an event item");
    let mut copies = vec![("gsi1pk", "default#EVT".to_owned()), ("gsi1sk", id.clone())];
    if filter_keys {
        copies.push(("link_pk", format!("default#EVT#SRC#{source}")));
        copies.push(("type_pk", format!("default#EVT#TYPE#{event_type}")));
    }
    for (name, value) in copies {
        item.insert(name.into(), AttributeValue::S(value));
    }
    aws_sdk_dynamodb::Client::new(&stack.aws)
        .put_item()
        .table_name(&stack.settings.table_name)
        .set_item(Some(item))
        .send()
        .await
        .expect("legacy event written");
    id
}

/// The ids on a page of an admin listing, in its order.
pub fn page_ids(page: &serde_json::Value) -> Vec<String> {
    page["data"]
        .as_array()
        .expect("a listing page")
        .iter()
        .map(|d| d["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// The page items stored under one listing's page partition `pk`.
pub async fn page_items(
    stack: &Stack,
    pk: &str,
) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    aws_sdk_dynamodb::Client::new(&stack.aws)
        .query()
        .table_name(&stack.settings.table_name)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.into()))
        .send()
        .await
        .expect("page query")
        .items
        .unwrap_or_default()
}
