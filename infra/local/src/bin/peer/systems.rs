//! The two systems under test, each started, set up for a run, sent events and measured the
//! same way: hookrelay's local stack (release builds of the functions) and svix-server on
//! PostgreSQL and Redis, started by `bench/peer/svix.sh`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use hookrelay_local::bench_stack::{Ports, admin, start_stack_from, wait_ready};
use hookrelay_local::proc_cpu;
use hookrelay_local::process::stop_politely;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

pub const BODY_BYTES: usize = 1024;

/// The two groups every part belongs to.
pub const GATEWAY: &str = "gateway";
pub const STORAGE: &str = "storage_queue";

/// Where a run's events go and with which key.
pub struct Target {
    pub url: String,
    pub bearer: Option<String>,
}

pub enum System {
    Hookrelay {
        api: String,
        key: String,
        stack: Child,
        pid: u32,
    },
    Svix {
        base: String,
        token: String,
        script: PathBuf,
        pids: Vec<(String, u32)>,
    },
}

impl System {
    pub fn name(&self) -> &'static str {
        match self {
            System::Hookrelay { .. } => "hookrelay",
            System::Svix { .. } => "svix-server",
        }
    }

    /// hookrelay's stack on free ports with the binaries of `bin_dir`; its output in `log`.
    pub async fn start_hookrelay(
        http: &reqwest::Client,
        root: &Path,
        bin_dir: &Path,
        log: &Path,
    ) -> Result<Self> {
        let ports = Ports::free()?;
        let key = format!("peer-{}", ulid::Ulid::new());
        let env = [
            // No sweeper run in the middle of a measurement.
            ("HOOKRELAY_SWEEP_INTERVAL_SECONDS", "3600".to_owned()),
            // svix-server has no circuit breaker: with it on, five refusals in a row (which
            // 30 % failures produce now and then) would park an endpoint's tasks for 30 s,
            // and the two would no longer follow the same retry schedule.
            ("CIRCUIT_BREAKER_AFTER", "0".to_owned()),
        ];
        let mut stack = start_stack_from(bin_dir, root, &ports, &key, &env, log)?;
        let api = format!("http://127.0.0.1:{}", ports.api);
        wait_ready(http, &api, &mut stack).await?;
        let pid = stack.id().ok_or_else(|| anyhow!("the stack has exited"))?;
        Ok(System::Hookrelay {
            api,
            key,
            stack,
            pid,
        })
    }

    /// PostgreSQL, Redis and svix-server by `script start`; a token from `script token`.
    pub async fn start_svix(script: &Path, port: u16) -> Result<Self> {
        run_script(script, "start", port).await?;
        let token = run_script(script, "token", port).await?;
        let mut pids = Vec::new();
        for line in run_script(script, "pids", port).await?.lines() {
            let (name, pid) = line
                .split_once(' ')
                .ok_or_else(|| anyhow!("svix.sh pids printed {line:?}"))?;
            pids.push((name.to_owned(), pid.trim().parse()?));
        }
        Ok(System::Svix {
            base: format!("http://127.0.0.1:{port}/api/v1"),
            token,
            script: script.to_owned(),
            pids,
        })
    }

    pub async fn stop(self) {
        match self {
            // SIGINT is the stack's Ctrl-C: it stops the function processes and moto itself.
            System::Hookrelay { mut stack, .. } => {
                stop_politely(&mut stack, "-INT", Duration::from_secs(15)).await;
            }
            System::Svix { script, .. } => {
                if let Err(e) = run_script(&script, "stop", 0).await {
                    eprintln!("stopping svix-server: {e:#}");
                }
            }
        }
    }

    /// A fresh workspace (hookrelay) or application (svix) named `run`, with one endpoint
    /// per URL, every event going to all of them.
    pub async fn setup(
        &self,
        http: &reqwest::Client,
        run: &str,
        urls: &[String],
    ) -> Result<Target> {
        match self {
            System::Hookrelay { api, key, .. } => {
                admin(http, api, key, "/workspaces", json!({"name": run})).await?;
                for (i, url) in urls.iter().enumerate() {
                    let path = format!("/workspaces/{run}/endpoints");
                    let body = json!({"name": format!("ep{i}"), "url": url, "events": ["*"]});
                    admin(http, api, key, &path, body).await?;
                }
                let source = admin(
                    http,
                    api,
                    key,
                    &format!("/workspaces/{run}/sources"),
                    json!({"name": "peer"}),
                )
                .await?;
                let id = source["id"]
                    .as_str()
                    .ok_or_else(|| anyhow!("source without id: {source}"))?;
                Ok(Target {
                    url: format!("{api}/in/{id}"),
                    bearer: None,
                })
            }
            System::Svix { base, token, .. } => {
                let app = admin(http, base, token, "/app/", json!({"name": run})).await?;
                let app = app["id"]
                    .as_str()
                    .ok_or_else(|| anyhow!("application without id: {app}"))?;
                for url in urls {
                    let path = format!("/app/{app}/endpoint/");
                    admin(http, base, token, &path, json!({"url": url, "version": 1})).await?;
                }
                Ok(Target {
                    url: format!("{base}/app/{app}/msg/"),
                    bearer: Some(token.clone()),
                })
            }
        }
    }

    /// A 1 KiB JSON request in each system's own shape: hookrelay ingests any JSON, svix
    /// takes an `eventType` and a `payload`.
    pub fn body(&self) -> String {
        let (head, tail) = match self {
            System::Hookrelay { .. } => (r#"{"event_type":"load.test","data":{"pad":""#, r#""}}"#),
            System::Svix { .. } => (r#"{"eventType":"load.test","payload":{"pad":""#, r#""}}"#),
        };
        format!(
            "{head}{}{tail}",
            "x".repeat(BODY_BYTES - head.len() - tail.len())
        )
    }

    /// CPU seconds of every process of the system, by part (`functions`, `postgresql`, …).
    pub fn cpu(&self) -> Result<BTreeMap<String, f64>> {
        match self {
            System::Hookrelay { pid, .. } => Ok(proc_cpu::sample(*pid)?
                .0
                .into_iter()
                .map(|(part, secs)| (part.to_owned(), secs))
                .collect()),
            System::Svix { pids, .. } => pids
                .iter()
                .map(|(name, pid)| Ok((name.clone(), proc_cpu::tree(*pid)?.0)))
                .collect(),
        }
    }

    /// Bytes its database holds, where one can be asked (PostgreSQL); the growth over a run
    /// is what the cost comparison's storage line needs.
    pub async fn stored_bytes(&self) -> Option<u64> {
        match self {
            System::Hookrelay { .. } => None,
            System::Svix { script, .. } => run_script(script, "dbsize", 0).await.ok()?.parse().ok(),
        }
    }

    /// A reader of the system's proportional memory (bytes) by part, for a sampling thread.
    pub fn memory_reader(&self) -> Box<dyn Fn() -> Result<BTreeMap<String, u64>> + Send> {
        match self {
            System::Hookrelay { pid, .. } => {
                let pid = *pid;
                Box::new(move || {
                    Ok(proc_cpu::memory(pid)?
                        .into_iter()
                        .map(|(part, bytes)| (part.to_owned(), bytes))
                        .collect())
                })
            }
            System::Svix { pids, .. } => {
                let pids = pids.clone();
                Box::new(move || {
                    pids.iter()
                        .map(|(name, pid)| Ok((name.clone(), proc_cpu::tree(*pid)?.1)))
                        .collect()
                })
            }
        }
    }
}

/// The group a part belongs to: the store and queue (the AWS emulator; PostgreSQL and
/// Redis) or the gateway's own processes (everything else).
pub fn group_of(part: &str) -> &'static str {
    match part {
        proc_cpu::EMULATOR | "postgresql" | "redis" => STORAGE,
        _ => GATEWAY,
    }
}

