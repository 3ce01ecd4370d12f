//! `make bench-peer`: hookrelay's local stack and Svix's open-source server (svix-server on
//! PostgreSQL and Redis) given the same workload on the same machine, one after the other:
//! 1 KiB JSON events sent open-loop at fixed rates (each request on its own schedule, not
//! waiting for the previous answer), to one endpoint and to ten on a local receiver, with
//! and without 30 % of first attempts refused.
//!
//! Per system, scenario and rate: accepted per second, accept latency, accept to first
//! attempt and to first successful delivery, CPU per event split into the gateway's own
//! processes and its store and queue, and peak memory. `bench/results/peer.json` and
//! `peer.md`. Bounded: `--seconds` of sending per run, a drain of at most `DRAIN`, 127.0.0.1
//! only; it stops what it started.

mod receiver;
mod report;
mod systems;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use hookrelay_local::bench_stack::write_report;
use hookrelay_local::moto::free_port;
use serde_json::{Value, json};

use receiver::Receiver;
use report::{RunResult, Sent};
use systems::{System, Target, send};

/// How long a run may wait after its last send for every delivery to succeed: both systems
/// retry a refused first attempt 5 s later (the same default schedule), so this is ample.
const DRAIN: Duration = Duration::from_secs(90);

struct Args {
    rates: Vec<u32>,
    seconds: u32,
    scenarios: Vec<(u16, u8)>,
    systems: Vec<String>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        // Rates both systems sustain on the 2-core machine the results come from. The local
        // stack is the bound: its AWS emulator spends 55 to 140 ms of CPU per event at fan-out
        // 10; at 15 events/s its deliveries fell seconds behind, and at 10 with refusals too.
        rates: vec![5, 10],
        seconds: 20,
        scenarios: vec![(1, 0), (10, 0), (1, 30), (10, 30)],
        systems: vec!["hookrelay".into(), "svix".into()],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--rates" => a.rates = list(&v, |r| r.parse().ok().filter(|r| (1..=500).contains(r)))?,
            "--seconds" => {
                a.seconds = v
                    .parse()
                    .ok()
                    .filter(|s| (1..=300).contains(s))
                    .ok_or_else(|| anyhow!("--seconds {v}: 1 to 300"))?
            }
            "--scenarios" => {
                a.scenarios = list(&v, |s| {
                    let (f, p) = s.split_once(':')?;
                    Some((
                        f.parse().ok().filter(|f| (1..=50).contains(f))?,
                        p.parse().ok().filter(|p| *p <= 100)?,
                    ))
                })?
            }
            "--systems" => {
                a.systems = list(&v, |s| {
                    ["hookrelay", "svix"].contains(&s).then(|| s.to_owned())
                })?
            }
            _ => bail!(
                "unknown flag {flag}; flags: --rates 5,10 --seconds 20 \
                 --scenarios 1:0,10:30 --systems hookrelay,svix"
            ),
        }
    }
    Ok(a)
}

fn list<T>(v: &str, parse: impl Fn(&str) -> Option<T>) -> Result<Vec<T>> {
    v.split(',')
        .map(|s| parse(s.trim()).ok_or_else(|| anyhow!("{s:?} is not a valid value")))
        .collect()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let root = root();
    // Release builds, as svix-server's; HOOKRELAY_BIN_DIR points at another copy of them.
    let bin_dir = std::env::var("HOOKRELAY_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target/release"));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let rx = Receiver::default();
    let hooks = rx.start().await?;

    let mut results = Vec::new();
    for name in &args.systems {
        let log = root.join(format!("target/peer-{name}.log"));
        let system = if name == "hookrelay" {
            System::start_hookrelay(&http, &root, &bin_dir, &log).await
        } else {
            System::start_svix(&root.join("bench/peer/svix.sh"), free_port()?).await
        }
        .with_context(|| format!("starting {name}"))?;
        println!("{} is up", system.name());
        let outcome = run_all(&http, &system, &rx, &hooks, &args, &mut results).await;
        system.stop().await;
        outcome.with_context(|| format!("{name}; its output is in {}", log.display()))?;
    }

    let svix_revision = systems::svix_revision(&root.join("bench/peer/svix.sh")).await;
    let report = report::to_json(&root, svix_revision, &args_json(&args), &results);
    let md = report::markdown(&report);
    write_report(&root, "peer", &report, Some(&md))?;
    println!("{md}");
    Ok(())
}

fn args_json(a: &Args) -> Value {
    json!({
        "rates": a.rates,
        "seconds_per_run": a.seconds,
        "body_bytes": systems::BODY_BYTES,
        "drain_timeout_seconds": DRAIN.as_secs(),
    })
}

