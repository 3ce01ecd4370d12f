//! Events listed on pages by the delivery function: once each, whatever their tasks, and
//! merged with the events stored before pages, which kept their index copies.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use hookrelay_shared::Timestamp;
use hookrelay_tests::{Stack, admin_call, create_endpoint, create_source, send_event};
use serde_json::json;

use super::COUNTING;

use hookrelay_tests::listings::page_ids as ids;

async fn get_status(stack: &Stack, id: &str) -> u16 {
    admin_call(
        stack,
        "GET",
        &format!("/workspaces/default/events/{id}"),
        None,
    )
    .await
    .0
}

/// A stack with one source and one endpoint on a receiver of its own.
async fn one_source_one_endpoint() -> (Stack, hookrelay_tests::Receiver, String) {
    let stack = Stack::new().await;
    let receiver = hookrelay_tests::Receiver::start().await;
    let source = create_source(&stack, json!({"name": "s"})).await;
    create_endpoint(&stack, json!({"name": "r", "url": receiver.url})).await;
    (stack, receiver, source)
}

/// The ids of the first page of the workspace's events, of the source's and of the type
/// `order.created`'s, each checked against `expected`.
async fn assert_listed(stack: &Stack, source: &str, expected: &[String]) {
    for path in [
        "/workspaces/default/events".to_owned(),
        format!("/workspaces/default/events?source_id={source}"),
        "/workspaces/default/events?event_type=order.created".to_owned(),
    ] {
        let (status, page) = admin_call(stack, "GET", &path, None).await;
        assert_eq!(status, 200, "{path}: {page}");
        assert_eq!(ids(&page), expected, "{path}");
    }
}

