//! Lark (Feishu) event subscriptions: the signature over timestamp, nonce, encrypt key and
//! body; encrypted bodies (AES-256-CBC, key = SHA-256 of the encrypt key, IV = the first 16
//! bytes); the verification token of unsigned setups; and the URL verification challenge.

use aes::cipher::block_padding::{NoPadding, Pkcs7};
use aes::cipher::{BlockDecryptMut, KeyIvInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq, ConstantTimeLess};

use hookrelay_shared::{Timestamp, Verification};

use crate::proof::{Rejection, Verified, check_timestamp, header, sha256_hex};
use crate::{provider, sparse_json};

const SIGNATURE: &str = "X-Lark-Signature";
/// The members verifying reads: the encrypted body, the verification token, the challenge.
const VERIFY_READS: &[&str] = &["/encrypt", "/header/token", "/token", "/type", "/challenge"];

/// What of a body is parsed: what verifying reads, and what identifying the event then reads
/// from the same tree.
fn reads() -> Vec<&'static str> {
    let lark = Verification::Lark {
        verification_token: None,
        encrypt_key: None,
    };
    let mut reads = VERIFY_READS.to_vec();
    reads.extend_from_slice(provider::pointers(&lark));
    reads.push(provider::ENVELOPE_TYPE);
    reads
}
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

    let envelope: Value = sparse_json::parse(body, &reads()).map_err(|_| Rejection {
        code: "malformed_body",
        message: "a Lark event body must be JSON".to_owned(),
    })?;
    let plaintext = match envelope.get("encrypt").and_then(Value::as_str) {
        Some(encrypted) => {
            let key = encrypt_key.ok_or_else(|| Rejection {
                code: "cannot_decrypt",
                message: "the body is encrypted but the source has no encrypt_key".to_owned(),
            })?;
            if !signed {
                return unsigned_encrypted(token, key, encrypted);
            }
            // The signature matched: only the key's holder made this body, so telling its
            // failures apart teaches nobody anything.
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
        Some(p) => sparse_json::parse(p, &reads()).map_err(|_| Rejection {
            code: "cannot_decrypt",
            message: "the decrypted body is not JSON".to_owned(),
        })?,
        None => envelope,
    };

    if let Some(expected) = token {
        // v2 events carry it in `header.token`, v1 events and the challenge at the top.
        let given = given_token(&event).ok_or_else(|| Rejection {
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
    let challenge = challenge_of(&event);
    if encrypt_key.is_some() && !signed && challenge.is_none() {
        // Lark signs every event once an encrypt key is set; only the challenge comes bare.
        return Err(Rejection::missing(SIGNATURE));
    }
    Ok(Verified {
        plaintext,
        challenge,
        tree: Some(event),
    })
}

/// An encrypted URL verification challenge is longer than this in no real setup; a longer
/// unsigned body is refused before any decryption.
const MAX_UNSIGNED_ENCRYPTED: usize = 1024;

/// The one answer to every unsigned encrypted request that is not a valid challenge.
fn unverifiable() -> Rejection {
    Rejection::missing(SIGNATURE)
}

/// An unsigned encrypted body can only be Lark's URL verification challenge (Lark signs
/// every event once an encrypt key is set). Whatever is wrong with it (its padding, a
/// plaintext that is not JSON, the token, not a challenge) it gets [`unverifiable`], after
/// the same steps: a different answer for each would be a padding oracle, through which
/// anyone holding a captured body could decrypt it without the key.
fn unsigned_encrypted(
    token: Option<&str>,
    key: &str,
    encrypted: &str,
) -> Result<Verified, Rejection> {
    // These depend on the request alone, not on the key or the plaintext: refusing early
    // tells the sender nothing it did not send.
    if encrypted.len() > MAX_UNSIGNED_ENCRYPTED {
        return Err(unverifiable());
    }
    let Some(mut plain) = decrypt_unpadded(key, encrypted) else {
        return Err(unverifiable());
    };
    let (pad_ok, len) = pkcs7_len(&plain);
    plain.truncate(len);
    // Parsed whether or not the padding held, so both take the same path.
    let event: Option<Value> = serde_json::from_slice(&plain).ok();
    let token_ok = match (token, event.as_ref().and_then(given_token)) {
        (None, _) => Choice::from(1),
        (Some(expected), Some(given)) => given.as_bytes().ct_eq(expected.as_bytes()),
        (Some(_), None) => Choice::from(0),
    };
    let challenge = event.as_ref().and_then(challenge_of);
    let ok = pad_ok & token_ok & Choice::from(u8::from(challenge.is_some()));
    if bool::from(ok) {
        Ok(Verified {
            plaintext: Some(plain),
            challenge,
            tree: None,
        })
    } else {
        Err(unverifiable())
    }
}

fn given_token(event: &Value) -> Option<&str> {
    event
        .pointer("/header/token")
        .or_else(|| event.get("token"))
        .and_then(Value::as_str)
}

fn challenge_of(event: &Value) -> Option<String> {
    (event.get("type").and_then(Value::as_str) == Some("url_verification"))
        .then(|| {
            event
                .get("challenge")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .flatten()
}

/// Decrypts every block without looking at the padding.
fn decrypt_unpadded(encrypt_key: &str, encrypted: &str) -> Option<Vec<u8>> {
    let data = STANDARD.decode(encrypted.trim()).ok()?;
    if data.len() < 32 || data.len() % 16 != 0 {
        return None;
    }
    let key = Sha256::digest(encrypt_key.as_bytes());
    let (iv, ciphertext) = data.split_at(16);
    let mut buf = ciphertext.to_vec();
    let len = cbc::Decryptor::<aes::Aes256>::new_from_slices(&key, iv)
        .ok()?
        .decrypt_padded_mut::<NoPadding>(&mut buf)
        .ok()?
        .len();
    buf.truncate(len);
    Some(buf)
}

/// Whether `data` (a whole number of blocks) ends in valid PKCS#7 padding, and its length
/// without it (all of it when the padding is not valid), found in constant time.
fn pkcs7_len(data: &[u8]) -> (Choice, usize) {
    let Some(&pad) = data.last() else {
        return (Choice::from(0), 0);
    };
    let mut ok = !pad.ct_eq(&0) & pad.ct_lt(&17);
    for i in 0..16u8 {
        let b = data[data.len() - 1 - usize::from(i).min(data.len() - 1)];
        ok &= !i.ct_lt(&pad) | b.ct_eq(&pad);
    }
    let cut = u8::conditional_select(&0, &pad, ok);
    (ok, data.len() - usize::from(cut))
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

    fn encrypt(key: &str, plain: &[u8], pad: bool) -> String {
        use aes::cipher::BlockEncryptMut;
        let key = Sha256::digest(key.as_bytes());
        let iv = [7u8; 16];
        let mut buf = plain.to_vec();
        buf.resize(plain.len() + 16, 0);
        let enc = cbc::Encryptor::<aes::Aes256>::new_from_slices(&key, &iv).unwrap();
        let ct = if pad {
            enc.encrypt_padded_mut::<Pkcs7>(&mut buf, plain.len())
                .unwrap()
                .to_vec()
        } else {
            enc.encrypt_padded_mut::<NoPadding>(&mut buf, plain.len())
                .unwrap()
                .to_vec()
        };
        STANDARD.encode([iv.as_slice(), &ct].concat())
    }

    #[test]
    fn pkcs7_is_read_like_the_library_reads_it() {
        for pad in 0..=20u8 {
            for fill in [0u8, 1, 16, pad] {
                let mut block = vec![fill; 32];
                block[31] = pad;
                let (ok, len) = pkcs7_len(&block);
                // The library unpads the last block, as `decrypt` does.
                let lib = Pkcs7::raw_unpad(&block[16..]).map(|b| b.len() + 16);
                use aes::cipher::block_padding::RawPadding;
                assert_eq!(bool::from(ok), lib.is_ok(), "pad {pad} fill {fill}");
                assert_eq!(len, lib.unwrap_or(32));
            }
        }
    }

    #[test]
    fn every_unsigned_encrypted_failure_is_the_same_refusal() {
        const KEY: &str = "k";
        let verify_body = |encrypted: String| {
            let body = serde_json::to_vec(&serde_json::json!({ "encrypt": encrypted })).unwrap();
            verify(
                Some("tok"),
                Some(KEY),
                &HeaderMap::new(),
                &body,
                Timestamp::now(),
                300,
            )
        };
        // 32 bytes ending in 0: never valid padding.
        let bad_padding = encrypt(KEY, &[b'a'; 32], false);
        let not_json = encrypt(KEY, b"not json at all", true);
        let wrong_token = encrypt(
            KEY,
            br#"{"challenge":"c","token":"nope","type":"url_verification"}"#,
            true,
        );
        let no_challenge = encrypt(KEY, br#"{"token":"tok","type":"event_callback"}"#, true);
        let mut refusals = Vec::new();
        for encrypted in [bad_padding, not_json, wrong_token, no_challenge] {
            refusals.push(verify_body(encrypted).unwrap_err());
        }
        assert!(refusals.iter().all(|r| *r == refusals[0]), "{refusals:?}");
        assert_eq!(refusals[0], Rejection::missing(SIGNATURE));

        let challenge = encrypt(
            KEY,
            br#"{"challenge":"c","token":"tok","type":"url_verification"}"#,
            true,
        );
        assert_eq!(
            verify_body(challenge).unwrap().challenge.as_deref(),
            Some("c")
        );
    }
}
