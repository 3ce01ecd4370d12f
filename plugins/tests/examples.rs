//! The examples of docs/plugins.md run as the docs say, and the docs show them as they are.

#![cfg(feature = "engines")]

use std::collections::BTreeMap;

use hookrelay_plugins::inbound::{self, Inbound, Outcome};
use hookrelay_plugins::outbound::{self, Outbound};
use hookrelay_plugins::{Condition, EndpointPlugin, SourcePlugin, Subject};
use serde_json::{Value, json};

fn example(name: &str) -> String {
    let path = format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn outbound_of(name: &str, body: Value) -> Value {
    let plugin = EndpointPlugin::Function {
        code: example(name),
        timeout_ms: None,
    };
    let request = Outbound {
        url: "https://hooks.example.com/x".into(),
        headers: BTreeMap::from([("content-type".into(), "application/json".into())]),
        body: serde_json::to_vec(&body).unwrap(),
        event: json!({"id": "evt_1", "type": "t"}),
    };
    let out =
        outbound::run(&[plugin], request, 1 << 20).unwrap_or_else(|(_, e)| panic!("{name}: {e}"));
    serde_json::from_slice(&out.body).unwrap()
}

#[test]
fn a_github_push_becomes_a_lark_post() {
    let push = json!({
        "ref": "refs/heads/main",
        "repository": {"full_name": "acme/api"},
        "commits": [{"id": "0123456789abcdef", "url": "https://github.com/acme/api/commit/0123456",
                     "message": "Fix the thing\n\nLong text", "author": {"name": "Ada"}}]
    });
    let post = outbound_of("github-push-to-lark.js", push);
    assert_eq!(post["msg_type"], "post");
    let p = &post["content"]["post"]["en_us"];
    assert_eq!(p["title"], "acme/api: 1 commit(s) to main");
    assert_eq!(p["content"][0][0]["text"], "0123456");
    assert_eq!(p["content"][0][1]["text"], " Fix the thing (Ada)");
}

#[test]
fn a_stripe_event_becomes_a_slack_message() {
    let event = json!({"id": "evt_9", "type": "invoice.paid",
                       "data": {"object": {"amount_paid": 4200, "currency": "eur", "customer_email": "a@b.c"}}});
    let msg = outbound_of("stripe-to-slack.js", event);
    assert_eq!(msg["text"], "invoice.paid: 42.00 EUR from a@b.c");
    assert_eq!(
        msg["blocks"][1]["elements"][0]["text"],
        "Stripe event `evt_9`"
    );
}

#[test]
fn noisy_events_are_dropped() {
    let plugin = SourcePlugin::Function {
        code: example("drop-noisy-events.js"),
        timeout_ms: None,
    };
    let request = |event: &str, body: Value| Inbound {
        method: "POST".into(),
        path: "/in/src_1".into(),
        headers: BTreeMap::from([("x-github-event".into(), event.into())]),
        body: serde_json::to_vec(&body).unwrap(),
        is_json: true,
        event_type: Some(event.into()),
        idempotency_key: None,
    };
    let run = |event, body| {
        inbound::run(std::slice::from_ref(&plugin), request(event, body), 1 << 20).unwrap()
    };
    assert_eq!(run("star", json!({})), Outcome::Drop);
    assert_eq!(run("push", json!({"deleted": true})), Outcome::Drop);
    let Outcome::Accept(kept) = run("push", json!({"deleted": false})) else {
        panic!()
    };
    assert_eq!(kept.event_type.as_deref(), Some("github.push"));
}

#[test]
fn high_value_orders_are_routed_by_a_filter() {
    let filter: Condition = serde_json::from_str(&example("high-value-orders.json")).unwrap();
    assert_eq!(filter.problem(), None);
    let headers = BTreeMap::new();
    let matches = |payload: Value| {
        filter.matches(&Subject {
            payload: Some(&payload),
            headers: &headers,
        })
    };
    assert!(matches(
        json!({"type": "order.paid", "data": {"total": 25000, "currency": "usd"}})
    ));
    assert!(!matches(
        json!({"type": "order.paid", "data": {"total": 900, "currency": "usd"}})
    ));
    assert!(!matches(
        json!({"type": "order.paid", "data": {"total": 25000, "currency": "usd", "test": true}})
    ));
}

#[test]
fn the_docs_show_the_examples_as_they_are() {
    let docs =
        std::fs::read_to_string(format!("{}/../docs/plugins.md", env!("CARGO_MANIFEST_DIR")))
            .expect("docs/plugins.md");
    for name in [
        "github-push-to-lark.js",
        "stripe-to-slack.js",
        "drop-noisy-events.js",
        "high-value-orders.json",
        "wrap.wat",
    ] {
        let text = example(name);
        assert!(
            docs.contains(text.trim()),
            "docs/plugins.md does not show plugins/examples/{name} as it is"
        );
    }
}
