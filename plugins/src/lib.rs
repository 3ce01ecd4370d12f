//! Plugins: what a source runs on each request before its event is stored, what an endpoint
//! runs on each request before it is signed, and the content filters that choose endpoints.
//! The settings need nothing else; running them needs the `engines` feature.

pub mod content_filter;
pub mod settings;

#[cfg(feature = "engines")]
pub mod inbound;
#[cfg(feature = "engines")]
pub mod js;
#[cfg(feature = "engines")]
pub mod outbound;
#[cfg(feature = "engines")]
pub mod schema;
#[cfg(feature = "engines")]
pub mod wasm;

pub use content_filter::{Condition, Subject};
pub use settings::{EndpointPlugin, SourcePlugin};

/// Why a plugin did not give a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    #[error("the plugin ran past its time limit")]
    Timeout,
    #[error("the plugin ran out of memory or stack")]
    Memory,
    #[error("syntax error at line {line}, column {column}: {message}")]
    Syntax {
        line: u32,
        column: u32,
        message: String,
    },
    #[error("{0}")]
    Failed(String),
}

/// A body as a plugin sees it: parsed JSON, or text for anything else (invalid UTF-8
/// replaced).
#[cfg(feature = "engines")]
fn body_value(body: &[u8], is_json: bool) -> serde_json::Value {
    if is_json && let Ok(v) = serde_json::from_slice(body) {
        return v;
    }
    serde_json::Value::String(String::from_utf8_lossy(body).into_owned())
}

/// A body a plugin answered, as bytes: a string stays text unless the body is JSON; anything
/// else is serialized. At most `max` bytes.
#[cfg(feature = "engines")]
fn body_bytes(body: serde_json::Value, is_json: bool, max: usize) -> Result<Vec<u8>, PluginError> {
    let bytes = match body {
        serde_json::Value::String(s) if !is_json => s.into_bytes(),
        other => serde_json::to_vec(&other).map_err(|e| PluginError::Failed(e.to_string()))?,
    };
    if bytes.len() > max {
        return Err(PluginError::Failed(format!(
            "the new body is {} bytes; the limit is {max}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// An object of strings (headers, query parameters).
#[cfg(feature = "engines")]
fn string_map(
    v: serde_json::Value,
    what: &str,
) -> Result<std::collections::BTreeMap<String, String>, PluginError> {
    let serde_json::Value::Object(map) = v else {
        return Err(PluginError::Failed(format!(
            "{what} must be an object of strings"
        )));
    };
    map.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            serde_json::Value::Number(n) => Ok((k, n.to_string())),
            serde_json::Value::Bool(b) => Ok((k, b.to_string())),
            _ => Err(PluginError::Failed(format!("{what}.{k} must be a string"))),
        })
        .collect()
}
