//! `make bench`'s load test. Starts the local stack exactly as `make dev` runs it (its own
//! ports), points one endpoint at a receiver in this process, and drives the ingest route
//! with wrk at a few concurrency levels, each bounded in requests and seconds.
//!
//! Per level it reports wrk's accept throughput and latency, the time from accept to
//! delivery at the receiver (an event id is a ULID stamped when the event is accepted, and
//! the delivery's `webhook-id` is that id), and the CPU each process of the stack spent per
//! event, which splits the local AWS emulator's share from the functions' own.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, Result, anyhow, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::any;
use hookrelay_local::bench_stack::{
    Ports, admin, percentile, start_stack, unix_ms, wait_ready, write_report,
};
use hookrelay_local::proc_cpu;
use hookrelay_local::process::stop_politely;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// Concurrent connections per level; `HOOKRELAY_LOAD_LEVELS=1,8,32` overrides.
const LEVELS: &str = "1,4,16";
/// Bounds of each level: whichever comes first.
const REQUESTS_PER_LEVEL: usize = 1500;
const SECONDS_PER_LEVEL: u64 = 10;
/// How long to wait for a level's events to reach the receiver.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);
const BODY_BYTES: usize = 1024;

/// First arrival of each delivery, by `webhook-id`, in Unix milliseconds.
#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<HashMap<String, u64>>>);

