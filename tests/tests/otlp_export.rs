//! OTLP export: with a collector configured, ingest exports the span the event's
//! `traceparent` names and delivery one span per attempt under it, with the very ids the
//! endpoint saw; a collector that is down costs a request nothing.

use std::time::{Duration, Instant};

use hookrelay_tests::collector::{Collector, dead_endpoint, exporter_to};
use hookrelay_tests::{
    Receiver, Stack, admin_call, create_endpoint, create_source, json_of, request,
};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as SpanStatus;
use serde_json::json;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SENDER_SPAN: &str = "00f067aa0ba902b7";

fn span_of(traceparent: &str) -> &str {
    traceparent.split('-').nth(2).expect("a span id")
}

async fn ingest(ctx: &hookrelay_ingest::Context, source: &str) -> (u16, String) {
    let sent = format!("00-{TRACE}-{SENDER_SPAN}-01");
    let resp = hookrelay_ingest::handle(
        ctx,
        request(
            "POST",
            &format!("/in/{source}"),
            &[("content-type", "application/json"), ("traceparent", &sent)],
            br#"{"event_type":"order.created","id":1}"#,
        ),
    )
    .await;
    let status = resp.status().as_u16();
    let id = json_of(&resp)["id"].as_str().unwrap_or_default().to_owned();
    (status, id)
}

#[tokio::test]
async fn ingest_and_every_attempt_are_exported_with_the_ids_the_endpoint_saw() {
    let stack = Stack::new().await;
    let collector = Collector::start().await;
    let receiver = Receiver::start().await;
    receiver.script(&[503], 200);
    let source = create_source(&stack, json!({"name": "s"})).await;
    let endpoint = create_endpoint(&stack, json!({"name": "r", "url": receiver.url})).await;

    let mut ingest_ctx = stack.ingest();
    ingest_ctx.otlp = Some(collector.exporter(hookrelay_ingest::SERVICE_NAME));
    let (status, event_id) = ingest(&ingest_ctx, &source).await;
    assert_eq!(status, 202);

    // Exported before the handler answered: nothing is left for after the freeze.
    let spans = collector.spans();
    assert_eq!(spans.len(), 1, "{spans:?}");
    let accepted = &spans[0];
    assert_eq!(accepted.service, "hookrelay-ingest");
    assert_eq!(accepted.name, "POST /in/{source}");
    assert_eq!(accepted.kind, SpanKind::Server);
    assert_eq!(accepted.trace_id, TRACE);
    assert_eq!(accepted.parent_span_id, SENDER_SPAN);
    assert_eq!(accepted.attr("hookrelay.event.id"), event_id);
    assert_eq!(accepted.attr("hookrelay.source.id"), source);
    assert_eq!(accepted.attr("hookrelay.workspace"), "default");
    assert_eq!(accepted.attr("http.response.status_code"), "202");
    assert_eq!(accepted.status, SpanStatus::Unset);
    assert!(accepted.end_unix_nano >= accepted.start_unix_nano);
    let mut delivery = stack.delivery();
    delivery.otlp = Some(collector.exporter(hookrelay_delivery::SERVICE_NAME));
    stack.drain(&delivery).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    stack.drain(&delivery).await;

    // The span exported is the span the event carries (read once its task listed it).
    let (status, event) = admin_call(
        &stack,
        "GET",
        &format!("/workspaces/default/events/{event_id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{event}");
    let stored = event["traceparent"].as_str().expect("a traceparent");
    assert_eq!(span_of(stored), accepted.span_id);

    let sent: Vec<String> = receiver
        .deliveries()
        .iter()
        .map(|d| span_of(&d.header("traceparent")).to_owned())
        .collect();
    assert_eq!(sent.len(), 2, "a failure, then its retry");
    let attempts: Vec<_> = collector
        .spans()
        .into_iter()
        .filter(|s| s.service == "hookrelay-delivery")
        .collect();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    for (span, sent_span) in attempts.iter().zip(&sent) {
        assert_eq!(span.kind, SpanKind::Client);
        assert_eq!(span.trace_id, TRACE);
        assert_eq!(span.parent_span_id, accepted.span_id);
        assert_eq!(&span.span_id, sent_span, "the span the endpoint was told");
        assert_eq!(
            span.attr("hookrelay.endpoint.id"),
            endpoint["id"].as_str().expect("id")
        );
        assert_eq!(span.attr("hookrelay.event.id"), event_id);
        assert!(!span.attr("hookrelay.attempt.id").is_empty());
    }
    let (failed, delivered) = (&attempts[0], &attempts[1]);
    assert_eq!(failed.attr("http.response.status_code"), "503");
    assert_eq!(failed.status, SpanStatus::Error);
    assert_eq!(delivered.attr("http.response.status_code"), "200");
    assert_eq!(delivered.status, SpanStatus::Unset);
    assert_ne!(
        failed.attr("hookrelay.attempt.id"),
        delivered.attr("hookrelay.attempt.id")
    );
    assert!(
        collector
            .content_types()
            .iter()
            .all(|c| c == "application/x-protobuf"),
        "OTLP/HTTP protobuf"
    );
}

#[tokio::test]
async fn a_dead_collector_costs_no_failure() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let source = create_source(&stack, json!({"name": "s"})).await;
    create_endpoint(&stack, json!({"name": "r", "url": receiver.url})).await;
    let dead = dead_endpoint().await;

    let mut ingest_ctx = stack.ingest();
    ingest_ctx.otlp = Some(exporter_to(&dead, hookrelay_ingest::SERVICE_NAME));
    let started = Instant::now();
    let (status, _) = ingest(&ingest_ctx, &source).await;
    assert_eq!(status, 202);
    // A second request: the failure is remembered (logged once), never turned into an error.
    let (status, _) = ingest(&ingest_ctx, &source).await;
    assert_eq!(status, 202);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a refused connection is not waited for: {:?}",
        started.elapsed()
    );

    let mut delivery = stack.delivery();
    delivery.otlp = Some(exporter_to(&dead, hookrelay_delivery::SERVICE_NAME));
    let rounds = stack.drain(&delivery).await;
    assert!(!rounds.is_empty());
    assert_eq!(receiver.deliveries().len(), 2);
    assert!(stack.dead_letters().await.is_empty());
}

