//! Hostile input: arbitrary bodies, headers and paths thrown at the ingest handler. It never
//! panics and never answers 5xx for a client's mistake; the size limits hold.

use std::sync::OnceLock;

use hookrelay_tests::{Stack, create_source, request};
use proptest::prelude::*;
use serde_json::json;

struct World {
    rt: tokio::runtime::Runtime,
    stack: Stack,
    ctx: hookrelay_ingest::Context,
    sources: Vec<String>,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let (stack, sources) = rt.block_on(async {
            let mut stack = Stack::new().await;
            stack.settings.cache_ttl = std::time::Duration::from_secs(600);
            let mut ids = Vec::new();
            for body in [
                json!({"name": "plain"}),
                json!({"name": "gh", "verification": {"type": "github", "secret": "s"}}),
                json!({"name": "st", "verification": {"type": "stripe", "secret": "whsec_s"}}),
                json!({"name": "lk", "verification": {"type": "lark", "verification_token": "t", "encrypt_key": "k"}}),
                json!({"name": "sw", "verification": {"type": "standard_webhooks", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}),
                json!({"name": "hm", "verification": {"type": "hmac", "header": "x-sig", "secret": "k", "algorithm": "sha512", "encoding": "base64url"}}),
                json!({"name": "raw", "accept_raw": true, "path": "/raw", "event_type_pointer": "/a/b"}),
            ] {
                ids.push(create_source(&stack, body).await);
            }
            (stack, ids)
        });
        let ctx = stack.ingest();
        World { rt, stack, ctx, sources }
    })
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("content-type".to_owned()),
        Just("idempotency-key".to_owned()),
        Just("webhook-id".to_owned()),
        Just("webhook-timestamp".to_owned()),
        Just("webhook-signature".to_owned()),
        Just("stripe-signature".to_owned()),
        Just("x-hub-signature-256".to_owned()),
        Just("x-lark-signature".to_owned()),
        Just("x-lark-request-timestamp".to_owned()),
        Just("x-sig".to_owned()),
        "[a-z][a-z0-9-]{0,24}",
    ]
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,80}",
        Just("application/json".to_owned()),
        Just("t=1,v1=zz,v1=".to_owned()),
        Just("v1,!!! v1,AAAA".to_owned()),
        Just("sha256=".to_owned()),
        "[0-9]{1,12}",
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        "[ -~]{0,300}".prop_map(String::into_bytes),
        Just(br#"{"encrypt":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}"#.to_vec()),
        Just(br#"{"type":"url_verification","challenge":"c","token":"t"}"#.to_vec()),
        "[a-z.]{0,20}".prop_map(|t| format!(
            r#"{{"event_type":"{t}","a":{{"b":"{t}"}},"data":[1,{{}},null]}}"#
        )
        .into_bytes()),
        Just(format!(r#"{{"event_type":"x","pad":"{}"}}"#, "p".repeat(300 * 1024)).into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn ingest_never_panics_nor_blames_itself(
        which in 0usize..9,
        junk_path in "/[a-zA-Z0-9/._%~-]{0,40}",
        headers in proptest::collection::vec((header_name(), header_value()), 0..6),
        body in body(),
    ) {
        let w = world();
        let path = match which {
            n if n < w.sources.len() => format!("/in/{}", w.sources[n]),
            7 => "/raw".to_owned(),
            _ => junk_path,
        };
        let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let req = request("POST", &path, &hs, &body);
        let resp = w.rt.block_on(hookrelay_ingest::handle(&w.ctx, req));
        let status = resp.status().as_u16();
        prop_assert!(status < 500, "{status} for {path}: {}", resp.body());
        if body.len() > w.stack.settings.max_body_bytes {
            prop_assert_eq!(status, 413);
        }
        if status >= 400 {
            let err: serde_json::Value = serde_json::from_str(resp.body()).expect("JSON error");
            prop_assert!(err["error"]["code"].is_string() && err["error"]["message"].is_string());
        }
    }
}
