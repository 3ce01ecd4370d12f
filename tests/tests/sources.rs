//! Inbound sources: each verification scheme against requests signed by the providers' own
//! libraries (tests/fixtures/signed.json, from `make fixtures`) and signed fresh here; what
//! a refusal says; provider delivery ids as idempotency keys; provider event types; Lark
//! and Slack challenges; custom paths and answers; content types.

use std::time::Duration;

use hookrelay_ingest::verify::verify;
use hookrelay_shared::{Timestamp, Verification};
use hookrelay_tests::{Stack, admin_request, create_source, json_of, request, signing};
use http::HeaderMap;
use serde_json::{Value, json};

fn headers_of(v: &Value) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, val) in v.as_object().unwrap() {
        h.insert(
            http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).unwrap(),
            val.as_str().unwrap().parse().unwrap(),
        );
    }
    h
}

#[test]
fn requests_signed_by_provider_libraries_verify() {
    let fixtures: Vec<Value> =
        serde_json::from_str(include_str!("../fixtures/signed.json")).unwrap();
    assert!(fixtures.len() >= 5);
    for f in &fixtures {
        let name = f["name"].as_str().unwrap();
        let v: Verification = serde_json::from_value(f["verification"].clone()).unwrap();
        let headers = headers_of(&f["headers"]);
        let body = f["body"].as_str().unwrap().as_bytes();
        let at = Timestamp::from_unix_millis(f["now"].as_i64().unwrap() * 1000).unwrap();

        let verified =
            verify(&v, &headers, body, at, 300).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let readable = verified.plaintext.clone().unwrap_or_else(|| body.to_vec());
        if let Some(plain) = f["expect"]["plaintext"].as_str() {
            assert_eq!(readable, plain.as_bytes(), "{name}: decrypted");
        }
        let tree: Option<Value> = serde_json::from_slice(&readable).ok();
        let id = hookrelay_ingest::provider::identify(&v, &headers, tree.as_ref());
        assert_eq!(
            id.event_type.as_deref(),
            f["expect"]["event_type"].as_str(),
            "{name}"
        );
        assert_eq!(
            id.delivery_id.as_deref(),
            f["expect"]["delivery_id"].as_str(),
            "{name}"
        );

        // One changed byte breaks it.
        let mut tampered = body.to_vec();
        let last = tampered.len() - 2;
        tampered[last] ^= 1;
        let err = verify(&v, &headers, &tampered, at, 300).unwrap_err();
        assert!(
            ["invalid_signature", "malformed_body", "cannot_decrypt"].contains(&err.code),
            "{name}: {err:?}"
        );
        // An hour later a timestamped signature is stale.
        if name != "github" {
            let late = at.plus(Duration::from_secs(3600));
            assert_eq!(
                verify(&v, &headers, body, late, 300).unwrap_err().code,
                "stale_timestamp",
                "{name}"
            );
        }
    }
}

