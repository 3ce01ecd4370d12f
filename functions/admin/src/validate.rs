//! Field-level validation of what callers send.

use std::collections::BTreeMap;

use hookrelay_plugins::settings;
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
        if value.trim().is_empty() || value.chars().count() > 128 {
            self.add(field, "must be 1 to 128 characters");
        } else if value.chars().any(char::is_control) {
            self.add(field, "must not contain control characters");
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

    /// Refuses a URL on one of this deployment's own hosts (`own`, host and port): a delivery
    /// there comes back as a new event, and two such endpoints feed each other for ever.
    pub fn not_own_host(&mut self, field: &str, value: &str, own: &[(String, u16)]) {
        let Ok(u) = url::Url::parse(value) else {
            return;
        };
        let host = u
            .host_str()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_ascii_lowercase();
        let port = u.port_or_known_default().unwrap_or(443);
        if own.iter().any(|(h, p)| *h == host && *p == port) {
            self.add(
                field,
                "points at this hookrelay deployment itself; deliveries there would loop",
            );
        }
    }

    pub fn rate_limit(
        &mut self,
        field: &str,
        limit: Option<&hookrelay_shared::rate_limit::RateLimit>,
    ) {
        if let Some(problem) = limit.and_then(|l| l.problem()) {
            self.add(field, problem);
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

    /// A custom mount path: a plain absolute path that no API route already owns.
    pub fn mount_path(&mut self, field: &str, path: &str) {
        let reserved = ["/in", "/workspaces", "/healthz", "/dlq", "/openapi.json"];
        let ok_chars = path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-_.~".contains(c));
        if !path.starts_with('/')
            || path.len() < 2
            || path.len() > 256
            || !ok_chars
            || path.contains("//")
        {
            self.add(
                field,
                "must be an absolute path of letters, digits and / - _ . ~",
            );
        } else if reserved
            .iter()
            .any(|r| path == *r || path.starts_with(&format!("{r}/")))
        {
            self.add(field, "is reserved by the API");
        }
    }

    /// Secrets present, header names valid, Standard Webhooks secrets decodable.
    pub fn verification(&mut self, field: &str, v: &hookrelay_shared::Verification) {
        use hookrelay_shared::Verification as V;
        let mut secret = |name: &str, s: &str| {
            if s.is_empty() || s.len() > 1024 {
                self.add(format!("{field}.{name}"), "must be 1 to 1024 characters");
            }
        };
        match v {
            V::None => {}
            V::Github { secret: s }
            | V::Stripe { secret: s }
            | V::Shopify { secret: s }
            | V::Slack { secret: s } => secret("secret", s),
            V::StandardWebhooks { secret: s } => {
                if hookrelay_shared::signature::decode_secret(s).is_err() {
                    self.add(
                        format!("{field}.secret"),
                        "must be whsec_ followed by base64",
                    );
                }
            }
            V::Hmac {
                header, secret: s, ..
            } => {
                secret("secret", s);
                self.header_name(&format!("{field}.header"), header);
            }
            V::BasicAuth { username, password } => {
                secret("username", username);
                secret("password", password);
            }
            V::ApiKey { header, value } => {
                secret("value", value);
                self.header_name(&format!("{field}.header"), header);
            }
            V::Lark {
                verification_token,
                encrypt_key,
            } => {
                if verification_token.is_none() && encrypt_key.is_none() {
                    self.add(
                        field,
                        "a Lark source needs a verification_token or an encrypt_key",
                    );
                }
            }
        }
    }

    pub fn header_name(&mut self, field: &str, name: &str) {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            self.add(field, "is not a valid HTTP header name");
        }
    }

    /// An endpoint's own headers go out with, and are recorded in, every attempt: bounded so
    /// that they never make a request refused or an attempt too large to store.
    pub fn headers(&mut self, field: &str, headers: &std::collections::BTreeMap<String, String>) {
        const RESERVED: [&str; 6] = [
            "content-type",
            "content-length",
            "host",
            "user-agent",
            "webhook-id",
            "webhook-timestamp",
        ];
        if headers.len() > MAX_HEADERS {
            self.add(field, format!("must set at most {MAX_HEADERS} headers"));
        }
        let total: usize = headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        if total > MAX_HEADER_BYTES {
            self.add(
                field,
                format!("must be at most {MAX_HEADER_BYTES} bytes of names and values in all"),
            );
        }
        for (name, value) in headers {
            let key = format!("{field}.{name}");
            let lower = name.to_ascii_lowercase();
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                self.add(key, "is not a valid HTTP header name");
            } else if RESERVED.contains(&lower.as_str())
                || lower.starts_with("webhook-")
                || lower == hookrelay_shared::hops::HEADER
                || lower == hookrelay_shared::trace_context::TRACEPARENT
                || lower == hookrelay_shared::trace_context::TRACESTATE
            {
                self.add(key, "is set by hookrelay and cannot be overridden");
            } else if http::HeaderValue::from_str(value).is_err() {
                self.add(key, "is not a valid HTTP header value");
            } else if value.len() > MAX_HEADER_VALUE {
                self.add(key, format!("must be at most {MAX_HEADER_VALUE} bytes"));
            }
        }
    }
}

