//! Delivery done right: signatures an independent verifier accepts, secret rotation, the
//! SSRF guard, Retry-After, per-endpoint settings, attempt detail, endpoint health, the DLQ
//! and manual retries.

use std::time::Duration;

use hookrelay_shared::Timestamp;
use hookrelay_tests::receiver::Reply;
use hookrelay_tests::{
    Receiver, Stack, admin_request, attempts_of, create_endpoint, create_source, json_of,
    send_event, verify_with_standardwebhooks,
};
use serde_json::json;

const BODY: &[u8] = br#"{"event_type":"order.paid","data":{"amount":42,"note":"caf\u00e9"}}"#;

#[tokio::test]
async fn deliveries_verify_with_the_standardwebhooks_library() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let source = create_source(&stack, json!({"name": "s"})).await;
    let ep = create_endpoint(&stack, json!({"name": "r", "url": receiver.url})).await;
    let secret = ep["secret"].as_str().unwrap();
    assert!(
        hookrelay_shared::signature::decode_secret(secret)
            .unwrap()
            .len()
            >= 24
    );
    send_event(&stack, &source, BODY).await;
    stack.drain(&stack.delivery()).await;
    let d = &receiver.deliveries()[0];
    verify_with_standardwebhooks(secret, d).expect("verifies");
    // A wrong secret or a changed body must not verify.
    let other = hookrelay_shared::signature::generate_secret();
    assert!(verify_with_standardwebhooks(&other, d).is_err());
    let mut tampered = d.clone();
    tampered.body =
        bytes::Bytes::from_static(br#"{"event_type":"order.paid","data":{"amount":4200}}"#);
    assert!(verify_with_standardwebhooks(secret, &tampered).is_err());
}

#[tokio::test]
async fn rotated_secret_signs_alongside_the_previous_one_during_grace() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let source = create_source(&stack, json!({"name": "s"})).await;
    let ep = create_endpoint(&stack, json!({"name": "r", "url": receiver.url})).await;
    let id = ep["id"].as_str().unwrap();
    let old = ep["secret"].as_str().unwrap().to_owned();

    let resp = hookrelay_admin::handle(
        &stack.admin(),
        admin_request(
            "POST",
            &format!("/workspaces/default/endpoints/{id}/secret/rotate"),
            None,
        ),
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", resp.body());
    let rotated = json_of(&resp);
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(
        rotated["previous_secret"].as_str(),
        Some(hookrelay_shared::redact::mask(&old).as_str()),
        "a rotation shows the new secret once, the old one masked"
    );

    send_event(&stack, &source, BODY).await;
    stack.drain(&stack.delivery()).await;
    let d = &receiver.deliveries()[0];
    assert_eq!(d.header("webhook-signature").split(' ').count(), 2);
    verify_with_standardwebhooks(&new, d).expect("new secret verifies");
    verify_with_standardwebhooks(&old, d).expect("old secret verifies during grace");

    // After the grace period only the new secret signs.
    let mut stored = stack
        .store
        .get_endpoint("default", id)
        .await
        .unwrap()
        .unwrap();
    stored.previous_secret_expires_at = Some(Timestamp::now().minus(Duration::from_secs(1)));
    stack.store.put_endpoint(&mut stored).await.unwrap();
    send_event(&stack, &source, BODY).await;
    stack.drain(&stack.delivery()).await;
    let d = &receiver.deliveries()[1];
    assert_eq!(d.header("webhook-signature").split(' ').count(), 1);
    verify_with_standardwebhooks(&new, d).expect("new secret verifies");
    assert!(verify_with_standardwebhooks(&old, d).is_err());

    let missing = hookrelay_admin::handle(
        &stack.admin(),
        admin_request(
            "POST",
            "/workspaces/default/endpoints/ep_nope/secret/rotate",
            None,
        ),
    )
    .await;
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn ssrf_guard_refuses_non_public_destinations_without_retrying() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    let source = create_source(&stack, json!({"name": "s"})).await;
    let port = receiver
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    for (i, url) in [
        receiver.url.clone(),                              // loopback literal
        format!("http://localhost:{port}/hook"),           // a name that resolves to loopback
        "http://169.254.169.254/latest/meta-data/".into(), // instance metadata
        "http://[::ffff:127.0.0.1]:9/".into(),             // IPv4-mapped IPv6
        "http://10.0.0.1/".into(),
    ]
    .into_iter()
    .enumerate()
    {
        create_endpoint(&stack, json!({"name": format!("r{i}"), "url": url})).await;
    }
    let event_id = send_event(&stack, &source, BODY).await;

    // The stack's settings open loopback for the other tests; the default policy does not.
    let mut settings = stack.settings.clone();
    settings.delivery_allow_networks = String::new();
    let guarded = hookrelay_delivery::Context::new(&stack.aws, settings).unwrap();
    let rounds = stack.drain(&guarded).await;
    assert_eq!(
        rounds.iter().map(|r| r.deleted).sum::<usize>(),
        5,
        "not retried"
    );
    assert!(
        receiver.deliveries().is_empty(),
        "nothing reached the receiver"
    );
    let attempts = attempts_of(&stack, &event_id).await;
    assert_eq!(attempts.len(), 5);
    for a in &attempts {
        assert_eq!(a["status"], "FAILED", "{a}");
        assert_eq!(a["error_code"], "DENIED", "{a}");
    }
    assert!(stack.dead_letters().await.is_empty());
}