#[tokio::test]
async fn metrics_go_to_the_collector_as_deltas_beside_emf() {
    let stack = Stack::new().await;
    let collector = Collector::start().await;
    let receiver = Receiver::start().await;
    receiver.script(&[503], 200);
    let source = create_source(&stack, json!({"name": "s"})).await;
    create_endpoint(&stack, json!({"name": "r", "url": receiver.url})).await;

    let mut ingest_ctx = stack.ingest();
    ingest_ctx.otlp = Some(collector.exporter(hookrelay_ingest::SERVICE_NAME));
    assert_eq!(ingest(&ingest_ctx, &source).await.0, 202);
    let refused = hookrelay_ingest::handle(
        &ingest_ctx,
        request("POST", "/in/src_none", &[], br#"{"event_type":"x"}"#),
    )
    .await;
    assert_eq!(refused.status(), 404);

    let received = collector.points_of("hookrelay-ingest", "hookrelay.events_received");
    assert_eq!(received.len(), 1, "{received:?}");
    let p = &received[0];
    assert_eq!((p.value, p.count, p.unit.as_str()), (1.0, None, "1"));
    assert!(p.delta, "a Lambda instance exports deltas");
    assert_eq!(p.attr("function"), "ingest");
    assert!(p.time_unix_nano >= p.start_unix_nano);
    let rejected = collector.points_of("hookrelay-ingest", "hookrelay.events_rejected");
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].attr("reason"), "not_found");
    let latency = collector.points_of("hookrelay-ingest", "hookrelay.ingest_latency");
    assert_eq!(latency.len(), 2, "one histogram point per request");
    assert!(latency.iter().all(|p| p.count == Some(1) && p.unit == "ms"));

    let mut delivery = stack.delivery();
    delivery.otlp = Some(collector.exporter(hookrelay_delivery::SERVICE_NAME));
    stack.drain(&delivery).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    stack.drain(&delivery).await;
    let total = |name: &str| -> f64 {
        collector
            .points_of("hookrelay-delivery", name)
            .iter()
            .map(|p| p.value)
            .sum()
    };
    assert_eq!(total("hookrelay.deliveries_failed"), 1.0);
    assert_eq!(total("hookrelay.deliveries_succeeded"), 1.0);
    let attempts: u64 = collector
        .points_of("hookrelay-delivery", "hookrelay.delivery_latency")
        .iter()
        .filter_map(|p| p.count)
        .sum();
    assert_eq!(attempts, 2, "a latency per attempt");

    let mut sweeper = stack.sweeper();
    sweeper.otlp = Some(collector.exporter(hookrelay_sweeper::SERVICE_NAME));
    hookrelay_sweeper::handle(&sweeper, hookrelay_shared::Timestamp::now())
        .await
        .expect("sweep");
    let duration = collector.points_of("hookrelay-sweeper", "hookrelay.sweep_duration");
    assert_eq!(duration.len(), 1, "{:?}", collector.points());
    assert_eq!(duration[0].attr("function"), "sweeper");

    // One writer per series: each instance names itself, so concurrent ones stay apart.
    let mut second_instance = stack.ingest();
    second_instance.otlp = Some(collector.exporter(hookrelay_ingest::SERVICE_NAME));
    assert_eq!(ingest(&second_instance, &source).await.0, 202);
    let instances: std::collections::BTreeSet<String> = collector
        .points_of("hookrelay-ingest", "hookrelay.events_received")
        .into_iter()
        .map(|p| p.instance)
        .collect();
    assert_eq!(instances.len(), 2, "{instances:?}");
    assert!(instances.iter().all(|i| i.len() == 26));
    assert!(
        collector
            .content_types()
            .iter()
            .all(|c| c == "application/x-protobuf")
    );
}

