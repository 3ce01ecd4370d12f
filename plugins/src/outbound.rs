//! An endpoint's plugin chain: each plugin reshapes the request the previous one left (body,
//! headers, query); the result is what is signed and sent.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::settings::{self, EndpointPlugin};
use crate::{PluginError, js, wasm};

/// Headers hookrelay sets on every delivery: a plugin cannot set them.
pub const RESERVED_HEADERS: [&str; 7] = [
    "content-length",
    "host",
    "user-agent",
    "hookrelay-hops",
    "x-amzn-trace-id",
    "traceparent",
    "tracestate",
];

/// A delivery request before it is signed. Header names are lower case and include
/// `content-type`.
#[derive(Debug, Clone, PartialEq)]
pub struct Outbound {
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// `{id, type, source_id, received_at}` of the event (the first of a batch).
    pub event: Value,
}

impl Outbound {
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .map_or("application/json", String::as_str)
    }

    fn is_json(&self) -> bool {
        let media = self
            .content_type()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim();
        media == "application/json" || media.ends_with("+json")
    }
}

/// Runs `plugins` in order; on failure, which plugin and why.
pub fn run(
    plugins: &[EndpointPlugin],
    mut req: Outbound,
    max_body: usize,
) -> Result<Outbound, (usize, PluginError)> {
    for (index, plugin) in plugins.iter().enumerate() {
        let input = input(&req);
        let out = match plugin {
            EndpointPlugin::Function { code, timeout_ms } => {
                js::call(code, &input, settings::timeout(*timeout_ms))
            }
            EndpointPlugin::Wasm { module, timeout_ms } => settings::module_bytes(module)
                .map_err(PluginError::Failed)
                .and_then(|bytes| wasm::call(&bytes, &input, settings::timeout(*timeout_ms))),
        }
        .and_then(|out| apply(out, &mut req, max_body))
        .map_err(|e| (index, e));
        out?;
    }
    Ok(req)
}

/// What a plugin is called with.
pub fn input(req: &Outbound) -> Value {
    json!({
        "method": "POST",
        "url": req.url,
        "headers": req.headers,
        "body": crate::body_value(&req.body, req.is_json()),
        "event": req.event,
    })
}

fn apply(out: Value, req: &mut Outbound, max_body: usize) -> Result<(), PluginError> {
    let Value::Object(mut out) = out else {
        return match out {
            Value::Null => Ok(()),
            _ => Err(PluginError::Failed(
                "handle must return an object, or nothing to leave the request as it is".into(),
            )),
        };
    };
    if let Some(headers) = out.remove("headers") {
        let headers: BTreeMap<String, String> = crate::string_map(headers, "headers")?
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        for name in headers.keys() {
            if RESERVED_HEADERS.contains(&name.as_str()) || name.starts_with("webhook-") {
                return Err(PluginError::Failed(format!(
                    "header {name} is set by hookrelay; a plugin cannot set it"
                )));
            }
        }
        req.headers = headers;
    }
    if let Some(body) = out.remove("body") {
        req.body = crate::body_bytes(body, req.is_json(), max_body)?;
    }
    if let Some(query) = out.remove("query") {
        let query = crate::string_map(query, "query")?;
        let mut url = url::Url::parse(&req.url)
            .map_err(|e| PluginError::Failed(format!("the URL is not valid: {e}")))?;
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !query.contains_key(k.as_ref()))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(kept)
            .extend_pairs(&query);
        if url.query() == Some("") {
            url.set_query(None);
        }
        req.url = url.into();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> Outbound {
        Outbound {
            url: "https://example.com/hook?a=1".into(),
            headers: BTreeMap::from([("content-type".into(), "application/json".into())]),
            body: br#"{"ref":"refs/heads/main","commits":[{},{}]}"#.to_vec(),
            event: json!({"id": "evt_1", "type": "push"}),
        }
    }

    #[test]
    fn reshapes_body_headers_and_query() {
        let slack = EndpointPlugin::Function {
            code:
                "function handle(r) { return { body: { text: r.event.type + ' to ' + r.body.ref + \
                   ' (' + r.body.commits.length + ' commits)' }, headers: Object.assign(r.headers, \
                   {'x-shape': 'slack'}), query: {b: '2'} } }"
                    .into(),
            timeout_ms: None,
        };
        let out = run(&[slack], req(), 1024).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&out.body).unwrap(),
            json!({"text": "push to refs/heads/main (2 commits)"})
        );
        assert_eq!(
            out.headers.get("x-shape").map(String::as_str),
            Some("slack")
        );
        assert_eq!(out.url, "https://example.com/hook?a=1&b=2");
    }

    #[test]
    fn wasm_and_refusals() {
        let wrap = EndpointPlugin::Wasm {
            module: include_str!("../examples/wrap.wat").into(),
            timeout_ms: None,
        };
        let out = run(&[wrap], req(), 4096)
            .map_err(|e| e.1.to_string())
            .unwrap();
        let body: Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(body["request"]["event"]["id"], "evt_1");
        let sneaky = EndpointPlugin::Function {
            code: "function handle(r) { return {headers: {'webhook-signature': 'v1,forged'}} }"
                .into(),
            timeout_ms: None,
        };
        assert!(matches!(
            run(&[sneaky], req(), 1024),
            Err((0, PluginError::Failed(_)))
        ));
    }
}
