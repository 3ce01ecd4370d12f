//! A real HTTP receiver on 127.0.0.1 that records what it is sent and answers with the
//! statuses a test scripts.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::any;

#[derive(Debug, Clone)]
pub struct Delivery {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Default)]
struct Shared {
    seen: Vec<Delivery>,
    script: VecDeque<u16>,
    fallback: Option<u16>,
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
        let app = Router::new()
            .fallback(any(record))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}/hook"),
            shared,
        }
    }

    /// The next answers, in order; after them, `then` forever.
    pub fn script(&self, statuses: &[u16], then: u16) {
        let mut s = self.shared.lock().expect("lock");
        s.script = statuses.iter().copied().collect();
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
) -> StatusCode {
    let mut s = shared.lock().expect("lock");
    s.seen.push(Delivery {
        path: uri.path().to_owned(),
        headers,
        body,
    });
    let code = s.script.pop_front().or(s.fallback).unwrap_or(200);
    StatusCode::from_u16(code).unwrap_or(StatusCode::OK)
}
