//! One module per family of commands.

pub mod config;
pub mod dlq;
pub mod history;
pub mod resources;
pub mod send;
pub mod tail;

use serde_json::Value;

/// The `data` of a list answer.
pub(crate) fn data(page: &Value) -> Vec<Value> {
    page["data"].as_array().cloned().unwrap_or_default()
}

/// A query string from the options that are set.
pub(crate) fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    let q = q.finish();
    if q.is_empty() { q } else { format!("?{q}") }
}
