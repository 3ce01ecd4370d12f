//! Lark/Feishu custom-bot messages: `text` or `post` built from a template over the event's
//! fields, signed with the bot's secret when it has one, and the bot's own verdict read from
//! its answer (Lark answers 200 with a non-zero `code` when it refuses a message).

use std::time::Duration;

use crate::{Event, LarkBot, LarkMessageType, Timestamp};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::template::render_bounded;

/// The default text carries the payload up to this many characters: Lark caps a message's
/// size, and a chat is no place for a whole document.
const DEFAULT_TEXT_LIMIT: usize = 4000;

/// The names a template can use, as [`context`] builds them; the docs list exactly these.
pub const TEMPLATE_VARIABLES: &[&str] = &[
    "event_id",
    "event_type",
    "received_at",
    "source_id",
    "raw",
    "body",
    "data",
];

/// What a template sees: `body` is the payload parsed (a string when it is not JSON), `data`
/// its `data` member for a `{"event_type", "data"}` envelope (else the body), `raw` the
/// payload as text.
pub fn context(event: &Event) -> Value {
    let body = serde_json::from_slice::<Value>(&event.payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&event.payload).into_owned()));
    let data = body.get("data").cloned().unwrap_or_else(|| body.clone());
    json!({
        "event_id": event.id,
        "event_type": event.event_type,
        "received_at": event.received_at.to_string(),
        "source_id": event.source_id,
        "raw": String::from_utf8_lossy(&event.payload),
        "body": body,
        "data": data,
    })
}

/// Checks a template's syntax and that it keeps to the bounded subset, for the admin API's
/// validation.
pub fn check_template(source: &str) -> Result<(), String> {
    super::template::check(source)
}

fn default_text(event: &Event) -> String {
    let payload = String::from_utf8_lossy(&event.payload);
    let mut text = format!("{}\n{}", event.event_type, payload.trim());
    if text.chars().count() > DEFAULT_TEXT_LIMIT {
        text = text.chars().take(DEFAULT_TEXT_LIMIT).collect::<String>() + "…";
    }
    text
}

/// `sign` for a request at `timestamp`: base64 of HMAC-SHA256 keyed with
/// `timestamp + "\n" + secret` over an empty message, as Lark specifies.
pub fn sign(secret: &str, timestamp: i64) -> String {
    let key = format!("{timestamp}\n{secret}");
    // HMAC takes keys of any length, so this cannot fail.
    let mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes())
        .map(|m| m.finalize().into_bytes().to_vec())
        .unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(mac)
}

/// The request body for `event`; templates get at most `budget` of wall-clock time.
pub async fn message(
    bot: &LarkBot,
    event: &Event,
    now: Timestamp,
    budget: Duration,
) -> Result<Vec<u8>, String> {
    let title_template = match bot.msg_type {
        LarkMessageType::Post => bot.title.clone(),
        LarkMessageType::Text => None,
    };
    let sources: Vec<String> = bot
        .template
        .iter()
        .chain(&title_template)
        .cloned()
        .collect();
    let mut rendered = if sources.is_empty() {
        Vec::new()
    } else {
        render_bounded(sources, context(event), budget).await?
    }
    .into_iter();
    let text = match &bot.template {
        Some(_) => rendered.next().unwrap_or_default(),
        None => default_text(event),
    };
    let mut body = match bot.msg_type {
        LarkMessageType::Text => json!({"msg_type": "text", "content": {"text": text}}),
        LarkMessageType::Post => {
            let title = match &title_template {
                Some(_) => rendered.next().unwrap_or_default(),
                None => event.event_type.clone(),
            };
            let paragraphs: Vec<Value> = text
                .lines()
                .map(|line| json!([{"tag": "text", "text": line}]))
                .collect();
            json!({
                "msg_type": "post",
                "content": {"post": {"en_us": {"title": title, "content": paragraphs}}},
            })
        }
    };
    if let Some(secret) = &bot.secret {
        let ts = now.unix_seconds();
        body["timestamp"] = Value::String(ts.to_string());
        body["sign"] = Value::String(sign(secret, ts));
    }
    serde_json::to_vec(&body).map_err(|e| e.to_string())
}

