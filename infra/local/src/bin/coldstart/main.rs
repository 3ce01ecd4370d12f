//! Cold start and size of each function: the release binary's size, and the time from
//! process start to its first request for work (`GET …/runtime/invocation/next`) on a local
//! Lambda Runtime API. That span is the function's whole init: settings, AWS clients, the
//! HTTP client. Median of several runs. Build first: `cargo build --release --bins`.
//!
//! Then the first request after a cold start (`first-request.json`): the functions that answer
//! someone (ingest, delivery, admin) get one real invocation against the local AWS emulator
//! behind a TLS endpoint, so the figure includes the handshakes a first request pays on AWS,
//! once with the connections left to the first request and once opened during init (the
//! functions' default; `WARM_CONNECTIONS=false` turns it off).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::routing::{get, post};
use tokio::sync::Notify;

mod first_request;

const RUNS: usize = 9;
const FUNCTIONS: [&str; 4] = ["ingest", "delivery", "sweeper", "admin"];

/// A Lambda Runtime API for one function process at a time: `next` hands out the pending
/// events in turn (then nothing: the process waits there until it is killed), and records
/// when each was asked for and answered.
#[derive(Clone, Default)]
pub struct Runtime {
    asked: Arc<Notify>,
    asks: Arc<Mutex<Vec<Instant>>>,
    pending: Arc<Mutex<VecDeque<Vec<u8>>>>,
    answered: Arc<Notify>,
    answers: Arc<Mutex<Vec<Answer>>>,
}

/// An invocation's answer: when it came, whether it was a success, its body.
#[derive(Clone)]
pub struct Answer {
    pub at: Instant,
    pub ok: bool,
    pub body: Vec<u8>,
}

impl Runtime {
    /// The routes, served on a free port of 127.0.0.1; returns `host:port`.
    pub async fn serve(&self) -> Result<String> {
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(answered_ok),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(answered_error),
            )
            .route("/2018-06-01/runtime/init/error", post(answered_error))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let api = listener.local_addr()?.to_string();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(api)
    }

    pub fn reset(&self, events: Vec<Vec<u8>>) -> Result<()> {
        let poisoned = || anyhow::anyhow!("lock");
        self.asks.lock().map_err(|_| poisoned())?.clear();
        *self.pending.lock().map_err(|_| poisoned())? = events.into();
        self.answers.lock().map_err(|_| poisoned())?.clear();
        Ok(())
    }

    pub fn asks(&self) -> Vec<Instant> {
        self.asks.lock().map(|a| a.clone()).unwrap_or_default()
    }

    pub fn answers(&self) -> Vec<Answer> {
        self.answers.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Waits until `n` answers have come, at most `limit`.
    pub async fn until_answered(&self, n: usize, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let waiting = self.answered.notified();
            if self.answers().len() >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, waiting).await.is_err() {
                return self.answers().len() >= n;
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let runtime = Runtime::default();
    let api = runtime.serve().await?;

    // `HOOKRELAY_BIN_DIR` points elsewhere (a debug build, to try the bench quickly).
    let release = std::env::var("HOOKRELAY_BIN_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release"));
    let mut rows = Vec::new();
    println!("| function | binary size | init to first request (median of {RUNS}) | min | max |");
    println!("|---|---|---|---|---|");
    for f in FUNCTIONS {
        let bin = release.join(f);
        let size = std::fs::metadata(&bin)
            .with_context(|| format!("{} missing: cargo build --release --bins", bin.display()))?
            .len();
        let mut times = Vec::new();
        for _ in 0..RUNS {
            times.push(init_time(&bin, f, &api, &runtime).await?);
        }
        times.sort();
        println!(
            "| {f} | {:.1} MiB | {:.1} ms | {:.1} ms | {:.1} ms |",
            size as f64 / 1_048_576.0,
            ms(times[RUNS / 2]),
            ms(times[0]),
            ms(times[RUNS - 1])
        );
        rows.push(serde_json::json!({
            "function": f,
            "binary_bytes": size,
            "init_ms_median": ms(times[RUNS / 2]),
            "init_ms_min": ms(times[0]),
            "init_ms_max": ms(times[RUNS - 1]),
            "runs": RUNS,
        }));
    }
    // For `make bench`'s summary.
    let out = std::env::var("HOOKRELAY_BENCH_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/results"));
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("coldstart.json"),
        serde_json::to_string_pretty(&rows)?,
    )?;

    let first = first_request::measure(&release, &api, &runtime).await?;
    std::fs::write(
        out.join("first-request.json"),
        serde_json::to_string_pretty(&first)?,
    )?;
    Ok(())
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn init_time(bin: &Path, function: &str, api: &str, rt: &Runtime) -> Result<Duration> {
    rt.reset(Vec::new())?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(bin)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", api)
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        // Nothing listens here: init must not wait on a network call succeeding, so the
        // connections are not warmed in this figure (the first-request one has them).
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("WARM_CONNECTIONS", "false")
        .env("TABLE_NAME", "bench")
        .env("DELIVERY_QUEUE_URL", "http://127.0.0.1:9/q")
        .env("DEAD_LETTER_QUEUE_URL", "http://127.0.0.1:9/dlq")
        .env("HOOKRELAY_ADMIN_KEY", "bench-admin-key-0123456789")
        .env("AWS_LAMBDA_LOG_LEVEL", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let asked = tokio::time::timeout(Duration::from_secs(20), rt.asked.notified()).await;
    let _ = child.kill().await;
    if asked.is_err() {
        bail!("{function} never asked for work");
    }
    let at = rt.asks().first().copied().unwrap_or_else(Instant::now);
    Ok(at.duration_since(started))
}

async fn next(State(rt): State<Runtime>) -> (HeaderMap, Vec<u8>) {
    let n = match rt.asks.lock() {
        Ok(mut asks) => {
            asks.push(Instant::now());
            asks.len()
        }
        Err(_) => 0,
    };
    rt.asked.notify_one();
    let pending = rt.pending.lock().ok().and_then(|mut p| p.pop_front());
    let Some(event) = pending else {
        // No work: the function waits here until it is killed.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return (HeaderMap::new(), Vec::new());
    };
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
        + 30_000;
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("lambda-runtime-aws-request-id", format!("bench-{n}")),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:000000000000:function:bench".to_owned(),
        ),
        ("content-type", "application/json".to_owned()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    (headers, event)
}

fn record(rt: &Runtime, ok: bool, body: &[u8]) {
    if let Ok(mut a) = rt.answers.lock() {
        a.push(Answer {
            at: Instant::now(),
            ok,
            body: body.to_vec(),
        });
    }
    rt.answered.notify_one();
}

async fn answered_ok(State(rt): State<Runtime>, body: axum::body::Bytes) -> axum::http::StatusCode {
    record(&rt, true, &body);
    axum::http::StatusCode::ACCEPTED
}

async fn answered_error(
    State(rt): State<Runtime>,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    record(&rt, false, &body);
    axum::http::StatusCode::ACCEPTED
}
