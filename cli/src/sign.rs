//! How senders sign webhooks, written from the providers' documentation (independently of the
//! ingest function's verifiers, which the tests check against it): what `hookrelay send`
//! signs with, for requests signed at the current time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub fn hmac256(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length.
    let Ok(mut m) = Hmac::<Sha256>::new_from_slice(key) else {
        return Vec::new();
    };
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// A Standard Webhooks signature (`v1,<base64>`) with a `whsec_…` secret.
pub fn standard_webhooks(secret: &str, id: &str, ts: i64, body: &[u8]) -> Result<String, String> {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|e| format!("the secret is not whsec_ followed by base64: {e}"))?;
    let mut signed = format!("{id}.{ts}.").into_bytes();
    signed.extend_from_slice(body);
    Ok(format!("v1,{}", STANDARD.encode(hmac256(&key, &signed))))
}

pub fn github(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac256(secret.as_bytes(), body)))
}

pub fn stripe(secret: &str, t: i64, body: &[u8]) -> String {
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    format!(
        "t={t},v1={}",
        hex::encode(hmac256(secret.as_bytes(), &signed))
    )
}

pub fn shopify(secret: &str, body: &[u8]) -> String {
    STANDARD.encode(hmac256(secret.as_bytes(), body))
}

pub fn slack(secret: &str, ts: i64, body: &[u8]) -> String {
    let mut signed = format!("v0:{ts}:").into_bytes();
    signed.extend_from_slice(body);
    format!("v0={}", hex::encode(hmac256(secret.as_bytes(), &signed)))
}

pub fn lark(encrypt_key: &str, ts: i64, nonce: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(format!("{ts}{nonce}{encrypt_key}").as_bytes());
    h.update(body);
    hex::encode(h.finalize())
}
