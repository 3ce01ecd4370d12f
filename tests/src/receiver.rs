//! A real HTTP receiver on 127.0.0.1 that records what it is sent and answers as a test
//! scripts: status, headers, body, delay.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

#[derive(Debug, Clone)]
pub struct Delivery {
    pub path: String,
    /// The query string, without `?` (empty when there is none).
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Delivery {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }

    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

#[derive(Default)]
struct Shared {
    seen: Vec<Delivery>,
    script: VecDeque<Reply>,
    fallback: Option<Reply>,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    shared: Arc<Mutex<Shared>>,
}

impl Receiver {
    /// Starts on a free port; answers 200 unless scripted.
    pub async fn start() -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        // Deliveries carry payloads up to 6 MB.
        let app = Router::new()
            .fallback(any(record))
            .with_state(shared.clone())
            .layer(axum::extract::DefaultBodyLimit::max(16 * 1024 * 1024));
        let addr = crate::serve_on_loopback(app).await;
        Self {
            url: format!("http://{addr}/hook"),
            shared,
        }
    }

    /// The next statuses, in order; after them, `then` forever.
    pub fn script(&self, statuses: &[u16], then: u16) {
        self.replies(
            statuses.iter().map(|s| Reply::status(*s)).collect(),
            Reply::status(then),
        );
    }

    /// The next answers, in order; after them, `then` forever.
    pub fn replies(&self, replies: Vec<Reply>, then: Reply) {
        let mut s = self.shared.lock().expect("lock");
        s.script = replies.into();
        s.fallback = Some(then);
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.lock().expect("lock").seen.clone()
    }
}

async fn record(
    State(shared): State<Arc<Mutex<Shared>>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = {
        let mut s = shared.lock().expect("lock");
        s.seen.push(Delivery {
            path: uri.path().to_owned(),
            query: uri.query().unwrap_or_default().to_owned(),
            headers,
            body,
        });
        s.script
            .pop_front()
            .or_else(|| s.fallback.clone())
            .unwrap_or_else(|| Reply::status(200))
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut resp = (
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK),
        reply.body,
    )
        .into_response();
    for (k, v) in reply.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}
