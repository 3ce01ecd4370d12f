//! Operational events end to end: each type read back from the stack's EventBridge bus (the
//! local emulator, through a rule and a queue as a user would subscribe), and delivered,
//! signed, to the workspace's ops endpoint through the ordinary pipeline. Never a secret.

use std::time::Duration;

use hookrelay_shared::Timestamp;
use hookrelay_sweeper::SweepOptions;
use hookrelay_tests::receiver::Reply;
use hookrelay_tests::{
    Receiver, Stack, admin_call as call, create_endpoint, create_source, send_event,
    verify_with_standardwebhooks,
};
use serde_json::{Value, json};

/// Detail types, in the order they were put, with each detail.
fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn assert_no_secrets(events: &[Value], secrets: &[&str]) {
    for e in events {
        let text = e.to_string();
        assert!(!text.contains("whsec_"), "a signing secret leaked: {text}");
        for s in secrets {
            assert!(!text.contains(s), "{s} leaked: {text}");
        }
    }
}

async fn set_settings(stack: &Stack, settings: Value) {
    let (s, body) = call(
        stack,
        "PUT",
        "/workspaces/default",
        Some(json!({"name": "default", "settings": settings})),
    )
    .await;
    assert_eq!(s, 200, "{body}");
}

#[tokio::test]
async fn failing_exhausted_and_gone_reach_the_bus_and_the_ops_endpoint() {
    let stack = Stack::with_schedule("1").await;
    let bus = stack.ops_events_queue().await;
    let ops_receiver = Receiver::start().await;
    let bad = Receiver::start().await;
    bad.replies(vec![], Reply::status(500));
    let source = create_source(&stack, json!({"name": "s"})).await;
    let ops = create_endpoint(
        &stack,
        json!({"name": "ops", "url": ops_receiver.url, "events": ["never.matches"]}),
    )
    .await;
    let failing = create_endpoint(
        &stack,
        json!({"name": "flaky", "url": bad.url, "events": ["order.*"], "headers": {"Authorization": "Bearer hush-hush"}}),
    )
    .await;
    let (s, err) = call(
        &stack,
        "PUT",
        "/workspaces/default",
        Some(json!({"name": "default", "settings": {"ops_endpoint_id": "ep_missing"}})),
    )
    .await;
    assert_eq!(
        (s, err["error"]["field"].as_str()),
        (400, Some("settings.ops_endpoint_id"))
    );
    set_settings(
        &stack,
        json!({"ops_endpoint_id": ops["id"], "failing_after": 2}),
    )
    .await;

    let events = [
        send_event(&stack, &source, br#"{"event_type": "order.created"}"#).await,
        send_event(&stack, &source, br#"{"event_type": "order.paid"}"#).await,
    ];
    let delivery = stack.delivery();
    // First attempts: two failures make the streak 2, the threshold: endpoint.failing.
    stack.deliver_once(&delivery, Duration::ZERO).await.unwrap();
    // Second and last attempts: both exhausted. (The rounds also carry the ops endpoint's
    // own deliveries.)
    for _ in 0..3 {
        stack.deliver_once(&delivery, Duration::from_secs(2)).await;
    }

    let put = stack.read_ops_events(&bus).await;
    assert_eq!(
        kinds(&put),
        ["endpoint.failing", "attempt.exhausted", "attempt.exhausted"],
        "{put:#?}"
    );
    let failing_id = failing["id"].as_str().unwrap();
    for e in &put {
        assert_eq!(e["source"], "hookrelay");
        assert_eq!(e["detail"]["workspace"], "default");
        assert_eq!(e["detail"]["endpoint"]["id"], failing_id);
        assert_eq!(e["detail"]["endpoint"]["name"], "flaky");
        assert!(Timestamp::parse(e["detail"]["at"].as_str().unwrap()).is_ok());
    }
    assert_eq!(put[0]["detail"]["counts"]["consecutive_failures"], 2);
    let mut exhausted: Vec<&str> = put[1..]
        .iter()
        .map(|e| e["detail"]["event_id"].as_str().unwrap())
        .collect();
    exhausted.sort();
    let mut sent: Vec<&str> = events.iter().map(String::as_str).collect();
    sent.sort();
    assert_eq!(exhausted, sent);
    assert_eq!(put[1]["detail"]["counts"]["attempts"], 2);
    assert_eq!(put[1]["detail"]["last_status"], 500);
    assert_no_secrets(&put, &["hush-hush"]);

    // The ops endpoint gets the same three as ordinary, signed deliveries.
    stack.drain(&delivery).await;
    let got = ops_receiver.deliveries();
    let mut types: Vec<String> = got
        .iter()
        .map(|d| {
            serde_json::from_slice::<Value>(&d.body).unwrap()["event_type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    types.sort();
    assert_eq!(
        types,
        ["attempt.exhausted", "attempt.exhausted", "endpoint.failing"]
    );
    for d in &got {
        verify_with_standardwebhooks(ops["secret"].as_str().unwrap(), d).unwrap();
        let body: Value = serde_json::from_slice(&d.body).unwrap();
        assert_eq!(body["data"]["endpoint"]["id"], failing_id);
        assert!(!String::from_utf8_lossy(&d.body).contains("hush-hush"));
    }

    // 410 Gone switches the endpoint off: endpoint.deactivated with reason gone.
    bad.replies(vec![], Reply::status(410));
    send_event(&stack, &source, br#"{"event_type": "order.refunded"}"#).await;
    stack.drain(&delivery).await;
    let put = stack.read_ops_events(&bus).await;
    assert_eq!(kinds(&put), ["endpoint.deactivated"]);
    assert_eq!(put[0]["detail"]["reason"], "gone");
    stack.drain(&delivery).await;
    assert_eq!(ops_receiver.deliveries().len(), 4);
}

#[tokio::test]
async fn manual_stale_and_failing_deactivations_and_reactivation() {
    let stack = Stack::with_schedule("600").await;
    let bus = stack.ops_events_queue().await;
    let receiver = Receiver::start().await;
    receiver.replies(vec![], Reply::status(500));
    let ep = create_endpoint(&stack, json!({"name": "e", "url": receiver.url})).await;
    let uri = format!(
        "/workspaces/default/endpoints/{}",
        ep["id"].as_str().unwrap()
    );

    let (s, _) = call(
        &stack,
        "PUT",
        &uri,
        Some(json!({"name": "e", "url": receiver.url, "enabled": false})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = call(&stack, "POST", &format!("{uri}/enable"), None).await;
    assert_eq!(s, 200);
    let put = stack.read_ops_events(&bus).await;
    assert_eq!(
        kinds(&put),
        ["endpoint.deactivated", "endpoint.reactivated"]
    );
    assert_eq!(put[0]["detail"]["reason"], "manual");
    assert_eq!(put[1]["detail"]["counts"]["recovered_events"], 0);

    // Failing, by the sweeper, where the workspace asks for it.
    set_settings(
        &stack,
        json!({"disable_failing": {"after_days": 1, "min_failures": 1}}),
    )
    .await;
    let source = create_source(&stack, json!({"name": "s"})).await;
    send_event(&stack, &source, br#"{"event_type": "x"}"#).await;
    stack.drain(&stack.delivery()).await;
    let sweeper = stack.sweeper();
    let report = hookrelay_sweeper::handle(
        &sweeper,
        Timestamp::now().plus(Duration::from_secs(2 * 86_400)),
    )
    .await
    .unwrap();
    assert_eq!(report.deactivated, 1);
    let put = stack.read_ops_events(&bus).await;
    assert_eq!(kinds(&put), ["endpoint.deactivated"]);
    assert_eq!(put[0]["detail"]["reason"], "failing");
    assert_eq!(put[0]["detail"]["counts"]["consecutive_failures"], 1);

    // Stale, by the sweeper's one-year rule.
    let (s, _) = call(
        &stack,
        "PUT",
        &uri,
        Some(json!({"name": "e", "url": receiver.url, "enabled": true})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        kinds(&stack.read_ops_events(&bus).await),
        ["endpoint.reactivated"]
    );
    let report = hookrelay_sweeper::handle(
        &sweeper,
        Timestamp::now().plus(Duration::from_secs(400 * 86_400)),
    )
    .await
    .unwrap();
    assert_eq!(report.deactivated_by_reason.get("stale"), Some(&1));
    let put = stack.read_ops_events(&bus).await;
    assert_eq!(kinds(&put), ["endpoint.deactivated"]);
    assert_eq!(put[0]["detail"]["reason"], "stale");
}

#[tokio::test]
async fn a_warning_comes_before_the_one_year_rule_once() {
    let stack = Stack::new().await;
    let bus = stack.ops_events_queue().await;
    let ops_receiver = Receiver::start().await;
    let ops = create_endpoint(
        &stack,
        json!({"name": "ops", "url": ops_receiver.url, "events": ["never"]}),
    )
    .await;
    let quiet = create_endpoint(
        &stack,
        json!({"name": "quiet", "url": "https://example.com/"}),
    )
    .await;
    let sweeper = stack.sweeper();
    let day = |n: u64| Timestamp::now().plus(Duration::from_secs(n * 86_400));

    // Off by default: nothing at 340 days.
    hookrelay_sweeper::handle(&sweeper, day(340)).await.unwrap();
    assert!(stack.read_ops_events(&bus).await.is_empty());

    set_settings(
        &stack,
        json!({"ops_endpoint_id": ops["id"], "warn_before_deactivation": {"days": 30}}),
    )
    .await;
    // 300 days: not yet within 30 days of the rule.
    let report = hookrelay_sweeper::handle(&sweeper, day(300)).await.unwrap();
    assert_eq!(report.warned, 0);
    let dry = hookrelay_sweeper::run(&sweeper, day(340), SweepOptions { dry_run: true })
        .await
        .unwrap();
    // Both endpoints have been quiet since they were created (the ops endpoint too).
    assert_eq!(dry.planned.iter().filter(|p| p.action == "warn").count(), 2);
    assert!(
        stack.read_ops_events(&bus).await.is_empty(),
        "a dry run emits nothing"
    );

    let report = hookrelay_sweeper::handle(&sweeper, day(340)).await.unwrap();
    assert_eq!(report.warned, 2);
    let put = stack.read_ops_events(&bus).await;
    assert_eq!(
        kinds(&put),
        [
            "endpoint.deactivation_pending",
            "endpoint.deactivation_pending"
        ]
    );
    let put: Vec<Value> = put
        .into_iter()
        .filter(|e| e["detail"]["endpoint"]["id"] == quiet["id"])
        .collect();
    assert_eq!(put[0]["detail"]["endpoint"]["id"], quiet["id"]);
    let deactivates_at =
        Timestamp::parse(put[0]["detail"]["deactivates_at"].as_str().unwrap()).unwrap();
    assert!(deactivates_at > day(364) && deactivates_at < day(366));
    // Once per quiet spell.
    let report = hookrelay_sweeper::handle(&sweeper, day(341)).await.unwrap();
    assert_eq!(report.warned, 0);
    assert!(stack.read_ops_events(&bus).await.is_empty());

    // The ops endpoint is told about the other one, not about itself.
    stack.drain(&stack.delivery()).await;
    let got = ops_receiver.deliveries();
    assert_eq!(got.len(), 1);
    verify_with_standardwebhooks(ops["secret"].as_str().unwrap(), &got[0]).unwrap();
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["event_type"], "endpoint.deactivation_pending");
}
