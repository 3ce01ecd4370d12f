//! Rate limits: a source over its limit answers `429` with `Retry-After` and stores
//! nothing; an endpoint over its limit gets its deliveries later, each once, with no attempt
//! used by the wait; neither limit touches another source or endpoint.

use std::time::{Duration, Instant};

use hookrelay_tests::{
    Receiver, Stack, admin_call as call, attempts_of, create_endpoint, create_source, request,
};
use serde_json::json;

async fn post(stack: &Stack, source: &str) -> http::Response<String> {
    hookrelay_ingest::handle(
        &stack.ingest(),
        request(
            "POST",
            &format!("/in/{source}"),
            &[("content-type", "application/json")],
            br#"{"event_type":"flood"}"#,
        ),
    )
    .await
}

#[tokio::test]
async fn a_source_over_its_limit_answers_429_and_stores_nothing() {
    let stack = Stack::new().await;
    // Five at once, then one every five seconds: a five-second window of five.
    let limited = create_source(
        &stack,
        json!({"name": "limited", "rate_limit": {"per_second": 1, "burst": 5}}),
    )
    .await;
    let other = create_source(&stack, json!({"name": "other"})).await;
    let mut accepted = 0;
    let mut refused = 0;
    for _ in 0..12 {
        let resp = post(&stack, &limited).await;
        match resp.status().as_u16() {
            202 => accepted += 1,
            429 => {
                refused += 1;
                let after: u64 = resp.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=5).contains(&after), "Retry-After {after}");
                assert!(resp.body().contains("rate_limited"), "{}", resp.body());
            }
            other => panic!("unexpected {other}: {}", resp.body()),
        }
    }
    // One window, or two if the requests straddle its end.
    assert!((5..=10).contains(&accepted), "{accepted} accepted");
    assert_eq!(accepted + refused, 12);
    for _ in 0..12 {
        assert_eq!(
            post(&stack, &other).await.status(),
            202,
            "another source is not limited"
        );
    }
    stack.list_accepted().await;
    let (_, events) = call(
        &stack,
        "GET",
        &format!("/workspaces/default/events?source_id={limited}&limit=100"),
        None,
    )
    .await;
    assert_eq!(
        events["data"].as_array().unwrap().len(),
        accepted,
        "a refused request is not stored"
    );
}

#[tokio::test]
async fn an_endpoint_over_its_limit_is_deferred_not_failed() {
    let stack = Stack::new().await;
    let limited = Receiver::start().await;
    let free = Receiver::start().await;
    // Two every two seconds.
    create_endpoint(
        &stack,
        json!({"name": "limited", "url": limited.url, "rate_limit": {"per_second": 1, "burst": 2}}),
    )
    .await;
    create_endpoint(&stack, json!({"name": "free", "url": free.url})).await;
    let source = create_source(&stack, json!({"name": "s"})).await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(hookrelay_tests::send_event(&stack, &source, br#"{"event_type":"a"}"#).await);
    }
    let delivery = stack.delivery();
    let started = Instant::now();
    stack.drain(&delivery).await;
    assert_eq!(
        free.deliveries().len(),
        6,
        "the unlimited endpoint is not held up"
    );
    assert!(
        limited.deliveries().len() <= 4,
        "at most one window's burst (two if the round straddles a window's end)"
    );
    while limited.deliveries().len() < 6 && started.elapsed() < Duration::from_secs(30) {
        stack.deliver_once(&delivery, Duration::from_secs(1)).await;
    }
    let got = limited.deliveries();
    assert_eq!(got.len(), 6, "every deferred delivery arrives");
    let mut seen: Vec<String> = got.iter().map(|d| d.header("webhook-id")).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 6, "each once");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "six at two per two seconds take at least two more windows"
    );
    for id in &ids {
        for a in attempts_of(&stack, id).await {
            assert_eq!(a["attempt_number"], 1, "waiting used no attempt: {a}");
            assert_eq!(a["status"], "SUCCESSFUL");
        }
    }
}

#[tokio::test]
async fn rate_limits_are_validated() {
    let stack = Stack::new().await;
    for limit in [
        json!({"per_second": 0}),
        json!({"per_second": 1001}),
        json!({"per_second": 10, "burst": 5}),
        json!({"per_second": 10, "burst": 601}),
    ] {
        let (s, body) = call(
            &stack,
            "POST",
            "/workspaces/default/sources",
            Some(json!({"name": "s", "rate_limit": limit})),
        )
        .await;
        assert_eq!(s, 400, "{body}");
        assert!(
            body["error"]["fields"].get("rate_limit").is_some(),
            "{body}"
        );
    }
}
