//! A source's plugin chain: each plugin sees the request as the previous one left it and may
//! reject it, drop it, or change its body, headers, event type and idempotency key.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::settings::{self, SourcePlugin};
use crate::{PluginError, js, schema};

/// A verified request on its way to becoming an event. Header names are lower case.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// The body is JSON (else the source accepts raw bodies and it is kept as bytes).
    pub is_json: bool,
    pub event_type: Option<String>,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Accept(Inbound),
    /// Answer the sender `status` with `message`; nothing is stored.
    Reject {
        status: u16,
        message: String,
    },
    /// Answer the sender as if accepted; nothing is stored.
    Drop,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ChainError {
    /// A `jsonschema` plugin refused the body.
    Schema(schema::Failure),
    /// Plugin `index` failed.
    Plugin { index: usize, error: PluginError },
}

impl ChainError {
    /// The status and error code a sender is answered with: a schema failure is the
    /// sender's (`400`); a broken or runaway plugin is the source owner's (`502`, `504`), so
    /// that the sender retries what was never stored.
    pub fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            ChainError::Schema(_) => (400, "schema_validation_failed"),
            ChainError::Plugin {
                error: PluginError::Timeout,
                ..
            } => (504, "plugin_timeout"),
            ChainError::Plugin { .. } => (502, "plugin_failed"),
        }
    }
}

impl std::fmt::Display for ChainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainError::Schema(s) => {
                let at = if s.pointer.is_empty() {
                    "/"
                } else {
                    s.pointer.as_str()
                };
                write!(
                    f,
                    "the body fails the source's schema at {at} ({}): {}",
                    s.keyword, s.message
                )
            }
            ChainError::Plugin { index, error } => {
                write!(f, "the source's plugin {index} failed: {error}")
            }
        }
    }
}

/// Runs `plugins` in order; `max_body` bounds any body a plugin writes.
pub fn run(
    plugins: &[SourcePlugin],
    mut req: Inbound,
    max_body: usize,
) -> Result<Outcome, ChainError> {
    for (index, plugin) in plugins.iter().enumerate() {
        let failed = |error| ChainError::Plugin { index, error };
        match plugin {
            SourcePlugin::Jsonschema { schema: s } => {
                let body = if req.is_json {
                    serde_json::from_slice(&req.body).ok()
                } else {
                    None
                };
                let Some(body) = body else {
                    return Err(ChainError::Schema(schema::Failure {
                        pointer: String::new(),
                        keyword: "type".into(),
                        message: "the body is not JSON".into(),
                    }));
                };
                schema::validate(s, &body)
                    .map_err(|e| failed(PluginError::Failed(e)))?
                    .map_err(ChainError::Schema)?;
            }
            SourcePlugin::Function { code, timeout_ms } => {
                let out =
                    js::call(code, &input(&req), settings::timeout(*timeout_ms)).map_err(failed)?;
                if let Some(done) = apply(out, &mut req, max_body).map_err(failed)? {
                    return Ok(done);
                }
            }
        }
    }
    Ok(Outcome::Accept(req))
}

/// What a function is called with.
pub fn input(req: &Inbound) -> Value {
    json!({
        "method": req.method,
        "path": req.path,
        "headers": req.headers,
        "body": crate::body_value(&req.body, req.is_json),
        "event_type": req.event_type,
        "idempotency_key": req.idempotency_key,
    })
}

/// Applies a function's answer: `null` leaves the request as it is; `reject` and `drop` end
/// the chain; `body`, `headers`, `event_type` and `idempotency_key` replace what they name.
fn apply(out: Value, req: &mut Inbound, max_body: usize) -> Result<Option<Outcome>, PluginError> {
    let Value::Object(mut out) = out else {
        return match out {
            Value::Null => Ok(None),
            _ => Err(PluginError::Failed(
                "handle must return an object, or nothing to leave the request as it is".into(),
            )),
        };
    };
    if let Some(reject) = out.remove("reject").filter(|v| !v.is_null()) {
        let status = reject.get("status").and_then(Value::as_u64).unwrap_or(400);
        if !(400..=599).contains(&status) {
            return Err(PluginError::Failed(
                "reject.status must be 400 to 599".into(),
            ));
        }
        let message = reject
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("refused by the source's plugin");
        return Ok(Some(Outcome::Reject {
            status: status as u16,
            message: message.chars().take(1024).collect(),
        }));
    }
    if out.remove("drop").is_some_and(|d| d == Value::Bool(true)) {
        return Ok(Some(Outcome::Drop));
    }
    if let Some(body) = out.remove("body") {
        req.body = crate::body_bytes(body, req.is_json, max_body)?;
    }
    if let Some(headers) = out.remove("headers") {
        req.headers = crate::string_map(headers, "headers")?
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
    }
    for (field, slot) in [
        ("event_type", &mut req.event_type),
        ("idempotency_key", &mut req.idempotency_key),
    ] {
        match out.remove(field) {
            None => {}
            Some(Value::String(s)) => *slot = Some(s),
            Some(Value::Null) => *slot = None,
            Some(_) => return Err(PluginError::Failed(format!("{field} must be a string"))),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(body: Value) -> Inbound {
        Inbound {
            method: "POST".into(),
            path: "/in/src_1".into(),
            headers: BTreeMap::from([("x-github-event".into(), "push".into())]),
            body: serde_json::to_vec(&body).unwrap(),
            is_json: true,
            event_type: Some("push".into()),
            idempotency_key: None,
        }
    }

    fn function(code: &str) -> SourcePlugin {
        SourcePlugin::Function {
            code: code.into(),
            timeout_ms: None,
        }
    }

    #[test]
    fn a_chain_changes_rejects_and_drops() {
        let rename = function(
            "function handle(r) { r.body = {ref: r.body.ref, by: r.headers['x-github-event']}; \
             r.event_type = 'github.' + r.event_type; r.idempotency_key = 'k1'; return r }",
        );
        let Outcome::Accept(out) = run(
            std::slice::from_ref(&rename),
            req(json!({"ref": "main"})),
            1024,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            serde_json::from_slice::<Value>(&out.body).unwrap(),
            json!({"ref": "main", "by": "push"})
        );
        assert_eq!(out.event_type.as_deref(), Some("github.push"));
        assert_eq!(out.idempotency_key.as_deref(), Some("k1"));

        let reject = function(
            "function handle(r) { if (!r.body.ok) return {reject: {status: 403, message: 'no'}} }",
        );
        assert_eq!(
            run(&[reject.clone(), rename.clone()], req(json!({})), 1024).unwrap(),
            Outcome::Reject {
                status: 403,
                message: "no".into()
            }
        );
        assert!(matches!(
            run(&[reject], req(json!({"ok": true})), 1024).unwrap(),
            Outcome::Accept(_)
        ));
        let drop = function("function handle(r) { return {drop: r.event_type === 'push'} }");
        assert_eq!(run(&[drop], req(json!({})), 1024).unwrap(), Outcome::Drop);
    }

    #[test]
    fn schemas_and_failures_name_their_plugin() {
        let schema = SourcePlugin::Jsonschema {
            schema: json!({"required": ["ref"]}),
        };
        let failed = run(&[schema], req(json!({})), 1024).unwrap_err();
        assert!(matches!(failed, ChainError::Schema(f) if f.keyword == "required"));
        let huge = function("function handle(r) { return {body: 'x'.repeat(2000)} }");
        let ok = function("function handle(r) {}");
        let failed = run(&[ok, huge], req(json!({})), 1024).unwrap_err();
        assert!(matches!(failed, ChainError::Plugin { index: 1, .. }));
    }
}