/// Lark's refusal inside a 2xx answer: `{"code": 19021, "msg": "sign match fail…"}` (or the
/// older `StatusCode`/`StatusMessage`). `None` when the bot took the message.
pub fn refusal(body: Option<&str>) -> Option<String> {
    let v: Value = serde_json::from_str(body?).ok()?;
    let (code, msg) = match (v.get("code"), v.get("StatusCode")) {
        (Some(c), _) => (c.as_i64()?, v.get("msg")),
        (None, Some(c)) => (c.as_i64()?, v.get("StatusMessage")),
        (None, None) => return None,
    };
    (code != 0).then(|| {
        format!(
            "Lark answered code {code}: {}",
            msg.and_then(Value::as_str).unwrap_or("no message")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(payload: &str) -> Event {
        Event {
            id: "evt_1".into(),
            workspace: "default".into(),
            source_id: "src_1".into(),
            event_type: "order.paid".into(),
            idempotency_key: "k".into(),
            received_at: Timestamp::now(),
            payload: payload.as_bytes().to_vec(),
            endpoint_ids: vec![],
            content_type: None,
            hops: 0,
            trace: None,
        }
    }

    #[test]
    fn the_listed_variables_are_the_context() {
        let ctx = context(&event(r#"{"data": {"id": 7}}"#));
        let mut keys: Vec<&str> = ctx
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut listed = TEMPLATE_VARIABLES.to_vec();
        keys.sort_unstable();
        listed.sort_unstable();
        assert_eq!(keys, listed);
    }

    #[test]
    fn signature_matches_larks_published_algorithm() {
        // HMAC-SHA256 with key "1599360473\ndemo" over "", base64: computed independently
        // with Python's hmac module.
        assert_eq!(
            sign("demo", 1_599_360_473),
            "l1N0gAcBjdwBvGm1xMjOF0XSyaLRpR7tuO5dHfhAYc8="
        );
    }

    const BUDGET: Duration = Duration::from_secs(2);

    #[tokio::test]
    async fn text_defaults_to_type_and_payload_and_templates_reach_fields() {
        let bot = LarkBot::default();
        let body: Value = serde_json::from_slice(
            &message(&bot, &event(r#"{"id": 7}"#), Timestamp::now(), BUDGET)
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(body["msg_type"], "text");
        assert_eq!(body["content"]["text"], "order.paid\n{\"id\": 7}");
        assert!(body.get("sign").is_none());

        let bot = LarkBot {
            msg_type: LarkMessageType::Post,
            title: Some("{{ event_type }}".into()),
            template: Some("Order {{ data.id }}\nfrom {{ source_id }}".into()),
            secret: Some("s".into()),
        };
        let body: Value = serde_json::from_slice(
            &message(&bot, &event(r#"{"id": 7}"#), Timestamp::now(), BUDGET)
                .await
                .unwrap(),
        )
        .unwrap();
        let post = &body["content"]["post"]["en_us"];
        assert_eq!(post["title"], "order.paid");
        assert_eq!(post["content"][0][0]["text"], "Order 7");
        assert_eq!(post["content"][1][0]["text"], "from src_1");
        let ts: i64 = body["timestamp"].as_str().unwrap().parse().unwrap();
        assert_eq!(body["sign"], sign("s", ts));
    }

    #[test]
    fn refusals_are_read_from_both_answer_shapes() {
        assert_eq!(
            refusal(Some(r#"{"code":0,"msg":"success","data":{}}"#)),
            None
        );
        assert_eq!(
            refusal(Some(r#"{"StatusCode":0,"StatusMessage":"success"}"#)),
            None
        );
        assert!(
            refusal(Some(r#"{"code":19021,"msg":"sign match fail"}"#))
                .unwrap()
                .contains("19021")
        );
        assert_eq!(refusal(Some("not json")), None);
        assert_eq!(refusal(None), None);
        assert!(check_template("{{ unclosed").is_err());
        assert!(check_template("{{ data.id }}").is_ok());
    }
}
