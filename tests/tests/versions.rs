//! Optimistic concurrency: workspaces, sources and endpoints answer an `ETag`; a `PUT` or
//! `DELETE` with a stale `If-Match` is refused with `412`, and a write never undoes a
//! rotation or a deactivation made after the read it was based on.

use hookrelay_tests::{Stack, request};
use serde_json::{Value, json};

/// An admin call with extra headers: status, `ETag`, JSON answer.
async fn call(
    stack: &Stack,
    method: &str,
    uri: &str,
    if_match: Option<&str>,
    body: Option<Value>,
) -> (u16, Option<String>, Value) {
    let auth = format!("Bearer {}", hookrelay_tests::ADMIN_KEY);
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    if let Some(tag) = if_match {
        headers.push(("if-match", tag));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let resp = hookrelay_admin::handle(
        &stack.admin(),
        request(method, uri, &headers, body.as_bytes()),
    )
    .await;
    let etag = resp
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned());
    let json = serde_json::from_str(resp.body()).unwrap_or(Value::Null);
    (resp.status().as_u16(), etag, json)
}

#[tokio::test]
async fn a_stale_if_match_is_refused_and_a_fresh_one_writes() {
    let stack = Stack::new().await;
    let (s, created, ep) = call(
        &stack,
        "POST",
        "/workspaces/default/endpoints",
        None,
        Some(json!({"name": "e", "url": "https://example.com/a"})),
    )
    .await;
    assert_eq!(s, 201);
    let path = format!(
        "/workspaces/default/endpoints/{}",
        ep["id"].as_str().unwrap()
    );
    let (_, read, _) = call(&stack, "GET", &path, None, None).await;
    assert_eq!(read, created);
    let tag = read.unwrap();

    let body = json!({"name": "e", "url": "https://example.com/b"});
    let (s, written, _) = call(&stack, "PUT", &path, Some(&tag), Some(body.clone())).await;
    assert_eq!(s, 200);
    let written = written.unwrap();
    assert_ne!(written, tag, "a write raises the version");

    // A second writer still holding the first ETag.
    let (s, _, err) = call(&stack, "PUT", &path, Some(&tag), Some(body.clone())).await;
    assert_eq!(
        (s, err["error"]["code"].as_str()),
        (412, Some("precondition_failed"))
    );
    let (s, _, _) = call(&stack, "DELETE", &path, Some(&tag), None).await;
    assert_eq!(s, 412, "a stale delete is refused too");
    let (s, _, err) = call(&stack, "PUT", &path, Some("3"), Some(body.clone())).await;
    assert_eq!(
        (s, err["error"]["code"].as_str()),
        (400, Some("invalid_if_match"))
    );
    let (s, _, _) = call(&stack, "PUT", &path, Some("*"), Some(body)).await;
    assert_eq!(s, 200, "* matches any version");
    let (_, now, _) = call(&stack, "GET", &path, None, None).await;
    let (s, _, _) = call(&stack, "DELETE", &path, now.as_deref(), None).await;
    assert_eq!(s, 204);
}

#[tokio::test]
async fn a_rotation_or_deactivation_after_the_read_makes_the_write_stale() {
    let stack = Stack::new().await;
    let (_, _, ep) = call(
        &stack,
        "POST",
        "/workspaces/default/endpoints",
        None,
        Some(json!({"name": "e", "url": "https://example.com/a"})),
    )
    .await;
    let id = ep["id"].as_str().unwrap().to_owned();
    let path = format!("/workspaces/default/endpoints/{id}");

    // Read, then a rotation, then the write based on the read.
    let (_, tag, _) = call(&stack, "GET", &path, None, None).await;
    let (s, _, rotated) = call(&stack, "POST", &format!("{path}/secret/rotate"), None, None).await;
    assert_eq!(s, 200);
    let (s, _, _) = call(
        &stack,
        "PUT",
        &path,
        tag.as_deref(),
        Some(json!({"name": "e", "url": "https://example.com/b"})),
    )
    .await;
    assert_eq!(
        s, 412,
        "the write was based on the secret before the rotation"
    );
    let (_, _, secret) = call(&stack, "GET", &format!("{path}/secret"), None, None).await;
    assert_eq!(secret["secret"], rotated["secret"], "the rotation stands");

    // Read, then the delivery function deactivates it (the receiver answered 410).
    let (_, tag, _) = call(&stack, "GET", &path, None, None).await;
    assert!(
        stack
            .store
            .disable_endpoint(
                "default",
                &id,
                "gone",
                hookrelay_shared::Timestamp::now(),
                None
            )
            .await
            .unwrap()
    );
    let (s, _, _) = call(
        &stack,
        "PUT",
        &path,
        tag.as_deref(),
        Some(json!({"name": "e", "url": "https://example.com/c", "enabled": true})),
    )
    .await;
    assert_eq!(
        s, 412,
        "a write from before the deactivation cannot undo it"
    );
    let (_, _, now) = call(&stack, "GET", &path, None, None).await;
    assert_eq!(
        (now["enabled"].as_bool(), now["disabled_reason"].as_str()),
        (Some(false), Some("gone"))
    );
}