#[tokio::test]
async fn an_event_published_through_the_admin_api_is_a_span_its_deliveries_continue() {
    let stack = Stack::new().await;
    let collector = Collector::start().await;
    let receiver = Receiver::start().await;
    create_endpoint(&stack, json!({"name": "r", "url": receiver.url})).await;
    let mut admin = stack.admin();
    admin.otlp = Some(collector.exporter(hookrelay_admin::SERVICE_NAME));
    let sent = format!("00-{TRACE}-{SENDER_SPAN}-01");
    let resp = hookrelay_admin::handle(
        &admin,
        request(
            "POST",
            "/workspaces/default/events",
            &[
                (
                    "authorization",
                    &format!("Bearer {}", hookrelay_tests::ADMIN_KEY),
                ),
                ("content-type", "application/json"),
                ("traceparent", &sent),
            ],
            br#"{"event_type":"order.created","data":{"id":1}}"#,
        ),
    )
    .await;
    assert_eq!(resp.status(), 202, "{}", resp.body());
    let event_id = json_of(&resp)["id"].as_str().expect("id").to_owned();
    let spans = collector.spans();
    assert_eq!(spans.len(), 1, "{spans:?}");
    let published = &spans[0];
    assert_eq!(published.service, "hookrelay-admin");
    assert_eq!(published.name, "POST /workspaces/{workspace}/events");
    assert_eq!(published.kind, SpanKind::Server);
    assert_eq!(published.trace_id, TRACE);
    assert_eq!(published.parent_span_id, SENDER_SPAN);
    assert_eq!(published.attr("hookrelay.event.id"), event_id);
    assert_eq!(published.attr("hookrelay.workspace"), "default");
    assert_eq!(published.attr("http.response.status_code"), "202");

    stack.drain(&stack.delivery()).await;
    let got = receiver.deliveries();
    assert_eq!(got.len(), 1);
    let delivered = got[0].header("traceparent");
    assert!(
        delivered.starts_with(&format!("00-{TRACE}-")),
        "{delivered}"
    );
    assert_ne!(span_of(&delivered), published.span_id, "a child span");
}

#[tokio::test]
async fn an_ordered_endpoints_attempts_are_measured_and_traced_like_any_other() {
    let stack = Stack::new().await;
    let collector = Collector::start().await;
    let receiver = Receiver::start().await;
    let source = create_source(&stack, json!({"name": "s"})).await;
    create_endpoint(
        &stack,
        json!({"name": "r", "url": receiver.url, "delivery": {"ordering": "fifo"}}),
    )
    .await;
    let (status, event_id) = ingest(&stack.ingest(), &source).await;
    assert_eq!(status, 202);

    let mut delivery = stack.delivery();
    delivery.otlp = Some(collector.exporter(hookrelay_delivery::SERVICE_NAME));
    let mut rounds = 0;
    while receiver.deliveries().is_empty() && rounds < 5 {
        stack
            .deliver_ordered_once(&delivery, Duration::from_secs(1))
            .await;
        rounds += 1;
    }
    assert_eq!(receiver.deliveries().len(), 1, "delivered through its line");
    let attempts: Vec<_> = collector
        .spans()
        .into_iter()
        .filter(|s| s.service == "hookrelay-delivery")
        .collect();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0].kind, SpanKind::Client);
    assert_eq!(attempts[0].attr("hookrelay.event.id"), event_id);
    let succeeded: f64 = collector
        .points_of("hookrelay-delivery", "hookrelay.deliveries_succeeded")
        .iter()
        .map(|p| p.value)
        .sum();
    assert_eq!(succeeded, 1.0);
    let latency: Vec<_> = collector.points_of("hookrelay-delivery", "hookrelay.delivery_latency");
    assert_eq!(latency.len(), 1);
    assert!(
        latency[0].time_unix_nano > latency[0].start_unix_nano,
        "the delta spans the batch's work"
    );
}
