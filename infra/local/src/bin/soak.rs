//! `make soak`: the local stack under faults for a while, and whether every event still
//! arrives. Not part of `make test`: it runs for minutes and its figures are timings.
//!
//! Starts the `make dev` stack (its own ports) with a scaled-down SQS in-flight quota, a
//! compressed retry schedule and throttling injected into a share of the SQS and DynamoDB
//! requests (`moto_server.py`), and three receivers in this process: one healthy, one that
//! fails 30 % of its deliveries at random, and one that is down for a "compressed day" in
//! the middle of the run and then back. It sends events at a fixed rate through the ingest
//! route, kills the delivery function's processes mid-run a few times (the runner starts
//! fresh ones, as Lambda does), samples the deliveries queue's in-flight count every second,
//! waits (bounded) until every accepted event reached every endpoint or was dead-lettered,
//! reads the dead letters, and writes `bench/results/soak.json` and `soak.md`.
//!
//! `--events N`, `--rate R` (events per second) and `--kills 0..=3` make a shorter run.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, Result, anyhow, bail};
use aws_sdk_sqs::types::QueueAttributeName;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::any;
use hookrelay_local::bench_stack::{
    Ports, admin, percentile, start_stack, unix_ms, wait_ready, write_report,
};
use hookrelay_local::process::stop_politely;
use hookrelay_shared::queue::DeadLetterBody;
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio::sync::Semaphore;

const EVENTS: usize = 10_000;
/// What the local stack keeps up with on two cores (debug builds, one event source poller,
/// moto doing most of the work): three endpoints make each event three tasks, and at 5
/// events a second the deliveries queue grew by thousands and ingest began to time out. A
/// faster rate only builds a backlog, which hides the outage's effect.
const RATE: f64 = 3.0;
/// Requests in flight at once from the sender; at the fixed rate it needs only a few.
const CONCURRENCY: usize = 32;
/// AWS's 120 000 in-flight messages per queue, scaled down to the run's size.
const INFLIGHT_QUOTA: u64 = 2_000;
/// The share of SQS and DynamoDB requests answered with a throttling error. The SDK retries
/// each (3 attempts, with backoff); a call fails outright once in 1/rate³.
const THROTTLE_RATE: f64 = 0.01;
/// The template's schedule (5 s up to 10 h, a day and more in all) compressed to seconds.
const RETRY_SCHEDULE: &str = "1,2,4,8,16,30,60,60";
const CIRCUIT_PROBE_SECONDS: &str = "5";
const FLAKY_FAILURE_RATE: f64 = 0.3;
/// The down endpoint's outage and the kills, as shares of the sending time.
const OUTAGE: (f64, f64) = (0.25, 0.55);
const KILLS_AT: [f64; 3] = [0.15, 0.4, 0.65];
/// How long to wait after the last send for everything to arrive. A task whose delivery
/// process was killed stays invisible for the queue's visibility timeout (480 s), as on AWS.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(720);
/// With tasks left undelivered, how long the queues must stay empty before the run ends:
/// longer than one sweeper interval (60 s), which re-enqueues events stuck before the queue.
const QUIET_FOR: Duration = Duration::from_secs(75);

#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Healthy,
    Flaky,
    Down,
}

/// One receiver: what it answered, by `webhook-id`.
struct Receiver {
    name: &'static str,
    behaviour: Behaviour,
    down: AtomicBool,
    /// First 2xx answer per id, Unix ms.
    first: Mutex<HashMap<String, u64>>,
    /// 2xx answers per id: more than one is a duplicate.
    accepted: Mutex<HashMap<String, u32>>,
    refused: AtomicU64,
}

impl Receiver {
    fn new(name: &'static str, behaviour: Behaviour) -> Arc<Self> {
        Arc::new(Self {
            name,
            behaviour,
            down: AtomicBool::new(false),
            first: Mutex::default(),
            accepted: Mutex::default(),
            refused: AtomicU64::new(0),
        })
    }

