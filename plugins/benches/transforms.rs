//! The CPU a plugin adds per event, warm (script compiled and cached) and at its first use on
//! an instance, for each kind; the examples of docs/plugins.md on a 1 KiB event.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use hookrelay_plugins::inbound::{self, Inbound};
use hookrelay_plugins::outbound::{self, Outbound};
use hookrelay_plugins::{Condition, EndpointPlugin, SourcePlugin, Subject, js, schema};
use serde_json::{Value, json};

fn example(name: &str) -> String {
    std::fs::read_to_string(format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR")))
        .expect("example")
}

/// A Stripe `invoice.paid` event of about 1 KiB.
fn stripe_event() -> Value {
    let mut e = json!({"id": "evt_1NfS2", "type": "invoice.paid", "created": 1700000000,
        "data": {"object": {"id": "in_1", "amount_paid": 4200, "currency": "eur", "customer": "cus_1",
        "customer_email": "billing@example.com", "lines": {"data": []}}}});
    let line = json!({"id": "il_1", "amount": 4200, "description": "Pro plan, monthly", "period": {"start": 1, "end": 2}});
    while serde_json::to_vec(&e).map_or(0, |b| b.len()) < 1000 {
        e["data"]["object"]["lines"]["data"]
            .as_array_mut()
            .expect("lines")
            .push(line.clone());
    }
    e
}

fn outbound_request(body: &Value) -> Outbound {
    Outbound {
        url: "https://hooks.slack.com/services/x".into(),
        headers: BTreeMap::from([("content-type".into(), "application/json".into())]),
        body: serde_json::to_vec(body).expect("body"),
        event: json!({"id": "evt_1", "type": "invoice.paid", "source_id": "src_1"}),
    }
}

fn benches(c: &mut Criterion) {
    let event = stripe_event();
    let mut g = c.benchmark_group("plugins");

    let slack = [EndpointPlugin::Function {
        code: example("stripe-to-slack.js"),
        timeout_ms: None,
    }];
    g.bench_function("outbound_function_stripe_to_slack", |b| {
        b.iter(|| outbound::run(&slack, black_box(outbound_request(&event)), 1 << 20).expect("ran"))
    });

    let wasm = [EndpointPlugin::Wasm {
        module: example("wrap.wat"),
        timeout_ms: None,
    }];
    g.bench_function("outbound_wasm_wrap", |b| {
        b.iter(|| outbound::run(&wasm, black_box(outbound_request(&event)), 1 << 20).expect("ran"))
    });

    let noisy = [SourcePlugin::Function {
        code: example("drop-noisy-events.js"),
        timeout_ms: None,
    }];
    let inbound_request = || Inbound {
        method: "POST".into(),
        path: "/in/src_1".into(),
        headers: BTreeMap::from([("x-github-event".into(), "push".into())]),
        body: serde_json::to_vec(&event).expect("body"),
        is_json: true,
        event_type: Some("push".into()),
        idempotency_key: None,
    };
    g.bench_function("inbound_function_drop_noisy", |b| {
        b.iter(|| inbound::run(&noisy, black_box(inbound_request()), 1 << 20).expect("ran"))
    });

    let schema_doc = json!({"type": "object", "required": ["id", "type", "data"],
        "properties": {"id": {"type": "string", "pattern": "^evt_"}, "type": {"type": "string"},
        "data": {"type": "object", "properties": {"object": {"type": "object",
        "properties": {"amount_paid": {"type": "integer", "minimum": 0}}}}}}});
    let schema_plugin = [SourcePlugin::Jsonschema {
        schema: schema_doc.clone(),
    }];
    g.bench_function("inbound_jsonschema", |b| {
        b.iter(|| inbound::run(&schema_plugin, black_box(inbound_request()), 1 << 20).expect("ran"))
    });

    let filter: Condition =
        serde_json::from_str(&example("high-value-orders.json")).expect("filter");
    let body = serde_json::to_vec(&event).expect("body");
    let headers = BTreeMap::new();
    g.bench_function("content_filter_parse_and_match", |b| {
        b.iter(|| {
            let payload: Value = serde_json::from_slice(black_box(&body)).expect("json");
            filter.matches(&Subject {
                payload: Some(&payload),
                headers: &headers,
            })
        })
    });

    // The first run of a script on an instance: a runtime, a context, the compile.
    let n = Cell::new(0u64);
    let code = example("stripe-to-slack.js");
    g.bench_function("function_first_use", |b| {
        b.iter(|| {
            n.set(n.get() + 1);
            let fresh = format!("{code}\n// {}", n.get());
            js::call(
                &fresh,
                black_box(&outbound::input(&outbound_request(&event))),
                Duration::from_millis(100),
            )
            .expect("ran")
        })
    });
    g.bench_function("jsonschema_first_use", |b| {
        b.iter(|| {
            n.set(n.get() + 1);
            let mut fresh = schema_doc.clone();
            fresh["$comment"] = json!(n.get().to_string());
            schema::validate(&fresh, black_box(&event)).expect("compiled")
        })
    });
    g.finish();
}

criterion_group!(transforms, benches);
criterion_main!(transforms);
