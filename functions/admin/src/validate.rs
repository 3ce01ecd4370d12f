//! Field-level validation of what callers send.

use std::collections::{BTreeMap, HashMap};

use hookrelay_shared::api::ApiError;
use hookrelay_shared::filter;

#[derive(Default)]
pub struct Problems(BTreeMap<String, String>);

impl Problems {
    pub fn add(&mut self, field: impl Into<String>, msg: impl Into<String>) {
        self.0.entry(field.into()).or_insert_with(|| msg.into());
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_fields(self.0))
        }
    }

    pub fn name(&mut self, field: &str, value: &str) {
        if value.trim().is_empty() || value.len() > 128 {
            self.add(field, "must be 1 to 128 characters");
        }
    }

    pub fn url(&mut self, field: &str, value: &str) {
        match url::Url::parse(value) {
            Err(e) => self.add(field, format!("is not a valid URL: {e}")),
            Ok(u) if !matches!(u.scheme(), "http" | "https") => {
                self.add(field, "must use http or https")
            }
            Ok(u) if u.host_str().is_none_or(str::is_empty) => self.add(field, "must have a host"),
            Ok(u) if !u.username().is_empty() || u.password().is_some() => {
                self.add(field, "must not carry credentials; use headers")
            }
            Ok(_) if value.len() > 2048 => self.add(field, "must be at most 2048 characters"),
            Ok(_) => {}
        }
    }

    pub fn event_filters(&mut self, field: &str, filters: &[String]) {
        if filters.is_empty() {
            self.add(field, "must list at least one event type, or \"*\"");
        }
        if filters.len() > 100 {
            self.add(field, "must list at most 100 filters");
        }
        for (i, f) in filters.iter().enumerate() {
            if let Err(why) = filter::validate(f) {
                self.add(format!("{field}[{i}]"), why);
            }
        }
    }

    pub fn schedule(&mut self, field: &str, secs: &[u64]) {
        if let Err(e) = hookrelay_shared::retry::RetryPolicy::from_seconds(secs) {
            self.add(field, e.to_string());
        }
    }

    pub fn header_name(&mut self, field: &str, name: &str) {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            self.add(field, "is not a valid HTTP header name");
        }
    }

    pub fn headers(&mut self, field: &str, headers: &HashMap<String, String>) {
        const RESERVED: [&str; 6] = [
            "content-type",
            "content-length",
            "host",
            "user-agent",
            "webhook-id",
            "webhook-timestamp",
        ];
        for (name, value) in headers {
            let key = format!("{field}.{name}");
            let lower = name.to_ascii_lowercase();
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                self.add(key, "is not a valid HTTP header name");
            } else if RESERVED.contains(&lower.as_str()) || lower.starts_with("webhook-") {
                self.add(key, "is set by hookrelay and cannot be overridden");
            } else if http::HeaderValue::from_str(value).is_err() {
                self.add(key, "is not a valid HTTP header value");
            }
        }
    }
}