async fn send_with_key(stack: &Stack, source: &str, body: &[u8], key: &str) -> String {
    let resp = hookrelay_ingest::handle(
        &stack.ingest(),
        hookrelay_tests::request(
            "POST",
            &format!("/in/{source}"),
            &[("idempotency-key", key)],
            body,
        ),
    )
    .await;
    assert_eq!(resp.status(), 202, "{}", resp.body());
    hookrelay_tests::json_of(&resp)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// An event from ingest is listed when its first task is received, on its workspace's,
/// source's and type's pages, and nowhere in an index; a repeat of it (same idempotency
/// key) lists nothing more. The event item holds no index keys.
#[tokio::test]
async fn an_event_is_listed_once_by_its_first_task() {
    let _one_at_a_time = COUNTING.lock().await;
    let (stack, receiver, source) = one_source_one_endpoint().await;

    let body = br#"{"event_type": "order.created", "id": "o-1"}"#;
    let id = send_with_key(&stack, &source, body, "delivery-1").await;
    assert_eq!(
        get_status(&stack, &id).await,
        404,
        "not listed before its task"
    );
    let (_, page) = admin_call(&stack, "GET", "/workspaces/default/events", None).await;
    assert!(ids(&page).is_empty(), "{page}");

    stack.drain(&stack.delivery()).await;
    assert_eq!(get_status(&stack, &id).await, 200);
    assert_eq!(receiver.deliveries().len(), 1);

    let again = send_with_key(&stack, &source, body, "delivery-1").await;
    assert_eq!(again, id, "a repeat answers the stored event");
    stack.drain(&stack.delivery()).await;
    assert_eq!(receiver.deliveries().len(), 1, "a repeat is not delivered");
    assert_listed(&stack, &source, std::slice::from_ref(&id)).await;
    for pk in [
        "PAGE#default#EVT".to_owned(),
        format!("PAGE#default#EVT#SRC#{source}"),
        "PAGE#default#EVT#TYPE#order.created".to_owned(),
    ] {
        let pages = hookrelay_tests::listings::page_items(&stack, &pk).await;
        assert_eq!(pages.len(), 1, "{pk}: one page: {pages:?}");
    }
    let (key, _) = stack
        .store
        .get_event("default", &id)
        .await
        .unwrap()
        .unwrap();
    let item = aws_sdk_dynamodb::Client::new(&stack.aws)
        .get_item()
        .table_name(&stack.settings.table_name)
        .key("pk", AttributeValue::S(key))
        .key("sk", AttributeValue::S("EVT".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    for copied in ["gsi1pk", "gsi1sk", "link_pk", "type_pk"] {
        assert!(!item.contains_key(copied), "{copied} in {item:?}");
    }
}

/// An event none of whose tasks is taken at once (here: no endpoint at all) is listed by
/// ingest, once stored, as one published through the API is. A task that only lists (what
/// the sweeper sends with a stranded event's tasks) lists its event and ends without a
/// delivery.
#[tokio::test]
async fn an_event_without_a_plain_task_is_listed_at_once() {
    let _one_at_a_time = COUNTING.lock().await;
    let stack = Stack::new().await;
    let source = create_source(&stack, json!({"name": "s"})).await;
    let id = send_event(&stack, &source, br#"{"event_type": "nobody.cares"}"#).await;
    assert_eq!(get_status(&stack, &id).await, 200, "listed at once");
    assert!(stack.queue_empty(&stack.settings.delivery_queue_url).await);

    let (status, published) = admin_call(
        &stack,
        "POST",
        "/workspaces/default/events",
        Some(json!({"event_type": "api.made", "data": {"n": 1}})),
    )
    .await;
    assert_eq!(status, 202, "{published}");
    let published = published["id"].as_str().unwrap().to_owned();
    assert_eq!(get_status(&stack, &published).await, 200, "listed at once");

    // An event stored but never listed, as a crash between the two would leave it.
    let fresh = hookrelay_shared::ids::new_id(hookrelay_shared::ids::EVENT);
    let unlisted = hookrelay_shared::Event {
        id: fresh.clone(),
        idempotency_key: fresh,
        ..stack
            .store
            .get_event("default", &id)
            .await
            .unwrap()
            .unwrap()
            .1
    };
    let key = hookrelay_shared::store::Store::event_key(&source, &unlisted.id);
    let retention = stack.settings.retention();
    stack
        .store
        .insert_event(&unlisted, &source, false, retention)
        .await
        .unwrap();
    stack
        .delivery()
        .queue
        .send_tasks(&[hookrelay_shared::DeliveryTask::listing(&unlisted, &key)])
        .await
        .unwrap();
    assert_eq!(get_status(&stack, &unlisted.id).await, 404);
    let rounds = stack.drain(&stack.delivery()).await;
    assert!(rounds.iter().all(|r| r.failed == 0), "{rounds:?}");
    assert_eq!(get_status(&stack, &unlisted.id).await, 200);
    assert!(stack.queue_empty(&stack.settings.delivery_queue_url).await);
    let (_, page) = admin_call(&stack, "GET", "/workspaces/default/events", None).await;
    assert_eq!(ids(&page), [unlisted.id.clone(), published, id]);
}

/// Events stored before pages and events listed on pages, interleaved in time, come back as
/// one listing, newest first, a page at a time (filtered too), are read by id, and a
/// recovery's oldest-first steps cover them all once.
#[tokio::test]
async fn events_from_before_pages_are_listed_with_the_paged_ones() {
    let _one_at_a_time = COUNTING.lock().await;
    let stack = Stack::new().await;
    let source = create_source(&stack, json!({"name": "s"})).await;
    let since = Timestamp::now();
    let mut made = Vec::new();
    for n in 0..6 {
        tokio::time::sleep(Duration::from_millis(3)).await;
        made.push(if n % 2 == 0 {
            hookrelay_tests::listings::put_legacy_event(&stack, &source, "mixed.kind", true).await
        } else {
            send_event(&stack, &source, br#"{"event_type": "mixed.kind"}"#).await
        });
    }
    stack.drain(&stack.delivery()).await;
    let newest_first: Vec<String> = made.iter().rev().cloned().collect();

    for filter in [
        String::new(),
        format!("&source_id={source}"),
        "&event_type=mixed.kind".to_owned(),
        format!("&source_id={source}&event_type=mixed.kind"),
    ] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10 {
            let after = cursor
                .as_deref()
                .map(|c| format!("&cursor={c}"))
                .unwrap_or_default();
            let path = format!("/workspaces/default/events?limit=2{filter}{after}");
            let (status, page) = admin_call(&stack, "GET", &path, None).await;
            assert_eq!(status, 200, "{path}: {page}");
            seen.extend(ids(&page));
            match page["next"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, newest_first, "filter {filter:?}");
    }
    for id in &made {
        assert_eq!(get_status(&stack, id).await, 200, "{id}");
    }

    let until = Timestamp::now();
    let mut recovered = Vec::new();
    let mut cursor = None;
    for _ in 0..10 {
        let (events, next) = stack
            .store
            .events_between("default", since, until, cursor.as_deref(), 4)
            .await
            .unwrap();
        recovered.extend(events.into_iter().map(|(_, e)| e.id));
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(recovered, made, "oldest first, each once");

    // A recovery saved before event pages holds the `listing` index's last evaluated key
    // (here: after the first, legacy, event); it goes on from there.
    let (key, _) = stack
        .store
        .get_event("default", &made[0])
        .await
        .unwrap()
        .unwrap();
    let legacy_cursor = {
        use base64::Engine;
        let key = json!({"pk": key, "sk": "EVT", "gsi1pk": "default#EVT", "gsi1sk": made[0]});
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.to_string())
    };
    let (events, _) = stack
        .store
        .events_between("default", since, until, Some(&legacy_cursor), 10)
        .await
        .expect("a cursor saved before pages is taken");
    let resumed: Vec<String> = events.into_iter().map(|(_, e)| e.id).collect();
    assert_eq!(resumed, made[1..], "after the event it names");
    // Another workspace's index cursor is refused.
    let foreign = {
        use base64::Engine;
        let key = json!({"pk": "x", "sk": "EVT", "gsi1pk": "other#EVT", "gsi1sk": made[0]});
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.to_string())
    };
    assert!(matches!(
        stack
            .store
            .events_between("default", since, until, Some(&foreign), 10)
            .await,
        Err(hookrelay_shared::store::StoreError::BadCursor)
    ));
}

/// A received task as the event source mapping hands it over.
fn received(task: hookrelay_shared::DeliveryTask) -> hookrelay_delivery::Received {
    hookrelay_delivery::Received {
        message_id: hookrelay_shared::ids::new_id("msg"),
        receipt_handle: String::new(),
        task,
        attempt: 1,
        receive_count: 1,
        sent_at: Some(Timestamp::now()),
        trace_id: None,
        deadline: None,
    }
}

/// A batch whose events cannot be listed delivers none of the tasks that carry a listing:
/// they come back (postponed) and list on a later receive; tasks that carry none go on.
/// Once the write succeeds, the listed tasks go on without their listing, so a retry does
/// not write it again, and a task that only lists ends.
#[tokio::test]
async fn a_listing_that_cannot_be_written_holds_its_tasks_back() {
    use hookrelay_delivery::Outcome;
    use hookrelay_shared::DeliveryTask;
    let _one_at_a_time = COUNTING.lock().await;
    let stack = Stack::new().await;
    let event = |n: u32| hookrelay_shared::Event {
        id: hookrelay_shared::ids::new_id(hookrelay_shared::ids::EVENT),
        workspace: "default".into(),
        source_id: "src_x".into(),
        event_type: "t".into(),
        idempotency_key: format!("k{n}"),
        received_at: Timestamp::now(),
        payload: b"{}".to_vec(),
        endpoint_ids: vec!["ep_x".into()],
        content_type: None,
        hops: 0,
        trace: None,
    };
    let (a, b, c) = (event(1), event(2), event(3));
    let key = |e: &hookrelay_shared::Event| {
        hookrelay_shared::store::Store::event_key(&e.source_id, &e.idempotency_key)
    };
    let events: hookrelay_delivery::Events = [&a, &b, &c]
        .into_iter()
        .map(|e| (key(e), e.clone()))
        .collect();
    let batch = || {
        vec![
            received(DeliveryTask {
                list: true,
                ..DeliveryTask::new(&a, &key(&a), "ep_x")
            }),
            received(DeliveryTask::listing(&b, &key(&b))),
            received(DeliveryTask::new(&c, &key(&c), "ep_x")),
        ]
    };

    let mut broken = stack.delivery();
    broken.store = hookrelay_shared::store::Store::new(
        aws_sdk_dynamodb::Client::new(&stack.aws),
        "no-such-table",
    );
    let (ended, deliver) = hookrelay_delivery::listing::list_new(&broken, batch(), &events).await;
    let held: Vec<(&str, bool)> = ended
        .iter()
        .map(|(r, o)| (r.task.event_id.as_str(), matches!(o, Outcome::NotStoredYet)))
        .collect();
    assert_eq!(held, [(a.id.as_str(), true), (b.id.as_str(), true)]);
    let going: Vec<&str> = deliver.iter().map(|r| r.task.event_id.as_str()).collect();
    assert_eq!(
        going,
        [c.id.as_str()],
        "a task without a listing is not held"
    );

    let ctx = stack.delivery();
    let (ended, deliver) = hookrelay_delivery::listing::list_new(&ctx, batch(), &events).await;
    assert!(
        matches!(ended.as_slice(), [(r, Outcome::Dropped)] if r.task.event_id == b.id),
        "{ended:?}"
    );
    let going: Vec<(&str, bool)> = deliver
        .iter()
        .map(|r| (r.task.event_id.as_str(), r.task.list))
        .collect();
    assert_eq!(going, [(a.id.as_str(), false), (c.id.as_str(), false)]);
    let listed = stack
        .store
        .list_events("default", &Default::default())
        .await
        .unwrap();
    assert!(
        listed.data.is_empty(),
        "listed events are read from the table, and none is stored"
    );
    let named: usize = hookrelay_tests::listings::page_items(&stack, "PAGE#default#EVT")
        .await
        .iter()
        .map(|p| p["entries"].as_l().unwrap().len())
        .sum();
    assert_eq!(named, 2, "the two events whose tasks carry a listing");
}

/// A listing reads no payload kept in S3: it shows none, and a page of such events would
/// otherwise read megabytes.
#[tokio::test]
async fn a_listing_reads_no_payload_object() {
    use hookrelay_shared::requests as counted;
    let _one_at_a_time = COUNTING.lock().await;
    let stack = Stack::new().await;
    let source = create_source(&stack, json!({"name": "big"})).await;
    let pad = "x".repeat(300 * 1024);
    let body = format!(r#"{{"event_type": "big.one", "pad": "{pad}"}}"#);
    let id = send_event(&stack, &source, body.as_bytes()).await;
    stack.list_accepted().await;
    let before = counted::snapshot();
    let (status, page) = admin_call(&stack, "GET", "/workspaces/default/events", None).await;
    let sent = counted::since(&before);
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids(&page), vec![id.clone()]);
    assert!(!sent.keys().any(|(service, _)| service == "S3"), "{sent:?}");
    let (_, one) = admin_call(
        &stack,
        "GET",
        &format!("/workspaces/default/events/{id}"),
        None,
    )
    .await;
    assert!(
        one["payload"].is_object() || one["payload_url"].is_string(),
        "read by id, the payload is there: {one}"
    );
}

/// An event listed again with other company (its task came back) adds a page; it never
/// overwrites the page that named it with others, which would drop them from listings.
#[tokio::test]
async fn listing_an_event_again_drops_none_listed_with_it() {
    let _one_at_a_time = COUNTING.lock().await;
    let stack = Stack::new().await;
    let retention = stack.settings.retention();
    let event = || {
        let id = hookrelay_shared::ids::new_id(hookrelay_shared::ids::EVENT);
        hookrelay_shared::Event {
            idempotency_key: id.clone(),
            id,
            workspace: "default".into(),
            source_id: "src_x".into(),
            event_type: "a.b".into(),
            received_at: Timestamp::now(),
            payload: b"{}".to_vec(),
            endpoint_ids: Vec::new(),
            content_type: None,
            hops: 0,
            trace: None,
        }
    };
    let (ew, ex) = (event(), event());
    for e in [&ew, &ex] {
        stack
            .store
            .insert_event(e, "src_x", false, retention)
            .await
            .unwrap();
    }
    let kw = hookrelay_shared::store::Store::event_key("src_x", &ew.id);
    let kx = hookrelay_shared::store::Store::event_key("src_x", &ex.id);
    stack
        .store
        .list_new_events(&[(&kw, &ew), (&kx, &ex)], retention)
        .await
        .unwrap();
    stack
        .store
        .list_new_events(&[(&kx, &ex)], retention)
        .await
        .unwrap();
    let (_, page) = admin_call(&stack, "GET", "/workspaces/default/events", None).await;
    // Newest first; two ids of one millisecond order by their random part.
    let mut both = vec![ex.id.clone(), ew.id.clone()];
    both.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ids(&page), both, "{page}");
    assert_eq!(get_status(&stack, &ew.id).await, 200);
}

/// An idempotency key is free again once the event that had it expired (DynamoDB's TTL
/// removes the item; its page, living as long as its longest entry, may stay). A new event
/// under the key is listed once, as itself; the expired one's entry names nothing any more.
#[tokio::test]
async fn an_expired_events_entry_never_shows_the_event_that_took_its_key() {
    let _one_at_a_time = COUNTING.lock().await;
    let (stack, _receiver, source) = one_source_one_endpoint().await;
    let body = br#"{"event_type": "order.created", "id": "o-1"}"#;
    let old = send_with_key(&stack, &source, body, "reused").await;
    stack.drain(&stack.delivery()).await;
    let (key, _) = stack
        .store
        .get_event("default", &old)
        .await
        .unwrap()
        .unwrap();
    // What the TTL does, at once here.
    aws_sdk_dynamodb::Client::new(&stack.aws)
        .delete_item()
        .table_name(&stack.settings.table_name)
        .key("pk", AttributeValue::S(key))
        .key("sk", AttributeValue::S("EVT".into()))
        .send()
        .await
        .unwrap();
    let new = send_with_key(&stack, &source, body, "reused").await;
    assert_ne!(new, old, "the key is free again");
    stack.drain(&stack.delivery()).await;
    assert_listed(&stack, &source, std::slice::from_ref(&new)).await;
    assert_eq!(get_status(&stack, &old).await, 404);
    assert_eq!(get_status(&stack, &new).await, 200);
}
