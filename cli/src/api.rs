//! The admin API over HTTP: a bearer key, JSON answers, and errors that say what the API said.

use std::time::Duration;

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The API answered an error (`{"error": {"code", "message", "fields"}}`).
    #[error("{status} {code}: {message}{fields}")]
    Api {
        status: u16,
        code: String,
        message: String,
        fields: String,
    },
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{0}")]
    Usage(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Api { .. } => 1,
            CliError::Usage(_) => 2,
            CliError::Unreachable { .. } => 3,
        }
    }
}

pub struct Api {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
    pub workspace: String,
}

/// What a call answered: the status and the body (JSON when it is JSON).
pub struct Answer {
    pub status: u16,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| Value::String(self.text.clone()))
    }
}

impl Api {
    pub fn new(base: &str, key: Option<&str>, workspace: &str) -> Result<Self, CliError> {
        url::Url::parse(base).map_err(|e| CliError::Usage(format!("--url {base:?}: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| CliError::Usage(format!("the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key: key.map(str::to_owned),
            workspace: workspace.to_owned(),
        })
    }

    /// `/workspaces/{ws}` + `rest`.
    pub fn ws(&self, rest: &str) -> String {
        format!("/workspaces/{}{rest}", self.workspace)
    }

    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.call("GET", path, None, None).await.map(|a| a.json())
    }

    pub async fn post(&self, path: &str, body: Option<&Value>) -> Result<Value, CliError> {
        let body = body.map(|b| (b.to_string().into_bytes(), "application/json"));
        self.call("POST", path, body, None).await.map(|a| a.json())
    }

    /// One call with the key; an error answer becomes [`CliError::Api`].
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
        headers: Option<&[(String, String)]>,
    ) -> Result<Answer, CliError> {
        self.request(method, path, body, headers, true).await
    }

    /// A call to an ingest path: as a sender makes it, without the key.
    pub async fn ingest(
        &self,
        path: &str,
        body: Vec<u8>,
        headers: &[(String, String)],
    ) -> Result<Answer, CliError> {
        self.request(
            "POST",
            path,
            Some((body, "application/json")),
            Some(headers),
            false,
        )
        .await
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
        headers: Option<&[(String, String)]>,
        with_key: bool,
    ) -> Result<Answer, CliError> {
        let url = format!("{}{path}", self.base);
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| CliError::Usage(e.to_string()))?;
        let mut req = self.http.request(method, &url);
        if let (Some(key), true) = (&self.key, with_key) {
            req = req.bearer_auth(key);
        }
        for (k, v) in headers.unwrap_or_default() {
            req = req.header(k, v);
        }
        if let Some((bytes, content_type)) = body {
            req = req.header("content-type", content_type).body(bytes);
        }
        let resp = req.send().await.map_err(|e| CliError::Unreachable {
            url: self.base.clone(),
            reason: e.without_url().to_string(),
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| CliError::Unreachable {
            url: self.base.clone(),
            reason: e.without_url().to_string(),
        })?;
        if status >= 400 {
            return Err(api_error(status, &text));
        }
        Ok(Answer { status, text })
    }
}

fn api_error(status: u16, text: &str) -> CliError {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let e = &v["error"];
    let fields = e["fields"]
        .as_object()
        .map(|f| {
            f.iter()
                .map(|(k, v)| format!("\n  {k}: {}", v.as_str().unwrap_or_default()))
                .collect::<String>()
        })
        .unwrap_or_default();
    CliError::Api {
        status,
        code: e["code"].as_str().unwrap_or("error").to_owned(),
        message: e["message"]
            .as_str()
            .map_or_else(|| text.chars().take(500).collect(), str::to_owned),
        fields,
    }
}
