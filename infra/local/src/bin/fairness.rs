//! `make fairness`: how much one workspace's flood and failing endpoints delay another
//! workspace's deliveries, on the `make dev` stack. Not part of `make test`: its figures are
//! timings.
//!
//! Two workspaces share the deployment. The victim sends a steady trickle to an endpoint
//! that answers at once; the hostile one floods its own source, fanned out to an endpoint
//! that always fails and one that never answers within its timeout. Three phases of equal
//! length: the victim alone (the baseline), beside the flood with the hostile source and
//! endpoints rate limited, and beside the same flood with no limits. Each phase waits until
//! the victim's events have all arrived (bounded), then the next starts. The
//! victim's accept-to-delivery p50/p99/max per phase go to `bench/results/fairness.json`
//! and `.md`.
//!
//! `--phase-seconds N` (default 60), `--flood R` (events a second, default 10).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, Result, anyhow, bail};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::any;
use hookrelay_local::bench_stack::{
    Ports, admin, percentile, start_stack, unix_ms, wait_ready, write_report,
};
use hookrelay_local::process::stop_politely;
use serde_json::{Value, json};

/// The victim's steady rate, events a second.
const VICTIM_RATE: f64 = 2.0;
/// The hostile slow endpoint's timeout, and how long its receiver holds each request.
const SLOW_TIMEOUT_SECONDS: u32 = 2;
const SLOW_HOLD: Duration = Duration::from_secs(10);
/// How long a phase waits for the victim's last events after sending stops.
const DRAIN: Duration = Duration::from_secs(180);

#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Ok,
    Fail,
    Hang,
}

/// First arrival per `webhook-id`, Unix ms.
struct Receiver {
    behaviour: Behaviour,
    first: Mutex<HashMap<String, u64>>,
}

async fn start_receiver(behaviour: Behaviour) -> Result<(Arc<Receiver>, String)> {
    let r = Arc::new(Receiver {
        behaviour,
        first: Mutex::default(),
    });
    let app = Router::new()
        .fallback(any(
            |State(r): State<Arc<Receiver>>, headers: HeaderMap| async move {
                match r.behaviour {
                    Behaviour::Fail => StatusCode::INTERNAL_SERVER_ERROR,
                    Behaviour::Hang => {
                        tokio::time::sleep(SLOW_HOLD).await;
                        StatusCode::OK
                    }
                    Behaviour::Ok => {
                        if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok())
                            && let Ok(mut m) = r.first.lock()
                        {
                            m.entry(id.to_owned())
                                .or_insert_with(|| unix_ms(SystemTime::now()));
                        }
                        StatusCode::OK
                    }
                }
            },
        ))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((r, format!("http://{addr}/hook")))
}

struct Options {
    phase: Duration,
    flood: f64,
}

fn options() -> Result<Options> {
    let mut o = Options {
        phase: Duration::from_secs(60),
        flood: 10.0,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--phase-seconds" => {
                o.phase = Duration::from_secs(
                    value
                        .parse()
                        .ok()
                        .filter(|n| (10..=3600).contains(n))
                        .ok_or_else(|| anyhow!("--phase-seconds must be 10 to 3600"))?,
                )
            }
            "--flood" => {
                o.flood = value
                    .parse()
                    .ok()
                    .filter(|r| (1.0..=200.0).contains(r))
                    .ok_or_else(|| anyhow!("--flood must be 1 to 200 events a second"))?
            }
            _ => bail!("unknown flag {flag}; known: --phase-seconds N --flood R"),
        }
    }
    Ok(o)
}

