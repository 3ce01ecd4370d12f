//! The management API's full CRUD: workspaces, sources and endpoints (create, get, full
//! update, delete), publishing events directly, and the event and attempt filters.

use std::time::Duration;

use hookrelay_shared::redact::mask;
use hookrelay_tests::{Receiver, Stack, admin_call as call};
use serde_json::json;

#[tokio::test]
async fn workspaces_lifecycle() {
    let stack = Stack::new().await;
    let (s, list) = call(&stack, "GET", "/workspaces", None).await;
    assert_eq!(s, 200);
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["name"] == "default")
    );

    let (s, ws) = call(
        &stack,
        "POST",
        "/workspaces",
        Some(json!({"name": "team-a"})),
    )
    .await;
    assert_eq!(s, 201, "{ws}");
    assert!(ws["id"].as_str().unwrap().starts_with("ws_"));
    let (s, err) = call(
        &stack,
        "POST",
        "/workspaces",
        Some(json!({"name": "team-a"})),
    )
    .await;
    assert_eq!(
        (s, err["error"]["code"].as_str()),
        (409, Some("name_taken"))
    );
    let (s, err) = call(
        &stack,
        "POST",
        "/workspaces",
        Some(json!({"name": "Bad Name"})),
    )
    .await;
    assert_eq!((s, err["error"]["field"].as_str()), (400, Some("name")));
    let (s, _) = call(&stack, "GET", "/workspaces/team-a", None).await;
    assert_eq!(s, 200);
    let (s, _) = call(
        &stack,
        "PUT",
        "/workspaces/team-a",
        Some(json!({"name": "team-b"})),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = call(&stack, "DELETE", "/workspaces/default", None).await;
    assert_eq!(s, 409);

    let (s, ep) = call(
        &stack,
        "POST",
        "/workspaces/team-a/endpoints",
        Some(json!({"name": "e", "url": "https://example.com/h"})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, err) = call(&stack, "DELETE", "/workspaces/team-a", None).await;
    assert_eq!(
        (s, err["error"]["code"].as_str()),
        (409, Some("workspace_not_empty"))
    );
    let (s, _) = call(
        &stack,
        "DELETE",
        &format!(
            "/workspaces/team-a/endpoints/{}",
            ep["id"].as_str().unwrap()
        ),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = call(&stack, "DELETE", "/workspaces/team-a", None).await;
    assert_eq!(s, 204);
    let (s, _) = call(&stack, "GET", "/workspaces/team-a/endpoints", None).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn sources_and_endpoints_update_and_delete() {
    let stack = Stack::new().await;
    let (_, src) = call(
        &stack,
        "POST",
        "/workspaces/default/sources",
        Some(json!({"name": "s", "path": "/one"})),
    )
    .await;
    let id = src["id"].as_str().unwrap().to_owned();
    let (s, updated) = call(
        &stack,
        "PUT",
        &format!("/workspaces/default/sources/{id}"),
        Some(json!({"name": "s2", "path": "/two", "default_event_type": "x"})),
    )
    .await;
    assert_eq!(s, 200, "{updated}");
    assert_eq!(updated["id"], id.as_str());
    assert_eq!(updated["name"], "s2");
    assert_eq!(updated["ingest_path"], "/two");
    // The old path is free again; the new one routes to the source.
    assert!(stack.store.source_for_path("/one").await.unwrap().is_none());
    assert_eq!(
        stack
            .store
            .source_for_path("/two")
            .await
            .unwrap()
            .unwrap()
            .id,
        id
    );
    let (s, _) = call(
        &stack,
        "POST",
        "/workspaces/default/sources",
        Some(json!({"name": "o", "path": "/one"})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, _) = call(
        &stack,
        "PUT",
        &format!("/workspaces/default/sources/{id}"),
        Some(json!({"name": "s3", "path": "/one"})),
    )
    .await;
    assert_eq!(s, 409);
    let (s, _) = call(
        &stack,
        "DELETE",
        &format!("/workspaces/default/sources/{id}"),
        None,
    )
    .await;
    assert_eq!(s, 204);
    assert!(stack.store.source_for_path("/two").await.unwrap().is_none());
    let (s, _) = call(
        &stack,
        "GET",
        &format!("/workspaces/default/sources/{id}"),
        None,
    )
    .await;
    assert_eq!(s, 404);

    let (_, ep) = call(
        &stack,
        "POST",
        "/workspaces/default/endpoints",
        Some(json!({"name": "e", "url": "https://example.com/a"})),
    )
    .await;
    let eid = ep["id"].as_str().unwrap().to_owned();
    let (s, up) = call(&stack, "PUT", &format!("/workspaces/default/endpoints/{eid}"), Some(json!({"name": "e2", "url": "https://example.com/b", "events": ["a.*"], "enabled": false}))).await;
    assert_eq!(s, 200, "{up}");
    assert_eq!(
        up["secret"].as_str(),
        Some(mask(ep["secret"].as_str().unwrap()).as_str()),
        "the secret survives an update, shown masked"
    );
    assert_eq!(
        (up["url"].as_str(), up["enabled"].as_bool()),
        (Some("https://example.com/b"), Some(false))
    );
    let (s, err) = call(
        &stack,
        "PUT",
        &format!("/workspaces/default/endpoints/{eid}"),
        Some(json!({"name": "e2", "url": "gopher://x"})),
    )
    .await;
    assert_eq!((s, err["error"]["field"].as_str()), (400, Some("url")));
    let (s, _) = call(
        &stack,
        "DELETE",
        &format!("/workspaces/default/endpoints/{eid}"),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = call(
        &stack,
        "DELETE",
        &format!("/workspaces/default/endpoints/{eid}"),
        None,
    )
    .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn publish_and_filter_events_and_attempts() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    receiver.script(&[500], 200);
    let (_, ep) = call(
        &stack,
        "POST",
        "/workspaces/default/endpoints",
        Some(json!({"name": "e", "url": receiver.url, "events": ["order.*"]})),
    )
    .await;
    let before = hookrelay_shared::Timestamp::now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut ids = Vec::new();
    for t in ["order.created", "user.created", "order.paid"] {
        let (s, r) = call(
            &stack,
            "POST",
            "/workspaces/default/events",
            Some(json!({"event_type": t, "data": {"t": t}})),
        )
        .await;
        assert_eq!(s, 202, "{r}");
        ids.push(r["id"].as_str().unwrap().to_owned());
    }
    let (s, err) = call(
        &stack,
        "POST",
        "/workspaces/default/events",
        Some(json!({"data": {}})),
    )
    .await;
    assert_eq!(s, 400, "{err}");

    let (_, all) = call(&stack, "GET", "/workspaces/default/events", None).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 3);
    let (_, orders) = call(
        &stack,
        "GET",
        "/workspaces/default/events?event_type=order.paid",
        None,
    )
    .await;
    assert_eq!(orders["data"].as_array().unwrap().len(), 1);
    assert_eq!(orders["data"][0]["id"], ids[2].as_str());
    let since = before.to_string();
    let (_, recent) = call(
        &stack,
        "GET",
        &format!("/workspaces/default/events?since={since}"),
        None,
    )
    .await;
    assert_eq!(recent["data"].as_array().unwrap().len(), 3);
    let (_, none) = call(
        &stack,
        "GET",
        &format!("/workspaces/default/events?until={since}"),
        None,
    )
    .await;
    assert_eq!(none["data"].as_array().unwrap().len(), 0);
    let (s, _) = call(
        &stack,
        "GET",
        "/workspaces/default/events?since=yesterday",
        None,
    )
    .await;
    assert_eq!(s, 400);

    // Deliver: the first attempt fails, the retry succeeds.
    let delivery = stack.delivery();
    stack.deliver_once(&delivery, Duration::ZERO).await.unwrap();
    stack.drain(&delivery).await;
    stack.deliver_once(&delivery, Duration::from_secs(3)).await;
    stack.drain(&delivery).await;
    assert_eq!(
        receiver.deliveries().len(),
        3,
        "two order events, one retried"
    );
    let ep_id = ep["id"].as_str().unwrap();
    let (_, failed) = call(
        &stack,
        "GET",
        &format!("/workspaces/default/attempts?endpoint_id={ep_id}&status=FAILED"),
        None,
    )
    .await;
    let failed = failed["data"].as_array().unwrap().clone();
    assert_eq!(failed.len(), 1);
    let (_, ok) = call(
        &stack,
        "GET",
        "/workspaces/default/attempts?status=SUCCESSFUL",
        None,
    )
    .await;
    assert_eq!(ok["data"].as_array().unwrap().len(), 2);
    let (s, one) = call(
        &stack,
        "GET",
        &format!(
            "/workspaces/default/attempts/{}",
            failed[0]["id"].as_str().unwrap()
        ),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(one["status"], "FAILED");
    let (s, _) = call(
        &stack,
        "GET",
        "/workspaces/default/attempts?status=MAYBE",
        None,
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = call(&stack, "GET", "/workspaces/default/attempts/att_nope", None).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn names_are_unique_per_workspace_and_kind() {
    let stack = Stack::new().await;
    for kind in ["sources", "endpoints"] {
        let body = |name: &str| {
            if kind == "sources" {
                json!({"name": name})
            } else {
                json!({"name": name, "url": "https://example.com/hook"})
            }
        };
        let base = format!("/workspaces/default/{kind}");
        let (s, first) = call(&stack, "POST", &base, Some(body("orders"))).await;
        assert_eq!(s, 201, "{first}");
        let (s, err) = call(&stack, "POST", &base, Some(body("orders"))).await;
        assert_eq!(s, 409, "{kind}: {err}");
        assert_eq!(err["error"]["code"], "name_taken");
        assert_eq!(err["error"]["field"], "name");

        // Renaming onto a taken name is refused too; renaming frees the old name.
        let (s, second) = call(&stack, "POST", &base, Some(body("billing"))).await;
        assert_eq!(s, 201);
        let second_uri = format!("{base}/{}", second["id"].as_str().unwrap());
        let (s, _) = call(&stack, "PUT", &second_uri, Some(body("orders"))).await;
        assert_eq!(s, 409);
        let (s, _) = call(&stack, "PUT", &second_uri, Some(body("invoices"))).await;
        assert_eq!(s, 200);
        let (s, _) = call(&stack, "POST", &base, Some(body("billing"))).await;
        assert_eq!(s, 201, "{kind}: the old name was released");
        // Keeping one's own name is not a conflict.
        let (s, _) = call(&stack, "PUT", &second_uri, Some(body("invoices"))).await;
        assert_eq!(s, 200);

        // Deleting frees the name.
        let first_uri = format!("{base}/{}", first["id"].as_str().unwrap());
        let (s, _) = call(&stack, "DELETE", &first_uri, None).await;
        assert_eq!(s, 204);
        let (s, _) = call(&stack, "POST", &base, Some(body("orders"))).await;
        assert_eq!(s, 201, "{kind}: the deleted one's name is free");
    }

    // A source and an endpoint may share a name; so may two workspaces.
    let (s, _) = call(
        &stack,
        "POST",
        "/workspaces/default/endpoints",
        Some(json!({"name": "shared", "url": "https://example.com/hook"})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, _) = call(
        &stack,
        "POST",
        "/workspaces/default/sources",
        Some(json!({"name": "shared"})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, _) = call(
        &stack,
        "POST",
        "/workspaces",
        Some(json!({"name": "other"})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, _) = call(
        &stack,
        "POST",
        "/workspaces/other/sources",
        Some(json!({"name": "shared"})),
    )
    .await;
    assert_eq!(s, 201);
}

#[tokio::test]
async fn a_claim_left_by_an_interrupted_write_is_taken_over() {
    let stack = Stack::new().await;
    // A writer that stopped between claiming the name and writing the source.
    let claim = stack
        .store
        .claim_name(
            "default",
            hookrelay_shared::store::NameKind::Source,
            "orphaned",
            "src_never_written",
            None,
        )
        .await
        .unwrap();
    assert_eq!(claim, hookrelay_shared::store::Claim::Held);
    let (s, body) = call(
        &stack,
        "POST",
        "/workspaces/default/sources",
        Some(json!({"name": "orphaned"})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let (s, _) = call(
        &stack,
        "POST",
        "/workspaces/default/sources",
        Some(json!({"name": "orphaned"})),
    )
    .await;
    assert_eq!(s, 409);
}
