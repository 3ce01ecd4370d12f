//! A run's figures, `peer.json` and the tables of `peer.md`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use hookrelay_local::bench_stack::percentile;
use serde_json::{Value, json};

use crate::receiver::Arrival;
use crate::systems::{GATEWAY, STORAGE, group_of};

/// One request of a run.
pub struct Sent {
    pub id: Option<String>,
    pub latency: Duration,
    /// When its 2xx answer arrived: the accept, from which delivery times are counted.
    pub accepted: Option<Instant>,
    pub error: Option<String>,
}

pub struct RunResult {
    pub system: &'static str,
    pub fanout: u16,
    pub failure_pct: u8,
    pub rate: u32,
    pub started: Instant,
    pub last_accept: Option<Instant>,
    pub drained_after: Duration,
    pub sent: Vec<Sent>,
    pub arrivals: HashMap<(u16, String), Arrival>,
    /// CPU seconds by part over the sending and the drain.
    pub cpu: BTreeMap<String, f64>,
    /// Peak proportional memory by part, bytes.
    pub peak_pss: BTreeMap<String, u64>,
    /// Growth of the system's database over the run, where it has one to ask.
    pub stored_bytes: Option<u64>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn p50_p99(mut v: Vec<f64>) -> Value {
    v.sort_by(f64::total_cmp);
    json!({
        "p50": round(percentile(&v, 50.0)),
        "p99": round(percentile(&v, 99.0)),
        "max": round(percentile(&v, 100.0)),
    })
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Sums a by-part map into the two groups.
fn grouped<T: Copy + Into<f64>>(by_part: &BTreeMap<String, T>) -> BTreeMap<&'static str, f64> {
    let mut out = BTreeMap::from([(GATEWAY, 0.0), (STORAGE, 0.0)]);
    for (part, v) in by_part {
        *out.entry(group_of(part)).or_default() += (*v).into();
    }
    out
}

impl RunResult {
    pub fn summary(&self) -> Value {
        let accept_at: HashMap<&str, Instant> = self
            .sent
            .iter()
            .filter_map(|s| Some((s.id.as_deref()?, s.accepted?)))
            .collect();
        let accepted = accept_at.len();
        let span = self
            .last_accept
            .map_or(0.0, |l| (l - self.started).as_secs_f64());
        let mut first_attempt = Vec::new();
        let mut delivered = Vec::new();
        let mut attempts = 0u32;
        let mut per_event: HashMap<&str, u16> = HashMap::new();
        for ((_, id), a) in &self.arrivals {
            let Some(at) = accept_at.get(id.as_str()) else {
                continue;
            };
            attempts += a.attempts;
            // A delivery may reach the receiver before the accept's answer reaches the
            // client; such a delivery counts as 0 ms.
            first_attempt.push(ms(a.first_attempt.saturating_duration_since(*at)));
            if let Some(ok) = a.first_success {
                delivered.push(ms(ok.saturating_duration_since(*at)));
                *per_event.entry(id.as_str()).or_default() += 1;
            }
        }
        let deliveries = delivered.len();
        let events = accepted.max(1) as f64;
        let cpu_ms: BTreeMap<String, f64> = self
            .cpu
            .iter()
            .map(|(k, v)| (k.clone(), round(v * 1000.0 / events)))
            .collect();
        let cpu_groups = grouped(&cpu_ms);
        let mib: BTreeMap<String, f64> = self
            .peak_pss
            .iter()
            .map(|(k, v)| (k.clone(), round(*v as f64 / 1_048_576.0)))
            .collect();
        let latencies = self.sent.iter().filter(|s| s.id.is_some());
        let mut errors: Vec<&str> = self
            .sent
            .iter()
            .filter_map(|s| s.error.as_deref())
            .collect();
        errors.truncate(3);
        json!({
            "system": self.system,
            "fanout": self.fanout,
            "failure_pct": self.failure_pct,
            "rate": self.rate,
            "sent": self.sent.len(),
            "accepted": accepted,
            "not_accepted": self.sent.len() - accepted,
            "first_errors": errors,
            "accepted_per_second": round(if span > 0.0 { accepted as f64 / span } else { 0.0 }),
            "accept_latency_ms": p50_p99(latencies.map(|s| ms(s.latency)).collect()),
            "deliveries_expected": accepted * usize::from(self.fanout),
            "deliveries": deliveries,
            "events_delivered_to_all": per_event.values().filter(|n| **n == self.fanout).count(),
            "attempts": attempts,
            "accept_to_first_attempt_ms": p50_p99(first_attempt),
            "accept_to_delivery_ms": p50_p99(delivered),
            "stored_bytes_per_event": self.stored_bytes.map(|b| round(b as f64 / events)),
            "drained_after_s": round(self.drained_after.as_secs_f64()),
            "cpu_ms_per_event": {
                "by_part": cpu_ms,
                GATEWAY: round(cpu_groups[GATEWAY]),
                STORAGE: round(cpu_groups[STORAGE]),
                "total": round(cpu_groups.values().sum()),
            },
            "peak_mib": {
                "by_part": mib,
                GATEWAY: round(grouped(&mib)[GATEWAY]),
                STORAGE: round(grouped(&mib)[STORAGE]),
            },
        })
    }