#[tokio::test]
async fn retry_after_is_honoured_within_bounds() {
    let stack = Stack::with_schedule("2,2").await;
    let receiver = Receiver::start().await;
    receiver.replies(
        vec![
            Reply::status(429).header("retry-after", "3"),
            Reply::status(503).header("retry-after", "3600"),
        ],
        Reply::status(200),
    );
    let source = create_source(&stack, json!({"name": "s"})).await;
    create_endpoint(&stack, json!({"name": "r", "url": receiver.url})).await;
    let event_id = send_event(&stack, &source, BODY).await;
    let delivery = stack.delivery();
    stack.deliver_once(&delivery, Duration::ZERO).await.unwrap();
    stack
        .deliver_once(&delivery, Duration::from_secs(6))
        .await
        .unwrap();
    let attempts = attempts_of(&stack, &event_id).await;
    let gap = |a: &serde_json::Value| {
        let at = Timestamp::parse(a["attempted_at"].as_str().unwrap()).unwrap();
        let next = Timestamp::parse(a["next_attempt_at"].as_str().unwrap()).unwrap();
        next.since(at).as_secs()
    };
    // Oldest last: 429 asked 3 s (within 2..4), then 503 asked an hour (capped at 4 s).
    assert_eq!(gap(&attempts[1]), 3);
    assert_eq!(gap(&attempts[0]), 4);
}

#[tokio::test]
async fn redirects_fail_and_endpoint_settings_apply() {
    let stack = Stack::with_schedule("600").await;
    let receiver = Receiver::start().await;
    receiver.replies(
        vec![Reply::status(302).header("location", "http://example.com/")],
        Reply::status(500).delay(Duration::from_secs(3)),
    );
    let source = create_source(&stack, json!({"name": "s"})).await;
    create_endpoint(
        &stack,
        json!({"name": "r", "url": receiver.url, "retry": {"schedule": [1]}, "timeout_seconds": 1}),
    )
    .await;
    let event_id = send_event(&stack, &source, BODY).await;
    let delivery = stack.delivery();
    let first = stack.deliver_once(&delivery, Duration::ZERO).await.unwrap();
    assert_eq!(
        (first.received, first.failed, first.deleted),
        (1, 0, 1),
        "a redirect is a failed delivery: its retry is a new, delayed message"
    );
    // The endpoint's own one-second schedule, not the deployment's ten minutes.
    let second = stack
        .deliver_once(&delivery, Duration::from_secs(4))
        .await
        .unwrap();
    assert_eq!(second.deleted, 1, "the second attempt was the last");
    let attempts = attempts_of(&stack, &event_id).await;
    assert_eq!(attempts[1]["response"]["status"], 302);
    assert_eq!(attempts[1]["error_code"], "HTTP_STATUS");
    assert_eq!(
        attempts[0]["error_code"], "TIMEOUT",
        "its one-second timeout applied"
    );
    assert_eq!(attempts[0]["exhausted"], true);
    assert_eq!(
        receiver.deliveries().len(),
        2,
        "the redirect was not followed"
    );

    for bad in [
        json!({"name": "r", "url": receiver.url, "retry": {"schedule": [50000]}}),
        json!({"name": "r", "url": receiver.url, "timeout_seconds": 0}),
        json!({"name": "r", "url": receiver.url, "timeout_seconds": 900}),
    ] {
        let resp = hookrelay_admin::handle(
            &stack.admin(),
            admin_request("POST", "/workspaces/default/endpoints", Some(bad)),
        )
        .await;
        assert_eq!(resp.status(), 400, "{}", resp.body());
    }
}

