//! What a source's and an endpoint's plugins are, as the API, config files and the table hold
//! them, and the bounds every one of them is checked against when it is saved.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Plugins of one source or endpoint, at most.
pub const MAX_PLUGINS: usize = 8;
/// A script's source text, at most.
pub const MAX_SCRIPT_BYTES: usize = 64 * 1024;
/// A JSON Schema, serialized, at most.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;
/// A WebAssembly module (binary, or its text format), at most. Stored base64-encoded in the
/// source's or endpoint's item, under DynamoDB's 400 KB.
pub const MAX_MODULE_BYTES: usize = 128 * 1024;
/// All of one source's or endpoint's plugins together, serialized, at most: they are stored
/// in its item, which DynamoDB limits to 400 KB.
pub const MAX_TOTAL_BYTES: usize = 192 * 1024;
/// A plugin's run time when it sets none, and the most it may set.
pub const DEFAULT_TIMEOUT_MS: u32 = 100;
pub const MAX_TIMEOUT_MS: u32 = 1000;
/// All of one chain's time limits together, at most: what a request may spend in plugins.
pub const MAX_CHAIN_MS: u32 = 2000;

/// An inbound plugin: run on a source's requests after verification, before the event is
/// stored, in the order listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourcePlugin {
    /// A JavaScript `handle(request)` that may reject, drop or change the request.
    Function {
        code: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u32>,
    },
    /// The body must be valid against this JSON Schema (2020-12 unless `$schema` names an
    /// older draft); otherwise `400 schema_validation_failed`.
    Jsonschema { schema: Value },
}

/// An outbound plugin: run on each request to an endpoint before it is signed, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum EndpointPlugin {
    /// A JavaScript `handle(request)` that reshapes the body, headers or query.
    Function {
        code: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u32>,
    },
    /// A WebAssembly module with the ABI of `docs/plugins.md`: base64 of the binary, or the
    /// text format (`(module …)`).
    Wasm {
        module: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u32>,
    },
}

/// How long a plugin may run.
pub fn timeout(ms: Option<u32>) -> std::time::Duration {
    std::time::Duration::from_millis(u64::from(
        ms.unwrap_or(DEFAULT_TIMEOUT_MS).min(MAX_TIMEOUT_MS),
    ))
}

/// Why a plugin's settings are refused: the field (relative to the plugin) and the reason.
pub fn timeout_problem(ms: Option<u32>) -> Option<(String, String)> {
    match ms {
        Some(ms) if ms == 0 || ms > MAX_TIMEOUT_MS => Some((
            "timeout_ms".to_owned(),
            format!("must be 1 to {MAX_TIMEOUT_MS} milliseconds"),
        )),
        _ => None,
    }
}

/// A WebAssembly module's bytes as saved: the text format as is, else base64 of the binary.
pub fn module_bytes(module: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    if module.contains("(module") {
        return Ok(module.as_bytes().to_vec());
    }
    base64::engine::general_purpose::STANDARD
        .decode(module.trim())
        .map_err(|e| format!("is neither the text format nor base64 of a binary module: {e}"))
}