#[tokio::main]
async fn main() -> Result<()> {
    let o = options()?;
    let root = std::fs::canonicalize(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))?;
    let ports = Ports::free()?;
    let admin_key = format!("fairness-{}", ulid::Ulid::new());
    let log_path = root.join("target/fairness-stack.log");
    let env = [
        ("RETRY_SCHEDULE", "1,2,4,8".to_owned()),
        ("CIRCUIT_PROBE_SECONDS", "5".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    let mut stack = start_stack(&root, &ports, &admin_key, &env, &log_path)?;
    let result = run(&o, &ports, &admin_key, &mut stack).await;
    stop_politely(&mut stack, "-INT", Duration::from_secs(15)).await;
    let report =
        result.with_context(|| format!("the stack's output is in {}", log_path.display()))?;
    let md = markdown(&report);
    write_report(&root, "fairness", &report, Some(&md))?;
    println!("{md}");
    Ok(())
}

/// Sends `rate` events a second to `url` for `length`; answers the accepted ids with their
/// accept times (Unix ms), and how many were refused with 429.
async fn send(
    http: &reqwest::Client,
    url: String,
    rate: f64,
    length: Duration,
) -> (Vec<(String, u64)>, u64) {
    let every = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let mut tick = tokio::time::interval(every);
    let mut pending = Vec::new();
    while started.elapsed() < length {
        tick.tick().await;
        let (http, url) = (http.clone(), url.clone());
        pending.push(tokio::spawn(async move {
            let at = unix_ms(SystemTime::now());
            let r = http
                .post(&url)
                .header("content-type", "application/json")
                .body(r#"{"event_type":"fair.test"}"#)
                .send()
                .await
                .ok()?;
            let status = r.status().as_u16();
            let body: Value = serde_json::from_slice(&r.bytes().await.ok()?).ok()?;
            Some((status, body["id"].as_str().map(str::to_owned), at))
        }));
    }
    let mut accepted = Vec::new();
    let mut refused = 0;
    for p in pending {
        match p.await.ok().flatten() {
            Some((202, Some(id), at)) => accepted.push((id, at)),
            Some((429, _, _)) => refused += 1,
            _ => {}
        }
    }
    (accepted, refused)
}

struct Setup {
    victim_in: String,
    flood_in: String,
    flood_source: String,
    hostile_endpoints: Vec<String>,
    victim: Arc<Receiver>,
}

async fn setup(http: &reqwest::Client, api: &str, key: &str) -> Result<Setup> {
    let (victim, victim_url) = start_receiver(Behaviour::Ok).await?;
    let (_, fail_url) = start_receiver(Behaviour::Fail).await?;
    let (_, hang_url) = start_receiver(Behaviour::Hang).await?;
    for ws in ["victim", "hostile"] {
        admin(http, api, key, "/workspaces", json!({"name": ws})).await?;
    }
    let id = |v: Value| -> Result<String> {
        v["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no id in {v}"))
    };
    let victim_src = id(admin(
        http,
        api,
        key,
        "/workspaces/victim/sources",
        json!({"name": "orders"}),
    )
    .await?)?;
    admin(
        http,
        api,
        key,
        "/workspaces/victim/endpoints",
        json!({"name": "shop", "url": victim_url}),
    )
    .await?;
    let flood_source = id(admin(
        http,
        api,
        key,
        "/workspaces/hostile/sources",
        json!({"name": "flood"}),
    )
    .await?)?;
    let mut hostile_endpoints = Vec::new();
    for (name, url, timeout) in [
        ("fails", fail_url, None),
        ("hangs", hang_url, Some(SLOW_TIMEOUT_SECONDS)),
    ] {
        let mut body = json!({"name": name, "url": url});
        if let Some(t) = timeout {
            body["timeout_seconds"] = json!(t);
        }
        hostile_endpoints.push(id(admin(
            http,
            api,
            key,
            "/workspaces/hostile/endpoints",
            body,
        )
        .await?)?);
    }
    Ok(Setup {
        victim_in: format!("{api}/in/{victim_src}"),
        flood_in: format!("{api}/in/{flood_source}"),
        flood_source,
        hostile_endpoints,
        victim,
    })
}

/// Puts rate limits on the hostile source and endpoints, or takes them off (a full `PUT` of
/// each).
async fn limit_hostile(
    http: &reqwest::Client,
    api: &str,
    key: &str,
    s: &Setup,
    on: bool,
) -> Result<()> {
    let put = |path: String, body: Value| async move {
        let r = http
            .put(format!("{api}{path}"))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("PUT {path} answered {}", r.status());
        }
        Ok::<_, anyhow::Error>(())
    };
    let mut source = json!({"name": "flood"});
    if on {
        source["rate_limit"] = json!({"per_second": 2});
    }
    put(
        format!("/workspaces/hostile/sources/{}", s.flood_source),
        source,
    )
    .await?;
    for (id, name) in s.hostile_endpoints.iter().zip(["fails", "hangs"]) {
        let mut body = json!({"name": name, "url": "http://127.0.0.1:9/unused"});
        if on {
            body["rate_limit"] = json!({"per_second": 1});
        }
        // Keep each endpoint's own URL and timeout: read it back first.
        let current: Value = http
            .get(format!("{api}/workspaces/hostile/endpoints/{id}"))
            .bearer_auth(key)
            .send()
            .await?
            .bytes()
            .await
            .map(|b| serde_json::from_slice(&b).unwrap_or(Value::Null))?;
        body["url"] = current["url"].clone();
        if let Some(t) = current.get("timeout_seconds") {
            body["timeout_seconds"] = t.clone();
        }
        put(format!("/workspaces/hostile/endpoints/{id}"), body).await?;
    }
    Ok(())
}