    fn answer(&self, id: Option<&str>) -> StatusCode {
        let fails = match self.behaviour {
            Behaviour::Healthy => false,
            Behaviour::Flaky => rand::random::<f64>() < FLAKY_FAILURE_RATE,
            Behaviour::Down => self.down.load(Ordering::Relaxed),
        };
        if fails {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        if let Some(id) = id {
            let now = unix_ms(SystemTime::now());
            if let Ok(mut m) = self.first.lock() {
                m.entry(id.to_owned()).or_insert(now);
            }
            if let Ok(mut m) = self.accepted.lock() {
                *m.entry(id.to_owned()).or_insert(0) += 1;
            }
        }
        StatusCode::OK
    }

    fn first(&self) -> HashMap<String, u64> {
        self.first.lock().map(|m| m.clone()).unwrap_or_default()
    }

    fn has_all(&self, ids: &HashSet<String>) -> usize {
        self.first
            .lock()
            .map(|m| ids.iter().filter(|id| m.contains_key(*id)).count())
            .unwrap_or(0)
    }

    fn duplicates(&self) -> (u64, u64) {
        self.accepted
            .lock()
            .map(|m| {
                let extra: u64 = m.values().map(|n| u64::from(n.saturating_sub(1))).sum();
                let ids = m.values().filter(|n| **n > 1).count() as u64;
                (extra, ids)
            })
            .unwrap_or((0, 0))
    }
}

async fn start_receiver(r: Arc<Receiver>) -> Result<String> {
    let app = Router::new()
        .fallback(any(
            |State(r): State<Arc<Receiver>>, headers: HeaderMap| async move {
                r.answer(headers.get("webhook-id").and_then(|v| v.to_str().ok()))
            },
        ))
        .with_state(r);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}/hook"))
}

struct Options {
    events: usize,
    rate: f64,
    throttle_rate: f64,
    quota: u64,
    kills: usize,
}

fn options() -> Result<Options> {
    let mut o = Options {
        events: EVENTS,
        rate: RATE,
        throttle_rate: THROTTLE_RATE,
        quota: INFLIGHT_QUOTA,
        kills: KILLS_AT.len(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| anyhow!("{flag} needs a value"))?;
        let bad = || anyhow!("{flag} {value:?} is out of range");
        match flag.as_str() {
            "--events" => {
                o.events = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=100_000).contains(n))
                    .ok_or_else(bad)?
            }
            "--rate" => {
                o.rate = value
                    .parse()
                    .ok()
                    .filter(|r| (0.1..=500.0).contains(r))
                    .ok_or_else(bad)?
            }
            "--throttle-rate" => {
                o.throttle_rate = value
                    .parse()
                    .ok()
                    .filter(|r| (0.0..=0.5).contains(r))
                    .ok_or_else(bad)?
            }
            "--quota" => {
                o.quota = value
                    .parse()
                    .ok()
                    .filter(|n| (10..=120_000).contains(n))
                    .ok_or_else(bad)?
            }
            "--kills" => {
                o.kills = value
                    .parse()
                    .ok()
                    .filter(|n| *n <= KILLS_AT.len())
                    .ok_or_else(bad)?
            }
            _ => {
                bail!(
                    "unknown flag {flag}; known: --events N --rate R --throttle-rate F --quota N --kills 0..=3"
                )
            }
        }
    }
    Ok(o)
}

