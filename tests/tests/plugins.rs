//! Plugins and content filters through the real functions and the local stack: a source's
//! schema and function shape, reject and drop requests before anything is stored; an
//! endpoint's filter chooses its events at ingest; an endpoint's function and WebAssembly
//! plugins reshape what is signed and sent; hostile scripts fail only their own request;
//! everything is checked when saved, survives a config round trip and can be dry-run.

use std::time::Duration;

use hookrelay_tests::{
    Receiver, Stack, admin_call as call, attempts_of, create_endpoint, create_source, json_of,
    request, verify_with_standardwebhooks,
};
use serde_json::{Value, json};

async fn post(
    stack: &Stack,
    source: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> http::Response<String> {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    hookrelay_ingest::handle(
        &stack.ingest(),
        request(
            "POST",
            &format!("/in/{source}"),
            &all,
            body.to_string().as_bytes(),
        ),
    )
    .await
}

async fn events_of(stack: &Stack, source: &str) -> Vec<Value> {
    stack.list_accepted().await;
    let (status, page) = call(
        stack,
        "GET",
        &format!("/workspaces/default/events?source_id={source}&limit=100"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    page["data"].as_array().cloned().unwrap_or_default()
}

async fn event(stack: &Stack, id: &str) -> Value {
    stack.list_accepted().await;
    let (status, e) = call(
        stack,
        "GET",
        &format!("/workspaces/default/events/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{e}");
    e
}

const GITHUB_SHAPE: &str = r#"
function handle(r) {
  if (r.headers['x-github-event'] === 'ping') return { drop: true };
  if (!r.body.repository) return { reject: { status: 422, message: 'not a repository event' } };
  return {
    event_type: 'github.' + r.headers['x-github-event'],
    idempotency_key: r.headers['x-github-delivery'],
    body: { repo: r.body.repository.full_name, ref: r.body.ref, commits: (r.body.commits || []).length },
  };
}
"#;

#[tokio::test]
async fn a_sources_plugins_validate_shape_reject_and_drop_before_storage() {
    let stack = Stack::new().await;
    let source = create_source(
        &stack,
        json!({
            "name": "github-shaped",
            "default_event_type": "unknown",
            "plugins": [
                {"type": "jsonschema", "schema": {
                    "type": "object",
                    "properties": {"ref": {"type": "string", "pattern": "^refs/"}}
                }},
                {"type": "function", "code": GITHUB_SHAPE}
            ]
        }),
    )
    .await;
    let push = json!({"ref": "refs/heads/main", "repository": {"full_name": "acme/api"}, "commits": [{}, {}]});
    let resp = post(
        &stack,
        &source,
        &[("x-github-event", "push"), ("x-github-delivery", "d-1")],
        &push,
    )
    .await;
    assert_eq!(resp.status(), 202, "{}", resp.body());
    let id = json_of(&resp)["id"].as_str().unwrap().to_owned();
    let stored = event(&stack, &id).await;
    assert_eq!(stored["event_type"], "github.push");
    assert_eq!(stored["idempotency_key"], "d-1");
    assert_eq!(
        stored["payload"],
        json!({"repo": "acme/api", "ref": "refs/heads/main", "commits": 2})
    );
    // The key the plugin set makes a redelivery a duplicate.
    let again = post(
        &stack,
        &source,
        &[("x-github-event", "push"), ("x-github-delivery", "d-1")],
        &push,
    )
    .await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");

    // The schema refuses with the failing value's pointer and keyword.
    let bad = post(
        &stack,
        &source,
        &[("x-github-event", "push")],
        &json!({"ref": "main"}),
    )
    .await;
    assert_eq!(bad.status(), 400, "{}", bad.body());
    let err = json_of(&bad);
    assert_eq!(err["error"]["code"], "schema_validation_failed", "{err}");
    assert!(
        err["error"]["fields"]["/ref"]
            .as_str()
            .unwrap()
            .starts_with("pattern"),
        "{err}"
    );

    let rejected = post(
        &stack,
        &source,
        &[("x-github-event", "push")],
        &json!({"ref": "refs/x"}),
    )
    .await;
    assert_eq!(rejected.status(), 422, "{}", rejected.body());
    assert!(
        rejected.body().contains("rejected_by_plugin")
            && rejected.body().contains("not a repository event")
    );

    let dropped = post(
        &stack,
        &source,
        &[("x-github-event", "ping")],
        &json!({"zen": "hi"}),
    )
    .await;
    assert_eq!(dropped.status(), 202, "{}", dropped.body());
    assert_eq!(json_of(&dropped), json!({"dropped": true}));

    assert_eq!(
        events_of(&stack, &source).await.len(),
        1,
        "only the accepted push is stored"
    );
}

#[tokio::test]
async fn hostile_scripts_fail_only_their_own_request() {
    let stack = Stack::new().await;
    let hostile = [
        (
            "spin",
            "function handle(r) { for (;;) {} }",
            504,
            "plugin_timeout",
        ),
        (
            "bomb",
            "function handle(r) { var a = []; for (;;) a.push(new Array(1e5).fill(r)); }",
            502,
            "plugin_failed",
        ),
        (
            "huge",
            "function handle(r) { return { body: 'x'.repeat(6100000) } }",
            502,
            "plugin_failed",
        ),
        (
            "throws",
            "function handle(r) { throw new Error('boom') }",
            502,
            "plugin_failed",
        ),
        (
            "recursion",
            "function handle(r) { return handle(r) }",
            502,
            "plugin_failed",
        ),
    ];
    let calm = create_source(
        &stack,
        json!({"name": "calm", "plugins": [{"type": "function", "code": "function handle(r) { r.body.seen = true; return r }"}]}),
    )
    .await;
    for (name, code, status, error) in hostile {
        let source = create_source(
            &stack,
            json!({"name": name, "plugins": [{"type": "function", "code": code, "timeout_ms": 200}]}),
        )
        .await;
        let resp = post(&stack, &source, &[], &json!({"event_type": "t"})).await;
        assert_eq!(resp.status(), status, "{name}: {}", resp.body());
        assert!(resp.body().contains(error), "{name}: {}", resp.body());
        assert!(
            events_of(&stack, &source).await.is_empty(),
            "{name} stored nothing"
        );
        // The neighbour is untouched, right after.
        let ok = post(&stack, &calm, &[], &json!({"event_type": "t"})).await;
        assert_eq!(ok.status(), 202, "after {name}: {}", ok.body());
        let id = json_of(&ok)["id"].as_str().unwrap().to_owned();
        assert_eq!(event(&stack, &id).await["payload"]["seen"], true);
    }
}

#[tokio::test]
async fn plugins_and_filters_are_checked_when_saved() {
    let stack = Stack::new().await;
    let cases = [
        (
            json!({"name": "s", "plugins": [{"type": "function", "code": "function handle(r) {\n  return {;\n}"}]}),
            "plugins[0].code",
            "line 2",
        ),
        (
            json!({"name": "s", "plugins": [{"type": "function", "code": "var handle = 1;"}]}),
            "plugins[0].code",
            "function handle",
        ),
        (
            json!({"name": "s", "plugins": [{"type": "function", "code": "x".repeat(70_000)}]}),
            "plugins[0].code",
            "at most",
        ),
        (
            json!({"name": "s", "plugins": [{"type": "jsonschema", "schema": {"type": "nonsense"}}]}),
            "plugins[0].schema",
            "not a valid JSON Schema",
        ),
        (
            json!({"name": "s", "plugins": [{"type": "function", "code": "function handle(){}", "timeout_ms": 5000}]}),
            "plugins[0].timeout_ms",
            "1000",
        ),
    ];
    // Eight scripts of 60 KiB each would not fit the source's item.
    let big = format!("function handle(r) {{}} // {}", "x".repeat(60_000));
    let many: Vec<Value> = (0..8)
        .map(|_| json!({"type": "function", "code": big, "timeout_ms": 10}))
        .collect();
    let (status, err) = call(
        &stack,
        "POST",
        "/workspaces/default/sources",
        Some(json!({"name": "s", "plugins": many})),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"]["fields"]["plugins"]
            .as_str()
            .unwrap()
            .contains("together"),
        "{err}"
    );
    for (body, field, says) in cases {
        let (status, err) = call(&stack, "POST", "/workspaces/default/sources", Some(body)).await;
        assert_eq!(status, 400, "{err}");
        let msg = err["error"]["fields"][field]
            .as_str()
            .unwrap_or_else(|| panic!("{field}: {err}"));
        assert!(msg.contains(says), "{field}: {msg}");
    }
    let receiver = "http://127.0.0.1:9/hook";
    let cases = [
        (json!({"filter": {"path": "data", "eq": 1}}), "filter.path"),
        (
            json!({"filter": {"all": [{"path": "/a"}]}}),
            "filter.all[0]",
        ),
        (
            json!({"plugins": [{"type": "wasm", "module": "(module)"}]}),
            "plugins[0].module",
        ),
        (
            json!({"plugins": [{"type": "wasm", "module": "not base64!"}]}),
            "plugins[0].module",
        ),
        (
            json!({"plugins": [{"type": "function", "code": "function handle(){}", "timeout_ms": 1000},
                               {"type": "function", "code": "function handle(){}", "timeout_ms": 1000},
                               {"type": "function", "code": "function handle(){}", "timeout_ms": 1000}]}),
            "plugins",
        ),
    ];
    for (extra, field) in cases {
        let mut body = json!({"name": "e", "url": receiver});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (status, err) = call(&stack, "POST", "/workspaces/default/endpoints", Some(body)).await;
        assert_eq!(status, 400, "{err}");
        assert!(err["error"]["fields"][field].is_string(), "{field}: {err}");
    }
}

#[tokio::test]
async fn content_filters_choose_endpoints_at_ingest() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let source = create_source(&stack, json!({"name": "orders"})).await;
    let high = create_endpoint(
        &stack,
        json!({"name": "high-value", "url": receiver.url, "events": ["order.*"],
               "filter": {"all": [{"path": "/total", "gte": 1000}, {"not": {"path": "/test", "eq": true}}]}}),
    )
    .await;
    let eu = create_endpoint(
        &stack,
        json!({"name": "eu", "url": receiver.url,
               "filter": {"any": [{"path": "/country", "in": ["DE", "FR"]}, {"header": "X-Region", "eq": "eu"}]}}),
    )
    .await;
    let all = create_endpoint(&stack, json!({"name": "all", "url": receiver.url})).await;
    let cases = [
        (
            json!({"event_type": "order.paid", "total": 1500, "country": "US"}),
            vec![],
            vec![&high, &all],
        ),
        (
            json!({"event_type": "order.paid", "total": 1500, "test": true}),
            vec![],
            vec![&all],
        ),
        (
            json!({"event_type": "order.paid", "total": 10, "country": "FR"}),
            vec![],
            vec![&eu, &all],
        ),
        (
            json!({"event_type": "refund", "total": 5000}),
            vec![("x-region", "eu")],
            vec![&eu, &all],
        ),
    ];
    for (body, headers, wanted) in cases {
        let resp = post(&stack, &source, &headers, &body).await;
        assert_eq!(resp.status(), 202, "{}", resp.body());
        let id = json_of(&resp)["id"].as_str().unwrap().to_owned();
        let mut got: Vec<String> = event(&stack, &id).await["endpoint_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        let mut want: Vec<String> = wanted
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{body}");
    }
    stack.drain(&stack.delivery()).await;
    assert_eq!(
        receiver.deliveries().len(),
        7,
        "one task per match, none for the rest"
    );
}

#[tokio::test]
async fn an_endpoints_plugins_reshape_what_is_signed_and_sent() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let source = create_source(&stack, json!({"name": "pushes"})).await;
    let slack = create_endpoint(
        &stack,
        json!({"name": "slack", "url": format!("{}?team=1", receiver.url), "events": ["push"],
               "headers": {"x-team": "core"},
               "plugins": [{"type": "function", "code":
                 "function handle(r) { return { body: { text: r.event.type + ': ' + r.body.commits + ' commits' }, \
                  headers: Object.assign({}, r.headers, {'x-shape': 'slack'}), query: {channel: 'ci'} } }"}]}),
    )
    .await;
    let wrapped = create_endpoint(
        &stack,
        json!({"name": "wasm", "url": receiver.url, "events": ["push"],
               "plugins": [{"type": "wasm", "module": include_str!("../../plugins/examples/wrap.wat")}]}),
    )
    .await;
    let resp = post(
        &stack,
        &source,
        &[],
        &json!({"event_type": "push", "commits": 3}),
    )
    .await;
    assert_eq!(resp.status(), 202, "{}", resp.body());
    stack.drain(&stack.delivery()).await;
    let seen = receiver.deliveries();
    assert_eq!(seen.len(), 2);
    let to_slack = seen
        .iter()
        .find(|d| d.header("x-shape") == "slack")
        .expect("slack delivery");
    assert_eq!(
        serde_json::from_slice::<Value>(&to_slack.body).unwrap(),
        json!({"text": "push: 3 commits"})
    );
    assert_eq!(to_slack.query, "team=1&channel=ci");
    assert_eq!(to_slack.header("x-team"), "core");
    // The signature covers the body the plugin made, checked by an independent verifier.
    let (_, secret) = call(
        &stack,
        "GET",
        &format!(
            "/workspaces/default/endpoints/{}/secret",
            slack["id"].as_str().unwrap()
        ),
        None,
    )
    .await;
    verify_with_standardwebhooks(secret["secret"].as_str().unwrap(), to_slack).unwrap();
    let to_wasm = seen
        .iter()
        .find(|d| d.header("x-shape").is_empty())
        .expect("wasm delivery");
    let body: Value = serde_json::from_slice(&to_wasm.body).unwrap();
    assert_eq!(
        body["request"]["body"],
        json!({"event_type": "push", "commits": 3})
    );
    assert_eq!(body["request"]["event"]["type"], "push");
    assert!(wrapped["plugins"][0]["module"].is_string());
}

#[tokio::test]
async fn a_failing_outbound_plugin_is_a_retried_attempt_error() {
    let stack = Stack::with_schedule("1").await;
    let receiver = Receiver::start().await;
    let source = create_source(&stack, json!({"name": "s"})).await;
    create_endpoint(
        &stack,
        json!({"name": "broken", "url": receiver.url,
               "plugins": [{"type": "function", "code": "function handle(r) { for (;;) {} }", "timeout_ms": 50}]}),
    )
    .await;
    let healthy = create_endpoint(&stack, json!({"name": "healthy", "url": receiver.url})).await;
    let resp = post(&stack, &source, &[], &json!({"event_type": "t"})).await;
    let id = json_of(&resp)["id"].as_str().unwrap().to_owned();
    stack.drain(&stack.delivery()).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    stack.drain(&stack.delivery()).await;
    let attempts = attempts_of(&stack, &id).await;
    let broken: Vec<&Value> = attempts
        .iter()
        .filter(|a| a["endpoint_id"] != healthy["id"])
        .collect();
    assert_eq!(broken.len(), 2, "the first try and its retry: {attempts:?}");
    for a in &broken {
        assert_eq!(a["error_code"], "PLUGIN", "{a}");
        assert!(
            a["error_message"].as_str().unwrap().contains("time limit"),
            "{a}"
        );
    }
    assert_eq!(
        receiver.deliveries().len(),
        1,
        "only the healthy endpoint was sent anything"
    );
}

#[tokio::test]
async fn dry_runs_store_and_send_nothing() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let source = create_source(
        &stack,
        json!({"name": "github", "plugins": [{"type": "function", "code": GITHUB_SHAPE}]}),
    )
    .await;
    let endpoint = create_endpoint(
        &stack,
        json!({"name": "big", "url": receiver.url, "filter": {"path": "/commits", "gte": 2},
               "plugins": [{"type": "function", "code": "function handle(r) { return {body: {n: r.body.commits}} }"}]}),
    )
    .await;
    let ep = endpoint["id"].as_str().unwrap();
    let sample = json!({"headers": {"X-GitHub-Event": "push"},
                        "body": {"ref": "refs/heads/main", "repository": {"full_name": "a/b"}, "commits": [1, 2]}});
    let (status, run) = call(
        &stack,
        "POST",
        &format!("/workspaces/default/sources/{source}/dry-run"),
        Some(sample),
    )
    .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["outcome"], "accepted", "{run}");
    assert_eq!(run["request"]["event_type"], "github.push");
    assert_eq!(run["request"]["body"]["commits"], 2);
    assert_eq!(run["endpoint_ids"], json!([ep]));
    let (_, run) = call(
        &stack,
        "POST",
        &format!("/workspaces/default/sources/{source}/dry-run"),
        Some(json!({"headers": {"x-github-event": "push"}, "body": {}})),
    )
    .await;
    assert_eq!(
        (run["outcome"].as_str(), run["status"].as_u64()),
        (Some("rejected"), Some(422)),
        "{run}"
    );

    let (status, run) = call(
        &stack,
        "POST",
        &format!("/workspaces/default/endpoints/{ep}/dry-run"),
        Some(json!({"event_type": "github.push", "payload": {"commits": 1}})),
    )
    .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["matches"], false, "{run}");
    assert_eq!(run["request"]["body"], json!({"n": 1}));
    assert_eq!(
        run["request"]["headers"]["content-type"],
        "application/json"
    );
    assert!(events_of(&stack, &source).await.is_empty());
    assert!(receiver.deliveries().is_empty());
}

