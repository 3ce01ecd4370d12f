//! Configuration applies at once: a source or endpoint created, changed, disabled or deleted
//! through the API governs the next event accepted after the API answered, even on a warm
//! ingest instance that keeps them in memory (a cache TTL of ten minutes here, where AWS's
//! default is ten seconds: the cache may keep copies only while they are current). Each test
//! runs twice: with no config lease (the stamp read for every event) and with one, where ingest
//! trusts the stamp it read for the lease and the API's answer to a change waits the lease out.
//! The lease is longer than each test's steps, so an answer that did not wait would leave the
//! next event routed by the configuration before the change.

use std::time::Duration;

use hookrelay_tests::{Receiver, Stack, admin_call, create_endpoint, create_source};
use serde_json::json;

/// Longer than a few admin calls and events take here.
const LEASE: Duration = Duration::from_millis(1500);

async fn stack_with_lease(lease: Duration) -> Stack {
    let mut stack = Stack::new().await;
    stack.settings.config_lease = lease;
    stack
}

fn warm_ingest(stack: &Stack) -> hookrelay_ingest::Context {
    let mut settings = stack.settings.clone();
    settings.cache_ttl = Duration::from_secs(600);
    hookrelay_ingest::Context::new(&stack.aws, settings)
}

async fn post(ingest: &hookrelay_ingest::Context, path: &str, n: u32) -> u16 {
    let resp = hookrelay_ingest::handle(
        ingest,
        hookrelay_tests::request(
            "POST",
            path,
            &[("content-type", "application/json")],
            json!({"event_type": "order.created", "data": {"n": n}})
                .to_string()
                .as_bytes(),
        ),
    )
    .await;
    resp.status().as_u16()
}

/// The `n` of each delivery a receiver got, in order.
fn seen(r: &Receiver) -> Vec<u64> {
    r.deliveries()
        .iter()
        .map(|d| {
            let v: serde_json::Value = serde_json::from_slice(&d.body).unwrap();
            v["data"]["n"].as_u64().unwrap()
        })
        .collect()
}

#[tokio::test]
async fn endpoint_changes_govern_the_next_event() {
    endpoint_changes(Duration::ZERO).await;
}

#[tokio::test]
async fn endpoint_changes_govern_the_next_event_within_a_lease() {
    endpoint_changes(LEASE).await;
}

