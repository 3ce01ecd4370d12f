//! W3C Trace Context through the pipeline: a sender's `traceparent` is continued by ingest,
//! kept on the event, and every delivery attempt is a child span of it, sent to the endpoint
//! with the sender's `tracestate`; a missing or invalid one starts a new trace, never a
//! refusal.

use std::time::Duration;

use hookrelay_shared::trace_context::parse;
use hookrelay_tests::{
    Receiver, Stack, admin_call, admin_request, attempts_of, create_endpoint, create_source,
    json_of, request,
};
use serde_json::json;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SENDER_SPAN: &str = "00f067aa0ba902b7";

fn span_of(traceparent: &str) -> &str {
    traceparent.split('-').nth(2).expect("a span id")
}

async fn ingest(stack: &Stack, source: &str, headers: &[(&str, &str)]) -> String {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    let resp = hookrelay_ingest::handle(
        &stack.ingest(),
        request(
            "POST",
            &format!("/in/{source}"),
            &all,
            br#"{"event_type":"order.created","id":1}"#,
        ),
    )
    .await;
    assert_eq!(resp.status(), 202, "{}", resp.body());
    json_of(&resp)["id"].as_str().expect("id").to_owned()
}

async fn event_view(stack: &Stack, id: &str) -> serde_json::Value {
    stack.list_accepted().await;
    let (status, event) = admin_call(
        stack,
        "GET",
        &format!("/workspaces/default/events/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{event}");
    event
}

#[tokio::test]
async fn a_senders_trace_continues_through_every_attempt() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    receiver.script(&[500], 200);
    let source = create_source(&stack, json!({"name": "s"})).await;
    create_endpoint(&stack, json!({"name": "r", "url": receiver.url})).await;
    let sent = format!("00-{TRACE}-{SENDER_SPAN}-01");
    let id = ingest(
        &stack,
        &source,
        &[("traceparent", &sent), ("tracestate", "congo=t61rcWkgMzE")],
    )
    .await;

    let event = event_view(&stack, &id).await;
    let accepted = event["traceparent"].as_str().expect("a traceparent");
    assert_eq!(parse(accepted), Some((TRACE.to_owned(), true)));
    assert_ne!(
        span_of(accepted),
        SENDER_SPAN,
        "ingest is a span of its own"
    );
    assert_eq!(event["tracestate"], "congo=t61rcWkgMzE");

    // A failure and its retry: two spans of the same trace, both children of ingest's.
    let delivery = stack.delivery();
    stack.drain(&delivery).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    stack.drain(&delivery).await;
    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), 2);
    let spans: Vec<String> = deliveries
        .iter()
        .map(|d| {
            let tp = d.header("traceparent");
            assert_eq!(parse(&tp), Some((TRACE.to_owned(), true)), "{tp}");
            assert_eq!(d.header("tracestate"), "congo=t61rcWkgMzE");
            span_of(&tp).to_owned()
        })
        .collect();
    assert_ne!(spans[0], spans[1]);
    assert!(
        spans
            .iter()
            .all(|s| s != SENDER_SPAN && s != span_of(accepted))
    );

    // The attempts record what was sent.
    let attempts = attempts_of(&stack, &id).await;
    assert_eq!(attempts.len(), 2);
    for a in &attempts {
        let tp = a["request"]["headers"]["traceparent"]
            .as_str()
            .expect("recorded");
        assert!(spans.contains(&span_of(tp).to_owned()), "{tp}");
    }
}

#[tokio::test]
async fn no_or_an_invalid_traceparent_starts_a_trace_and_is_never_refused() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let source = create_source(&stack, json!({"name": "s"})).await;
    create_endpoint(&stack, json!({"name": "r", "url": receiver.url})).await;
    let upper = format!("00-{}-{SENDER_SPAN}-01", TRACE.to_uppercase());
    let zeros = format!("00-{}-{SENDER_SPAN}-01", "0".repeat(32));
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("traceparent", "not-a-trace")],
        vec![("traceparent", &upper), ("tracestate", "a=b")],
        vec![("traceparent", &zeros)],
    ];
    let mut traces = Vec::new();
    for headers in &cases {
        let id = ingest(&stack, &source, headers).await;
        let event = event_view(&stack, &id).await;
        let (trace, sampled) = parse(event["traceparent"].as_str().expect("started")).unwrap();
        assert!(sampled);
        assert_ne!(trace, TRACE);
        assert!(event.get("tracestate").is_none(), "{event}");
        traces.push(trace);
    }
    traces.dedup();
    assert_eq!(traces.len(), cases.len(), "a new trace each time");

    stack.drain(&stack.delivery()).await;
    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), cases.len());
    for d in deliveries {
        let (trace, _) = parse(&d.header("traceparent")).expect("a valid traceparent");
        assert!(traces.contains(&trace));
        assert_eq!(d.header("tracestate"), "");
    }
}

#[tokio::test]
async fn published_events_continue_the_callers_trace_and_endpoints_cannot_forge_one() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    create_endpoint(&stack, json!({"name": "r", "url": receiver.url})).await;
    let sent = format!("00-{TRACE}-{SENDER_SPAN}-00");
    let mut req = admin_request(
        "POST",
        "/workspaces/default/events",
        Some(json!({"event_type": "order.created", "data": {"id": 1}})),
    );
    req.headers_mut()
        .insert("traceparent", sent.parse().expect("header"));
    let resp = hookrelay_admin::handle(&stack.admin(), req).await;
    assert_eq!(resp.status(), 202, "{}", resp.body());
    stack.drain(&stack.delivery()).await;
    let tp = receiver.deliveries()[0].header("traceparent");
    assert_eq!(
        parse(&tp),
        Some((TRACE.to_owned(), false)),
        "unsampled kept"
    );

    for name in ["traceparent", "tracestate"] {
        let (status, body) = admin_call(
            &stack,
            "POST",
            "/workspaces/default/endpoints",
            Some(json!({"name": "forger", "url": receiver.url, "headers": {name: "x"}})),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert!(body.to_string().contains("set by hookrelay"), "{body}");
    }
}