#[tokio::test]
async fn attempts_record_headers_response_and_trigger_mode() {
    let stack = Stack::with_schedule("1").await;
    let receiver = Receiver::start().await;
    let big = "x".repeat(20_000);
    receiver.replies(
        vec![
            Reply::status(500)
                .header("x-request-id", "abc")
                .header("x-huge", &"h".repeat(5000))
                .body(big),
        ],
        Reply::status(200).body("thanks"),
    );
    let source = create_source(&stack, json!({"name": "s"})).await;
    create_endpoint(
        &stack,
        json!({"name": "r", "url": receiver.url, "headers": {"Authorization": "Bearer topsecret", "X-Team": "blue"}}),
    )
    .await;
    let event_id = send_event(&stack, &source, BODY).await;
    let delivery = stack.delivery();
    stack.deliver_once(&delivery, Duration::ZERO).await.unwrap();
    stack
        .deliver_once(&delivery, Duration::from_secs(4))
        .await
        .unwrap();

    // The receiver got the real header; the history shows it redacted.
    assert_eq!(
        receiver.deliveries()[0].header("authorization"),
        "Bearer topsecret"
    );
    let attempts = attempts_of(&stack, &event_id).await;
    let (second, first) = (&attempts[0], &attempts[1]);
    assert_eq!(first["trigger_mode"], "INITIAL");
    assert_eq!(second["trigger_mode"], "AUTOMATIC");
    let sent = &first["request"]["headers"];
    assert_eq!(sent["authorization"], "[redacted]");
    assert_eq!(sent["x-team"], "blue");
    assert_eq!(sent["webhook-id"], event_id.as_str());
    assert!(
        sent["webhook-signature"]
            .as_str()
            .unwrap()
            .starts_with("v1,")
    );
    assert_eq!(first["response"]["headers"]["x-request-id"], "abc");
    assert_eq!(
        first["response"]["headers"]["x-huge"]
            .as_str()
            .unwrap()
            .len(),
        1024,
        "capped"
    );
    assert_eq!(first["response"]["body"].as_str().unwrap().len(), 16 * 1024);
    assert_eq!(second["response"]["body"], "thanks");
    assert!(attempts.iter().all(|a| a["response"]["latency"].is_u64()));
}

#[tokio::test]
async fn endpoint_health_counts_failures_and_resets_on_success() {
    let stack = Stack::with_schedule("1,1").await;
    let receiver = Receiver::start().await;
    receiver.script(&[500, 500, 500], 200);
    let source = create_source(&stack, json!({"name": "s"})).await;
    let ep = create_endpoint(&stack, json!({"name": "r", "url": receiver.url})).await;
    let id = ep["id"].as_str().unwrap();
    // Two events in one batch fail together: both count, in one atomic write.
    send_event(&stack, &source, BODY).await;
    send_event(&stack, &source, BODY).await;
    let delivery = stack.delivery();
    stack.deliver_once(&delivery, Duration::ZERO).await.unwrap();
    let after = stack
        .store
        .get_endpoint("default", id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.consecutive_failures, 2);
    assert!(after.last_failure_at.is_some());
    assert!(after.last_success_at.is_none());

    // Third failure, then success: the streak resets.
    stack
        .deliver_once(&delivery, Duration::from_secs(4))
        .await
        .unwrap();
    let mid = stack
        .store
        .get_endpoint("default", id)
        .await
        .unwrap()
        .unwrap();
    assert!(mid.last_success_at.is_some());
    assert_eq!(mid.consecutive_failures, 0);
    let rest = stack.drain(&delivery).await;
    assert!(rest.iter().all(|r| r.failed == 0));
    assert_eq!(receiver.deliveries().len(), 4);
}

