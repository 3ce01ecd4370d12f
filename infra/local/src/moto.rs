//! Starts moto's server (the local AWS emulator) on a free port of 127.0.0.1. A watchdog
//! subshell stops it when the process that started it exits, however it exits, so neither the
//! tests nor `make dev` leave one behind.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

pub struct MotoServer {
    child: Child,
    pub endpoint: String,
}

impl MotoServer {
    /// Starts on `port`, or on a free one when `None`.
    pub fn start(port: Option<u16>) -> Result<Self> {
        Self::start_with(port, &[])
    }

    /// Starts with settings of its own in its environment, e.g. a scaled-down
    /// `HOOKRELAY_SQS_INFLIGHT_QUOTA` (see `moto_server.py`).
    pub fn start_with(port: Option<u16>, env: &[(&str, &str)]) -> Result<Self> {
        let (bin, script) = moto_command();
        let port = match port {
            Some(p) => p,
            None => free_port()?,
        };
        let child = Command::new("sh")
            .arg("-c")
            // The subshell watches the parent; `exec` makes moto this child's own pid, so
            // dropping the server kills moto itself.
            .arg(r#"( while kill -0 "$2" 2>/dev/null && kill -0 $$ 2>/dev/null; do sleep 1; done; kill $$ 2>/dev/null ) & exec "$0" $3 -H 127.0.0.1 -p "$1" >/dev/null 2>&1"#)
            .arg(&bin)
            .arg(port.to_string())
            .arg(std::process::id().to_string())
            .arg(script.as_deref().map(Path::as_os_str).unwrap_or_default())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut server = Self { child, endpoint };
        server.wait_ready(Duration::from_secs(60))?;
        Ok(server)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        let addr = self.endpoint.trim_start_matches("http://").to_owned();
        while started.elapsed() < timeout {
            if let Some(status) = self.child.try_wait()? {
                bail!("moto_server exited early ({status}); run `make venv` to install it");
            }
            if std::net::TcpStream::connect(&addr).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("moto_server did not listen on {addr} within {timeout:?}")
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// `MOTO_SERVER` (a moto server command of one's own), else `moto_server.py` beside this
/// crate, which makes each DynamoDB operation atomic as DynamoDB does, run by the project's
/// virtualenv's Python (else the one on `PATH`).
fn moto_command() -> (PathBuf, Option<PathBuf>) {
    if let Some(p) = std::env::var_os("MOTO_SERVER") {
        return (PathBuf::from(p), None);
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = here.join("moto_server.py");
    let venv = here.join("../../.venv/bin/python3");
    if venv.exists() {
        return (venv, Some(script));
    }
    (PathBuf::from("python3"), Some(script))
}

pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