async fn post(
    stack: &Stack,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> http::Response<String> {
    hookrelay_ingest::handle(&stack.ingest(), request("POST", path, headers, body)).await
}

async fn events(stack: &Stack) -> usize {
    stack.list_accepted().await;
    stack
        .store
        .list_events("default", &Default::default())
        .await
        .unwrap()
        .data
        .len()
}

#[tokio::test]
async fn each_scheme_accepts_signed_and_refuses_the_rest() {
    let stack = Stack::new().await;
    let now = signing::now();
    let ts = now.to_string();
    let body: &[u8] =
        br#"{"id":"evt_9","type":"charge.succeeded","event_type":"generic.type","data":{}}"#;

    struct Case {
        verification: Value,
        good: Vec<(&'static str, String)>,
        bad: Vec<(&'static str, String)>,
        bad_code: &'static str,
    }
    let cases = vec![
        Case {
            verification: json!({"type": "github", "secret": "gh"}),
            good: vec![
                ("x-hub-signature-256", signing::github("gh", body)),
                ("x-github-event", "push".into()),
            ],
            bad: vec![("x-hub-signature-256", signing::github("other", body))],
            bad_code: "invalid_signature",
        },
        Case {
            verification: json!({"type": "stripe", "secret": "whsec_s"}),
            good: vec![("stripe-signature", signing::stripe("whsec_s", now, body))],
            bad: vec![(
                "stripe-signature",
                signing::stripe("whsec_s", now - 3600, body),
            )],
            bad_code: "stale_timestamp",
        },
        Case {
            verification: json!({"type": "shopify", "secret": "shp"}),
            good: vec![
                ("x-shopify-hmac-sha256", signing::shopify("shp", body)),
                ("x-shopify-topic", "orders/create".into()),
            ],
            bad: vec![("x-shopify-hmac-sha256", "not base64!".into())],
            bad_code: "malformed_signature",
        },
        Case {
            verification: json!({"type": "slack", "secret": "sl"}),
            good: vec![
                ("x-slack-signature", signing::slack("sl", now, body)),
                ("x-slack-request-timestamp", ts.clone()),
            ],
            bad: vec![
                ("x-slack-signature", signing::slack("sl", now, b"{}")),
                ("x-slack-request-timestamp", ts.clone()),
            ],
            bad_code: "invalid_signature",
        },
        Case {
            verification: json!({"type": "hmac", "header": "X-Sig", "secret": "k", "algorithm": "sha256", "encoding": "hex", "prefix": "sha256="}),
            good: vec![(
                "x-sig",
                format!("sha256={}", hex::encode(signing::hmac256(b"k", body))),
            )],
            bad: vec![("x-sig", hex::encode(signing::hmac256(b"k", body)))],
            bad_code: "malformed_signature",
        },
        Case {
            verification: json!({"type": "basic_auth", "username": "u", "password": "p"}),
            good: vec![("authorization", "Basic dTpw".into())],
            bad: vec![("authorization", "Basic dTp4".into())],
            bad_code: "invalid_credentials",
        },
        Case {
            verification: json!({"type": "api_key", "header": "X-Api-Key", "value": "sekrit"}),
            good: vec![("x-api-key", "sekrit".into())],
            bad: vec![("x-api-key", "sekrix".into())],
            bad_code: "invalid_credentials",
        },
    ];
    for case in cases {
        let kind = case.verification["type"].as_str().unwrap().to_owned();
        let id = create_source(
            &stack,
            json!({"name": kind, "verification": case.verification}),
        )
        .await;
        let path = format!("/in/{id}");
        let before = events(&stack).await;

        let missing = post(&stack, &path, &[], body).await;
        assert_eq!(missing.status(), 401, "{kind}: {}", missing.body());
        assert_eq!(
            json_of(&missing)["error"]["code"],
            "missing_header",
            "{kind}"
        );
        let bad: Vec<(&str, &str)> = case.bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let refused = post(&stack, &path, &bad, body).await;
        assert_eq!(refused.status(), 401, "{kind}");
        let err = json_of(&refused);
        assert_eq!(err["error"]["code"], case.bad_code, "{kind}: {err}");
        // The answer never gives the expected value away.
        let good: Vec<(&str, &str)> = case.good.iter().map(|(k, v)| (*k, v.as_str())).collect();
        for (_, v) in &good {
            assert!(!refused.body().contains(v), "{kind} leaked a signature");
        }
        assert_eq!(
            events(&stack).await,
            before,
            "{kind}: nothing stored when refused"
        );

        let ok = post(&stack, &path, &good, body).await;
        assert_eq!(ok.status(), 202, "{kind}: {}", ok.body());
        assert_eq!(events(&stack).await, before + 1, "{kind}");
    }
}

#[tokio::test]
async fn provider_delivery_ids_dedupe_and_event_types_come_from_the_provider() {
    let stack = Stack::new().await;
    let gh = create_source(
        &stack,
        json!({"name": "gh", "verification": {"type": "github", "secret": "s"}}),
    )
    .await;
    let body = br#"{"action":"opened"}"#;
    let sig = signing::github("s", body);
    let send = |delivery: &'static str| {
        let sig = sig.clone();
        let gh = gh.clone();
        let stack = &stack;
        async move {
            post(
                stack,
                &format!("/in/{gh}"),
                &[
                    ("x-hub-signature-256", &sig),
                    ("x-github-event", "pull_request"),
                    ("x-github-delivery", delivery),
                ],
                body,
            )
            .await
        }
    };
    let first = send("d-1").await;
    let again = send("d-1").await;
    let other = send("d-2").await;
    assert_eq!(json_of(&first)["id"], json_of(&again)["id"]);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_ne!(json_of(&first)["id"], json_of(&other)["id"]);
    stack.list_accepted().await;
    let (_, ev) = stack
        .store
        .get_event("default", json_of(&first)["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.event_type, "pull_request");
    assert_eq!(ev.idempotency_key, "d-1");

    let st = create_source(
        &stack,
        json!({"name": "st", "verification": {"type": "stripe", "secret": "whsec_x"}}),
    )
    .await;
    let body = br#"{"id":"evt_123","type":"invoice.paid"}"#;
    let now = signing::now();
    let a = post(
        &stack,
        &format!("/in/{st}"),
        &[("stripe-signature", &signing::stripe("whsec_x", now, body))],
        body,
    )
    .await;
    let b = post(
        &stack,
        &format!("/in/{st}"),
        &[(
            "stripe-signature",
            &signing::stripe("whsec_x", now + 1, body),
        )],
        body,
    )
    .await;
    assert_eq!(
        json_of(&a)["id"],
        json_of(&b)["id"],
        "Stripe's retry of evt_123 is the same event"
    );
    stack.list_accepted().await;
    let (_, ev) = stack
        .store
        .get_event("default", json_of(&a)["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.event_type, "invoice.paid");

    let generic = create_source(
        &stack,
        json!({"name": "g", "event_type_pointer": "/meta/kind"}),
    )
    .await;
    let resp = post(
        &stack,
        &format!("/in/{generic}"),
        &[],
        br#"{"meta":{"kind":"thing.done"}}"#,
    )
    .await;
    stack.list_accepted().await;
    let (_, ev) = stack
        .store
        .get_event("default", json_of(&resp)["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.event_type, "thing.done");
}

#[tokio::test]
async fn lark_challenges_tokens_and_encrypted_events() {
    let stack = Stack::new().await;
    let plain = create_source(
        &stack,
        json!({"name": "lark", "verification": {"type": "lark", "verification_token": "tok"}}),
    )
    .await;
    let path = format!("/in/{plain}");
    let challenge = post(
        &stack,
        &path,
        &[],
        br#"{"challenge":"ajls384kdjx98XX","token":"tok","type":"url_verification"}"#,
    )
    .await;
    assert_eq!(challenge.status(), 200);
    assert_eq!(json_of(&challenge), json!({"challenge": "ajls384kdjx98XX"}));
    let wrong = post(
        &stack,
        &path,
        &[],
        br#"{"challenge":"x","token":"nope","type":"url_verification"}"#,
    )
    .await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(json_of(&wrong)["error"]["code"], "invalid_token");
    assert_eq!(events(&stack).await, 0, "challenges create no event");

    let v1 = br#"{"uuid":"u-1","token":"tok","ts":"1","type":"event_callback","event":{"type":"message"}}"#;
    let resp = post(&stack, &path, &[], v1).await;
    assert_eq!(resp.status(), 202, "{}", resp.body());
    stack.list_accepted().await;
    let (_, ev) = stack
        .store
        .get_event("default", json_of(&resp)["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (ev.event_type.as_str(), ev.idempotency_key.as_str()),
        ("message", "u-1")
    );

    // The provider-signed encrypted fixture, re-signed at the current time.
    let fixtures: Vec<Value> =
        serde_json::from_str(include_str!("../fixtures/signed.json")).unwrap();
    let f = fixtures
        .iter()
        .find(|f| f["name"] == "lark_encrypted")
        .unwrap();
    let key = f["verification"]["encrypt_key"].as_str().unwrap();
    let enc = create_source(
        &stack,
        json!({"name": "lark-enc", "verification": f["verification"]}),
    )
    .await;
    let body = f["body"].as_str().unwrap().as_bytes();
    let now = signing::now();
    let ts = now.to_string();
    let sig = signing::lark(key, now, "n1", body);
    let path = format!("/in/{enc}");
    let resp = post(
        &stack,
        &path,
        &[
            ("x-lark-request-timestamp", &ts),
            ("x-lark-request-nonce", "n1"),
            ("x-lark-signature", &sig),
        ],
        body,
    )
    .await;
    assert_eq!(resp.status(), 202, "{}", resp.body());
    stack.list_accepted().await;
    let (_, ev) = stack
        .store
        .get_event("default", json_of(&resp)["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.event_type, "im.message.receive_v1");
    assert_eq!(ev.payload, body, "stored exactly as received");
    let unsigned = post(&stack, &path, &[], body).await;
    assert_eq!(json_of(&unsigned)["error"]["code"], "missing_header");
    let forged = post(
        &stack,
        &path,
        &[
            ("x-lark-request-timestamp", &ts),
            ("x-lark-request-nonce", "n2"),
            ("x-lark-signature", &sig),
        ],
        body,
    )
    .await;
    assert_eq!(json_of(&forged)["error"]["code"], "invalid_signature");
}

#[tokio::test]
async fn custom_paths_answers_and_content_types() {
    let stack = Stack::new().await;
    let log = create_source(
        &stack,
        json!({
            "name": "log", "path": "/log", "default_event_type": "log.line", "accept_raw": true,
            "response": {"status": 200, "content_type": "text/plain", "body": "ok"}
        }),
    )
    .await;
    let resp = post(
        &stack,
        "/log",
        &[("content-type", "text/plain")],
        b"raw line, not JSON",
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", resp.body());
    assert_eq!(resp.body(), "ok");
    assert_eq!(resp.headers()["content-type"], "text/plain");
    let id = resp.headers()["hookrelay-event-id"]
        .to_str()
        .unwrap()
        .to_owned();
    stack.list_accepted().await;
    let (_, ev) = stack
        .store
        .get_event("default", &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.payload, b"raw line, not JSON");
    assert_eq!(ev.source_id, log);
    // Forwarded with the content type it came with.
    let receiver = hookrelay_tests::Receiver::start().await;
    hookrelay_tests::create_endpoint(&stack, json!({"name": "r", "url": receiver.url})).await;
    post(
        &stack,
        "/log",
        &[("content-type", "text/plain")],
        b"second line",
    )
    .await;
    stack.drain(&stack.delivery()).await;
    let got = receiver.deliveries();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("content-type"), "text/plain");
    assert_eq!(&got[0].body[..], b"second line");

    let admin = stack.admin();
    for (body, status) in [
        (json!({"name": "dup", "path": "/log"}), 409),
        (json!({"name": "res", "path": "/workspaces/x"}), 400),
        (json!({"name": "bad", "path": "no-slash"}), 400),
        (json!({"name": "resp", "response": {"status": 500}}), 400),
        (json!({"name": "v", "verification": {"type": "nope"}}), 400),
        (
            json!({"name": "v", "verification": {"type": "standard_webhooks", "secret": "plain"}}),
            400,
        ),
    ] {
        let r = hookrelay_admin::handle(
            &admin,
            admin_request("POST", "/workspaces/default/sources", Some(body.clone())),
        )
        .await;
        assert_eq!(r.status(), status, "{body}: {}", r.body());
    }
    assert_eq!(post(&stack, "/nowhere", &[], b"{}").await.status(), 404);

    let strict = create_source(&stack, json!({"name": "json-only"})).await;
    let r = post(
        &stack,
        &format!("/in/{strict}"),
        &[("content-type", "text/plain")],
        b"{}",
    )
    .await;
    assert_eq!(r.status(), 415);
    assert_eq!(json_of(&r)["error"]["code"], "unsupported_media_type");
    let r = post(
        &stack,
        &format!("/in/{strict}"),
        &[("content-type", "application/json; charset=utf-8")],
        br#"{"event_type":"a"}"#,
    )
    .await;
    assert_eq!(r.status(), 202);
    let big = "h".repeat(hookrelay_ingest::MAX_HEADER_BYTES);
    let r = post(
        &stack,
        &format!("/in/{strict}"),
        &[("x-big", &big)],
        br#"{"event_type":"a"}"#,
    )
    .await;
    assert_eq!(r.status(), 431);
}

#[tokio::test]
async fn slack_url_verification_is_answered() {
    let stack = Stack::new().await;
    let id = create_source(
        &stack,
        json!({"name": "slack", "verification": {"type": "slack", "secret": "sl"}}),
    )
    .await;
    let body = br#"{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let now = signing::now();
    let resp = post(
        &stack,
        &format!("/in/{id}"),
        &[
            ("x-slack-request-timestamp", &now.to_string()),
            ("x-slack-signature", &signing::slack("sl", now, body)),
        ],
        body,
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        json_of(&resp)["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
    assert_eq!(events(&stack).await, 0);
}
