//! Delivery loops: an endpoint on the deployment's own host is refused when it is saved, and
//! a loop that gets past that (another name for the same API) stops after `MAX_HOPS`
//! deliveries, because every delivery says how many it came through and ingest refuses one
//! past the limit with `508 Loop Detected`.

use hookrelay_shared::hops::{HEADER, MAX_HOPS};
use hookrelay_tests::{Receiver, Stack, admin_call as call, create_source, request};
use serde_json::{Value, json};

#[tokio::test]
async fn an_endpoint_on_the_deployments_own_host_is_refused() {
    let stack = Stack::new().await;
    let base = hookrelay_tests::gateway::serve(&stack).await;
    let source = create_source(&stack, json!({"name": "a"})).await;
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(hookrelay_tests::ADMIN_KEY)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    // Through the API as a user calls it: the request's own host is the deployment's.
    let own = format!("{base}/in/{source}");
    let resp = post(
        "/workspaces/default/endpoints",
        json!({"name": "loop", "url": own}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert!(
        body["error"]["fields"]["url"]
            .as_str()
            .is_some_and(|m| m.contains("loop")),
        "{body}"
    );
    let resp = http
        .post(format!("{base}/workspaces/default/config/sync"))
        .bearer_auth(hookrelay_tests::ADMIN_KEY)
        .header("content-type", "application/yaml")
        .body(format!("endpoints:\n  - name: loop\n    url: {own}\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "config sync refuses it too");

    // Another port on the same host is another service.
    let receiver = Receiver::start().await;
    let resp = post(
        "/workspaces/default/endpoints",
        json!({"name": "fine", "url": receiver.url}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

#[tokio::test]
async fn ingest_refuses_an_event_past_the_hop_limit() {
    let stack = Stack::new().await;
    let source = create_source(&stack, json!({"name": "a"})).await;
    let send = |hops: u32| {
        let ingest = stack.ingest();
        let source = source.clone();
        async move {
            let hops = hops.to_string();
            hookrelay_ingest::handle(
                &ingest,
                request(
                    "POST",
                    &format!("/in/{source}"),
                    &[("content-type", "application/json"), (HEADER, &hops)],
                    br#"{"event_type":"a"}"#,
                ),
            )
            .await
        }
    };
    assert_eq!(send(MAX_HOPS).await.status(), 202);
    let refused = send(MAX_HOPS + 1).await;
    assert_eq!(refused.status(), 508, "{}", refused.body());
    assert!(refused.body().contains("loop_detected"));
}

/// The confirmed loop: two `*` endpoints of one workspace posting to its two sources through
/// a name the admin API cannot know is its own. It stops by itself.
#[tokio::test]
async fn two_endpoints_feeding_each_other_stop_after_the_hop_limit() {
    let stack = Stack::with_schedule("").await;
    let base = hookrelay_tests::gateway::serve(&stack).await;
    let a = create_source(&stack, json!({"name": "a"})).await;
    let b = create_source(&stack, json!({"name": "b"})).await;
    for (name, source) in [("to-a", &a), ("to-b", &b)] {
        let (s, body) = call(
            &stack,
            "POST",
            "/workspaces/default/endpoints",
            Some(json!({"name": name, "url": format!("{base}/in/{source}")})),
        )
        .await;
        assert_eq!(s, 201, "{body}");
    }
    hookrelay_tests::send_event(&stack, &a, br#"{"event_type":"ping"}"#).await;
    let delivery = stack.delivery();
    // Each round delivers what the previous one ingested; a loop would never run dry.
    let mut rounds = 0;
    while stack
        .deliver_once(&delivery, std::time::Duration::ZERO)
        .await
        .is_some()
    {
        rounds += 1;
        assert!(rounds < 50, "the loop does not stop");
    }
    let (_, events) = call(&stack, "GET", "/workspaces/default/events?limit=100", None).await;
    let events = events["data"].as_array().unwrap();
    // Each event goes to both endpoints; only the hop back into the source it came from
    // is a duplicate there (the same `webhook-id`), so every hop doubles: 1, 1, 2, 4…
    // events with 0, 1, 2, 3… hops, and none past the limit.
    let mut by_hops = std::collections::BTreeMap::<u64, u32>::new();
    for e in events {
        *by_hops.entry(e["hops"].as_u64().unwrap_or(0)).or_default() += 1;
    }
    let expected: std::collections::BTreeMap<u64, u32> = (0..=u64::from(MAX_HOPS))
        .map(|h| (h, if h == 0 { 1 } else { 1 << (h - 1) }))
        .collect();
    assert_eq!(by_hops, expected);
    let letters = stack.dead_letters().await;
    assert!(
        letters
            .iter()
            .any(|m| m.body.as_deref().unwrap_or_default().contains("508")),
        "the delivery past the limit was refused with 508"
    );
}
