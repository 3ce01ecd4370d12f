//! Workspace API keys reach their own workspace only; the root key reaches everything.
//! Keys are shown once and stored as hashes.

use hookrelay_tests::{
    Stack, admin_call as root, admin_request, json_of, key_call as with_key, request,
};
use serde_json::{Value, json};
use sha2::Digest;

#[tokio::test]
async fn a_workspace_key_never_reaches_another_workspace() {
    let stack = Stack::new().await;
    for ws in ["alpha", "beta"] {
        assert_eq!(
            root(&stack, "POST", "/workspaces", Some(json!({"name": ws})))
                .await
                .0,
            201
        );
    }
    let (s, key_a) = root(
        &stack,
        "POST",
        "/workspaces/alpha/keys",
        Some(json!({"name": "ci"})),
    )
    .await;
    assert_eq!(s, 201, "{key_a}");
    let a = key_a["key"].as_str().unwrap().to_owned();
    assert!(a.starts_with("hrk_"));

    // B's resources, made with the root key.
    let (_, ep_b) = root(
        &stack,
        "POST",
        "/workspaces/beta/endpoints",
        Some(json!({"name": "b", "url": "https://example.com/b"})),
    )
    .await;
    let (_, src_b) = root(
        &stack,
        "POST",
        "/workspaces/beta/sources",
        Some(json!({"name": "b"})),
    )
    .await;
    let (_, ev_b) = root(
        &stack,
        "POST",
        "/workspaces/beta/events",
        Some(json!({"event_type": "x", "data": {"secret": 1}})),
    )
    .await;
    let (eb, sb, evb) = (
        ep_b["id"].as_str().unwrap(),
        src_b["id"].as_str().unwrap(),
        ev_b["id"].as_str().unwrap(),
    );

    // A's key works in A.
    let (s, _) = with_key(
        &stack,
        &a,
        "POST",
        "/workspaces/alpha/endpoints",
        Some(json!({"name": "a", "url": "https://example.com/a"})),
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(
        with_key(&stack, &a, "GET", "/workspaces/alpha/events", None)
            .await
            .0,
        200
    );

    // And nowhere in B: every route, every method.
    let routes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/workspaces/beta".into(), None),
        (
            "PUT",
            "/workspaces/beta".into(),
            Some(json!({"name": "beta"})),
        ),
        ("DELETE", "/workspaces/beta".into(), None),
        ("GET", "/workspaces/beta/sources".into(), None),
        (
            "POST",
            "/workspaces/beta/sources".into(),
            Some(json!({"name": "x"})),
        ),
        ("GET", format!("/workspaces/beta/sources/{sb}"), None),
        (
            "PUT",
            format!("/workspaces/beta/sources/{sb}"),
            Some(json!({"name": "x"})),
        ),
        ("DELETE", format!("/workspaces/beta/sources/{sb}"), None),
        ("GET", "/workspaces/beta/endpoints".into(), None),
        (
            "POST",
            "/workspaces/beta/endpoints".into(),
            Some(json!({"name": "x", "url": "https://e.com"})),
        ),
        ("GET", format!("/workspaces/beta/endpoints/{eb}"), None),
        (
            "PUT",
            format!("/workspaces/beta/endpoints/{eb}"),
            Some(json!({"name": "x", "url": "https://e.com"})),
        ),
        ("DELETE", format!("/workspaces/beta/endpoints/{eb}"), None),
        (
            "POST",
            format!("/workspaces/beta/endpoints/{eb}/secret/rotate"),
            None,
        ),
        ("GET", "/workspaces/beta/events".into(), None),
        (
            "POST",
            "/workspaces/beta/events".into(),
            Some(json!({"event_type": "x"})),
        ),
        ("GET", format!("/workspaces/beta/events/{evb}"), None),
        (
            "POST",
            format!("/workspaces/beta/events/{evb}/retry?endpoint_id={eb}"),
            None,
        ),
        ("GET", "/workspaces/beta/attempts".into(), None),
        (
            "GET",
            format!("/workspaces/beta/attempts?event_id={evb}"),
            None,
        ),
        ("GET", "/workspaces/beta/keys".into(), None),
        (
            "POST",
            "/workspaces/beta/keys".into(),
            Some(json!({"name": "x"})),
        ),
        ("GET", "/workspaces/nonexistent/events".into(), None),
    ];
    for (method, uri, body) in &routes {
        let (s, resp) = with_key(&stack, &a, method, uri, body.clone()).await;
        assert_eq!(s, 403, "{method} {uri}: {resp}");
        let text = resp.to_string();
        assert!(
            !text.contains("whsec_") && !text.contains(evb),
            "{method} {uri} leaked: {text}"
        );
    }
    // Root-only routes.
    for (method, uri) in [
        ("GET", "/workspaces"),
        ("POST", "/workspaces"),
        ("GET", "/dlq"),
        ("POST", "/dlq/redrive"),
        ("GET", "/workspaces/alpha/keys"),
        ("DELETE", "/workspaces/alpha"),
    ] {
        assert_eq!(
            with_key(&stack, &a, method, uri, Some(json!({"name": "z"})))
                .await
                .0,
            403,
            "{method} {uri}"
        );
    }
    // B is untouched.
    let (_, still) = root(
        &stack,
        "GET",
        &format!("/workspaces/beta/endpoints/{eb}"),
        None,
    )
    .await;
    assert_eq!(still["name"], "b");

    // Malformed or unknown keys are 401.
    for bad in ["hrk_nope", "not-a-key", ""] {
        assert_eq!(
            with_key(&stack, bad, "GET", "/workspaces/alpha/events", None)
                .await
                .0,
            401,
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn keys_are_shown_once_listed_without_secret_and_revoked() {
    let stack = Stack::new().await;
    let (_, created) = root(
        &stack,
        "POST",
        "/workspaces/default/keys",
        Some(json!({"name": "deploy"})),
    )
    .await;
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    let (_, list) = root(&stack, "GET", "/workspaces/default/keys", None).await;
    let listed = &list["data"][0];
    assert_eq!(listed["id"], id.as_str());
    assert!(
        listed.get("key").is_none() && listed.get("hash").is_none(),
        "{listed}"
    );
    assert!(key.starts_with(listed["prefix"].as_str().unwrap()));

    // Only a hash is stored.
    let items = aws_sdk_dynamodb::Client::new(&stack.aws)
        .scan()
        .table_name(&stack.settings.table_name)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let dump = format!("{items:?}");
    assert!(!dump.contains(&key), "the key is stored in clear");

    assert_eq!(
        with_key(&stack, &key, "GET", "/workspaces/default/endpoints", None)
            .await
            .0,
        200
    );
    assert_eq!(
        root(
            &stack,
            "DELETE",
            &format!("/workspaces/default/keys/{id}"),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        with_key(&stack, &key, "GET", "/workspaces/default/endpoints", None)
            .await
            .0,
        401
    );
    assert_eq!(
        root(
            &stack,
            "DELETE",
            &format!("/workspaces/default/keys/{id}"),
            None
        )
        .await
        .0,
        404
    );
}

/// Keys belong to a workspace's identity, not its name: deleting a workspace revokes its
/// keys, and a workspace created again under the name is out of their reach, even through
/// an admin instance that cached them.
#[tokio::test]
async fn a_deleted_workspaces_keys_never_reach_its_namesake() {
    let stack = Stack::new().await;
    let ctx = stack.admin();
    let call = |key: Option<String>, method: &'static str, uri: String, body: Option<Value>| {
        let ctx = &ctx;
        async move {
            let req = match key {
                None => admin_request(method, &uri, body),
                Some(key) => {
                    let auth = format!("Bearer {key}");
                    let body = body.map(|b| b.to_string()).unwrap_or_default();
                    request(
                        method,
                        &uri,
                        &[
                            ("authorization", &auth),
                            ("content-type", "application/json"),
                        ],
                        body.as_bytes(),
                    )
                }
            };
            let resp = hookrelay_admin::handle(ctx, req).await;
            let status = resp.status().as_u16();
            let body = if resp.body().is_empty() {
                Value::Null
            } else {
                json_of(&resp)
            };
            (status, body)
        }
    };
    let root = |method, uri: &str, body| call(None, method, uri.to_owned(), body);

    assert_eq!(
        root("POST", "/workspaces", Some(json!({"name": "w"})))
            .await
            .0,
        201
    );
    let (s, k) = root("POST", "/workspaces/w/keys", Some(json!({"name": "ci"}))).await;
    assert_eq!(s, 201, "{k}");
    let k = k["key"].as_str().unwrap().to_owned();
    // Used once, so this admin instance has it cached.
    let (s, _) = call(Some(k.clone()), "GET", "/workspaces/w/events".into(), None).await;
    assert_eq!(s, 200);

    assert_eq!(root("DELETE", "/workspaces/w", None).await.0, 204);
    let (s, _) = call(Some(k.clone()), "GET", "/workspaces/w/events".into(), None).await;
    assert_eq!(s, 401, "the deleted workspace's key is revoked");

    // A key the delete missed (made while it ran, or stored by a version whose keys did not
    // name their workspace's id): older than the workspace created next, so out of its reach.
    let legacy = "hrk_legacy-key-of-the-first-w-0123456789";
    stack
        .store
        .put_api_key(&hookrelay_shared::store::ApiKey {
            id: "key_legacy".into(),
            workspace: "w".into(),
            workspace_id: None,
            name: "legacy".into(),
            prefix: "hrk_legacy".into(),
            created_at: hookrelay_shared::Timestamp::now(),
            // As the admin API stores keys: hex SHA-256.
            hash: hex::encode(sha2::Sha256::digest(legacy.as_bytes())),
        })
        .await
        .unwrap();

    // Created again under the name, with an event of the new tenant.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(
        root("POST", "/workspaces", Some(json!({"name": "w"})))
            .await
            .0,
        201
    );
    let (s, ev) = root(
        "POST",
        "/workspaces/w/events",
        Some(json!({"event_type": "secret.thing", "data": {"of": "the new tenant"}})),
    )
    .await;
    assert!(s == 202 || s == 201, "{s} {ev}");
    let (_, listed) = root("GET", "/workspaces/w/keys", None).await;
    assert!(
        !listed.to_string().contains(&k[..10]),
        "the revoked key is not listed: {listed}"
    );

    for key in [k.as_str(), legacy] {
        for uri in [
            "/workspaces/w/events",
            "/workspaces/w",
            "/workspaces/w/attempts",
            "/workspaces/w/endpoints",
        ] {
            let (s, body) = call(Some(key.to_owned()), "GET", uri.into(), None).await;
            assert_eq!(s, 401, "{uri}: {body}");
            assert_eq!(body["error"]["code"], "unauthorized", "{uri}: {body}");
            assert!(!body.to_string().contains("secret.thing"));
        }
    }
}