#[tokio::test]
async fn sources_and_workspaces_carry_etags_too() {
    let stack = Stack::new().await;
    let (s, tag, src) = call(
        &stack,
        "POST",
        "/workspaces/default/sources",
        None,
        Some(json!({"name": "s"})),
    )
    .await;
    assert_eq!(s, 201);
    let path = format!(
        "/workspaces/default/sources/{}",
        src["id"].as_str().unwrap()
    );
    let (s, newer, _) = call(
        &stack,
        "PUT",
        &path,
        tag.as_deref(),
        Some(json!({"name": "s2"})),
    )
    .await;
    assert_eq!(s, 200);
    assert_ne!(newer, tag);
    let (s, _, _) = call(
        &stack,
        "PUT",
        &path,
        tag.as_deref(),
        Some(json!({"name": "s3"})),
    )
    .await;
    assert_eq!(s, 412);
    let (_, _, now) = call(&stack, "GET", &path, None, None).await;
    assert_eq!(now["name"], "s2");

    let (s, ws_tag, _) = call(
        &stack,
        "POST",
        "/workspaces",
        None,
        Some(json!({"name": "team"})),
    )
    .await;
    assert_eq!(s, 201);
    let settings = json!({"name": "team", "settings": {"disable_failing": {"after_days": 3}}});
    let (s, newer, _) = call(
        &stack,
        "PUT",
        "/workspaces/team",
        ws_tag.as_deref(),
        Some(settings.clone()),
    )
    .await;
    assert_eq!(s, 200);
    assert_ne!(newer, ws_tag);
    let (s, _, _) = call(
        &stack,
        "PUT",
        "/workspaces/team",
        ws_tag.as_deref(),
        Some(settings),
    )
    .await;
    assert_eq!(s, 412);
    let (s, _, _) = call(
        &stack,
        "DELETE",
        "/workspaces/team",
        ws_tag.as_deref(),
        None,
    )
    .await;
    assert_eq!(s, 412);
    let (s, _, _) = call(&stack, "DELETE", "/workspaces/team", newer.as_deref(), None).await;
    assert_eq!(s, 204);
}

/// Without `If-Match` the admin function's own read and write are still one step: the store
/// refuses a write made from a version another write has replaced (the call answers `409`).
#[tokio::test]
async fn the_store_refuses_a_write_from_a_replaced_version() {
    let stack = Stack::new().await;
    let mut first =
        hookrelay_shared::Endpoint::new("default", "e", "https://example.com/a", vec!["*".into()]);
    stack.store.put_endpoint(&mut first).await.unwrap();
    let mut second = first.clone();
    first.url = "https://example.com/first".into();
    stack.store.put_endpoint(&mut first).await.unwrap();
    second.url = "https://example.com/second".into();
    assert!(matches!(
        stack.store.put_endpoint(&mut second).await,
        Err(hookrelay_shared::store::StoreError::Conflict)
    ));
    let stored = stack
        .store
        .get_endpoint("default", &first.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.url, "https://example.com/first");
    assert_eq!(stored.version, 2);
}
