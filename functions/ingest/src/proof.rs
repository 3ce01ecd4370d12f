//! What every verifier shares: the refusal, what verification learned, and the header and
//! timestamp checks. Kept apart from `verify` so the per-provider modules it calls (Lark's)
//! can use them without depending on it.

use http::HeaderMap;
use sha2::{Digest, Sha256};

use hookrelay_shared::Timestamp;

/// Why a request was refused: 401 with this code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: &'static str,
    pub message: String,
}

impl Rejection {
    pub fn missing(header: &str) -> Self {
        Self {
            code: "missing_header",
            message: format!("the {header} header is required"),
        }
    }

    pub fn malformed(header: &str) -> Self {
        Self {
            code: "malformed_signature",
            message: format!("the {header} header is not in the expected format"),
        }
    }

    pub fn bad_signature(header: &str) -> Self {
        Self {
            code: "invalid_signature",
            message: format!("the signature in {header} does not match the body"),
        }
    }

    pub fn stale(header: &str) -> Self {
        Self {
            code: "stale_timestamp",
            message: format!("the timestamp in {header} is outside the allowed tolerance"),
        }
    }

    pub fn credentials(what: &str) -> Self {
        Self {
            code: "invalid_credentials",
            message: format!("the {what} is not valid"),
        }
    }
}

/// What verification learned besides "it is genuine".
#[derive(Debug, Default, PartialEq)]
pub struct Verified {
    /// Lark's decrypted body, when the request carried `{"encrypt": …}`.
    pub plaintext: Option<Vec<u8>>,
    /// Lark's URL verification: answer with this challenge and store nothing.
    pub challenge: Option<String>,
    /// The event as JSON, when verifying had to parse it (Lark): identifying reads the
    /// type and id from it instead of parsing the body a second time.
    pub tree: Option<serde_json::Value>,
}

pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, Rejection> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Rejection::missing(name))
}

pub fn check_timestamp(
    header: &str,
    ts: &str,
    now: Timestamp,
    tolerance_secs: u64,
) -> Result<(), Rejection> {
    let ts: i64 = ts
        .trim()
        .parse()
        .map_err(|_| Rejection::malformed(header))?;
    if now.unix_seconds().abs_diff(ts) > tolerance_secs {
        return Err(Rejection::stale(header));
    }
    Ok(())
}

/// Hex SHA-256 of the concatenated parts (Lark's signature).
pub fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    hex::encode(h.finalize())
}