impl Problems {
    /// How an endpoint receives events: batch bounds, and a Lark bot's templates.
    pub fn delivery(
        &mut self,
        kind: &hookrelay_shared::EndpointKind,
        lark: Option<&hookrelay_shared::LarkBot>,
        delivery: Option<&hookrelay_shared::DeliveryConfig>,
    ) {
        use hookrelay_shared::{BatchConfig, DeliveryMode, EndpointKind};
        let batching = delivery.is_some_and(|d| d.mode == DeliveryMode::Batch);
        if let Some(d) = delivery {
            match (&d.mode, &d.batch) {
                (DeliveryMode::Single, Some(_)) => {
                    self.add("delivery.batch", "is only read with mode: batch")
                }
                (DeliveryMode::Batch, Some(b)) => {
                    if !(1..=BatchConfig::MAX_SIZE).contains(&b.size) {
                        self.add(
                            "delivery.batch.size",
                            format!("must be 1 to {} events", BatchConfig::MAX_SIZE),
                        );
                    }
                    if !(1..=BatchConfig::MAX_INTERVAL).contains(&b.interval) {
                        self.add(
                            "delivery.batch.interval",
                            format!("must be 1 to {} seconds", BatchConfig::MAX_INTERVAL),
                        );
                    }
                }
                _ => {}
            }
            match (d.ordering, &d.ordering_key) {
                (hookrelay_shared::DeliveryOrdering::Unordered, Some(_)) => {
                    self.add("delivery.ordering_key", "is only read with ordering: fifo")
                }
                (hookrelay_shared::DeliveryOrdering::Fifo, key) => {
                    if batching {
                        // A batch is one request for many events: batches keep their own
                        // order (see delivery.batch).
                        self.add("delivery.ordering", "fifo is for mode: single");
                    }
                    if let Some(Err(e)) = key.as_deref().map(hookrelay_shared::ordering::check_key)
                    {
                        self.add("delivery.ordering_key", e);
                    }
                }
                _ => {}
            }
        }
        match kind {
            EndpointKind::Webhook => {
                if lark.is_some() {
                    self.add("lark", "is only read with kind: lark_bot");
                }
            }
            EndpointKind::LarkBot => {
                if batching {
                    self.add("delivery.mode", "a Lark bot gets one message per event");
                }
                if let Some(bot) = lark {
                    for (field, template) in
                        [("lark.title", &bot.title), ("lark.template", &bot.template)]
                    {
                        if let Some(t) = template {
                            if t.len() > 4096 {
                                self.add(field, "must be at most 4096 bytes");
                            } else if let Err(e) =
                                hookrelay_shared::outbound::lark::check_template(t)
                            {
                                self.add(field, format!("is not a valid template: {e}"));
                            }
                        }
                    }
                    if bot.secret.as_deref().is_some_and(str::is_empty) {
                        self.add("lark.secret", "must not be empty when set");
                    }
                }
            }
        }
    }
}

impl Problems {
    /// A source's plugins: each compiles, within its size and time bounds.
    pub fn source_plugins(&mut self, field: &str, plugins: &[hookrelay_plugins::SourcePlugin]) {
        use hookrelay_plugins::SourcePlugin as P;
        self.plugin_count(field, plugins.len());
        let mut budget = Vec::new();
        for (i, plugin) in plugins.iter().enumerate() {
            let at = format!("{field}[{i}]");
            match plugin {
                P::Function { code, timeout_ms } => {
                    budget.push(*timeout_ms);
                    self.script(&at, code, *timeout_ms);
                }
                P::Jsonschema { schema } => {
                    let size = serde_json::to_vec(schema).map_or(usize::MAX, |b| b.len());
                    if size > settings::MAX_SCHEMA_BYTES {
                        self.add(
                            format!("{at}.schema"),
                            format!("must be at most {} bytes", settings::MAX_SCHEMA_BYTES),
                        );
                    } else if let Err(e) = hookrelay_plugins::schema::check(schema) {
                        self.add(
                            format!("{at}.schema"),
                            format!("is not a valid JSON Schema: {e}"),
                        );
                    }
                }
            }
        }
        self.chain_budget(field, &budget);
        self.total_size(field, plugins);
    }

