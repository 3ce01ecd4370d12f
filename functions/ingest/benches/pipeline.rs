//! The ingest pipeline's CPU per event, without AWS: verify (each verification type), read
//! the event type and idempotency key, build the event, its DynamoDB item and its SQS task
//! bodies. Beside it, the floor: one HMAC-SHA256 over the same 1 KiB. Also outbound signing
//! (Standard Webhooks). `make bench` reads the medians from criterion's output.

use std::hint::black_box;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use hookrelay_ingest::accept::{Identified, build_event, identify};
use hookrelay_shared::store::Store;
use hookrelay_shared::{
    DeliveryTask, Endpoint, HmacAlgorithm, SignatureEncoding, Source, Timestamp, Verification,
    signature,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

const SECRET: &str = "bench-secret-0123456789";
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn hmac256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("key");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// The cost benchmark's request bodies, so both measure the same events.
#[path = "../../../infra/local/src/webhook_bodies.rs"]
#[allow(unused_imports)] // its tests' imports, which a bench does not run
mod webhook_bodies;

/// A 1 KiB JSON event in the generic sources' envelope that reads like a real webhook (random
/// ids): a body of one repeated character compresses as no real one does, and the store
/// compresses a payload only when that saves a write unit.
fn body() -> Vec<u8> {
    webhook_bodies::invoice_event(1, 1024).into_bytes()
}

fn headers(pairs: &[(&str, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    for (k, v) in pairs {
        h.insert(
            HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    h
}

/// A source of each verification type with a request it accepts.
fn cases(body: &[u8], now: i64) -> Vec<(&'static str, Source, HeaderMap)> {
    let source = |v: Verification| {
        let mut s = Source::new("default", "bench");
        s.verification = v;
        s
    };
    let hex_sig = hex::encode(hmac256(SECRET.as_bytes(), body));
    let mut stripe_signed = format!("{now}.").into_bytes();
    stripe_signed.extend_from_slice(body);
    let mut slack_signed = format!("v0:{now}:").into_bytes();
    slack_signed.extend_from_slice(body);
    let whsec_key = STANDARD
        .decode(WHSEC.trim_start_matches("whsec_"))
        .expect("whsec");
    let mut sw_signed = format!("msg_1.{now}.").into_bytes();
    sw_signed.extend_from_slice(body);
    let mut lark = Sha256::new();
    lark.update(format!("{now}nonce{SECRET}").as_bytes());
    lark.update(body);
    vec![
        ("none", source(Verification::None), headers(&[])),
        (
            "github",
            source(Verification::Github {
                secret: SECRET.into(),
            }),
            headers(&[
                ("x-hub-signature-256", format!("sha256={hex_sig}")),
                ("x-github-event", "push".into()),
                ("x-github-delivery", "d-1".into()),
            ]),
        ),
        (
            "stripe",
            source(Verification::Stripe {
                secret: SECRET.into(),
            }),
            headers(&[(
                "stripe-signature",
                format!(
                    "t={now},v1={}",
                    hex::encode(hmac256(SECRET.as_bytes(), &stripe_signed))
                ),
            )]),
        ),
        (
            "standard_webhooks",
            source(Verification::StandardWebhooks {
                secret: WHSEC.into(),
            }),
            headers(&[
                ("webhook-id", "msg_1".into()),
                ("webhook-timestamp", now.to_string()),
                (
                    "webhook-signature",
                    format!("v1,{}", STANDARD.encode(hmac256(&whsec_key, &sw_signed))),
                ),
            ]),
        ),
        (
            "shopify",
            source(Verification::Shopify {
                secret: SECRET.into(),
            }),
            headers(&[
                (
                    "x-shopify-hmac-sha256",
                    STANDARD.encode(hmac256(SECRET.as_bytes(), body)),
                ),
                ("x-shopify-topic", "orders/paid".into()),
            ]),
        ),
        (
            "slack",
            source(Verification::Slack {
                secret: SECRET.into(),
            }),
            headers(&[
                ("x-slack-request-timestamp", now.to_string()),
                (
                    "x-slack-signature",
                    format!(
                        "v0={}",
                        hex::encode(hmac256(SECRET.as_bytes(), &slack_signed))
                    ),
                ),
            ]),
        ),
        (
            "lark",
            source(Verification::Lark {
                verification_token: None,
                encrypt_key: Some(SECRET.into()),
            }),
            headers(&[
                ("x-lark-request-timestamp", now.to_string()),
                ("x-lark-request-nonce", "nonce".into()),
                ("x-lark-signature", hex::encode(lark.finalize())),
            ]),
        ),
        (
            "hmac",
            source(Verification::Hmac {
                header: "x-signature".into(),
                secret: SECRET.into(),
                algorithm: HmacAlgorithm::Sha256,
                encoding: SignatureEncoding::Hex,
                prefix: None,
            }),
            headers(&[("x-signature", hex_sig.clone())]),
        ),
        (
            "basic_auth",
            source(Verification::BasicAuth {
                username: "user".into(),
                password: SECRET.into(),
            }),
            headers(&[(
                "authorization",
                format!("Basic {}", STANDARD.encode(format!("user:{SECRET}"))),
            )]),
        ),
        (
            "api_key",
            source(Verification::ApiKey {
                header: "x-api-key".into(),
                value: SECRET.into(),
            }),
            headers(&[("x-api-key", SECRET.into())]),
        ),
    ]
}

/// Everything ingest does with the CPU for one event.
fn ingest_once(
    source: &Source,
    endpoints: &[Endpoint],
    h: &HeaderMap,
    body: &[u8],
    now: Timestamp,
) {
    let Identified::Event {
        event_type,
        idempotency_key,
    } = identify(source, h, body, true, now).expect("verified")
    else {
        panic!("not an event")
    };
    let event_type = event_type.expect("typed");
    let targets =
        hookrelay_shared::model::subscribed(endpoints, &event_type, body, &Default::default())
            .into_iter()
            .map(|e| e.id.clone())
            .collect();
    let event = build_event(
        source,
        targets,
        h,
        body.to_vec(),
        true,
        now,
        event_type,
        idempotency_key,
        hookrelay_shared::trace_context::TraceContext::accepted(h),
    );
    let key = Store::event_key(&source.id, &event.idempotency_key);
    let item = Store::event_item(
        &event,
        &source.id,
        false,
        std::time::Duration::from_secs(86_400),
    )
    .expect("item");
    let tasks: Vec<String> = event
        .endpoint_ids
        .iter()
        .map(|ep| serde_json::to_string(&DeliveryTask::new(&event, &key, ep)).expect("task"))
        .collect();
    black_box((item, tasks));
}

fn benches(c: &mut Criterion) {
    let body = body();
    let now = Timestamp::now();
    let endpoints = vec![Endpoint::new(
        "default",
        "e",
        "https://example.com/",
        vec!["*".into()],
    )];

    c.bench_function("floor/hmac_sha256_1kib", |b| {
        b.iter(|| black_box(hmac256(SECRET.as_bytes(), black_box(&body))))
    });
    for (name, source, h) in cases(&body, now.unix_seconds()) {
        c.bench_function(&format!("ingest/{name}"), |b| {
            b.iter(|| ingest_once(&source, &endpoints, &h, black_box(&body), now))
        });
    }
    c.bench_function("outbound/sign_1kib", |b| {
        b.iter(|| {
            black_box(signature::sign(
                WHSEC,
                "evt_1",
                now.unix_seconds(),
                black_box(&body),
            ))
        })
    });
}

criterion_group!(ingest, benches);
criterion_main!(ingest);
