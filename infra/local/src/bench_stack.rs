//! What the benchmarks that drive the `make dev` stack share (`hookrelay-load`,
//! `hookrelay-soak`): starting it as a child on ports of their own, waiting until it
//! answers, the admin calls that set it up, and their statistics.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::moto::free_port;

/// The stack's ports, all free ones, so a run never collides with a `make dev` of its own.
pub struct Ports {
    pub api: u16,
    pub aws: u16,
    pub lambda: u16,
    pub demo_receiver: u16,
}

impl Ports {
    pub fn free() -> Result<Self> {
        Ok(Self {
            api: free_port()?,
            aws: free_port()?,
            lambda: free_port()?,
            demo_receiver: free_port()?,
        })
    }
}

/// Starts `target/debug/hookrelay-local` (as `make dev` built it) with `env` on top of this
/// process's environment, its output in `log`.
pub fn start_stack(
    root: &Path,
    ports: &Ports,
    admin_key: &str,
    env: &[(&str, String)],
    log: &Path,
) -> Result<Child> {
    start_stack_from(&root.join("target/debug"), root, ports, admin_key, env, log)
}

/// As [`start_stack`], with `hookrelay-local` and the functions it runs (they sit beside it)
/// taken from `bin_dir`: `target/release` for a bench that compares release builds.
pub fn start_stack_from(
    bin_dir: &Path,
    root: &Path,
    ports: &Ports,
    admin_key: &str,
    env: &[(&str, String)],
    log: &Path,
) -> Result<Child> {
    let bin = bin_dir.join("hookrelay-local");
    if !bin.exists() {
        bail!(
            "{} is missing; build it and the functions beside it \
             (cargo build -p hookrelay-local, cargo build --bin ingest …)",
            bin.display()
        );
    }
    let log_file = std::fs::File::create(log)?;
    Command::new(&bin)
        .env("HOOKRELAY_PORT", ports.api.to_string())
        .env("HOOKRELAY_AWS_PORT", ports.aws.to_string())
        .env("HOOKRELAY_LAMBDA_PORT", ports.lambda.to_string())
        .env("HOOKRELAY_RECEIVER_PORT", ports.demo_receiver.to_string())
        .env("HOOKRELAY_ADMIN_KEY", admin_key)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

/// Ready once the admin function answers through the gateway, which needs moto, the
/// provisioned resources and the functions all up.
pub async fn wait_ready(http: &reqwest::Client, api: &str, stack: &mut Child) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        if let Some(status) = stack.try_wait()? {
            bail!("the local stack exited early ({status})");
        }
        if let Ok(r) = http.get(format!("{api}/openapi.json")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("the local stack did not answer on {api} within 300 s")
}

/// `POST path` on the admin API; its JSON answer, or an error naming the refusal.
pub async fn admin(
    http: &reqwest::Client,
    api: &str,
    key: &str,
    path: &str,
    body: Value,
) -> Result<Value> {
    let r = http
        .post(format!("{api}{path}"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await?;
    let status = r.status();
    let body: Value = serde_json::from_slice(&r.bytes().await?).unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("POST {path} answered {status}: {body}");
    }
    Ok(body)
}

/// Writes a run's report as `bench/results/{name}.json` (or under `HOOKRELAY_BENCH_OUT`),
/// and its table as `{name}.md` when there is one.
pub fn write_report(root: &Path, name: &str, report: &Value, markdown: Option<&str>) -> Result<()> {
    let out = std::env::var("HOOKRELAY_BENCH_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("bench/results"));
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join(format!("{name}.json")),
        serde_json::to_string_pretty(report)?,
    )?;
    if let Some(md) = markdown {
        std::fs::write(out.join(format!("{name}.md")), md)?;
    }
    Ok(())
}

pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Nearest-rank percentile of sorted values; 0 when there are none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
