//! Payloads up to 6 MB: over 256 KiB they are kept in S3 (the event item names the object),
//! under it in the item (zstd-compressed when that saves a write unit), and either way they
//! are delivered, listed and shown byte for byte.
//! Sent through the local stack's API Gateway, which applies Lambda's 6 MB invocation limit
//! to the event it builds (the body escaped or base64-encoded, with the headers).

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use hookrelay_shared::payload_objects::{INLINE_PAYLOAD_MAX, MAX_PAYLOAD, PayloadObjects};
use hookrelay_shared::store::Store;
use hookrelay_tests::{ADMIN_KEY, Receiver, Stack, create_endpoint, create_source, gateway};
use serde_json::{Value, json};

const KIB: usize = 1024;

/// A JSON body of exactly `len` bytes: `{"data":"xxx…"}`.
fn json_body(len: usize) -> Vec<u8> {
    let mut body = br#"{"data":""#.to_vec();
    body.resize(len - 2, b'x');
    body.extend_from_slice(br#""}"#);
    body
}

async fn post(base: &str, path: &str, content_type: &str, body: Vec<u8>) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("the gateway answers");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

async fn get(base: &str, path: &str) -> Value {
    let resp = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(resp.status(), 200);
    serde_json::from_slice(&resp.bytes().await.expect("body")).expect("JSON")
}

/// The event's item as stored: whether it holds the payload or names an object.
async fn item_of(
    stack: &Stack,
    event_id: &str,
) -> std::collections::HashMap<String, AttributeValue> {
    stack.list_accepted().await;
    let (key, _) = stack
        .store
        .get_event("default", event_id)
        .await
        .expect("read")
        .expect("stored");
    aws_sdk_dynamodb::Client::new(&stack.aws)
        .get_item()
        .table_name(&stack.settings.table_name)
        .key("pk", AttributeValue::S(key))
        .key("sk", AttributeValue::S("EVT".into()))
        .send()
        .await
        .expect("GetItem")
        .item
        .expect("the item")
}

async fn deliver_all(stack: &Stack, receiver: &Receiver, want: usize) {
    let ctx = stack.delivery();
    for _ in 0..20 {
        if receiver.deliveries().len() >= want {
            return;
        }
        stack.deliver_once(&ctx, Duration::from_millis(200)).await;
    }
    panic!("{} of {want} delivered", receiver.deliveries().len());
}

#[tokio::test]
async fn payloads_over_256_kib_go_to_s3_and_come_back_byte_for_byte() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    create_endpoint(&stack, json!({"name": "r", "url": receiver.url})).await;
    let source = create_source(&stack, json!({"name": "big", "default_event_type": "bulk"})).await;
    let base = gateway::serve(&stack).await;

    let sizes = [255 * KIB, 257 * KIB, MAX_PAYLOAD];
    let mut ids = Vec::new();
    for &len in &sizes {
        let (status, body) = post(
            &base,
            &format!("/in/{source}"),
            "application/json",
            json_body(len),
        )
        .await;
        assert_eq!(status, 202, "{len} bytes: {body}");
        let answer: Value = serde_json::from_str(&body).expect("JSON");
        ids.push(answer["id"].as_str().expect("id").to_owned());
    }

    deliver_all(&stack, &receiver, sizes.len()).await;
    let mut delivered: Vec<usize> = receiver.deliveries().iter().map(|d| d.body.len()).collect();
    delivered.sort_unstable();
    assert_eq!(delivered, sizes);
    for d in receiver.deliveries() {
        assert_eq!(
            d.body.as_ref(),
            json_body(d.body.len()).as_slice(),
            "byte for byte"
        );
    }

    let objects = PayloadObjects::new(
        hookrelay_tests::s3_client(&stack.aws),
        stack.settings.payload_bucket.clone().expect("bucket"),
    );
    for (id, &len) in ids.iter().zip(&sizes) {
        let item = item_of(&stack, id).await;
        let key = PayloadObjects::key("default", id);
        if len <= INLINE_PAYLOAD_MAX {
            assert!(
                item.contains_key("payload_zstd"),
                "{len} bytes stay in the item, compressed"
            );
            assert!(!item.contains_key("payload_object"));
        } else {
            assert!(
                !item.contains_key("payload") && !item.contains_key("payload_zstd"),
                "{len} bytes leave the item"
            );
            assert_eq!(item["payload_object"], AttributeValue::S(key.clone()));
            assert_eq!(item["payload_size"], AttributeValue::N(len.to_string()));
            assert_eq!(objects.get(&key).await.expect("the object"), json_body(len));
        }
        // Shown like any event, the whole payload inline while the answer fits Lambda's.
        stack.list_accepted().await;
        let view = get(&base, &format!("/workspaces/default/events/{id}")).await;
        assert_eq!(view["payload_encoding"], "json");
        assert_eq!(
            serde_json::to_vec(&view["payload"]).expect("JSON").len(),
            len,
            "{len} bytes shown"
        );
    }
    let listed = get(&base, "/workspaces/default/events").await;
    let listed: Vec<&str> = listed["data"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    for id in &ids {
        assert!(listed.contains(&id.as_str()), "{id} listed");
    }
}

/// A 2 KiB JSON webhook and its event's attributes take three write units as they came; the
/// item keeps the payload compressed in two. A small one is kept as it came. Both are
/// delivered, shown and listed as they came.
#[tokio::test]
async fn a_payload_is_compressed_in_its_item_when_that_saves_a_write_unit() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    create_endpoint(&stack, json!({"name": "r", "url": receiver.url})).await;
    let source = create_source(&stack, json!({"name": "s"})).await;
    let base = gateway::serve(&stack).await;

    let bodies = [
        hookrelay_tests::bodies::invoice_event(1, 2 * KIB),
        hookrelay_tests::bodies::invoice_event(2, 400),
    ];
    let mut ids = Vec::new();
    for body in &bodies {
        let (status, answer) = post(
            &base,
            &format!("/in/{source}"),
            "application/json",
            body.clone().into_bytes(),
        )
        .await;
        assert_eq!(status, 202, "{answer}");
        let answer: Value = serde_json::from_str(&answer).expect("JSON");
        ids.push(answer["id"].as_str().expect("id").to_owned());
    }

    let two_kib = item_of(&stack, &ids[0]).await;
    assert!(two_kib.contains_key("payload_zstd") && !two_kib.contains_key("payload"));
    let bytes = hookrelay_shared::store::item_bytes(&two_kib);
    assert!(bytes <= 2 * KIB, "two write units: {bytes} bytes");
    let small = item_of(&stack, &ids[1]).await;
    assert!(small.contains_key("payload") && !small.contains_key("payload_zstd"));

    deliver_all(&stack, &receiver, bodies.len()).await;
    let mut delivered: Vec<Vec<u8>> = receiver
        .deliveries()
        .iter()
        .map(|d| d.body.to_vec())
        .collect();
    delivered.sort();
    let mut sent: Vec<Vec<u8>> = bodies.iter().map(|b| b.clone().into_bytes()).collect();
    sent.sort();
    assert_eq!(delivered, sent, "delivered byte for byte");
    stack.list_accepted().await;
    for (id, body) in ids.iter().zip(&bodies) {
        let view = get(&base, &format!("/workspaces/default/events/{id}")).await;
        assert_eq!(view["payload_encoding"], "json");
        assert_eq!(
            view["payload"],
            serde_json::from_str::<Value>(body).expect("JSON"),
            "shown as it came"
        );
    }
    let listed = get(&base, "/workspaces/default/events").await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_and_nothing_is_stored() {
    let stack = Stack::new().await;
    let source = create_source(
        &stack,
        json!({"name": "big", "default_event_type": "bulk", "accept_raw": true}),
    )
    .await;
    let base = gateway::serve(&stack).await;

    // One byte over hookrelay's limit: its own answer, naming the limit.
    let (status, body) = post(
        &base,
        &format!("/in/{source}"),
        "application/json",
        json_body(MAX_PAYLOAD + 1),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body.contains("payload_too_large") && body.contains("6000000"),
        "{body}"
    );

    // A binary body travels base64-encoded: 4.8 MB becomes 6.4 MB, over what Lambda takes,
    // and API Gateway answers before any function runs.
    let (status, body) = post(
        &base,
        &format!("/in/{source}"),
        "application/octet-stream",
        vec![0xA5; 4_800_000],
    )
    .await;
    assert_eq!(status, 413, "{body}");

    let listed = get(&base, "/workspaces/default/events").await;
    assert_eq!(listed["data"], json!([]), "nothing stored");
    assert_eq!(
        stack.queue_depth(&stack.settings.delivery_queue_url).await,
        (0, 0)
    );
}

#[tokio::test]
async fn a_payload_too_large_for_an_answer_is_shown_as_a_link() {
    let stack = Stack::new().await;
    let source = create_source(
        &stack,
        json!({"name": "t", "default_event_type": "text", "accept_raw": true}),
    )
    .await;
    let base = gateway::serve(&stack).await;
    // Text of quotes: shown as a JSON string, every quote escaped once in the view and again
    // in Lambda's answer, four times its size: no longer fits the 6 MB answer.
    let text = vec![b'"'; 2_000_000];
    let (status, body) = post(&base, &format!("/in/{source}"), "text/plain", text.clone()).await;
    assert_eq!(status, 202, "{body}");
    let id = serde_json::from_str::<Value>(&body).expect("JSON")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    stack.list_accepted().await;
    let view = get(&base, &format!("/workspaces/default/events/{id}")).await;
    assert!(view.get("payload").is_none(), "{view}");
    let link = view["payload_url"].as_str().expect("a link to the payload");
    let fetched = reqwest::get(link).await.expect("the link answers");
    assert_eq!(fetched.status(), 200);
    assert_eq!(
        fetched.bytes().await.expect("body").as_ref(),
        text.as_slice()
    );
}

#[tokio::test]
async fn the_bucket_expires_objects_with_the_events() {
    let stack = Stack::new().await;
    let rules = hookrelay_tests::s3_client(&stack.aws)
        .get_bucket_lifecycle_configuration()
        .bucket(stack.settings.payload_bucket.as_deref().expect("bucket"))
        .send()
        .await
        .expect("the bucket has a lifecycle");
    let days: Vec<Option<i32>> = rules
        .rules()
        .iter()
        .map(|r| r.expiration().and_then(|e| e.days()))
        .collect();
    assert_eq!(days, vec![Some(stack.settings.retention_days as i32)]);
}

#[tokio::test]
async fn without_a_bucket_a_large_payload_is_refused_and_small_ones_still_work() {
    let stack = Stack::new().await;
    let store = Store::new(
        aws_sdk_dynamodb::Client::new(&stack.aws),
        &stack.settings.table_name,
    );
    let id = hookrelay_shared::ids::new_id(hookrelay_shared::ids::EVENT);
    let mut event = hookrelay_shared::Event {
        idempotency_key: id.clone(),
        id,
        workspace: "default".into(),
        source_id: "src_x".into(),
        event_type: "t".into(),
        received_at: hookrelay_shared::Timestamp::now(),
        payload: json_body(INLINE_PAYLOAD_MAX + 1),
        endpoint_ids: vec![],
        content_type: None,
        hops: 0,
        trace: None,
    };
    let err = store
        .insert_event(&event, "src_x", false, stack.settings.retention())
        .await
        .expect_err("no bucket");
    assert!(
        hookrelay_shared::telemetry::error_chain(&err).contains("PAYLOAD_BUCKET"),
        "{err}"
    );
    event.payload = json_body(INLINE_PAYLOAD_MAX);
    store
        .insert_event(&event, "src_x", false, stack.settings.retention())
        .await
        .expect("inline");
}
