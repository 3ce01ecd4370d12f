//! Endpoint lifecycle: failure-based deactivation (off unless the workspace opts in), the
//! sweeper's dry run and report, and reactivation with recovery of missed events.

use std::time::Duration;

use hookrelay_shared::Timestamp;
use hookrelay_sweeper::SweepOptions;
use hookrelay_tests::receiver::Reply;
use hookrelay_tests::{
    Receiver, Stack, admin_call as call, create_endpoint, create_source, send_event,
};
use serde_json::{Value, json};

async fn endpoint(stack: &Stack, id: &str) -> Value {
    call(
        stack,
        "GET",
        &format!("/workspaces/default/endpoints/{id}"),
        None,
    )
    .await
    .1
}

fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

#[tokio::test]
async fn failing_endpoints_are_deactivated_only_where_the_workspace_asks() {
    let stack = Stack::with_schedule("600").await;
    let receiver = Receiver::start().await;
    receiver.replies(vec![], Reply::status(500));
    let source = create_source(&stack, json!({"name": "s"})).await;
    let a = create_endpoint(
        &stack,
        json!({"name": "a", "url": receiver.url, "events": ["*"]}),
    )
    .await;
    let b = create_endpoint(
        &stack,
        json!({"name": "b", "url": receiver.url, "events": ["b.only"]}),
    )
    .await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    for t in ["a.x", "a.x", "a.x", "b.only"] {
        send_event(
            &stack,
            &source,
            json!({"event_type": t}).to_string().as_bytes(),
        )
        .await;
    }
    let delivery = stack.delivery();
    stack.drain(&delivery).await;
    assert_eq!(endpoint(&stack, a).await["consecutive_failures"], 4);
    assert_eq!(endpoint(&stack, b).await["consecutive_failures"], 1);
    assert!(endpoint(&stack, a).await["failing_since"].is_string());

    let sweeper = stack.sweeper();
    let later = Timestamp::now().plus(days(3));
    // Off by default.
    let report = hookrelay_sweeper::handle(&sweeper, later).await.unwrap();
    assert_eq!(report.failing_found, 2, "both are in the failing index");
    assert_eq!(report.deactivated, 0, "the workspace has not opted in");

    let (s, ws) = call(
        &stack,
        "PUT",
        "/workspaces/default",
        Some(json!({"name": "default", "settings": {"disable_failing": {"after_days": 2, "min_failures": 3}}})),
    )
    .await;
    assert_eq!(s, 200, "{ws}");
    assert_eq!(ws["settings"]["disable_failing"]["after_days"], 2);
    let (s, err) = call(
        &stack,
        "PUT",
        "/workspaces/default",
        Some(json!({"name": "default", "settings": {"disable_failing": {"after_days": 0}}})),
    )
    .await;
    assert_eq!(
        (s, err["error"]["field"].as_str()),
        (400, Some("settings.disable_failing.after_days"))
    );

    // Not failing for long enough yet.
    let report = hookrelay_sweeper::handle(&sweeper, Timestamp::now().plus(days(1)))
        .await
        .unwrap();
    assert_eq!(report.deactivated, 0);

    // The dry run says what would happen and changes nothing.
    let dry = hookrelay_sweeper::run(&sweeper, later, SweepOptions { dry_run: true })
        .await
        .unwrap();
    assert!(dry.dry_run);
    assert_eq!(dry.deactivated, 0);
    assert_eq!(dry.planned.len(), 1, "{:?}", dry.planned);
    assert_eq!(dry.planned[0].endpoint_id.as_deref(), Some(a));
    assert_eq!(dry.planned[0].reason, Some("failing"));
    assert_eq!(endpoint(&stack, a).await["enabled"], true);

    let report = hookrelay_sweeper::handle(&sweeper, later).await.unwrap();
    assert_eq!(report.deactivated_by_reason.get("failing"), Some(&1));
    let ep_a = endpoint(&stack, a).await;
    assert_eq!(
        (ep_a["enabled"].as_bool(), ep_a["disabled_reason"].as_str()),
        (Some(false), Some("failing"))
    );
    assert_eq!(
        endpoint(&stack, b).await["enabled"],
        true,
        "one failure is not enough"
    );

    // A success ends the streak: the endpoint leaves the failing index.
    receiver.replies(vec![], Reply::status(200));
    let (s, _) = call(
        &stack,
        "POST",
        &format!("/workspaces/default/endpoints/{b}/test"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    send_event(
        &stack,
        &source,
        json!({"event_type": "b.only"}).to_string().as_bytes(),
    )
    .await;
    stack.drain(&delivery).await;
    let ep_b = endpoint(&stack, b).await;
    assert_eq!(ep_b["consecutive_failures"], 0);
    assert!(ep_b.get("failing_since").is_none());
    let report = hookrelay_sweeper::handle(&sweeper, later).await.unwrap();
    assert_eq!(report.failing_found, 0);
}

#[tokio::test]
async fn reactivation_recovers_missed_events_once() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let source = create_source(&stack, json!({"name": "s"})).await;
    let ep = create_endpoint(&stack, json!({"name": "e", "url": receiver.url})).await;
    let id = ep["id"].as_str().unwrap();
    let uri = format!("/workspaces/default/endpoints/{id}");
    let before = Timestamp::now().minus(Duration::from_secs(5));
    let delivery = stack.delivery();

    let first = send_event(&stack, &source, br#"{"event_type": "a"}"#).await;
    stack.drain(&delivery).await;
    let (s, off) = call(
        &stack,
        "PUT",
        &uri,
        Some(json!({"name": "e", "url": receiver.url, "enabled": false})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(off["disabled_reason"], "manual");
    let missed = [
        send_event(&stack, &source, br#"{"event_type": "b"}"#).await,
        send_event(&stack, &source, br#"{"event_type": "c"}"#).await,
    ];
    stack.drain(&delivery).await;
    assert_eq!(
        receiver.deliveries().len(),
        1,
        "nothing reaches a disabled endpoint"
    );

    let (s, err) = call(
        &stack,
        "POST",
        &format!("{uri}/enable?recover_since=yesterday"),
        None,
    )
    .await;
    assert_eq!(
        (s, err["error"]["field"].as_str()),
        (400, Some("recover_since"))
    );
    let (s, on) = call(
        &stack,
        "POST",
        &format!("{uri}/enable?recover_since={before}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{on}");
    assert_eq!(on["reactivated"], true);
    assert_eq!(on["recovered"], 2, "the delivered one is not sent again");
    assert_eq!(on["endpoint"]["enabled"], true);
    assert_eq!(on["endpoint"]["consecutive_failures"], 0);
    assert!(on["endpoint"].get("disabled_reason").is_none());

    stack.drain(&delivery).await;
    let mut ids: Vec<String> = receiver
        .deliveries()
        .iter()
        .map(|d| d.header("webhook-id"))
        .collect();
    ids.sort();
    let mut want = vec![first.clone(), missed[0].clone(), missed[1].clone()];
    want.sort();
    assert_eq!(ids, want, "each event exactly once");

    let (s, again) = call(
        &stack,
        "POST",
        &format!("{uri}/enable?recover_since={before}"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        (again["reactivated"].as_bool(), again["recovered"].as_u64()),
        (Some(false), Some(0))
    );

    // A full update that turns it back on recovers the same way.
    let body = |enabled: bool| Some(json!({"name": "e", "url": receiver.url, "enabled": enabled}));
    call(&stack, "PUT", &uri, body(false)).await;
    let late = send_event(&stack, &source, br#"{"event_type": "d"}"#).await;
    let (s, on) = call(
        &stack,
        "PUT",
        &format!("{uri}?recover_since={before}"),
        body(true),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(on["enabled"], true);
    stack.drain(&delivery).await;
    let got = receiver.deliveries();
    assert_eq!(got.len(), 4, "only the one it missed");
    assert_eq!(got[3].header("webhook-id"), late);
}

#[tokio::test]
async fn the_sweepers_dry_run_reports_stale_endpoints_without_touching_them() {
    let stack = Stack::new().await;
    let ep = create_endpoint(
        &stack,
        json!({"name": "quiet", "url": "https://example.com/"}),
    )
    .await;
    let id = ep["id"].as_str().unwrap();
    let far = Timestamp::now().plus(days(400));
    assert!(SweepOptions::from_input(&json!({"dry_run": true})).dry_run);
    assert!(!SweepOptions::from_input(&json!({"source": "aws.scheduler", "detail": {}})).dry_run);
    let dry = hookrelay_sweeper::run(
        &stack.sweeper(),
        far,
        SweepOptions::from_input(&json!({"dry_run": true})),
    )
    .await
    .unwrap();
    assert_eq!(dry.stale_found, 1);
    assert_eq!(dry.endpoints_examined, 1);
    assert_eq!(dry.planned[0].reason, Some("stale"));
    assert_eq!(endpoint(&stack, id).await["enabled"], true);
    let real = hookrelay_sweeper::handle(&stack.sweeper(), far)
        .await
        .unwrap();
    assert_eq!(real.deactivated_by_reason.get("stale"), Some(&1));

    // Reactivated, the endpoint's clock starts again: the next sweep leaves it alone.
    let (s, on) = call(
        &stack,
        "POST",
        &format!("/workspaces/default/endpoints/{id}/enable"),
        None,
    )
    .await;
    assert_eq!((s, on["reactivated"].as_bool()), (200, Some(true)));
    let report = hookrelay_sweeper::handle(&stack.sweeper(), Timestamp::now().plus(days(30)))
        .await
        .unwrap();
    assert_eq!(report.deactivated, 0);
}
