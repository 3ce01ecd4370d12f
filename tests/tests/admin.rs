//! The admin API: authentication, validation with field-level messages, listings.

use hookrelay_tests::{ADMIN_KEY, Stack, admin_request, json_of, request};
use serde_json::json;

#[tokio::test]
async fn requires_the_admin_key() {
    let stack = Stack::new().await;
    let admin = stack.admin();
    for (headers, why) in [
        (vec![], "no key"),
        (
            vec![("authorization", "Bearer wrong-key-wrong-key")],
            "wrong key",
        ),
        (vec![("authorization", ADMIN_KEY)], "no Bearer"),
    ] {
        for (method, path) in [
            ("GET", "/workspaces/default/endpoints"),
            ("POST", "/workspaces/default/sources"),
            ("GET", "/workspaces/default/attempts?event_id=evt_x"),
            ("GET", "/workspaces/nope/events/evt_x"),
        ] {
            let resp =
                hookrelay_admin::handle(&admin, request(method, path, &headers, b"{}")).await;
            assert_eq!(resp.status(), 401, "{why} {method} {path}");
            assert_eq!(json_of(&resp)["error"]["code"], "unauthorized");
        }
    }
}

#[tokio::test]
async fn validates_with_field_level_messages() {
    let stack = Stack::new().await;
    let admin = stack.admin();
    let resp = hookrelay_admin::handle(
        &admin,
        admin_request(
            "POST",
            "/workspaces/default/endpoints",
            Some(json!({"name": "", "url": "ftp://x", "events": ["a*"], "headers": {"webhook-id": "x"}})),
        ),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let err = json_of(&resp);
    assert_eq!(err["error"]["code"], "validation_failed");
    for field in ["name", "url", "events[0]", "headers.webhook-id"] {
        assert!(err["error"]["fields"][field].is_string(), "{field}: {err}");
    }
    for (body, code) in [
        (json!({"name": "x"}), "invalid_body"),
        (
            json!({"name": "x", "url": "https://e.com", "bogus": 1}),
            "invalid_body",
        ),
    ] {
        let resp = hookrelay_admin::handle(
            &admin,
            admin_request("POST", "/workspaces/default/endpoints", Some(body)),
        )
        .await;
        assert_eq!(resp.status(), 400);
        assert_eq!(json_of(&resp)["error"]["code"], code);
    }
    let resp = hookrelay_admin::handle(
        &admin,
        admin_request("POST", "/workspaces/default/sources", None),
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(json_of(&resp)["error"]["code"], "missing_body");
}

#[tokio::test]
async fn creates_gets_and_lists_with_cursors() {
    let stack = Stack::new().await;
    let admin = stack.admin();
    let mut ids = Vec::new();
    for i in 0..3 {
        let resp = hookrelay_admin::handle(
            &admin,
            admin_request(
                "POST",
                "/workspaces/default/endpoints",
                Some(json!({"name": format!("e{i}"), "url": "https://example.com/hook", "events": ["*"]})),
            ),
        )
        .await;
        assert_eq!(resp.status(), 201);
        let ep = json_of(&resp);
        assert!(ep["secret"].as_str().unwrap().starts_with("whsec_"));
        assert_eq!(ep["enabled"], true);
        ids.push(ep["id"].as_str().unwrap().to_owned());
    }
    let page1 = json_of(
        &hookrelay_admin::handle(
            &admin,
            admin_request("GET", "/workspaces/default/endpoints?limit=2", None),
        )
        .await,
    );
    let got: Vec<_> = page1["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, vec![ids[2].clone(), ids[1].clone()], "newest first");
    let cursor = page1["next"].as_str().unwrap();
    let page2 = json_of(
        &hookrelay_admin::handle(
            &admin,
            admin_request(
                "GET",
                &format!("/workspaces/default/endpoints?limit=2&cursor={cursor}"),
                None,
            ),
        )
        .await,
    );
    assert_eq!(page2["data"][0]["id"], ids[0].as_str());

    let bad = hookrelay_admin::handle(
        &admin,
        admin_request("GET", "/workspaces/default/endpoints?cursor=zzz", None),
    )
    .await;
    assert_eq!(bad.status(), 400);
    // A cursor from one listing handed to another is the caller's mistake, not a 5xx.
    let foreign = hookrelay_admin::handle(
        &admin,
        admin_request(
            "GET",
            &format!("/workspaces/default/sources?cursor={cursor}"),
            None,
        ),
    )
    .await;
    assert_eq!(foreign.status(), 400, "{}", foreign.body());
    let bad = hookrelay_admin::handle(
        &admin,
        admin_request("GET", "/workspaces/default/endpoints?limit=0", None),
    )
    .await;
    assert_eq!(bad.status(), 400);

    let one = hookrelay_admin::handle(
        &admin,
        admin_request(
            "GET",
            &format!("/workspaces/default/endpoints/{}", ids[0]),
            None,
        ),
    )
    .await;
    assert_eq!(one.status(), 200);
    assert_eq!(json_of(&one)["name"], "e0");
    for path in [
        "/workspaces/default/endpoints/ep_missing",
        "/workspaces/default/events/evt_missing",
        "/workspaces/nope/endpoints",
        "/workspaces/default/unknown",
    ] {
        let resp = hookrelay_admin::handle(&admin, admin_request("GET", path, None)).await;
        assert_eq!(resp.status(), 404, "{path}");
    }
    let resp = hookrelay_admin::handle(
        &admin,
        admin_request("DELETE", "/workspaces/default/events", None),
    )
    .await;
    assert_eq!(resp.status(), 405);

    let src = json_of(
        &hookrelay_admin::handle(
            &admin,
            admin_request(
                "POST",
                "/workspaces/default/sources",
                Some(json!({"name": "gh"})),
            ),
        )
        .await,
    );
    assert_eq!(
        src["ingest_path"],
        format!("/in/{}", src["id"].as_str().unwrap())
    );
    let list = json_of(
        &hookrelay_admin::handle(
            &admin,
            admin_request("GET", "/workspaces/default/sources", None),
        )
        .await,
    );
    assert_eq!(list["data"][0]["id"], src["id"]);
    assert!(list["next"].is_null());
}