    /// An endpoint's plugins: each compiles (a module exports the ABI), within its bounds.
    pub fn endpoint_plugins(&mut self, field: &str, plugins: &[hookrelay_plugins::EndpointPlugin]) {
        use hookrelay_plugins::EndpointPlugin as P;
        self.plugin_count(field, plugins.len());
        let mut budget = Vec::new();
        for (i, plugin) in plugins.iter().enumerate() {
            let at = format!("{field}[{i}]");
            match plugin {
                P::Function { code, timeout_ms } => {
                    budget.push(*timeout_ms);
                    self.script(&at, code, *timeout_ms);
                }
                P::Wasm { module, timeout_ms } => {
                    budget.push(*timeout_ms);
                    if let Some((f, why)) = settings::timeout_problem(*timeout_ms) {
                        self.add(format!("{at}.{f}"), why);
                    }
                    match settings::module_bytes(module) {
                        Err(why) => self.add(format!("{at}.module"), why),
                        Ok(bytes) if bytes.len() > settings::MAX_MODULE_BYTES => self.add(
                            format!("{at}.module"),
                            format!("must be at most {} bytes", settings::MAX_MODULE_BYTES),
                        ),
                        Ok(bytes) => {
                            if let Err(e) = hookrelay_plugins::wasm::check(&bytes) {
                                self.add(format!("{at}.module"), e.to_string());
                            }
                        }
                    }
                }
            }
        }
        self.chain_budget(field, &budget);
        self.total_size(field, plugins);
    }

    fn total_size<T: serde::Serialize>(&mut self, field: &str, plugins: &[T]) {
        let size = serde_json::to_vec(plugins).map_or(usize::MAX, |b| b.len());
        if size > settings::MAX_TOTAL_BYTES {
            self.add(
                field,
                format!(
                    "the plugins are {size} bytes together; the most is {}",
                    settings::MAX_TOTAL_BYTES
                ),
            );
        }
    }

    pub fn content_filter(&mut self, field: &str, filter: Option<&hookrelay_plugins::Condition>) {
        if let Some((at, why)) = filter.and_then(hookrelay_plugins::Condition::problem) {
            let key = if at.is_empty() {
                field.to_owned()
            } else {
                format!("{field}.{at}")
            };
            self.add(key, why);
        }
    }

    fn plugin_count(&mut self, field: &str, n: usize) {
        if n > settings::MAX_PLUGINS {
            self.add(
                field,
                format!("must list at most {} plugins", settings::MAX_PLUGINS),
            );
        }
    }

    fn script(&mut self, at: &str, code: &str, timeout_ms: Option<u32>) {
        if let Some((f, why)) = settings::timeout_problem(timeout_ms) {
            self.add(format!("{at}.{f}"), why);
        }
        if code.len() > settings::MAX_SCRIPT_BYTES {
            self.add(
                format!("{at}.code"),
                format!("must be at most {} bytes", settings::MAX_SCRIPT_BYTES),
            );
        } else if let Err(e) = hookrelay_plugins::js::check(code) {
            self.add(format!("{at}.code"), e.to_string());
        }
    }

    /// A chain's time limits together stay within what one request may spend in plugins.
    fn chain_budget(&mut self, field: &str, timeouts: &[Option<u32>]) {
        let total: u32 = timeouts
            .iter()
            .map(|t| {
                t.unwrap_or(settings::DEFAULT_TIMEOUT_MS)
                    .min(settings::MAX_TIMEOUT_MS)
            })
            .sum();
        if total > settings::MAX_CHAIN_MS {
            self.add(
                field,
                format!(
                    "the plugins' time limits add up to {total} ms; the most is {} ms",
                    settings::MAX_CHAIN_MS
                ),
            );
        }
    }
}

/// An endpoint's own headers: how many, how long each value, how many bytes in all.
pub const MAX_HEADERS: usize = 20;
pub const MAX_HEADER_VALUE: usize = 2048;
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