impl Arrivals {
    fn record(&self, id: String) {
        let now = unix_ms(SystemTime::now());
        if let Ok(mut m) = self.0.lock() {
            m.entry(id).or_insert(now);
        }
    }
    fn len(&self) -> usize {
        self.0.lock().map(|m| m.len()).unwrap_or(0)
    }
    fn take(&self) -> HashMap<String, u64> {
        self.0
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default()
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::main]
async fn main() -> Result<()> {
    let root = root();
    let wrk = which("wrk").context(
        "wrk is not installed; `apt-get install wrk` (Debian) or see https://github.com/wg/wrk",
    )?;
    let levels = parse_levels(
        &std::env::var("HOOKRELAY_LOAD_LEVELS").unwrap_or_else(|_| LEVELS.to_owned()),
    )?;
    let requests_per_level = env_number("HOOKRELAY_LOAD_REQUESTS", REQUESTS_PER_LEVEL)?;
    let seconds_per_level = env_number("HOOKRELAY_LOAD_SECONDS", SECONDS_PER_LEVEL as usize)?;

    let arrivals = Arrivals::default();
    let receiver = start_receiver(arrivals.clone()).await?;

    let ports = Ports::free()?;
    let admin_key = format!("load-{}", ulid::Ulid::new());
    let log_path = root.join("target/load-stack.log");
    // No sweeper run in the middle of a level.
    let env = [("HOOKRELAY_SWEEP_INTERVAL_SECONDS", "3600".to_owned())];
    let mut stack = start_stack(&root, &ports, &admin_key, &env, &log_path)?;
    let result = run(
        &root,
        &wrk,
        &ports,
        &admin_key,
        &receiver,
        &arrivals,
        &levels,
        requests_per_level,
        seconds_per_level,
        &mut stack,
    )
    .await;
    // SIGINT is the stack's Ctrl-C: it stops the function processes and moto itself.
    stop_politely(&mut stack, "-INT", Duration::from_secs(15)).await;
    let report =
        result.with_context(|| format!("the stack's output is in {}", log_path.display()))?;

    write_report(&root, "load", &report, None)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn run(
    root: &Path,
    wrk: &Path,
    ports: &Ports,
    admin_key: &str,
    receiver: &str,
    arrivals: &Arrivals,
    levels: &[usize],
    requests_per_level: usize,
    seconds_per_level: usize,
    stack: &mut Child,
) -> Result<Value> {
    let api = format!("http://127.0.0.1:{}", ports.api);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    wait_ready(&http, &api, stack).await?;
    let stack_pid = stack.id().ok_or_else(|| anyhow!("the stack has exited"))?;

    admin(
        &http,
        &api,
        admin_key,
        "/workspaces/default/endpoints",
        json!({"name": "load-receiver", "url": receiver, "events": ["*"]}),
    )
    .await?;
    let source = admin(
        &http,
        &api,
        admin_key,
        "/workspaces/default/sources",
        json!({"name": "load"}),
    )
    .await?;
    let source_id = source["id"]
        .as_str()
        .ok_or_else(|| anyhow!("source without id: {source}"))?;
    let target = format!("{api}/in/{source_id}");
    warm_up(&http, &target, arrivals).await?;

    let mut rows = Vec::new();
    for &connections in levels {
        arrivals.take();
        let cpu_before = proc_cpu::sample(stack_pid)?;
        let wrk_out = run_wrk(
            root,
            wrk,
            &target,
            connections,
            requests_per_level,
            seconds_per_level,
        )
        .await?;
        let accepted = wrk_out.requests.saturating_sub(wrk_out.status_errors);
        let drained = wait_for(arrivals, accepted, DRAIN_TIMEOUT).await;
        let cpu = proc_cpu::sample(stack_pid)?.since(&cpu_before);
        let times = accept_times(&arrivals.take());
        let e2e = accept_to_delivery(&times);
        let accepted_per_second = accepts_per_second(&times);
        println!(
            "connections {connections}: {} accepted at {:.0}/s, p50 {:.1} ms, p99 {:.1} ms; delivered {} (accept→delivery p50 {:.0} ms, p99 {:.0} ms)",
            accepted,
            accepted_per_second,
            wrk_out.p50_us as f64 / 1000.0,
            wrk_out.p99_us as f64 / 1000.0,
            times.len(),
            percentile(&e2e, 50.0),
            percentile(&e2e, 99.0)
        );
        rows.push(json!({
            "connections": connections,
            "requests": wrk_out.requests,
            "accepted": accepted,
            "refused": wrk_out.status_errors,
            "socket_errors": wrk_out.socket_errors,
            "accepted_per_second": accepted_per_second,
            "accept_latency_ms": {
                "p50": wrk_out.p50_us as f64 / 1000.0,
                "p90": wrk_out.p90_us as f64 / 1000.0,
                "p99": wrk_out.p99_us as f64 / 1000.0,
                "max": wrk_out.max_us as f64 / 1000.0,
            },
            "delivered": times.len(),
            "all_delivered": drained,
            "delivered_per_second": deliveries_per_second(&times),
            "accept_to_delivery_ms": {
                "p50": percentile(&e2e, 50.0),
                "p90": percentile(&e2e, 90.0),
                "p99": percentile(&e2e, 99.0),
                "max": percentile(&e2e, 100.0),
            },
            "cpu_ms_per_event": cpu.per_event_ms(accepted.max(1)),
        }));
    }
    Ok(json!({
        "build": "debug",
        "body_bytes": BODY_BYTES,
        "requests_per_level": requests_per_level,
        "seconds_per_level": seconds_per_level,
        "levels": rows,
    }))
}

/// One event through the whole trip first, so no level pays for the first compile-free
/// start of a function process or a cold cache.
async fn warm_up(http: &reqwest::Client, target: &str, arrivals: &Arrivals) -> Result<()> {
    for _ in 0..3 {
        let r = http
            .post(target)
            .header("content-type", "application/json")
            .body(body())
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("warm-up event answered {}", r.status());
        }
    }
    if !wait_for(arrivals, 3, Duration::from_secs(120)).await {
        bail!("warm-up events were not delivered within 120 s");
    }
    Ok(())
}

async fn wait_for(arrivals: &Arrivals, count: usize, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if arrivals.len() >= count {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// One invoice-like JSON webhook of [`BODY_BYTES`]: what the store compresses is what a real
/// one would give it.
fn body() -> String {
    hookrelay_local::webhook_bodies::invoice_event(0, BODY_BYTES)
}

struct WrkResult {
    requests: usize,
    status_errors: usize,
    socket_errors: usize,
    p50_us: u64,
    p90_us: u64,
    p99_us: u64,
    max_us: u64,
}

async fn run_wrk(
    root: &Path,
    wrk: &Path,
    target: &str,
    connections: usize,
    requests: usize,
    seconds: usize,
) -> Result<WrkResult> {
    let threads = connections.min(2);
    let out = Command::new(wrk)
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .arg("--timeout")
        .arg("30s")
        .arg("-s")
        .arg(root.join("bench/load.lua"))
        .arg(target)
        .env("LOAD_SHARE", requests.div_ceil(threads).to_string())
        .env("LOAD_BODY", body())
        .output()
        .await
        .context("running wrk")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "wrk failed ({}): {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| anyhow!("wrk printed no result: {stdout}"))?;
    let v: Value = serde_json::from_str(line).with_context(|| format!("wrk's result: {line}"))?;
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    Ok(WrkResult {
        requests: n("requests") as usize,
        status_errors: n("status_errors") as usize,
        socket_errors: n("socket_errors") as usize,
        p50_us: n("p50_us"),
        p90_us: n("p90_us"),
        p99_us: n("p99_us"),
        max_us: n("max_us"),
    })
}

/// Each delivered event's accept time (its id's ULID time) and first arrival, in Unix ms.
fn accept_times(seen: &HashMap<String, u64>) -> Vec<(u64, u64)> {
    seen.iter()
        .filter_map(|(id, arrived)| {
            let ulid = ulid::Ulid::from_string(id.strip_prefix("evt_")?).ok()?;
            Some((ulid.timestamp_ms(), *arrived))
        })
        .collect()
}

/// Milliseconds from each event's accept to its first arrival, sorted.
fn accept_to_delivery(times: &[(u64, u64)]) -> Vec<f64> {
    let mut out: Vec<f64> = times
        .iter()
        .map(|(accepted, arrived)| arrived.saturating_sub(*accepted) as f64)
        .collect();
    out.sort_by(f64::total_cmp);
    out
}

/// Events accepted per second over the span from the first accept to the last. wrk's own
/// duration is always its `-d`, even when every thread stopped early at its share.
fn accepts_per_second(times: &[(u64, u64)]) -> f64 {
    let first = times.iter().map(|t| t.0).min().unwrap_or(0);
    let last = times.iter().map(|t| t.0).max().unwrap_or(0);
    if times.len() < 2 || last == first {
        return 0.0;
    }
    (times.len() - 1) as f64 * 1000.0 / (last - first) as f64
}

/// Events delivered per second from the first accept to the last arrival.
fn deliveries_per_second(times: &[(u64, u64)]) -> f64 {
    let first = times.iter().map(|t| t.0).min().unwrap_or(0);
    let last = times.iter().map(|t| t.1).max().unwrap_or(0);
    if times.is_empty() || last <= first {
        return 0.0;
    }
    times.len() as f64 * 1000.0 / (last - first) as f64
}

async fn start_receiver(arrivals: Arrivals) -> Result<String> {
    let app = Router::new()
        .fallback(any(
            |State(arrivals): State<Arrivals>, headers: HeaderMap, _body: Bytes| async move {
                if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
                    arrivals.record(id.to_owned());
                }
                "ok"
            },
        ))
        .with_state(arrivals);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}/hook"))
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

fn parse_levels(s: &str) -> Result<Vec<usize>> {
    s.split(',')
        .map(|l| {
            l.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=256).contains(n))
                .ok_or_else(|| anyhow!("concurrency level {l:?} is not 1..=256"))
        })
        .collect()
}

