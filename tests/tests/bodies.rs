//! Any body gets a documented answer: bodies that are not UTF-8, under every content type,
//! through the local stack's API Gateway (the event `make dev` sends a function, decoded by
//! lambda_http as the function's runtime does) and through the handlers in-process. A raw
//! source stores them byte for byte, shows them in base64 and delivers them byte for byte; a
//! JSON source answers 400 or 415 in hookrelay's error shape.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hookrelay_tests::{
    Receiver, Stack, admin_request, create_endpoint, create_source, gateway, json_of, request,
};
use serde_json::{Value, json};

/// Latin-1 text, a lone continuation byte and bytes no UTF-8 text has.
const NOT_UTF8: &[u8] = b"caf\xe9 \x80 \xff\xfe\x00 end";

const CONTENT_TYPES: [Option<&str>; 4] = [
    Some("application/json"),
    Some("text/plain"),
    Some("application/octet-stream"),
    None,
];

async fn post(base: &str, path: &str, ct: Option<&str>, body: &[u8]) -> (u16, Vec<u8>, String) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .body(body.to_vec());
    if let Some(ct) = ct {
        req = req.header("content-type", ct);
    }
    let resp = req.send().await.expect("gateway answers");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, resp.bytes().await.expect("body").to_vec(), ct)
}

async fn event_view(stack: &Stack, id: &str) -> Value {
    stack.list_accepted().await;
    let resp = hookrelay_admin::handle(
        &stack.admin(),
        admin_request("GET", &format!("/workspaces/default/events/{id}"), None),
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", resp.body());
    json_of(&resp)
}

#[tokio::test]
async fn raw_source_takes_any_body_through_the_gateway_and_delivers_it_byte_for_byte() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    create_endpoint(&stack, json!({"name": "r", "url": receiver.url})).await;
    let source = create_source(
        &stack,
        json!({"name": "log", "path": "/log", "accept_raw": true, "default_event_type": "log.line"}),
    )
    .await;
    let base = gateway::serve(&stack).await;

    let mut sent = Vec::new();
    for path in ["/log".to_owned(), format!("/in/{source}")] {
        for ct in CONTENT_TYPES {
            // Each body its own, so every delivery is matched to its request.
            let mut body = NOT_UTF8.to_vec();
            body.extend_from_slice(format!(" {path} {ct:?}").as_bytes());
            let (status, answer, _) = post(&base, &path, ct, &body).await;
            assert_eq!(
                status,
                202,
                "{path} {ct:?}: {}",
                String::from_utf8_lossy(&answer)
            );
            let answer: Value = serde_json::from_slice(&answer).expect("JSON answer");
            let id = answer["id"].as_str().expect("event id").to_owned();

            stack.list_accepted().await;
            let (_, stored) = stack
                .store
                .get_event("default", &id)
                .await
                .expect("store")
                .expect("stored");
            assert_eq!(stored.payload, body, "{path} {ct:?}: stored byte for byte");

            let view = event_view(&stack, &id).await;
            assert_eq!(view["payload_encoding"], "base64", "{path} {ct:?}: {view}");
            assert_eq!(
                B64.decode(view["payload"].as_str().expect("payload"))
                    .unwrap(),
                body,
                "{path} {ct:?}: the view decodes to the body"
            );
            sent.push((body, ct));
        }
    }

    stack.drain(&stack.delivery()).await;
    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), sent.len());
    for (body, ct) in &sent {
        let d = deliveries
            .iter()
            .find(|d| d.body.as_ref() == body.as_slice())
            .unwrap_or_else(|| panic!("{ct:?}: delivered byte for byte"));
        // A body without a Content-Type is bytes, never claimed to be JSON.
        assert_eq!(
            d.header("content-type"),
            ct.unwrap_or("application/octet-stream"),
            "{ct:?}"
        );
    }
}

#[tokio::test]
async fn json_source_answers_non_utf8_bodies_in_its_error_shape() {
    let stack = Stack::new().await;
    let source = create_source(&stack, json!({"name": "orders"})).await;
    let base = gateway::serve(&stack).await;
    let expected = [
        (Some("application/json"), 400, "malformed_json"),
        (None, 400, "malformed_json"),
        (Some("text/plain"), 415, "unsupported_media_type"),
        (
            Some("application/octet-stream"),
            415,
            "unsupported_media_type",
        ),
    ];
    for (ct, status, code) in expected {
        let (got, body, answer_ct) = post(&base, &format!("/in/{source}"), ct, NOT_UTF8).await;
        let text = String::from_utf8_lossy(&body);
        assert_eq!(got, status, "{ct:?}: {text}");
        assert_eq!(answer_ct, "application/json", "{ct:?}");
        let err: Value = serde_json::from_slice(&body).expect("JSON error");
        assert_eq!(err["error"]["code"], code, "{ct:?}: {err}");
        assert!(err["error"]["message"].is_string(), "{err}");

        // In-process, the handler answers the same.
        let headers: Vec<(&str, &str)> = ct.map(|c| ("content-type", c)).into_iter().collect();
        let resp = hookrelay_ingest::handle(
            &stack.ingest(),
            request("POST", &format!("/in/{source}"), &headers, NOT_UTF8),
        )
        .await;
        assert_eq!(resp.status(), status, "{ct:?}");
        assert_eq!(json_of(&resp)["error"]["code"], code);
    }
    let (_, body, _) = post(
        &base,
        &format!("/in/{source}"),
        Some("application/json"),
        NOT_UTF8,
    )
    .await;
    let err: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not UTF-8"),
        "{err}"
    );
}

#[tokio::test]
async fn raw_source_in_process_stores_every_body_and_the_view_says_how_it_is_encoded() {
    let stack = Stack::new().await;
    let source = create_source(
        &stack,
        json!({"name": "raw", "accept_raw": true, "default_event_type": "raw"}),
    )
    .await;
    let cases: [(&[u8], Option<&str>, &str); 4] = [
        (NOT_UTF8, Some("text/plain"), "base64"),
        (b"plain words", Some("text/plain"), "text"),
        (br#"{"a":1}"#, Some("application/json"), "json"),
        (b"{not json", Some("application/json"), "text"),
    ];
    for (body, ct, encoding) in cases {
        let headers: Vec<(&str, &str)> = ct.map(|c| ("content-type", c)).into_iter().collect();
        let resp = hookrelay_ingest::handle(
            &stack.ingest(),
            request("POST", &format!("/in/{source}"), &headers, body),
        )
        .await;
        assert_eq!(resp.status(), 202, "{ct:?}: {}", resp.body());
        let id = json_of(&resp)["id"].as_str().unwrap().to_owned();
        let view = event_view(&stack, &id).await;
        assert_eq!(view["payload_encoding"], encoding, "{view}");
        let back = match encoding {
            "base64" => B64.decode(view["payload"].as_str().unwrap()).unwrap(),
            "text" => view["payload"].as_str().unwrap().as_bytes().to_vec(),
            _ => serde_json::to_vec(&view["payload"]).unwrap(),
        };
        assert_eq!(back, body);
    }
}