    /// The run in one line, for the console.
    pub fn line(&self) -> String {
        let s = self.summary();
        format!(
            "{} fan-out {} failures {}% at {}/s: {} of {} accepted ({}/s), accept p50 {} ms \
             p99 {} ms; {} of {} deliveries, p50 {} ms p99 {} ms; CPU {} ms/event ({} gateway, \
             {} store+queue)",
            self.system,
            self.fanout,
            self.failure_pct,
            self.rate,
            s["accepted"],
            s["sent"],
            s["accepted_per_second"],
            s["accept_latency_ms"]["p50"],
            s["accept_latency_ms"]["p99"],
            s["deliveries"],
            s["deliveries_expected"],
            s["accept_to_delivery_ms"]["p50"],
            s["accept_to_delivery_ms"]["p99"],
            s["cpu_ms_per_event"]["total"],
            s["cpu_ms_per_event"][GATEWAY],
            s["cpu_ms_per_event"][STORAGE],
        )
    }
}

pub fn to_json(
    root: &Path,
    svix_revision: Option<String>,
    settings: &Value,
    runs: &[RunResult],
) -> Value {
    json!({
        // A copy exported with `git archive` has no repository: HOOKRELAY_COMMIT names it.
        "commit": git(root, &["rev-parse", "--short", "HEAD"])
            .or_else(|| std::env::var("HOOKRELAY_COMMIT").ok()),
        "svix_server_revision": svix_revision,
        "machine": machine(),
        "date": today(),
        "settings": settings,
        "runs": runs.iter().map(RunResult::summary).collect::<Vec<_>>(),
    })
}

fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(root)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn today() -> String {
    std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// CPU model, cores and memory, from /proc.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0);
    format!(
        "{cores} cores, {model}, {:.0} GiB",
        mem_kib as f64 / 1_048_576.0
    )
}

/// What the tables can and cannot show, printed under them.
const CAVEATS: &str = "
## What this shows and what it does not

- One machine, one system at a time (the other stopped), the load generator and the receiver
  on the same cores. Both systems get the same requests on the same schedule and the same
  receiver, which refuses the same 30 % of first attempts (a hash of the message id and the
  endpoint); both retry 5 s after a failure (their default schedules are the same,
  `5,300,1800,…` s). hookrelay's circuit breaker is off for the run: svix-server has none,
  and five refusals in a row would otherwise park an endpoint for 30 s.
- hookrelay's store and queue here is moto, a Python emulator of DynamoDB and SQS that keeps
  everything in memory. Its CPU and latency say nothing about DynamoDB's or SQS's: on AWS
  those are services billed per request, not processes to run, and their latency is a
  network round trip. svix-server's store is PostgreSQL 15 with Debian's defaults (durable:
  every commit is flushed to disk) and its queue and cache Redis without persistence. So the
  store/queue column compares an emulator with real databases; the gateway column is the
  fairer one.
- hookrelay's gateway column is its four functions (release builds, one process per
  concurrent environment, as Lambda runs them) plus the local stack's stand-ins for API
  Gateway, the Lambda runtime and the SQS event source poller (`hookrelay-local`, release
  build). On AWS those stand-ins are API Gateway and Lambda's own machinery.