#[tokio::main]
async fn main() -> Result<()> {
    let o = options()?;
    let root = std::fs::canonicalize(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))?;
    let receivers = [
        Receiver::new("healthy", Behaviour::Healthy),
        Receiver::new("flaky-30%", Behaviour::Flaky),
        Receiver::new("down-for-a-day", Behaviour::Down),
    ];
    let mut urls = Vec::new();
    for r in &receivers {
        urls.push(start_receiver(r.clone()).await?);
    }

    let ports = Ports::free()?;
    let admin_key = format!("soak-{}", ulid::Ulid::new());
    let log_path = root.join("target/soak-stack.log");
    let fault_log = root.join("target/soak-faults.json");
    let _ = std::fs::remove_file(&fault_log);
    let env = [
        ("HOOKRELAY_SQS_INFLIGHT_QUOTA", o.quota.to_string()),
        ("HOOKRELAY_FAULT_THROTTLE_RATE", o.throttle_rate.to_string()),
        ("HOOKRELAY_FAULT_LOG", fault_log.display().to_string()),
        ("RETRY_SCHEDULE", RETRY_SCHEDULE.to_owned()),
        ("CIRCUIT_PROBE_SECONDS", CIRCUIT_PROBE_SECONDS.to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    let started = Instant::now();
    let mut stack = start_stack(&root, &ports, &admin_key, &env, &log_path)?;
    let result = run(&o, &root, &ports, &admin_key, &receivers, &urls, &mut stack).await;
    stop_politely(&mut stack, "-INT", Duration::from_secs(15)).await;
    let mut report =
        result.with_context(|| format!("the stack's output is in {}", log_path.display()))?;
    report["throttles_injected"] = std::fs::read_to_string(&fault_log)
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .map(|v| v["throttled"].clone())
        .unwrap_or(Value::Null);
    report["duration_seconds"] = json!(started.elapsed().as_secs());
    // The runner logs each invocation a killed process was in the middle of.
    report["kills_mid_invocation"] = json!(
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .lines()
            .filter(
                |l| l.contains("runtime exited during an invocation") && l.contains("\"delivery\"")
            )
            .count()
    );

    let md = markdown(&report);
    write_report(&root, "soak", &report, Some(&md))?;
    println!("{md}");
    let lost = report["lost_total"].as_u64().unwrap_or(u64::MAX);
    if lost != 0 {
        bail!("{lost} accepted deliveries were lost");
    }
    Ok(())
}

struct Queues {
    deliveries: String,
    batching: String,
    dead_letters: String,
}

async fn queues(sqs: &aws_sdk_sqs::Client) -> Result<Queues> {
    let urls = sqs
        .list_queues()
        .send()
        .await
        .map_err(aws_sdk_sqs::Error::from)?
        .queue_urls
        .unwrap_or_default();
    let find = |logical: &str| {
        urls.iter()
            .find(|u| u.ends_with(&format!("-{logical}")))
            .cloned()
            .ok_or_else(|| anyhow!("no {logical} among {urls:?}"))
    };
    Ok(Queues {
        deliveries: find("DeliveriesQueue")?,
        batching: find("BatchingQueue")?,
        dead_letters: find("DeadLetterQueue")?,
    })
}

#[allow(clippy::too_many_arguments)]
async fn run(
    o: &Options,
    root: &Path,
    ports: &Ports,
    admin_key: &str,
    receivers: &[Arc<Receiver>; 3],
    urls: &[String],
    stack: &mut Child,
) -> Result<Value> {
    let api = format!("http://127.0.0.1:{}", ports.api);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    wait_ready(&http, &api, stack).await?;
    let stack_pid = stack.id().ok_or_else(|| anyhow!("the stack has exited"))?;

    // The run's own AWS calls ride out the injected throttling with more attempts.
    let aws = hookrelay_shared::aws::local(&format!("http://127.0.0.1:{}", ports.aws)).await;
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&aws)
            .retry_config(aws_sdk_sqs::config::retry::RetryConfig::standard().with_max_attempts(10))
            .build(),
    );
    let q = queues(&sqs).await?;

    let mut endpoint_ids = Vec::new();
    for (r, url) in receivers.iter().zip(urls) {
        let e = admin(
            &http,
            &api,
            admin_key,
            "/workspaces/default/endpoints",
            json!({"name": r.name, "url": url, "events": ["*"]}),
        )
        .await?;
        endpoint_ids.push(
            e["id"]
                .as_str()
                .ok_or_else(|| anyhow!("endpoint without id: {e}"))?
                .to_owned(),
        );
    }
    let source = admin(
        &http,
        &api,
        admin_key,
        "/workspaces/default/sources",
        json!({"name": "soak"}),
    )
    .await?;
    let source_id = source["id"]
        .as_str()
        .ok_or_else(|| anyhow!("source without id: {source}"))?;
    let target = format!("{api}/in/{source_id}");

    // The in-flight sampler, until the run ends.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(sample_in_flight(
        sqs.clone(),
        q.deliveries.clone(),
        stop.clone(),
    ));

    let send_seconds = o.events as f64 / o.rate;
    let at = move |share: f64| Duration::from_secs_f64(send_seconds * share);
    let send_started = Instant::now();
    let send_started_ms = unix_ms(SystemTime::now());
    let outage_ms = (
        send_started_ms + at(OUTAGE.0).as_millis() as u64,
        send_started_ms + at(OUTAGE.1).as_millis() as u64,
    );
    println!(
        "sending {} events at {}/s (~{:.0} s); outage {:.0}–{:.0} s; kills at {:?} s",
        o.events,
        o.rate,
        send_seconds,
        at(OUTAGE.0).as_secs_f64(),
        at(OUTAGE.1).as_secs_f64(),
        KILLS_AT[..o.kills]
            .iter()
            .map(|k| at(*k).as_secs())
            .collect::<Vec<_>>()
    );

    let down = receivers[2].clone();
    let delivery_bin = root.join("target/debug/delivery");
    let kills = o.kills;
    let (kill_sqs, kill_queue) = (sqs.clone(), q.deliveries.clone());
    let faults = tokio::spawn(async move {
        let mut plan: Vec<(Duration, &str)> = vec![(at(OUTAGE.0), "down"), (at(OUTAGE.1), "up")];
        plan.extend(KILLS_AT[..kills].iter().map(|k| (at(*k), "kill")));
        plan.sort_by_key(|p| p.0);
        let mut kills = Vec::new();
        for (when, what) in plan {
            tokio::time::sleep_until((send_started + when).into()).await;
            match what {
                "down" => down.down.store(true, Ordering::Relaxed),
                "up" => down.down.store(false, Ordering::Relaxed),
                _ => {
                    // Mid-batch: the event source mapping receives a batch, invokes the
                    // function and deletes what it settled, so tasks in flight mean an
                    // invocation is under way. Waits for that, at most 10 s.
                    let mut in_flight = 0;
                    for _ in 0..200 {
                        in_flight = queue_attributes(&kill_sqs, &kill_queue)
                            .await
                            .map(|d| d.1)
                            .unwrap_or(0);
                        if in_flight > 0 {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    let killed = kill_delivery(&delivery_bin, stack_pid).await;
                    let at_seconds = send_started.elapsed().as_secs();
                    println!(
                        "t={at_seconds}s killed delivery processes {killed:?} with {in_flight} tasks in flight"
                    );
                    kills.push(
                        json!({"at_seconds": at_seconds, "pids": killed, "in_flight": in_flight}),
                    );
                }
            }
        }
        kills
    });

    let sent = send(&http, &target, o).await;
    let send_duration = send_started.elapsed();
    let kills = faults.await.unwrap_or_default();
    let accepted_ids: HashSet<String> = sent.accepted.keys().cloned().collect();
    println!(
        "sent in {:.0} s: {} accepted, {} refused",
        send_duration.as_secs_f64(),
        accepted_ids.len(),
        sent.refused.len()
    );

    let drained = drain(&sqs, &q, receivers, &accepted_ids).await;
    stop.store(true, Ordering::Relaxed);
    let in_flight_peak = sampler.await.unwrap_or(0);
    let letters = dead_letters(&sqs, &q.dead_letters).await?;

    let mut per_endpoint = Vec::new();
    let mut lost_total = 0;
    for (r, id) in receivers.iter().zip(&endpoint_ids) {
        let first = r.first();
        let dead: HashSet<&String> = letters
            .iter()
            .filter(|(endpoint, _)| endpoint == id)
            .map(|(_, event)| event)
            .collect();
        let delivered = accepted_ids
            .iter()
            .filter(|e| first.contains_key(*e))
            .count();
        let dead_lettered = accepted_ids
            .iter()
            .filter(|e| !first.contains_key(*e) && dead.contains(e))
            .count();
        let lost: Vec<&String> = accepted_ids
            .iter()
            .filter(|e| !first.contains_key(*e) && !dead.contains(e))
            .collect();
        lost_total += lost.len();
        let (extra, dup_ids) = r.duplicates();
        per_endpoint.push(json!({
            "endpoint": r.name,
            "delivered": delivered,
            "dead_lettered": dead_lettered,
            "lost": lost.len(),
            "lost_sample": lost.iter().take(10).collect::<Vec<_>>(),
            "duplicate_deliveries": extra,
            "events_delivered_more_than_once": dup_ids,
            "refused_by_receiver": r.refused.load(Ordering::Relaxed),
        }));
    }

    // The healthy endpoint's accept-to-delivery, split by whether the event was accepted
    // while the other endpoint was down.
    let healthy = receivers[0].first();
    let (mut during, mut outside) = (Vec::new(), Vec::new());
    for (id, accepted) in &sent.accepted {
        let Some(arrived) = healthy.get(id) else {
            continue;
        };
        let ms = arrived.saturating_sub(*accepted) as f64;
        if (outage_ms.0..outage_ms.1).contains(accepted) {
            during.push(ms);
        } else {
            outside.push(ms);
        }
    }
    during.sort_by(f64::total_cmp);
    outside.sort_by(f64::total_cmp);
    let latency = |v: &[f64]| json!({"events": v.len(), "p50": percentile(v, 50.0), "p99": percentile(v, 99.0), "max": percentile(v, 100.0)});
    let mut refusals: HashMap<String, usize> = HashMap::new();
    for s in &sent.refused {
        *refusals.entry(s.clone()).or_default() += 1;
    }

    Ok(json!({
        "build": "debug",
        "events_sent": o.events,
        "rate_per_second": o.rate,
        "send_seconds": send_duration.as_secs(),
        "events_accepted": accepted_ids.len(),
        "ingest_refusals": refusals,
        "all_arrived_or_dead_lettered_before_timeout": drained,
        "lost_total": lost_total,
        "endpoints": per_endpoint,
        "dead_letters_read": letters.len(),
        "in_flight_peak": in_flight_peak,
        "in_flight_quota": o.quota,
        "healthy_accept_to_delivery_ms": {
            "during_outage": latency(&during),
            "outside_outage": latency(&outside),
        },
        "outage_seconds": [at(OUTAGE.0).as_secs(), at(OUTAGE.1).as_secs()],
        "kills": kills,
        "throttle_rate": o.throttle_rate,
        "retry_schedule": RETRY_SCHEDULE,
        "flaky_failure_rate": FLAKY_FAILURE_RATE,
        "circuit_probe_seconds": CIRCUIT_PROBE_SECONDS,
    }))
}

struct Sent {
    /// Accepted event ids and when their 202 arrived, Unix ms.
    accepted: HashMap<String, u64>,
    /// What each refused or failed send got.
    refused: Vec<String>,
}

/// `o.events` events at `o.rate` a second, at most `CONCURRENCY` at once; a slow answer
/// delays the next sends only once every slot is taken.
async fn send(http: &reqwest::Client, target: &str, o: &Options) -> Sent {
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / o.rate));
    let mut tasks = Vec::with_capacity(o.events);
    for n in 0..o.events {
        tick.tick().await;
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let (http, target) = (http.clone(), target.to_owned());
        tasks.push(tokio::spawn(async move {
            let _slot = slot;
            let body = json!({"event_type": "soak.test", "data": {"n": n}}).to_string();
            let r = http
                .post(&target)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            let r = match r {
                Ok(r) => r,
                Err(e) => return Err(format!("error: {}", e.without_url())),
            };
            let status = r.status();
            let at = unix_ms(SystemTime::now());
            let body: Value = r
                .bytes()
                .await
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(Value::Null);
            match body["id"].as_str() {
                Some(id) if status == StatusCode::ACCEPTED => Ok((id.to_owned(), at)),
                _ => Err(status.as_u16().to_string()),
            }
        }));
        if n > 0 && n % 1000 == 0 {
            println!("sent {n}");
        }
    }
    let mut sent = Sent {
        accepted: HashMap::new(),
        refused: Vec::new(),
    };
    for t in tasks {
        match t.await {
            Ok(Ok((id, at))) => {
                sent.accepted.insert(id, at);
            }
            Ok(Err(e)) => sent.refused.push(e),
            Err(e) => sent.refused.push(format!("task: {e}")),
        }
    }
    sent
}