/// `POST target` with `body`; the accepted message's id, or why not.
pub async fn send(http: &reqwest::Client, target: &Target, body: String) -> Result<String> {
    let mut req = http
        .post(&target.url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(t) = &target.bearer {
        req = req.bearer_auth(t);
    }
    let r = req.send().await?;
    let status = r.status();
    let v: Value = serde_json::from_slice(&r.bytes().await?).unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("answered {status}: {v}");
    }
    v["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("accepted without an id: {v}"))
}

/// The svix-server revision `svix.sh build` builds.
pub async fn svix_revision(script: &Path) -> Option<String> {
    run_script(script, "rev", 0).await.ok()
}

async fn run_script(script: &Path, command: &str, port: u16) -> Result<String> {
    let mut cmd = Command::new("bash");
    cmd.arg(script).arg(command);
    if port != 0 {
        cmd.env("SVIX_PORT", port.to_string());
    }
    let out = cmd
        .output()
        .await
        .with_context(|| format!("running {} {command}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} {command} failed ({}): {}{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_fall_into_two_groups() {
        assert_eq!(group_of(proc_cpu::EMULATOR), STORAGE);
        assert_eq!(group_of("postgresql"), STORAGE);
        assert_eq!(group_of("redis"), STORAGE);
        assert_eq!(group_of(proc_cpu::FUNCTIONS), GATEWAY);
        assert_eq!(group_of("svix-server"), GATEWAY);
    }
}