#[tokio::test]
async fn plugins_and_filters_survive_a_config_round_trip() {
    let stack = Stack::new().await;
    let config = json!({
        "sources": [{"name": "in", "plugins": [
            {"type": "jsonschema", "schema": {"type": "object"}},
            {"type": "function", "code": "function handle(r) { return r }", "timeout_ms": 50}
        ]}],
        "endpoints": [{"name": "out", "url": "http://127.0.0.1:9/hook",
            "filter": {"any": [{"path": "/a", "exists": true}, {"header": "x-b", "prefix": "v"}]},
            "plugins": [{"type": "wasm", "module": include_str!("../../plugins/examples/wrap.wat")}]}]
    });
    let (status, synced) = call(
        &stack,
        "POST",
        "/workspaces/default/config/sync",
        Some(config.clone()),
    )
    .await;
    assert_eq!(status, 200, "{synced}");
    let resp = hookrelay_admin::handle(
        &stack.admin(),
        hookrelay_tests::admin_request("GET", "/workspaces/default/config/dump", None),
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", resp.body());
    let dump: Value = serde_yaml_ng::from_str(resp.body()).unwrap();
    assert_eq!(
        dump["sources"][0]["plugins"],
        config["sources"][0]["plugins"]
    );
    assert_eq!(
        dump["endpoints"][0]["filter"],
        config["endpoints"][0]["filter"]
    );
    assert_eq!(
        dump["endpoints"][0]["plugins"],
        config["endpoints"][0]["plugins"]
    );
    let (status, again) = call(
        &stack,
        "POST",
        "/workspaces/default/config/sync",
        Some(dump),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    let bad = json!({"sources": [{"name": "in", "plugins": [{"type": "function", "code": "function ("}]}]});
    let (status, err) = call(&stack, "POST", "/workspaces/default/config/sync", Some(bad)).await;
    assert_eq!(status, 400, "{err}");
}
