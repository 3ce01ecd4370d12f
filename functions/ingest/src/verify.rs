//! Proof of origin, per source type. Every comparison of a secret or a MAC is constant-time,
//! and a refusal says which check failed, never what was expected.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

use hookrelay_shared::{HmacAlgorithm, SignatureEncoding, Timestamp, Verification};

use crate::lark;
pub use crate::proof::{Rejection, Verified};
use crate::proof::{check_timestamp, header};

pub fn verify(
    v: &Verification,
    headers: &HeaderMap,
    body: &[u8],
    now: Timestamp,
    tolerance_secs: u64,
) -> Result<Verified, Rejection> {
    let fresh = |header: &str, ts: &str| check_timestamp(header, ts, now, tolerance_secs);
    match v {
        Verification::None => {}
        Verification::Github { secret } => {
            const H: &str = "X-Hub-Signature-256";
            let sig = header(headers, H)?;
            let hex_sig = sig
                .strip_prefix("sha256=")
                .ok_or_else(|| Rejection::malformed(H))?;
            let provided = hex::decode(hex_sig).map_err(|_| Rejection::malformed(H))?;
            check_mac(
                HmacAlgorithm::Sha256,
                secret.as_bytes(),
                &[body],
                &provided,
                H,
            )?;
        }
        Verification::Stripe { secret } => {
            const H: &str = "Stripe-Signature";
            let sig = header(headers, H)?;
            let mut t = None;
            let mut v1 = Vec::new();
            for part in sig.split(',') {
                match part.trim().split_once('=') {
                    Some(("t", ts)) => t = Some(ts),
                    Some(("v1", s)) => {
                        v1.push(hex::decode(s).map_err(|_| Rejection::malformed(H))?)
                    }
                    _ => {}
                }
            }
            let t = t.ok_or_else(|| Rejection::malformed(H))?;
            if v1.is_empty() {
                return Err(Rejection::malformed(H));
            }
            fresh(H, t)?;
            let parts: [&[u8]; 3] = [t.as_bytes(), b".", body];
            any_mac(HmacAlgorithm::Sha256, secret.as_bytes(), &parts, &v1, H)?;
        }
        Verification::StandardWebhooks { secret } => {
            let id = header(headers, "webhook-id")?;
            let ts = header(headers, "webhook-timestamp")?;
            let sig = header(headers, "webhook-signature")?;
            fresh("webhook-timestamp", ts)?;
            let key = secret.strip_prefix("whsec_").unwrap_or(secret);
            let key = STANDARD
                .decode(key)
                .map_err(|_| Rejection::credentials("source's configured secret"))?;
            let candidates: Vec<Vec<u8>> = sig
                .split(' ')
                .filter_map(|e| e.strip_prefix("v1,"))
                .filter_map(|b| STANDARD.decode(b).ok())
                .collect();
            if candidates.is_empty() {
                return Err(Rejection::malformed("webhook-signature"));
            }
            let parts: [&[u8]; 5] = [id.as_bytes(), b".", ts.as_bytes(), b".", body];
            any_mac(
                HmacAlgorithm::Sha256,
                &key,
                &parts,
                &candidates,
                "webhook-signature",
            )?;
        }
        Verification::Shopify { secret } => {
            const H: &str = "X-Shopify-Hmac-Sha256";
            let provided = STANDARD
                .decode(header(headers, H)?)
                .map_err(|_| Rejection::malformed(H))?;
            check_mac(
                HmacAlgorithm::Sha256,
                secret.as_bytes(),
                &[body],
                &provided,
                H,
            )?;
        }
        Verification::Slack { secret } => {
            const H: &str = "X-Slack-Signature";
            let ts = header(headers, "X-Slack-Request-Timestamp")?;
            let sig = header(headers, H)?;
            let provided = sig
                .strip_prefix("v0=")
                .and_then(|h| hex::decode(h).ok())
                .ok_or_else(|| Rejection::malformed(H))?;
            fresh("X-Slack-Request-Timestamp", ts)?;
            let parts: [&[u8]; 4] = [b"v0:", ts.as_bytes(), b":", body];
            check_mac(
                HmacAlgorithm::Sha256,
                secret.as_bytes(),
                &parts,
                &provided,
                H,
            )?;
        }
        Verification::Hmac {
            header: name,
            secret,
            algorithm,
            encoding,
            prefix,
        } => {
            let sig = header(headers, name)?;
            let sig = match prefix {
                Some(p) => sig
                    .strip_prefix(p.as_str())
                    .ok_or_else(|| Rejection::malformed(name))?,
                None => sig,
            };
            let provided = decode(*encoding, sig).ok_or_else(|| Rejection::malformed(name))?;
            check_mac(*algorithm, secret.as_bytes(), &[body], &provided, name)?;
        }
        Verification::BasicAuth { username, password } => {
            let auth = header(headers, "Authorization")?;
            let given = auth
                .strip_prefix("Basic ")
                .and_then(|b| STANDARD.decode(b.trim()).ok())
                .ok_or_else(|| Rejection::malformed("Authorization"))?;
            let expected = format!("{username}:{password}");
            if !bool::from(given.ct_eq(expected.as_bytes())) {
                return Err(Rejection::credentials("username or password"));
            }
        }
        Verification::ApiKey {
            header: name,
            value,
        } => {
            let given = header(headers, name)?;
            if !bool::from(given.as_bytes().ct_eq(value.as_bytes())) {
                return Err(Rejection::credentials(&format!("{name} header")));
            }
        }
        Verification::Lark {
            verification_token,
            encrypt_key,
        } => {
            return lark::verify(
                verification_token.as_deref(),
                encrypt_key.as_deref(),
                headers,
                body,
                now,
                tolerance_secs,
            );
        }
    }
    Ok(Verified::default())
}

fn decode(encoding: SignatureEncoding, s: &str) -> Option<Vec<u8>> {
    match encoding {
        SignatureEncoding::Hex => hex::decode(s).ok(),
        SignatureEncoding::Base64 => STANDARD.decode(s).ok(),
        SignatureEncoding::Base64url => URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .ok()
            .or_else(|| URL_SAFE.decode(s).ok()),
    }
}

/// HMAC of the concatenated parts, compared with `provided` in constant time.
fn check_mac(
    alg: HmacAlgorithm,
    key: &[u8],
    parts: &[&[u8]],
    provided: &[u8],
    header: &str,
) -> Result<(), Rejection> {
    any_mac(
        alg,
        key,
        parts,
        std::slice::from_ref(&provided.to_vec()),
        header,
    )
}

fn any_mac(
    alg: HmacAlgorithm,
    key: &[u8],
    parts: &[&[u8]],
    candidates: &[Vec<u8>],
    header: &str,
) -> Result<(), Rejection> {
    macro_rules! verify_with {
        ($d:ty) => {{
            let mut mac = <Hmac<$d>>::new_from_slice(key)
                .map_err(|_| Rejection::credentials("source's configured secret"))?;
            for p in parts {
                mac.update(p);
            }
            let expected = mac.finalize().into_bytes();
            candidates
                .iter()
                .any(|c| bool::from(expected.as_slice().ct_eq(c)))
        }};
    }
    let ok = match alg {
        HmacAlgorithm::Sha1 => verify_with!(Sha1),
        HmacAlgorithm::Sha256 => verify_with!(Sha256),
        HmacAlgorithm::Sha512 => verify_with!(Sha512),
    };
    if ok {
        Ok(())
    } else {
        Err(Rejection::bad_signature(header))
    }
}