- svix-server is built from its public source with the released hyper instead of Svix's fork,
  so the header names of its deliveries go out lower-case; nothing else is changed. It runs
  its API and its worker in one process.
- Times are from the client's 2xx answer to the receiver's, on one clock; a delivery that
  arrives before the answer counts as 0 ms. A row whose first attempts take seconds fell
  behind its rate on this machine. Peak memory is sampled every 250 ms.
- CPU per event includes what each system does while idle over the run (pollers, background
  tasks), so a lower rate, and a run with refusals that waits 5 s for its retries, shows more.
";

/// One table per scenario, a row per system and rate.
pub fn markdown(report: &Value) -> String {
    let mut md = format!(
        "# Side by side: hookrelay and svix-server\n\n\
         `make bench-peer`, commit `{}`, svix-server `{}`, {}, {}.\n\
         Each row: 1 KiB JSON events sent open-loop at the rate for {} s, then up to {} s for\n\
         every delivery to succeed. Times from the accept (the client's 2xx answer) to the\n\
         receiver; CPU per accepted event over the sending and the drain; memory is the peak of\n\
         the proportional set size (shared pages split), summed over each part's processes.\n",
        report["commit"].as_str().unwrap_or("?"),
        report["svix_server_revision"]
            .as_str()
            .map_or("?".into(), |r| r.chars().take(9).collect::<String>()),
        report["machine"].as_str().unwrap_or("?"),
        report["date"].as_str().unwrap_or("?"),
        report["settings"]["seconds_per_run"],
        report["settings"]["drain_timeout_seconds"],
    );
    let runs = report["runs"].as_array().cloned().unwrap_or_default();
    let mut scenarios: Vec<(u64, u64)> = runs
        .iter()
        .map(|r| {
            (
                r["fanout"].as_u64().unwrap_or(0),
                r["failure_pct"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    scenarios.sort();
    scenarios.dedup();
    for (fanout, pct) in scenarios {
        md.push_str(&format!(
            "\n## Fan-out {fanout}, {pct} % of first attempts refused\n\n\
             | system | offered /s | accepted /s | accept p50 / p99 ms \
             | first attempt p50 / p99 ms | delivered p50 / p99 ms | delivered \
             | CPU ms/event: gateway + store/queue | peak MiB: gateway + store/queue |\n\
             |---|---|---|---|---|---|---|---|---|\n"
        ));
        for r in runs
            .iter()
            .filter(|r| r["fanout"] == fanout && r["failure_pct"] == pct)
        {
            let pair = |v: &Value| format!("{} / {}", v["p50"], v["p99"]);
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} of {} | {} + {} = {} | {} + {} |\n",
                r["system"].as_str().unwrap_or("?"),
                r["rate"],
                r["accepted_per_second"],
                pair(&r["accept_latency_ms"]),
                pair(&r["accept_to_first_attempt_ms"]),
                pair(&r["accept_to_delivery_ms"]),
                r["deliveries"],
                r["deliveries_expected"],
                r["cpu_ms_per_event"][GATEWAY],
                r["cpu_ms_per_event"][STORAGE],
                r["cpu_ms_per_event"]["total"],
                r["peak_mib"][GATEWAY],
                r["peak_mib"][STORAGE],
            ));
        }
    }
    md.push_str(CAVEATS);
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_sum_into_groups() {
        let m = BTreeMap::from([
            ("functions".to_owned(), 1.0),
            ("gateway_and_poller".to_owned(), 2.0),
            ("aws_emulator".to_owned(), 4.0),
        ]);
        let g = grouped(&m);
        assert_eq!(g[GATEWAY], 3.0);
        assert_eq!(g[STORAGE], 4.0);
    }
}
