//! A Lark bot template is bounded: one workspace's hostile template fails its own attempt
//! with `TEMPLATE`, promptly, and every other task of the same delivery batch (from any
//! workspace) is delivered once. Templates that could grow without bound are refused when
//! saved.

use std::time::{Duration, Instant};

use hookrelay_tests::receiver::Reply;
use hookrelay_tests::{
    Receiver, Stack, admin_call as admin, attempts_of, create_endpoint, create_source, send_event,
};
use serde_json::json;

#[tokio::test]
async fn a_hostile_template_fails_its_own_attempt_and_spares_the_batch() {
    let stack = Stack::new().await;
    let bot = Receiver::start().await;
    bot.replies(
        vec![],
        Reply::status(200).body(r#"{"code":0,"msg":"success"}"#),
    );
    let hook = Receiver::start().await;

    // Workspace "default": two bots whose templates pass the save-time check but not the
    // render's bounds: one runs 10^8 loop steps, one writes megabytes.
    let source = create_source(&stack, json!({"name": "shop"})).await;
    for (name, template) in [
        (
            "spin",
            "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
        ),
        ("flood", "{% for i in range(10000) %}{{ raw }}{% endfor %}"),
    ] {
        create_endpoint(
            &stack,
            json!({"name": name, "url": bot.url, "kind": "lark_bot", "lark": {"template": template}}),
        )
        .await;
    }

    // Workspace "other": an ordinary webhook endpoint.
    assert_eq!(
        admin(
            &stack,
            "POST",
            "/workspaces",
            Some(json!({"name": "other"}))
        )
        .await
        .0,
        201
    );
    let (s, other_source) = admin(
        &stack,
        "POST",
        "/workspaces/other/sources",
        Some(json!({"name": "shop"})),
    )
    .await;
    assert_eq!(s, 201, "{other_source}");
    let (s, ep) = admin(
        &stack,
        "POST",
        "/workspaces/other/endpoints",
        Some(json!({"name": "hook", "url": hook.url})),
    )
    .await;
    assert_eq!(s, 201, "{ep}");

    let note = "n".repeat(1024);
    let hostile_event = send_event(
        &stack,
        &source,
        json!({"event_type": "order.paid", "data": {"note": note}})
            .to_string()
            .as_bytes(),
    )
    .await;
    send_event(
        &stack,
        other_source["id"].as_str().unwrap(),
        br#"{"event_type": "order.paid", "data": {"id": 1}}"#,
    )
    .await;

    let delivery = stack.delivery();
    let started = Instant::now();
    let round = stack
        .deliver_once(&delivery, Duration::ZERO)
        .await
        .expect("a batch");
    let took = started.elapsed();
    assert_eq!(round.received, 3, "the three tasks share one batch");
    // Retries go back as delayed messages, so every task of the batch leaves it: none is
    // reported as a batch item failure, which would make SQS hand the batch out again.
    assert_eq!(round.failed, 0);
    assert!(took < Duration::from_secs(5), "the batch took {took:?}");

    assert_eq!(hook.deliveries().len(), 1, "delivered once");
    assert!(bot.deliveries().is_empty(), "nothing reached the bot");

    let attempts = attempts_of(&stack, &hostile_event).await;
    assert_eq!(attempts.len(), 2);
    let mut messages = Vec::new();
    for a in &attempts {
        assert_eq!(a["status"], "FAILED");
        assert_eq!(a["error_code"], "TEMPLATE");
        messages.push(a["error_message"].as_str().unwrap().to_owned());
    }
    messages.sort();
    assert!(messages[0].contains("fuel"), "{messages:?}");
    assert!(messages[1].contains("grew past"), "{messages:?}");
}

#[tokio::test]
async fn templates_that_could_grow_without_bound_are_refused_when_saved() {
    let stack = Stack::new().await;
    for template in [
        r#"{{ "x" * 100000000 }}"#,
        "{% set s = raw %}{% for i in range(40) %}{% set s = s ~ s %}{% endfor %}{{ s }}",
        "{% set l = [raw, raw] %}{{ l }}",
        "{{ raw|center(1000000000) }}",
    ] {
        let (status, body) = admin(
            &stack,
            "POST",
            "/workspaces/default/endpoints",
            Some(json!({
                "name": "bot",
                "url": "https://open.feishu.cn/open-apis/bot/v2/hook/x",
                "kind": "lark_bot",
                "lark": {"template": template},
            })),
        )
        .await;
        assert_eq!(status, 400, "{template}: {body}");
        assert!(
            body.to_string().contains("not available in bot templates"),
            "{template}: {body}"
        );
    }
}
