//! Cold start and size of each function: the release binary's size, and the time from
//! process start to its first request for work (`GET …/runtime/invocation/next`) on a local
//! Lambda Runtime API. That span is the function's whole init: settings, AWS clients, the
//! HTTP client. Median of several runs. Build first: `cargo build --release --bins`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use tokio::sync::Notify;

const RUNS: usize = 9;
const FUNCTIONS: [&str; 4] = ["ingest", "delivery", "sweeper", "admin"];

#[derive(Clone, Default)]
struct Runtime {
    asked: Arc<Notify>,
    at: Arc<Mutex<Option<Instant>>>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let runtime = Runtime::default();
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .with_state(runtime.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api = listener.local_addr()?.to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let release = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release");
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
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn init_time(bin: &Path, function: &str, api: &str, rt: &Runtime) -> Result<Duration> {
    *rt.at.lock().map_err(|_| anyhow::anyhow!("lock"))? = None;
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
        // Nothing listens here: init must not wait on a network call succeeding.
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
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
    let at = rt
        .at
        .lock()
        .map_err(|_| anyhow::anyhow!("lock"))?
        .unwrap_or_else(Instant::now);
    Ok(at.duration_since(started))
}

async fn next(State(rt): State<Runtime>) -> &'static str {
    if let Ok(mut at) = rt.at.lock() {
        at.get_or_insert_with(Instant::now);
    }
    rt.asked.notify_one();
    // Never hand out work: the function waits here until it is killed.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    ""
}