/// An endpoint that fails at once sends a redriven letter straight back to the DLQ while the
/// redrive still runs: the call moves the letters it found, not the same one over and over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redrive_does_not_move_a_letter_that_failed_again_during_it() {
    let stack = std::sync::Arc::new(Stack::with_schedule("").await);
    let receiver = Receiver::start().await;
    receiver.script(&[], 500);
    let source = create_source(&stack, json!({"name": "s"})).await;
    create_endpoint(&stack, json!({"name": "r", "url": receiver.url})).await;
    send_event(&stack, &source, BODY).await;
    let delivery = stack.delivery();
    stack.deliver_once(&delivery, Duration::ZERO).await.unwrap();
    assert_eq!(receiver.deliveries().len(), 1);

    // The delivery function keeps consuming while the redrive runs.
    let consumer = {
        let stack = stack.clone();
        tokio::spawn(async move {
            let delivery = stack.delivery();
            loop {
                stack
                    .deliver_once(&delivery, Duration::from_millis(100))
                    .await;
            }
        })
    };
    let redrive = hookrelay_admin::handle(
        &stack.admin(),
        admin_request("POST", "/dlq/redrive?limit=50", None),
    )
    .await;
    consumer.abort();
    let redrive = json_of(&redrive);
    assert_eq!(redrive["moved"], 1, "{redrive}");
    assert_eq!(redrive["complete"], true, "{redrive}");
    assert_eq!(receiver.deliveries().len(), 2, "sent once more, not cycled");
    // The new letter is back in view for the next call.
    let (visible, _) = stack
        .queue_depth(&stack.settings.dead_letter_queue_url)
        .await;
    assert_eq!(visible, 1);
}

#[tokio::test]
async fn dead_letters_can_be_inspected_redriven_and_retried_by_hand() {
    let stack = Stack::with_schedule("").await;
    let receiver = Receiver::start().await;
    receiver.script(&[500], 200);
    let source = create_source(&stack, json!({"name": "s"})).await;
    let ep = create_endpoint(&stack, json!({"name": "r", "url": receiver.url})).await;
    let event_id = send_event(&stack, &source, BODY).await;
    let delivery = stack.delivery();
    stack.deliver_once(&delivery, Duration::ZERO).await.unwrap();

    let admin = stack.admin();
    let peek = hookrelay_admin::handle(&admin, admin_request("GET", "/dlq", None)).await;
    assert_eq!(peek.status(), 200, "{}", peek.body());
    let peek = json_of(&peek);
    assert_eq!(peek["data"].as_array().unwrap().len(), 1);
    let letter = &peek["data"][0];
    assert_eq!(letter["task"]["event_id"], event_id.as_str());
    assert_eq!(letter["reason"], "exhausted");
    assert_eq!(letter["last_status"], 500);
    // Peeking leaves it there.
    assert_eq!(
        stack
            .queue_depth(&stack.settings.dead_letter_queue_url)
            .await
            .0,
        1
    );

    let redrive =
        hookrelay_admin::handle(&admin, admin_request("POST", "/dlq/redrive", None)).await;
    assert_eq!(json_of(&redrive)["moved"], 1);
    assert_eq!(
        stack
            .queue_depth(&stack.settings.dead_letter_queue_url)
            .await,
        (0, 0)
    );
    stack.drain(&delivery).await;
    let attempts = attempts_of(&stack, &event_id).await;
    assert_eq!(attempts[0]["status"], "SUCCESSFUL");
    assert_eq!(attempts[0]["attempt_number"], 1, "attempts counted afresh");

    let retry = hookrelay_admin::handle(
        &admin,
        admin_request(
            "POST",
            &format!(
                "/workspaces/default/events/{event_id}/retry?endpoint_id={}",
                ep["id"].as_str().unwrap()
            ),
            None,
        ),
    )
    .await;
    assert_eq!(retry.status(), 202, "{}", retry.body());
    stack.drain(&delivery).await;
    let attempts = attempts_of(&stack, &event_id).await;
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[0]["trigger_mode"], "MANUAL");
    assert_eq!(receiver.deliveries().len(), 3);

    for (uri, status) in [
        (format!("/workspaces/default/events/{event_id}/retry"), 400),
        (
            format!("/workspaces/default/events/{event_id}/retry?endpoint_id=ep_nope"),
            404,
        ),
        (
            "/workspaces/default/events/evt_nope/retry?endpoint_id=x".to_owned(),
            404,
        ),
    ] {
        let resp = hookrelay_admin::handle(&admin, admin_request("POST", &uri, None)).await;
        assert_eq!(resp.status(), status, "{uri}: {}", resp.body());
    }
}
