//! Stopping the child processes the local stack starts.

use std::time::Duration;

use tokio::process::{Child, Command};

/// Sends `signal` (e.g. `-TERM`) so the child can end what it started itself, waits up to
/// `grace`, then kills it.
pub async fn stop_politely(child: &mut Child, signal: &str, grace: Duration) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .await;
        if tokio::time::timeout(grace, child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}
