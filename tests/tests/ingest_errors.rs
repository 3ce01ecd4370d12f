//! Every client mistake at ingest gets a clear JSON error with the right status, and
//! nothing is stored or queued for it.

use hookrelay_tests::{Stack, admin_request, json_of, request};
use serde_json::json;

async fn source(stack: &Stack, body: serde_json::Value) -> String {
    let resp = hookrelay_admin::handle(
        &stack.admin(),
        admin_request("POST", "/workspaces/default/sources", Some(body)),
    )
    .await;
    assert_eq!(resp.status(), 201, "{}", resp.body());
    json_of(&resp)["id"].as_str().unwrap().to_owned()
}

async fn post(
    stack: &Stack,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> http::Response<String> {
    hookrelay_ingest::handle(&stack.ingest(), request("POST", path, headers, body)).await
}

#[tokio::test]
async fn client_mistakes_get_4xx_with_json_errors() {
    let stack = Stack::new().await;
    let src = source(&stack, json!({"name": "s"})).await;
    let path = format!("/in/{src}");

    let cases: Vec<(&str, String, Vec<u8>, u16, &str)> = vec![
        (
            "malformed",
            path.clone(),
            b"{\"event_type\": ".to_vec(),
            400,
            "malformed_json",
        ),
        (
            "not json",
            path.clone(),
            b"hello".to_vec(),
            400,
            "malformed_json",
        ),
        ("empty", path.clone(), Vec::new(), 400, "malformed_json"),
        (
            "trailing",
            path.clone(),
            b"{} {}".to_vec(),
            400,
            "malformed_json",
        ),
        (
            "bad type",
            path.clone(),
            br#"{"event_type": 3}"#.to_vec(),
            400,
            "invalid_event_type",
        ),
        (
            "no type",
            path.clone(),
            br#"{"data": 3}"#.to_vec(),
            400,
            "missing_event_type",
        ),
        (
            "empty type",
            path.clone(),
            br#"{"event_type": ""}"#.to_vec(),
            400,
            "invalid_event_type",
        ),
        (
            "unknown source",
            "/in/src_01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
            br#"{"event_type":"x"}"#.to_vec(),
            404,
            "not_found",
        ),
        (
            "garbage source",
            "/in/..%2f..".into(),
            br#"{"event_type":"x"}"#.to_vec(),
            404,
            "not_found",
        ),
        (
            "too large",
            path.clone(),
            format!(
                "{{\"event_type\":\"x\",\"data\":\"{}\"}}",
                "a".repeat(stack.settings.max_body_bytes)
            )
            .into_bytes(),
            413,
            "payload_too_large",
        ),
    ];
    for (name, path, body, status, code) in cases {
        let resp = post(&stack, &path, &[], &body).await;
        assert_eq!(resp.status(), status, "{name}: {}", resp.body());
        let err = json_of(&resp);
        assert_eq!(err["error"]["code"], code, "{name}");
        assert!(
            err["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{name}"
        );
        assert_eq!(resp.headers()["content-type"], "application/json");
    }
    let long_key = "k".repeat(300);
    let resp = post(
        &stack,
        &path,
        &[("idempotency-key", &long_key)],
        br#"{"event_type":"x"}"#,
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(json_of(&resp)["error"]["code"], "invalid_idempotency_key");

    // Nothing was stored for any of them.
    let events = stack
        .store
        .list_events("default", &Default::default())
        .await
        .unwrap();
    assert!(events.data.is_empty());
    assert_eq!(
        stack.queue_depth(&stack.settings.delivery_queue_url).await,
        (0, 0)
    );
}

#[tokio::test]
async fn routes_methods_and_health() {
    let stack = Stack::new().await;
    let ctx = stack.ingest();
    let health = hookrelay_ingest::handle(&ctx, request("GET", "/healthz", &[], b"")).await;
    assert_eq!(health.status(), 200);
    assert_eq!(health.body(), "OK");
    let wrong = hookrelay_ingest::handle(&ctx, request("GET", "/in/src_x", &[], b"")).await;
    assert_eq!(wrong.status(), 405);
    assert_eq!(wrong.headers()["allow"], "POST");
    let nowhere = hookrelay_ingest::handle(&ctx, request("POST", "/nowhere", &[], b"{}")).await;
    assert_eq!(nowhere.status(), 404);
}

#[tokio::test]
async fn event_type_from_header_default_and_disabled_sources() {
    let stack = Stack::new().await;
    let gh = source(
        &stack,
        json!({"name": "github", "event_type_header": "X-GitHub-Event"}),
    )
    .await;
    let resp = post(
        &stack,
        &format!("/in/{gh}"),
        &[("x-github-event", "push")],
        br#"{"ref":"main"}"#,
    )
    .await;
    assert_eq!(resp.status(), 202, "{}", resp.body());
    let id = json_of(&resp)["id"].as_str().unwrap().to_owned();
    stack.list_accepted().await;
    let (_, ev) = stack
        .store
        .get_event("default", &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.event_type, "push");

    let any = source(
        &stack,
        json!({"name": "any", "default_event_type": "generic"}),
    )
    .await;
    let resp = post(&stack, &format!("/in/{any}"), &[], b"[1,2,3]").await;
    assert_eq!(resp.status(), 202, "{}", resp.body());

    let off = source(&stack, json!({"name": "off", "enabled": false})).await;
    let resp = post(&stack, &format!("/in/{off}"), &[], br#"{"event_type":"x"}"#).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(json_of(&resp)["error"]["code"], "source_disabled");

    // An event with no subscribed endpoint is stored and not queued.
    assert_eq!(
        stack.queue_depth(&stack.settings.delivery_queue_url).await,
        (0, 0)
    );
}
