//! Optimistic concurrency on the admin API. Workspaces, sources and endpoints carry a
//! `version`, raised by every write; reads answer it as a strong `ETag` (`"7"`). A `PUT` or
//! `DELETE` with `If-Match` is made only if the resource is still at that version, else
//! `412`. Without `If-Match` a write is still conditional on the version the call read:
//! when another write (a rotation, a deactivation, a config sync) comes in between, it
//! answers `409 conflict` rather than undo it.

use hookrelay_shared::api::ApiError;
use http::{HeaderValue, Response, StatusCode, header};
use lambda_http::Request;

/// What `If-Match` allows: any version (`*`, or no header), or one of those listed.
#[derive(Debug, Clone, PartialEq)]
pub enum IfMatch {
    Any,
    Versions(Vec<u64>),
}

impl IfMatch {
    pub fn of(req: &Request) -> Result<Self, ApiError> {
        let Some(value) = req.headers().get(header::IF_MATCH) else {
            return Ok(IfMatch::Any);
        };
        let text = value.to_str().map_err(|_| bad_if_match())?.trim();
        if text == "*" {
            return Ok(IfMatch::Any);
        }
        let versions = text
            .split(',')
            .map(|tag| {
                // Weak tags never match under If-Match (RFC 9110 §13.1.1), but a client
                // that sends one means the same version: compare it strongly anyway.
                let tag = tag.trim().trim_start_matches("W/");
                tag.strip_prefix('"')
                    .and_then(|t| t.strip_suffix('"'))
                    .and_then(|t| t.parse::<u64>().ok())
                    .ok_or_else(bad_if_match)
            })
            .collect::<Result<Vec<u64>, ApiError>>()?;
        Ok(IfMatch::Versions(versions))
    }

    pub fn is_given(&self) -> bool {
        matches!(self, IfMatch::Versions(_))
    }

    /// `412` unless the resource at `current` is one `If-Match` allows.
    pub fn check(&self, current: u64) -> Result<(), ApiError> {
        match self {
            IfMatch::Versions(v) if !v.contains(&current) => Err(precondition_failed(current)),
            _ => Ok(()),
        }
    }

    /// What a failed write answers: a write that lost a race is `412` when the caller named
    /// a version (theirs is stale now) and `409 conflict` when not. It is never made again
    /// on the fresh item: the body was written against what the caller read, and applying it
    /// to what a rotation or a deactivation left would undo that.
    pub fn on_write_error(&self, e: ApiError) -> ApiError {
        if e.code == CONFLICT && self.is_given() {
            return ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                "the resource changed while it was written; read it again",
            );
        }
        e
    }
}

/// The code of a write that found another version than it read.
pub const CONFLICT: &str = "conflict";

/// What a store conflict answers when it is not retried.
pub fn conflict() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "conflict",
        "the resource changed while it was written; read it again and retry",
    )
}

fn bad_if_match() -> ApiError {
    let mut e = ApiError::bad_request(
        "invalid_if_match",
        "If-Match must be * or a list of ETags as this API gives them (\"3\")",
    );
    e.fields
        .insert("If-Match".into(), "not an ETag this API gives".into());
    e
}

fn precondition_failed(current: u64) -> ApiError {
    ApiError::new(
        StatusCode::PRECONDITION_FAILED,
        "precondition_failed",
        format!("the resource changed: its ETag is now \"{current}\"; read it again"),
    )
}

/// Adds the resource's `ETag`.
pub fn with_etag(mut resp: Response<String>, version: u64) -> Response<String> {
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(if_match: Option<&str>) -> Request {
        let mut b = http::Request::builder().uri("/x");
        if let Some(v) = if_match {
            b = b.header("if-match", v);
        }
        b.body(lambda_http::Body::Empty).unwrap()
    }

    #[test]
    fn parses_etags_and_checks_versions() {
        assert_eq!(IfMatch::of(&req(None)).unwrap(), IfMatch::Any);
        assert_eq!(IfMatch::of(&req(Some("*"))).unwrap(), IfMatch::Any);
        let m = IfMatch::of(&req(Some("\"3\", W/\"4\""))).unwrap();
        assert_eq!(m, IfMatch::Versions(vec![3, 4]));
        assert!(m.check(3).is_ok() && m.check(4).is_ok());
        assert_eq!(
            m.check(5).unwrap_err().status,
            StatusCode::PRECONDITION_FAILED
        );
        assert!(IfMatch::of(&req(Some("3"))).is_err());
        assert!(IfMatch::of(&req(Some("\"x\""))).is_err());
    }
}