async fn endpoint_changes(lease: Duration) {
    let stack = stack_with_lease(lease).await;
    let (a, b) = (Receiver::start().await, Receiver::start().await);
    let source = create_source(&stack, json!({"name": "shop"})).await;
    let ep_a = create_endpoint(&stack, json!({"name": "a", "url": a.url, "events": ["*"]})).await;
    let ingest = warm_ingest(&stack);
    let delivery = stack.delivery();
    let path = format!("/in/{source}");
    // Each event is delivered before the next change: a task delivered later would meet
    // the endpoint as it is then.
    let send = |n: u32| {
        let (ingest, path, delivery, stack) = (&ingest, &path, &delivery, &stack);
        async move {
            assert_eq!(post(ingest, path, n).await, 202);
            stack.drain(delivery).await;
        }
    };

    send(1).await;
    // Created after the ingest instance cached the workspace's endpoints.
    let ep_b = create_endpoint(
        &stack,
        json!({"name": "b", "url": b.url, "events": ["order.*"]}),
    )
    .await;
    send(2).await;
    // Disabled: the next event skips it.
    let id_a = ep_a["id"].as_str().unwrap();
    let (status, _) = admin_call(
        &stack,
        "PUT",
        &format!("/workspaces/default/endpoints/{id_a}"),
        Some(json!({"name": "a", "url": a.url, "events": ["*"], "enabled": false})),
    )
    .await;
    assert_eq!(status, 200);
    send(3).await;
    // Its filter changed to something else.
    let id_b = ep_b["id"].as_str().unwrap();
    let (status, _) = admin_call(
        &stack,
        "PUT",
        &format!("/workspaces/default/endpoints/{id_b}"),
        Some(json!({"name": "b", "url": b.url, "events": ["invoice.*"]})),
    )
    .await;
    assert_eq!(status, 200);
    send(4).await;
    // Back, then deleted.
    let (status, _) = admin_call(
        &stack,
        "PUT",
        &format!("/workspaces/default/endpoints/{id_b}"),
        Some(json!({"name": "b", "url": b.url, "events": ["*"]})),
    )
    .await;
    assert_eq!(status, 200);
    send(5).await;
    let (status, _) = admin_call(
        &stack,
        "DELETE",
        &format!("/workspaces/default/endpoints/{id_b}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    send(6).await;

    let mut got_a = seen(&a);
    let mut got_b = seen(&b);
    got_a.sort_unstable();
    got_b.sort_unstable();
    assert_eq!(got_a, [1, 2], "a: before it was disabled");
    assert_eq!(
        got_b,
        [2, 3, 5],
        "b: from its creation, not while filtered out or deleted"
    );
}

#[tokio::test]
async fn source_changes_govern_the_next_request() {
    source_changes(Duration::ZERO).await;
}

#[tokio::test]
async fn source_changes_govern_the_next_request_within_a_lease() {
    source_changes(LEASE).await;
}

async fn source_changes(lease: Duration) {
    let stack = stack_with_lease(lease).await;
    let ingest = warm_ingest(&stack);

    // A path nobody has mounted yet, then mounted: found at once.
    assert_eq!(post(&ingest, "/hooks/shop", 1).await, 404);
    let source = create_source(&stack, json!({"name": "shop", "path": "/hooks/shop"})).await;
    assert_eq!(post(&ingest, "/hooks/shop", 2).await, 202);
    let by_id = format!("/in/{source}");
    assert_eq!(post(&ingest, &by_id, 3).await, 202);

    // Disabled, then enabled again.
    let put = |body: serde_json::Value| {
        let stack = &stack;
        let source = &source;
        async move {
            admin_call(
                stack,
                "PUT",
                &format!("/workspaces/default/sources/{source}"),
                Some(body),
            )
            .await
            .0
        }
    };
    assert_eq!(
        put(json!({"name": "shop", "path": "/hooks/shop", "enabled": false})).await,
        200
    );
    assert_eq!(post(&ingest, &by_id, 4).await, 403);
    assert_eq!(post(&ingest, "/hooks/shop", 4).await, 403);
    // Moved to another path: the old one is gone at once, the new one works.
    assert_eq!(
        put(json!({"name": "shop", "path": "/hooks/store"})).await,
        200
    );
    assert_eq!(post(&ingest, "/hooks/shop", 5).await, 404);
    assert_eq!(post(&ingest, "/hooks/store", 5).await, 202);
    // Verification added: unsigned requests are refused from the next one on.
    assert_eq!(
        put(json!({"name": "shop", "path": "/hooks/store",
                   "verification": {"type": "api_key", "header": "x-key", "value": "k-0123456789"}}))
        .await,
        200
    );
    assert_eq!(post(&ingest, "/hooks/store", 6).await, 401);
    // Deleted.
    let (status, _) = admin_call(
        &stack,
        "DELETE",
        &format!("/workspaces/default/sources/{source}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(post(&ingest, &by_id, 7).await, 404);
    assert_eq!(post(&ingest, "/hooks/store", 7).await, 404);
}

#[tokio::test]
async fn a_change_waits_out_a_longer_lease_recorded_before_it() {
    let mut stack = stack_with_lease(LEASE).await;
    let ingest = warm_ingest(&stack);
    let source = create_source(&stack, json!({"name": "shop"})).await;
    let by_id = format!("/in/{source}");
    assert_eq!(post(&ingest, &by_id, 1).await, 202);
    // The deployment's lease lowered to none: the stamp ingest holds still carries the
    // longer lease, which the answer must wait out.
    stack.settings.config_lease = Duration::ZERO;
    let (status, _) = admin_call(
        &stack,
        "PUT",
        &format!("/workspaces/default/sources/{source}"),
        Some(json!({"name": "shop", "enabled": false})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(post(&ingest, &by_id, 2).await, 403);
}

/// A stamp raised by something that records no lease (an admin function from before leases,
/// while a deploy replaces it; the sweeper deactivating an endpoint) waits for nothing, so
/// ingest trusts it for no time: the lease still on the item is the one of the raise before.
#[tokio::test]
async fn a_stamp_raised_without_a_lease_is_trusted_for_no_time() {
    let stack = stack_with_lease(LEASE).await;
    let ingest = warm_ingest(&stack);
    let source = create_source(&stack, json!({"name": "shop"})).await;
    let by_id = format!("/in/{source}");
    // The harness's own store answers no changes: its raises record no lease.
    let mut changed = stack.store.get_source(&source).await.unwrap().unwrap();
    changed.enabled = false;
    stack.store.put_source(&mut changed).await.unwrap();
    assert_eq!(post(&ingest, &by_id, 1).await, 403);
    changed.enabled = true;
    stack.store.put_source(&mut changed).await.unwrap();
    assert_eq!(post(&ingest, &by_id, 2).await, 202);
}