async fn run(
    o: &Options,
    ports: &Ports,
    key: &str,
    stack: &mut tokio::process::Child,
) -> Result<Value> {
    let api = format!("http://127.0.0.1:{}", ports.api);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    wait_ready(&http, &api, stack).await?;
    let s = setup(&http, &api, key).await?;
    let mut phases = Vec::new();
    // The limited flood before the unlimited one: the unlimited flood leaves a backlog on
    // the shared queue that would still be draining in a phase after it.
    for phase in ["alone", "beside a rate-limited flood", "beside a flood"] {
        if phase != "alone" {
            limit_hostile(&http, &api, key, &s, phase == "beside a rate-limited flood").await?;
        }
        println!("phase: victim {phase} ({} s)", o.phase.as_secs());
        let victim = send(&http, s.victim_in.clone(), VICTIM_RATE, o.phase);
        let flood = async {
            if phase == "alone" {
                (Vec::new(), 0)
            } else {
                send(&http, s.flood_in.clone(), o.flood, o.phase).await
            }
        };
        let ((victim_sent, _), (flood_accepted, flood_refused)) = tokio::join!(victim, flood);
        let deadline = Instant::now() + DRAIN;
        let arrived = loop {
            let first = s.victim.first.lock().map(|m| m.clone()).unwrap_or_default();
            let done = victim_sent.iter().all(|(id, _)| first.contains_key(id));
            if done || Instant::now() > deadline {
                break first;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let mut lat: Vec<f64> = victim_sent
            .iter()
            .filter_map(|(id, at)| arrived.get(id).map(|t| t.saturating_sub(*at) as f64))
            .collect();
        lat.sort_by(f64::total_cmp);
        phases.push(json!({
            "phase": phase,
            "victim_events": victim_sent.len(),
            "victim_delivered": lat.len(),
            "p50_ms": percentile(&lat, 50.0),
            "p99_ms": percentile(&lat, 99.0),
            "max_ms": lat.last().copied().unwrap_or(0.0),
            "flood_accepted": flood_accepted.len(),
            "flood_refused_429": flood_refused,
        }));
    }
    Ok(json!({
        "phase_seconds": o.phase.as_secs(),
        "victim_rate": VICTIM_RATE,
        "flood_rate": o.flood,
        "flood_fanout": "one endpoint that answers 500, one that holds each request past its 2 s timeout",
        "phases": phases,
    }))
}

fn markdown(r: &Value) -> String {
    let mut md = format!(
        "# Fairness\n\nThe victim workspace sends {} events/s to an endpoint that answers at once; the hostile workspace floods its own source at {} events/s, fanned out to {}. Phases of {} s on the `make dev` stack (debug build, two cores). Accept to delivery, the victim's events:\n\n| phase | victim events | delivered | p50 ms | p99 ms | max ms | flood accepted | flood refused (429) |\n|---|---|---|---|---|---|---|---|\n",
        r["victim_rate"],
        r["flood_rate"],
        r["flood_fanout"].as_str().unwrap_or_default(),
        r["phase_seconds"]
    );
    for p in r["phases"].as_array().into_iter().flatten() {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            p["phase"].as_str().unwrap_or_default(),
            p["victim_events"],
            p["victim_delivered"],
            p["p50_ms"],
            p["p99_ms"],
            p["max_ms"],
            p["flood_accepted"],
            p["flood_refused_429"]
        ));
    }
    md
}