/// Kills (-9) every delivery process the stack runs now: each is an execution environment,
/// busy with a batch at this rate.
async fn kill_delivery(bin: &Path, stack_pid: u32) -> Vec<u32> {
    let mut killed = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return killed;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let program = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        if program != bin.as_os_str().as_encoded_bytes() || parent_of(pid) != Some(stack_pid) {
            continue;
        }
        let ok = Command::new("kill")
            .arg("-9")
            .arg(pid.to_string())
            .status()
            .await
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            killed.push(pid);
        }
    }
    killed
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (in parentheses) may hold spaces; the fields after it do not.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

async fn queue_attributes(sqs: &aws_sdk_sqs::Client, url: &str) -> Option<(u64, u64, u64)> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .ok()?;
    let attrs = out.attributes.unwrap_or_default();
    let n = |k: QueueAttributeName| {
        attrs
            .get(&k)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Some((
        n(QueueAttributeName::ApproximateNumberOfMessages),
        n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        n(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
    ))
}

/// The deliveries queue's in-flight count (received, not yet deleted) every second; its peak.
async fn sample_in_flight(sqs: aws_sdk_sqs::Client, url: String, stop: Arc<AtomicBool>) -> u64 {
    let mut peak = 0;
    // Bounded: an hour of samples.
    for _ in 0..3600 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if let Some((_, in_flight, _)) = queue_attributes(&sqs, &url).await {
            peak = peak.max(in_flight);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    peak
}

/// Waits until every accepted event reached every endpoint, or the queues stayed empty for
/// `QUIET_FOR` (what is missing then is dead-lettered or lost), or `DRAIN_TIMEOUT`.
async fn drain(
    sqs: &aws_sdk_sqs::Client,
    q: &Queues,
    receivers: &[Arc<Receiver>; 3],
    ids: &HashSet<String>,
) -> bool {
    let started = Instant::now();
    let mut quiet_since: Option<Instant> = None;
    let mut last_print = Instant::now();
    while started.elapsed() < DRAIN_TIMEOUT {
        let arrived: Vec<usize> = receivers.iter().map(|r| r.has_all(ids)).collect();
        if arrived.iter().all(|n| *n == ids.len()) {
            return true;
        }
        let mut empty = true;
        let mut depth = Vec::new();
        for url in [&q.deliveries, &q.batching] {
            match queue_attributes(sqs, url).await {
                Some(d) => {
                    empty &= d == (0, 0, 0);
                    depth.push(d);
                }
                None => empty = false,
            }
        }
        if empty {
            let since = *quiet_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= QUIET_FOR {
                return true;
            }
        } else {
            quiet_since = None;
        }
        if last_print.elapsed() >= Duration::from_secs(15) {
            println!(
                "draining {:.0} s: arrived {arrived:?} of {}; deliveries queue (visible, in flight, delayed) {:?}",
                started.elapsed().as_secs_f64(),
                ids.len(),
                depth.first()
            );
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    false
}

/// Every dead letter's (endpoint id, event id), read with long polls and left in place
/// (hidden for the rest of the run, so each is read once).
async fn dead_letters(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut empty = 0;
    // Bounded: ten letters a receive, far more than any run dead-letters.
    for _ in 0..5000 {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(2)
            .visibility_timeout(900)
            .send()
            .await
            .map_err(aws_sdk_sqs::Error::from)?
            .messages
            .unwrap_or_default();
        if got.is_empty() {
            empty += 1;
            if empty >= 2 {
                break;
            }
            continue;
        }
        empty = 0;
        for m in got {
            let letter = DeadLetterBody::parse(m.body.as_deref().unwrap_or_default());
            if let Some(task) = letter.task() {
                let events: Vec<String> = match &task.batch {
                    Some(b) => b.events.iter().map(|e| e.event_id.clone()).collect(),
                    None => vec![task.event_id.clone()],
                };
                for e in events {
                    out.push((task.endpoint_id.clone(), e));
                }
            }
        }
    }
    Ok(out)
}

fn throttles(t: &Value) -> String {
    format!(
        "{} SQS and {} DynamoDB requests answered with a throttling error",
        t["sqs"], t["dynamodb"]
    )
}

fn markdown(r: &Value) -> String {
    let mut s = String::from("# Soak run\n\n");
    s += &format!(
        "{} events sent at {}/s through the ingest route of the local stack (debug build) in {} s; \
         {} accepted. Faults: one endpoint failing {}% at random, one down from {} s to {} s of \
         the sending (a compressed day), the delivery function killed (-9) {} times ({} of them mid-invocation, by the runner's log), {}% of SQS \
         and DynamoDB requests throttled ({}), retry schedule {}. Whole run {} s.\n\n",
        r["events_sent"],
        r["rate_per_second"],
        r["send_seconds"],
        r["events_accepted"],
        (r["flaky_failure_rate"].as_f64().unwrap_or(0.0) * 100.0).round(),
        r["outage_seconds"][0],
        r["outage_seconds"][1],
        r["kills"].as_array().map(Vec::len).unwrap_or(0),
        r["kills_mid_invocation"],
        r["throttle_rate"].as_f64().unwrap_or(0.0) * 100.0,
        throttles(&r["throttles_injected"]),
        r["retry_schedule"],
        r["duration_seconds"],
    );
    s += &format!("**Events lost: {}**\n\n", r["lost_total"]);
    s += "| endpoint | delivered | dead-lettered | lost | duplicate deliveries | events delivered twice or more | refused by receiver |\n|---|---|---|---|---|---|---|\n";
    for e in r["endpoints"].as_array().into_iter().flatten() {
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            e["endpoint"].as_str().unwrap_or("?"),
            e["delivered"],
            e["dead_lettered"],
            e["lost"],
            e["duplicate_deliveries"],
            e["events_delivered_more_than_once"],
            e["refused_by_receiver"]
        );
    }
    let l = &r["healthy_accept_to_delivery_ms"];
    s += &format!(
        "\nIn-flight peak on the deliveries queue: {} of a quota of {} (scaled down from 120 000).\n\n\
         Healthy endpoint, accept to delivery:\n\n| events accepted | events | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|\n\
         | during the outage | {} | {} | {} | {} |\n| outside it | {} | {} | {} | {} |\n\n\
         Ingest refusals: {}. Everything arrived or was dead-lettered before the drain timeout: {}.\n",
        r["in_flight_peak"],
        r["in_flight_quota"],
        l["during_outage"]["events"],
        l["during_outage"]["p50"],
        l["during_outage"]["p99"],
        l["during_outage"]["max"],
        l["outside_outage"]["events"],
        l["outside_outage"]["p50"],
        l["outside_outage"]["p99"],
        l["outside_outage"]["max"],
        r["ingest_refusals"],
        r["all_arrived_or_dead_lettered_before_timeout"],
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_pid_from_stat() {
        let me = std::process::id();
        let parent = parent_of(me).unwrap();
        assert!(parent > 0);
    }

    #[test]
    fn duplicates_count_extra_answers() {
        let r = Receiver::new("t", Behaviour::Healthy);
        r.answer(Some("a"));
        r.answer(Some("a"));
        r.answer(Some("a"));
        r.answer(Some("b"));
        assert_eq!(r.duplicates(), (2, 1));
        assert_eq!(r.first().len(), 2);
    }
}
