//! Secrets are shown once: in the answer that sets them (an endpoint's creation, a
//! rotation). Every other read and list, and a config dump, shows them masked
//! (`whsec_****Ab3d`). A settings write may send a mask back unchanged, which keeps the
//! stored secret, so read-modify-write and dump-then-sync round-trip without the secret. The
//! root key alone may read an endpoint's signing secret again (`GET …/secret`).

use hookrelay_shared::api::ApiError;
use hookrelay_shared::redact::{is_mask_of, looks_masked, mask};
use hookrelay_shared::{Endpoint, LarkBot, Source, Verification};

/// The endpoint with its signing secrets and bot secret masked.
pub fn endpoint(e: &Endpoint) -> Endpoint {
    let mut e = e.clone();
    e.secret = mask(&e.secret);
    e.previous_secret = e.previous_secret.as_deref().map(mask);
    if let Some(lark) = e.lark.as_mut() {
        mask_lark(lark);
    }
    e
}

/// The endpoint as its rotation answers it: the new secret in full, the old one masked.
pub fn rotated(e: &Endpoint) -> Endpoint {
    Endpoint {
        secret: e.secret.clone(),
        ..endpoint(e)
    }
}

pub fn mask_lark(lark: &mut LarkBot) {
    lark.secret = lark.secret.as_deref().map(mask);
}

/// The source with its verification secrets masked.
pub fn source(s: &Source) -> Source {
    let mut s = s.clone();
    mask_verification(&mut s.verification);
    s
}

pub fn mask_verification(v: &mut Verification) {
    for secret in v.secrets_mut() {
        *secret = mask(secret);
    }
}

/// Puts the stored secrets back where `given` sends their masks; refuses any other mask, so
/// a mask is never stored as a secret.
pub fn keep_verification(
    given: &mut Verification,
    stored: Option<&Verification>,
) -> Result<(), ApiError> {
    let mut stored = stored.cloned();
    let stored_secrets: Vec<String> = stored
        .as_mut()
        .filter(|s| s.kind() == given.kind())
        .map(|s| s.secrets_mut().into_iter().map(|x| x.clone()).collect())
        .unwrap_or_default();
    for (i, secret) in given.secrets_mut().into_iter().enumerate() {
        keep(
            secret,
            stored_secrets.get(i).map(String::as_str),
            "verification",
        )?;
    }
    Ok(())
}

/// As [`keep_verification`], for a Lark/Feishu bot's signing secret.
pub fn keep_lark(given: Option<&mut LarkBot>, stored: Option<&LarkBot>) -> Result<(), ApiError> {
    if let Some(secret) = given.and_then(|l| l.secret.as_mut()) {
        keep(
            secret,
            stored.and_then(|l| l.secret.as_deref()),
            "lark.secret",
        )?;
    }
    Ok(())
}

fn keep(given: &mut String, stored: Option<&str>, field: &str) -> Result<(), ApiError> {
    match stored {
        Some(stored) if is_mask_of(given, stored) => {
            *given = stored.to_owned();
            Ok(())
        }
        _ if looks_masked(given) => {
            let mut e = ApiError::bad_request(
                "masked_secret",
                "a masked secret is kept only when it is the mask of the secret stored there; send the secret itself",
            );
            e.fields
                .insert(field.into(), "is a mask, not a secret".into());
            Err(e)
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_returned_mask_keeps_the_stored_secret() {
        let stored = Verification::Github {
            secret: "a-very-long-github-secret-1234".into(),
        };
        let mut given = stored.clone();
        mask_verification(&mut given);
        assert_ne!(given, stored);
        keep_verification(&mut given, Some(&stored)).unwrap();
        assert_eq!(given, stored);
    }

    #[test]
    fn a_foreign_mask_is_refused() {
        let stored = Verification::Github {
            secret: "a-very-long-github-secret-1234".into(),
        };
        let mut given = Verification::Stripe {
            secret: "whsec_****1234".into(),
        };
        assert!(keep_verification(&mut given, Some(&stored)).is_err());
        let mut new = Verification::Github {
            secret: "****1234".into(),
        };
        assert!(keep_verification(&mut new, None).is_err());
    }
}
