//! Lark (Feishu) event subscriptions: the signature over timestamp, nonce, encrypt key and
//! body; encrypted bodies (AES-256-CBC, key = SHA-256 of the encrypt key, IV = the first 16
//! bytes); the verification token of unsigned setups; and the URL verification challenge.

use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use hookrelay_shared::Timestamp;

use crate::verify::{Rejection, Verified, check_timestamp, header, sha256_hex};

const SIGNATURE: &str = "X-Lark-Signature";
const TIMESTAMP: &str = "X-Lark-Request-Timestamp";
const NONCE: &str = "X-Lark-Request-Nonce";

pub fn verify(
    token: Option<&str>,
    encrypt_key: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
    now: Timestamp,
    tolerance_secs: u64,
) -> Result<Verified, Rejection> {
    let signed = headers.contains_key(SIGNATURE);
    if let (Some(key), true) = (encrypt_key, signed) {
        let ts = header(headers, TIMESTAMP)?;
        let nonce = header(headers, NONCE)?;
        let sig = header(headers, SIGNATURE)?;
        check_timestamp(TIMESTAMP, ts, now, tolerance_secs)?;
        let expected = sha256_hex(&[ts.as_bytes(), nonce.as_bytes(), key.as_bytes(), body]);
        if !bool::from(
            expected
                .as_bytes()
                .ct_eq(sig.to_ascii_lowercase().as_bytes()),
        ) {
            return Err(Rejection::bad_signature(SIGNATURE));
        }
    }

    let envelope: Value = serde_json::from_slice(body).map_err(|_| Rejection {
        code: "malformed_body",
        message: "a Lark event body must be JSON".to_owned(),
    })?;
    let plaintext = match envelope.get("encrypt").and_then(Value::as_str) {
        Some(encrypted) => {
            let key = encrypt_key.ok_or_else(|| Rejection {
                code: "cannot_decrypt",
                message: "the body is encrypted but the source has no encrypt_key".to_owned(),
            })?;
            Some(decrypt(key, encrypted).ok_or_else(|| {
                Rejection {
                    code: "cannot_decrypt",
                    message:
                        "the encrypted body could not be decrypted with the source's encrypt_key"
                            .to_owned(),
                }
            })?)
        }
        None => None,
    };
    let event: Value = match &plaintext {
        Some(p) => serde_json::from_slice(p).map_err(|_| Rejection {
            code: "cannot_decrypt",
            message: "the decrypted body is not JSON".to_owned(),
        })?,
        None => envelope,
    };

    if let Some(expected) = token {
        // v2 events carry it in `header.token`, v1 events and the challenge at the top.
        let given = event
            .pointer("/header/token")
            .or_else(|| event.get("token"))
            .and_then(Value::as_str)
            .ok_or_else(|| Rejection {
                code: "invalid_token",
                message: "the verification token is missing".to_owned(),
            })?;
        if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(Rejection {
                code: "invalid_token",
                message: "the verification token does not match".to_owned(),
            });
        }
    }
    let challenge = (event.get("type").and_then(Value::as_str) == Some("url_verification"))
        .then(|| {
            event
                .get("challenge")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .flatten();
    if encrypt_key.is_some() && !signed && challenge.is_none() {
        // Lark signs every event once an encrypt key is set; only the challenge comes bare.
        return Err(Rejection::missing(SIGNATURE));
    }
    Ok(Verified {
        plaintext,
        challenge,
    })
}

/// Lark's encryption: base64 of IV (16 bytes) followed by AES-256-CBC ciphertext, keyed
/// with SHA-256 of the encrypt key.
pub fn decrypt(encrypt_key: &str, encrypted: &str) -> Option<Vec<u8>> {
    let data = STANDARD.decode(encrypted.trim()).ok()?;
    if data.len() < 32 || data.len() % 16 != 0 {
        return None;
    }
    let key = Sha256::digest(encrypt_key.as_bytes());
    let (iv, ciphertext) = data.split_at(16);
    let mut buf = ciphertext.to_vec();
    let plain = cbc::Decryptor::<aes::Aes256>::new_from_slices(&key, iv)
        .ok()?
        .decrypt_padded_mut::<Pkcs7>(&mut buf)
        .ok()?;
    Some(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example published in Lark's event subscription guide.
    #[test]
    fn decrypts_the_published_example() {
        let plain = decrypt("test key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=").unwrap();
        assert_eq!(plain, b"hello world");
        assert!(decrypt("wrong key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=").is_none());
        assert!(decrypt("test key", "bm90IGVub3VnaA==").is_none());
        assert!(decrypt("test key", "!!").is_none());
    }
}
