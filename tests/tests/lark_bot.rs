//! Lark/Feishu custom-bot endpoints: the message format (`text` by default, `post` from a
//! template), the bot's signature, and a refusal inside a 200 answer retried as a failure.

use std::time::Duration;

use base64::Engine;
use hookrelay_tests::receiver::Reply;
use hookrelay_tests::signing::hmac256;
use hookrelay_tests::{Receiver, Stack, attempts_of, create_endpoint, create_source, send_event};
use serde_json::{Value, json};

const SECRET: &str = "bot-signing-secret";

/// What a Lark bot checks: `sign` is base64(HMAC-SHA256(key = timestamp + "\n" + secret, "")),
/// and the timestamp is recent.
fn check_signature(body: &Value) {
    let ts = body["timestamp"].as_str().expect("timestamp is a string");
    let expected = base64::engine::general_purpose::STANDARD
        .encode(hmac256(format!("{ts}\n{SECRET}").as_bytes(), b""));
    assert_eq!(body["sign"], expected);
    let age = hookrelay_tests::signing::now() - ts.parse::<i64>().unwrap();
    assert!((0..60).contains(&age), "timestamp is now");
}

#[tokio::test]
async fn post_messages_are_templated_signed_and_refusals_retried() {
    let stack = Stack::with_schedule("1").await;
    let receiver = Receiver::start().await;
    receiver.replies(
        vec![Reply::status(200).body(r#"{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time","data":{}}"#)],
        Reply::status(200).body(r#"{"code":0,"msg":"success","data":{}}"#),
    );
    let source = create_source(&stack, json!({"name": "shop"})).await;
    create_endpoint(
        &stack,
        json!({
            "name": "ops-chat",
            "url": receiver.url,
            "kind": "lark_bot",
            "lark": {
                "secret": SECRET,
                "msg_type": "post",
                "title": "{{ event_type }}",
                "template": "Order {{ data.id }} paid: {{ data.amount }} {{ data.currency }}\nevent {{ event_id }}",
            },
        }),
    )
    .await;
    let event_id = send_event(
        &stack,
        &source,
        br#"{"event_type": "order.paid", "data": {"id": 42, "amount": 1999, "currency": "EUR"}}"#,
    )
    .await;
    let delivery = stack.delivery();
    let first = stack.deliver_once(&delivery, Duration::ZERO).await.unwrap();
    assert_eq!(
        (first.received, first.failed, first.deleted),
        (1, 0, 1),
        "code 19021 in a 200 is a failure: its retry is a new, delayed message"
    );
    let second = stack
        .deliver_once(&delivery, Duration::from_secs(4))
        .await
        .unwrap();
    assert_eq!(second.deleted, 1);

    let got = receiver.deliveries();
    assert_eq!(got.len(), 2);
    for d in &got {
        assert_eq!(d.header("content-type"), "application/json");
        assert_eq!(d.header("webhook-signature"), "", "Lark signs in the body");
        let body: Value = serde_json::from_slice(&d.body).unwrap();
        assert_eq!(body["msg_type"], "post");
        let post = &body["content"]["post"]["en_us"];
        assert_eq!(post["title"], "order.paid");
        assert_eq!(
            post["content"],
            json!([
                [{"tag": "text", "text": "Order 42 paid: 1999 EUR"}],
                [{"tag": "text", "text": format!("event {event_id}")}],
            ])
        );
        check_signature(&body);
    }
    let attempts = attempts_of(&stack, &event_id).await;
    assert_eq!(attempts[1]["status"], "FAILED");
    assert_eq!(attempts[1]["error_code"], "LARK_REFUSED");
    assert!(
        attempts[1]["error_message"]
            .as_str()
            .unwrap()
            .contains("19021")
    );
    assert_eq!(attempts[0]["status"], "SUCCESSFUL");
}

#[tokio::test]
async fn text_is_the_default_and_unsigned_without_a_secret() {
    let stack = Stack::new().await;
    let receiver = Receiver::start().await;
    receiver.replies(
        vec![],
        Reply::status(200).body(r#"{"StatusCode":0,"StatusMessage":"success"}"#),
    );
    let source = create_source(&stack, json!({"name": "shop"})).await;
    create_endpoint(
        &stack,
        json!({"name": "chat", "url": receiver.url, "kind": "lark_bot"}),
    )
    .await;
    send_event(
        &stack,
        &source,
        br#"{"event_type": "user.created", "data": {"id": 1}}"#,
    )
    .await;
    let delivery = stack.delivery();
    let round = stack.deliver_once(&delivery, Duration::ZERO).await.unwrap();
    assert_eq!(round.deleted, 1);
    let got = receiver.deliveries();
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(
        body,
        json!({"msg_type": "text", "content": {"text": "user.created\n{\"event_type\": \"user.created\", \"data\": {\"id\": 1}}"}})
    );
}

#[tokio::test]
async fn lark_settings_are_validated() {
    let stack = Stack::new().await;
    for (body, field) in [
        (
            json!({"kind": "lark_bot", "lark": {"template": "{{ unclosed"}}),
            "lark.template",
        ),
        (
            json!({"kind": "lark_bot", "delivery": {"mode": "batch"}}),
            "delivery.mode",
        ),
        (json!({"lark": {"msg_type": "text"}}), "lark"),
        (
            json!({"kind": "lark_bot", "lark": {"secret": ""}}),
            "lark.secret",
        ),
    ] {
        let mut request =
            json!({"name": "bot", "url": "https://open.feishu.cn/open-apis/bot/v2/hook/x"});
        request
            .as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        let resp = hookrelay_admin::handle(
            &stack.admin(),
            hookrelay_tests::admin_request("POST", "/workspaces/default/endpoints", Some(request)),
        )
        .await;
        assert_eq!(resp.status(), 400, "{body}");
        let err = hookrelay_tests::json_of(&resp);
        assert!(err["error"]["fields"].get(field).is_some(), "{body}: {err}");
    }
}
