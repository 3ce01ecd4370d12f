//! The abuse suite: two workspaces with their own keys, one of them hostile. The hostile
//! tenant tries everything the multi-tenant design must hold against (other workspaces' ids
//! inside its own paths, hostile templates, oversized inputs, loops, floods, an endpoint
//! that always fails), all through its own key; the victim is then checked to be unread,
//! unchanged and undelayed: every one of its events delivered once, within one delivery round
//! of being sent.

use hookrelay_tests::receiver::Reply;
use hookrelay_tests::{Receiver, Stack, admin_call, key_call, request};
use serde_json::{Value, json};

struct Tenant {
    name: &'static str,
    key: String,
}

impl Tenant {
    async fn new(stack: &Stack, name: &'static str) -> Self {
        let (s, _) = admin_call(stack, "POST", "/workspaces", Some(json!({"name": name}))).await;
        assert_eq!(s, 201);
        let (s, key) = admin_call(
            stack,
            "POST",
            &format!("/workspaces/{name}/keys"),
            Some(json!({"name": "own"})),
        )
        .await;
        assert_eq!(s, 201, "{key}");
        Self {
            name,
            key: key["key"].as_str().unwrap().to_owned(),
        }
    }

    async fn call(
        &self,
        stack: &Stack,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        key_call(stack, &self.key, method, path, body).await
    }

    /// A call on this tenant's own workspace (`path` under `/workspaces/{name}`).
    async fn own(
        &self,
        stack: &Stack,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call(
            stack,
            method,
            &format!("/workspaces/{}{path}", self.name),
            body,
        )
        .await
    }

    async fn create(&self, stack: &Stack, what: &str, body: Value) -> String {
        let (s, made) = self
            .own(stack, "POST", &format!("/{what}"), Some(body))
            .await;
        assert_eq!(s, 201, "{made}");
        made["id"].as_str().unwrap().to_owned()
    }
}

