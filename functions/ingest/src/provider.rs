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
