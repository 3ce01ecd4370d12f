//! Where each provider puts its event type and its own delivery id. The delivery id is the
//! idempotency key, so a provider's retry of one delivery is stored once.

use http::HeaderMap;
use serde_json::Value;

use hookrelay_shared::Verification;

#[derive(Debug, Default, PartialEq)]
pub struct Identity {
    pub event_type: Option<String>,
    pub delivery_id: Option<String>,
}

/// Does this source type need the body as a JSON tree?
pub fn reads_body(v: &Verification) -> bool {
    matches!(
        v,
        Verification::Stripe { .. }
            | Verification::Lark { .. }
            | Verification::StandardWebhooks { .. }
            | Verification::Slack { .. }
    )
}

/// Where the generic sources' envelope (`{"event_type", "data"}`) names the event type, read
/// when nothing else names it.
pub const ENVELOPE_TYPE: &str = "/event_type";

/// The members of the body [`identify`] and [`slack_challenge`] read, as JSON pointers: the
/// body is parsed into those alone (see `sparse_json`).
pub fn pointers(v: &Verification) -> &'static [&'static str] {
    match v {
        Verification::Stripe { .. } => &["/type", "/id"],
        Verification::Lark { .. } => &[
            "/header/event_type",
            "/event/type",
            "/header/event_id",
            "/uuid",
        ],
        Verification::StandardWebhooks { .. } => &["/type"],
        Verification::Slack { .. } => &["/event/type", "/type", "/event_id", "/challenge"],
        _ => &[],
    }
}

pub fn identify(v: &Verification, headers: &HeaderMap, body: Option<&Value>) -> Identity {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let b = |pointer: &str| {
        body.and_then(|b| b.pointer(pointer))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    match v {
        Verification::Github { .. } => Identity {
            event_type: h("x-github-event"),
            delivery_id: h("x-github-delivery"),
        },
        Verification::Stripe { .. } => Identity {
            event_type: b("/type"),
            delivery_id: b("/id"),
        },
        Verification::Lark { .. } => Identity {
            // v2 (schema 2.0) events, then v1.
            event_type: b("/header/event_type").or_else(|| b("/event/type")),
            delivery_id: b("/header/event_id").or_else(|| b("/uuid")),
        },
        Verification::StandardWebhooks { .. } => Identity {
            event_type: b("/type"),
            delivery_id: h("webhook-id"),
        },
        Verification::Shopify { .. } => Identity {
            event_type: h("x-shopify-topic"),
            delivery_id: h("x-shopify-webhook-id").or_else(|| h("x-shopify-event-id")),
        },
        Verification::Slack { .. } => Identity {
            event_type: b("/event/type").or_else(|| b("/type")),
            delivery_id: b("/event_id"),
        },
        _ => Identity::default(),
    }
}

/// Slack's URL verification, answered with its challenge (Lark's is handled while verifying).
pub fn slack_challenge(v: &Verification, body: Option<&Value>) -> Option<String> {
    let body = body?;
    if !matches!(v, Verification::Slack { .. })
        || body.get("type").and_then(Value::as_str) != Some("url_verification")
    {
        return None;
    }
    body.get("challenge")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Bodies as each provider sends them, and ones that nest the fields elsewhere.
    fn bodies() -> Vec<Value> {
        vec![
            json!({"id": "evt_1", "object": "event", "type": "invoice.paid", "data": {"object": {"id": "in_1", "lines": [1, 2]}}}),
            json!({"schema": "2.0", "header": {"event_id": "e-1", "event_type": "im.message.receive_v1", "token": "t"}, "event": {"message": {"text": "hi"}}}),
            json!({"uuid": "u-1", "token": "t", "type": "event_callback", "event": {"type": "message"}}),
            json!({"type": "url_verification", "challenge": "ch-1", "token": "t"}),
            json!({"token": "t", "team_id": "T1", "event_id": "Ev1", "type": "event_callback", "event": {"type": "app_mention", "text": "x"}}),
            json!({"type": "user.created", "timestamp": "2026-01-01T00:00:00Z", "data": {"id": "u"}}),
            json!({"event_type": "order.paid", "data": {"type": "not.this"}}),
            json!([{"type": "in.an.array"}]),
            json!("a string"),
        ]
    }

    #[test]
    fn identifying_from_the_members_named_equals_identifying_from_the_whole_body() {
        let secret = || "s".to_owned();
        let sources = [
            Verification::Stripe { secret: secret() },
            Verification::Lark {
                verification_token: None,
                encrypt_key: None,
            },
            Verification::StandardWebhooks { secret: secret() },
            Verification::Slack { secret: secret() },
        ];
        let headers = HeaderMap::new();
        for v in &sources {
            assert!(reads_body(v));
            for body in bodies() {
                let raw = serde_json::to_vec(&body).unwrap();
                let sparse = crate::sparse_json::parse(&raw, pointers(v)).unwrap();
                assert_eq!(
                    identify(v, &headers, Some(&sparse)),
                    identify(v, &headers, Some(&body)),
                    "{v:?} {body}"
                );
                assert_eq!(
                    slack_challenge(v, Some(&sparse)),
                    slack_challenge(v, Some(&body)),
                    "{v:?} {body}"
                );
            }
        }
    }
}
