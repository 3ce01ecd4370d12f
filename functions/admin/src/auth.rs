//! The admin bearer key, compared in constant time.

use hookrelay_shared::api::ApiError;
use http::{HeaderMap, StatusCode, header};
use subtle::ConstantTimeEq;

#[derive(Debug, thiserror::Error)]
#[error("the admin key must be at least 16 characters")]
pub struct AdminKeyError;

pub struct AdminKey(String);

impl AdminKey {
    pub fn new(key: String) -> Result<Self, AdminKeyError> {
        if key.trim().len() < 16 {
            return Err(AdminKeyError);
        }
        Ok(Self(key.trim().to_owned()))
    }

    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let unauthorized = |msg: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", msg);
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("send `Authorization: Bearer <admin key>`"))?;
        let presented = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <admin key>`"))?;
        if bool::from(presented.as_bytes().ct_eq(self.0.as_bytes())) {
            Ok(())
        } else {
            Err(unauthorized("the key is not valid"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn checks_bearer_key() {
        let key = AdminKey::new("k".repeat(20)).unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(key.check(&h).unwrap_err().status, StatusCode::UNAUTHORIZED);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(key.check(&h).unwrap_err().status, StatusCode::UNAUTHORIZED);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer kkk"),
        );
        assert_eq!(key.check(&h).unwrap_err().status, StatusCode::UNAUTHORIZED);
        let ok = HeaderValue::from_str(&format!("Bearer {}", "k".repeat(20))).unwrap();
        h.insert(header::AUTHORIZATION, ok);
        assert!(key.check(&h).is_ok());
        assert!(AdminKey::new("short".into()).is_err());
    }
}
