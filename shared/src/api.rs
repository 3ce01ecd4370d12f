//! JSON answers of the HTTP functions (ingest, admin): one error shape everywhere,
//! `{"error": {"code": "…", "message": "…", "field": "…"}}`, and never a 500 for a client's
//! mistake.

use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Field-level messages of a validation failure, by field name.
    pub fields: std::collections::BTreeMap<String, String>,
    /// For a 405: the methods the route accepts.
    pub allow: Option<&'static str>,
    /// For a 429: seconds until a request may go (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: Default::default(),
            allow: None,
            retry_after: None,
        }
    }

    /// 400 with one message per offending field.
    pub fn invalid_fields(fields: std::collections::BTreeMap<String, String>) -> Self {
        let mut e = Self::bad_request("validation_failed", "some fields are invalid");
        e.fields = fields;
        e
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 429: over a rate limit; `Retry-After` says when to come back (whole seconds, at
    /// least one).
    pub fn too_many_requests(message: impl Into<String>, wait: std::time::Duration) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        e.retry_after = Some(wait.as_millis().div_ceil(1000).max(1) as u64);
        e
    }

    /// Our dependency failed, not the caller: 503 tells senders to retry later.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    pub fn into_response(self) -> Response<String> {
        #[derive(Serialize)]
        struct Detail<'a> {
            code: &'a str,
            message: &'a str,
            /// The first offending field, when the error is about one.
            #[serde(skip_serializing_if = "Option::is_none")]
            field: Option<&'a str>,
            #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
            fields: &'a std::collections::BTreeMap<String, String>,
        }
        #[derive(Serialize)]
        struct Body<'a> {
            error: Detail<'a>,
        }
        let body = serde_json::to_string(&Body {
            error: Detail {
                code: self.code,
                message: &self.message,
                field: self.fields.keys().next().map(String::as_str),
                fields: &self.fields,
            },
        })
        .unwrap_or_default();
        let mut resp = json_raw(self.status, body);
        if let Some(allow) = self.allow {
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        } else if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        resp
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<String> {
    match serde_json::to_string(value) {
        Ok(body) => json_raw(status, body),
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("response could not be encoded: {e}"),
        )
        .into_response(),
    }
}

pub fn json_raw(status: StatusCode, body: String) -> Response<String> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub fn text(status: StatusCode, body: &str) -> Response<String> {
    let mut resp = Response::new(body.to_owned());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

pub fn method_not_allowed(allow: &'static str) -> Response<String> {
    let mut resp = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this route accepts {allow}"),
    )
    .into_response();
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}