fn env_number(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| anyhow!("{name}={v:?} is not a positive number")),
        _ => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_one_kib_of_json() {
        let b = body();
        assert_eq!(b.len(), BODY_BYTES);
        let v: Value = serde_json::from_str(&b).unwrap();
        assert!(v["event_type"].is_string(), "{v}");
    }

    #[test]
    fn levels_are_bounded() {
        assert_eq!(parse_levels("1, 8,32").unwrap(), vec![1, 8, 32]);
        assert!(parse_levels("0").is_err());
        assert!(parse_levels("1,x").is_err());
    }

    #[test]
    fn accept_time_comes_from_the_event_id() {
        let id = ulid::Ulid::from_parts(1_000, 7);
        let seen = HashMap::from([
            (format!("evt_{id}"), 1_250),
            ("bat_not-an-event".to_owned(), 9_999),
        ]);
        let times = accept_times(&seen);
        assert_eq!(times, vec![(1_000, 1_250)]);
        assert_eq!(accept_to_delivery(&times), vec![250.0]);
    }

    #[test]
    fn rates_over_the_accept_span() {
        let times = [(1_000, 1_100), (1_500, 1_700), (3_000, 3_500)];
        assert_eq!(accepts_per_second(&times), 1.0);
        assert_eq!(deliveries_per_second(&times), 1.2);
        assert_eq!(accepts_per_second(&times[..1]), 0.0);
    }
}