async fn ingest(stack: &Stack, source: &str, body: &[u8]) -> (u16, Value) {
    let resp = hookrelay_ingest::handle(
        &stack.ingest(),
        request(
            "POST",
            &format!("/in/{source}"),
            &[("content-type", "application/json")],
            body,
        ),
    )
    .await;
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_str(resp.body()).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_hostile_workspace_cannot_read_slow_or_break_another() {
    let stack = Stack::new().await;
    let victim = Tenant::new(&stack, "victim").await;
    let hostile = Tenant::new(&stack, "hostile").await;

    // The victim: a source and an endpoint that answers 200.
    let victim_rx = Receiver::start().await;
    let victim_src = victim
        .create(&stack, "sources", json!({"name": "orders"}))
        .await;
    let victim_ep = victim
        .create(
            &stack,
            "endpoints",
            json!({"name": "shop", "url": victim_rx.url}),
        )
        .await;
    let (_, victim_ep_before) = victim
        .own(&stack, "GET", &format!("/endpoints/{victim_ep}"), None)
        .await;
    let (s, first) = ingest(&stack, &victim_src, br#"{"event_type":"order.paid","n":0}"#).await;
    assert_eq!(s, 202);
    let victim_event = first["id"].as_str().unwrap().to_owned();

    // The hostile tenant's own setup: a flooding source with a rate limit, an endpoint that
    // always fails, and a bot whose template passes the save check but not the render's.
    let hostile_rx = Receiver::start().await;
    hostile_rx.replies(vec![], Reply::status(500));
    let flood_src = hostile
        .create(
            &stack,
            "sources",
            json!({"name": "flood", "rate_limit": {"per_second": 1, "burst": 5}}),
        )
        .await;
    hostile
        .create(
            &stack,
            "endpoints",
            json!({"name": "sink", "url": hostile_rx.url}),
        )
        .await;
    hostile
        .create(
            &stack,
            "endpoints",
            json!({"name": "spin", "url": hostile_rx.url, "kind": "lark_bot", "lark": {"template": "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}"}}),
        )
        .await;

    // 1. Other workspaces' ids inside its own paths, and its key on theirs.
    let foreign = [
        ("GET", format!("/endpoints/{victim_ep}"), None),
        (
            "PUT",
            format!("/endpoints/{victim_ep}"),
            Some(json!({"name": "x", "url": "https://example.com/"})),
        ),
        ("DELETE", format!("/endpoints/{victim_ep}"), None),
        ("GET", format!("/endpoints/{victim_ep}/secret"), None),
        (
            "POST",
            format!("/endpoints/{victim_ep}/secret/rotate"),
            None,
        ),
        ("POST", format!("/endpoints/{victim_ep}/test"), None),
        ("POST", format!("/endpoints/{victim_ep}/enable"), None),
        ("GET", format!("/sources/{victim_src}"), None),
        (
            "PUT",
            format!("/sources/{victim_src}"),
            Some(json!({"name": "x"})),
        ),
        ("DELETE", format!("/sources/{victim_src}"), None),
        ("GET", format!("/events/{victim_event}"), None),
        (
            "POST",
            format!("/events/{victim_event}/retry?endpoint_id={victim_ep}"),
            None,
        ),
    ];
    for (method, path, body) in foreign {
        let (s, answer) = hostile.own(&stack, method, &path, body).await;
        assert!(
            [403, 404].contains(&s),
            "{method} {path} through its own workspace: {s} {answer}"
        );
        assert!(!answer.to_string().contains("whsec_"), "{answer}");
    }
    for (method, path) in [
        ("GET", "/workspaces/victim".to_owned()),
        ("GET", "/workspaces/victim/events".to_owned()),
        ("GET", format!("/workspaces/victim/endpoints/{victim_ep}")),
        ("POST", "/workspaces/victim/config/sync".to_owned()),
        ("GET", "/dlq".to_owned()),
        ("GET", "/workspaces".to_owned()),
    ] {
        let (s, _) = hostile.call(&stack, method, &path, None).await;
        assert_eq!(s, 403, "{method} {path}");
    }
    for filter in [
        format!("/attempts?endpoint_id={victim_ep}"),
        format!("/attempts?event_id={victim_event}"),
        format!("/events?source_id={victim_src}"),
    ] {
        let (s, page) = hostile.own(&stack, "GET", &filter, None).await;
        assert_eq!(s, 200);
        assert_eq!(page["data"], json!([]), "{filter}: {page}");
    }
    // A config sync naming the victim's endpoint makes the hostile tenant's own.
    let (s, plan) = hostile
        .own(
            &stack,
            "POST",
            "/config/sync",
            Some(json!({"endpoints": [{"name": "shop", "url": "https://example.com/"}]})),
        )
        .await;
    assert_eq!(s, 200, "{plan}");

    // 2. Hostile templates and oversized inputs are refused before anything is stored.
    let (s, _) = hostile
        .own(
            &stack,
            "POST",
            "/endpoints",
            Some(json!({"name": "boom", "url": hostile_rx.url, "kind": "lark_bot", "lark": {"template": "{{ \"x\" * 100000000 }}"}})),
        )
        .await;
    assert_eq!(s, 400);
    // Past the body limit: 6 MB with the payload bucket, as the harness deploys it.
    let huge = "x".repeat(hookrelay_shared::payload_objects::MAX_PAYLOAD + 1024);
    let (s, _) = hostile
        .own(
            &stack,
            "POST",
            "/events",
            Some(json!({"event_type": "big", "data": huge})),
        )
        .await;
    assert_eq!(s, 413);
    let (s, _) = ingest(&stack, &flood_src, huge.as_bytes()).await;
    assert_eq!(s, 413);
    let many_headers: serde_json::Map<String, Value> =
        (0..50).map(|i| (format!("x-h{i}"), json!("v"))).collect();
    let (s, _) = hostile
        .own(
            &stack,
            "POST",
            "/endpoints",
            Some(json!({"name": "heavy", "url": hostile_rx.url, "headers": many_headers})),
        )
        .await;
    assert_eq!(s, 400);

    // 3. A loop through the deployment's own host is refused.
    let base = hookrelay_tests::gateway::serve(&stack).await;
    let resp = reqwest::Client::new()
        .post(format!("{base}/workspaces/hostile/endpoints"))
        .bearer_auth(&hostile.key)
        .header("content-type", "application/json")
        .body(json!({"name": "loop", "url": format!("{base}/in/{flood_src}")}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // 4. A flood: its own source answers 429 past its limit; the victim's is untouched.
    let mut flood_accepted = 0;
    let mut flood_refused = 0;
    let mut victim_events = vec![victim_event.clone()];
    for n in 0..30 {
        match ingest(&stack, &flood_src, br#"{"event_type":"spam"}"#)
            .await
            .0
        {
            202 => flood_accepted += 1,
            429 => flood_refused += 1,
            other => panic!("flood answered {other}"),
        }
        if n % 10 == 0 {
            let body = format!(r#"{{"event_type":"order.paid","n":{}}}"#, n / 10 + 1);
            let (s, ev) = ingest(&stack, &victim_src, body.as_bytes()).await;
            assert_eq!(
                s, 202,
                "the victim's source is not limited by the hostile flood"
            );
            victim_events.push(ev["id"].as_str().unwrap().to_owned());
        }
    }
    assert!(
        flood_refused >= 20,
        "{flood_accepted} accepted, {flood_refused} refused"
    );

    // 5. One delivery round: the hostile tasks fail (500s, a template out of fuel) and the
    // victim's are all delivered in it, once each.
    let delivery = stack.delivery();
    stack.drain(&delivery).await;
    let got = victim_rx.deliveries();
    let mut ids: Vec<String> = got.iter().map(|d| d.header("webhook-id")).collect();
    ids.sort();
    let mut expected = victim_events.clone();
    expected.sort();
    assert_eq!(ids, expected, "every victim event delivered once");
    assert!(
        !hostile_rx.deliveries().is_empty(),
        "the hostile endpoint was tried (and failed)"
    );

    // 6. Nothing of the victim's changed or leaked.
    let (_, victim_ep_after) = victim
        .own(&stack, "GET", &format!("/endpoints/{victim_ep}"), None)
        .await;
    let settings = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("last_success_at");
        v
    };
    assert_eq!(
        settings(&victim_ep_after),
        settings(&victim_ep_before),
        "same version, settings and secret; only its own success recorded"
    );
    let (_, victim_src_now) = victim
        .own(&stack, "GET", &format!("/sources/{victim_src}"), None)
        .await;
    assert_eq!(victim_src_now["name"], "orders");
    let (_, hostile_events) = hostile.own(&stack, "GET", "/events?limit=100", None).await;
    let text = hostile_events.to_string();
    for id in &victim_events {
        assert!(
            !text.contains(id.as_str()),
            "the hostile listing shows {id}"
        );
    }
    let (_, hostile_attempts) = hostile
        .own(&stack, "GET", "/attempts?limit=100", None)
        .await;
    assert!(!hostile_attempts.to_string().contains(&victim_ep));
}