async fn run_all(
    http: &reqwest::Client,
    system: &System,
    rx: &Receiver,
    hooks: &str,
    args: &Args,
    results: &mut Vec<RunResult>,
) -> Result<()> {
    // Warm-up: events through every part, one endpoint then ten, so no measured run pays
    // for a first start, a first connection or a cold cache (a first run at 5/s measured
    // 2.5 times the CPU per event of the runs after it without this).
    for (i, (scenario, rate)) in [((1, 0), 10), ((10, 0), 5)].into_iter().enumerate() {
        let warm = format!("warm{i}{}", ulid::Ulid::new().to_string().to_lowercase());
        run_one(http, system, rx, hooks, &warm, scenario, rate, 2).await?;
    }
    for &scenario in &args.scenarios {
        for &rate in &args.rates {
            let run = format!(
                "{}-f{}-x{}-r{rate}",
                if system.name() == "hookrelay" {
                    "hr"
                } else {
                    "svix"
                },
                scenario.0,
                scenario.1
            );
            let r = run_one(http, system, rx, hooks, &run, scenario, rate, args.seconds).await?;
            println!("{}", r.line());
            results.push(r);
        }
    }
    Ok(())
}

/// One run: a fresh workspace or application, `rate × seconds` events sent on schedule, the
/// wait for every delivery, and the usage of each part across both.
#[allow(clippy::too_many_arguments)]
async fn run_one(
    http: &reqwest::Client,
    system: &System,
    rx: &Receiver,
    hooks: &str,
    run: &str,
    (fanout, failure_pct): (u16, u8),
    rate: u32,
    seconds: u32,
) -> Result<RunResult> {
    let urls: Vec<String> = (0..fanout)
        .map(|i| format!("{hooks}/{run}/{i}/{failure_pct}"))
        .collect();
    let target = Arc::new(system.setup(http, run, &urls).await?);
    let stored_before = system.stored_bytes().await;
    let before = system.cpu()?;
    let peak = MemoryPeak::start(system);
    let started = Instant::now();
    let sent = send_on_schedule(http, &target, system.body(), rate, rate * seconds).await;
    let last_accept = sent.iter().filter_map(|s| s.accepted).max();
    let expected = sent.iter().filter(|s| s.id.is_some()).count() * usize::from(fanout);
    let deadline = Instant::now() + DRAIN;
    while rx.successes(run) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drained_after = started.elapsed();
    let after = system.cpu()?;
    let peak_pss = peak.stop().await;
    let stored_after = system.stored_bytes().await;
    Ok(RunResult {
        system: system.name(),
        fanout,
        failure_pct,
        rate,
        started,
        last_accept,
        drained_after,
        sent,
        arrivals: rx.take(run),
        cpu: delta(&after, &before),
        peak_pss,
        stored_bytes: stored_before
            .zip(stored_after)
            .map(|(b, a)| a.saturating_sub(b)),
    })
}

fn delta(after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                (v - before.get(k).copied().unwrap_or(0.0)).max(0.0),
            )
        })
        .collect()
}

/// Sends `count` events at `rate` per second, each at its own instant whatever the
/// answers before it (open loop), and waits for every answer.
async fn send_on_schedule(
    http: &reqwest::Client,
    target: &Arc<Target>,
    body: String,
    rate: u32,
    count: u32,
) -> Vec<Sent> {
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(count as usize);
    for i in 0..count {
        let at = start + Duration::from_secs_f64(f64::from(i) / f64::from(rate));
        tokio::time::sleep_until(at).await;
        let (http, target, body) = (http.clone(), target.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let r = send(&http, &target, body).await;
            let t1 = Instant::now();
            match r {
                Ok(id) => Sent {
                    id: Some(id),
                    latency: t1 - t0,
                    accepted: Some(t1),
                    error: None,
                },
                Err(e) => Sent {
                    id: None,
                    latency: t1 - t0,
                    accepted: None,
                    error: Some(format!("{e:#}")),
                },
            }
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        match t.await {
            Ok(s) => out.push(s),
            Err(e) => out.push(Sent {
                id: None,
                latency: Duration::ZERO,
                accepted: None,
                error: Some(e.to_string()),
            }),
        }
    }
    out
}

/// The largest proportional memory each part held while a run went on, sampled every
/// 250 ms on a thread of its own (reading /proc is blocking work).
struct MemoryPeak {
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<BTreeMap<String, u64>>,
}

impl MemoryPeak {
    fn start(system: &System) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let sampler = system.memory_reader();
        let handle = tokio::task::spawn_blocking(move || {
            let mut peak: BTreeMap<String, u64> = BTreeMap::new();
            loop {
                if let Ok(u) = sampler() {
                    for (part, bytes) in u {
                        let p = peak.entry(part).or_default();
                        *p = (*p).max(bytes);
                    }
                }
                if flag.load(Ordering::Relaxed) {
                    return peak;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        Self { stop, handle }
    }

    async fn stop(self) -> BTreeMap<String, u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.await.unwrap_or_default()
    }
}
