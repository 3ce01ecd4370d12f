//! The receiver both systems deliver to: one URL per endpoint, `/hook/{run}/{endpoint}/{pct}`,
//! where `pct` is the share of first attempts it refuses with 500. Which ones is decided by
//! a hash of the message id and the endpoint, so both systems see the same refusals for the
//! same positions and a retry of a refused message always succeeds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::any;

/// One message at one endpoint.
#[derive(Clone, Copy, Debug)]
pub struct Arrival {
    pub first_attempt: Instant,
    pub first_success: Option<Instant>,
    pub attempts: u32,
}

/// (endpoint index, message id) → its arrivals, per run.
type Runs = HashMap<String, HashMap<(u16, String), Arrival>>;

#[derive(Clone, Default)]
pub struct Receiver(Arc<Mutex<Runs>>);

impl Receiver {
    /// Starts listening on 127.0.0.1; the base URL of its hooks.
    pub async fn start(&self) -> Result<String> {
        let app = Router::new().fallback(any(handle)).with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(format!("http://{addr}/hook"))
    }

    /// Successful first deliveries of `run` so far.
    pub fn successes(&self, run: &str) -> usize {
        self.0.lock().map_or(0, |m| {
            m.get(run).map_or(0, |r| {
                r.values().filter(|a| a.first_success.is_some()).count()
            })
        })
    }

    /// Everything `run` received, keyed by (endpoint, message id).
    pub fn take(&self, run: &str) -> HashMap<(u16, String), Arrival> {
        self.0
            .lock()
            .ok()
            .and_then(|mut m| m.remove(run))
            .unwrap_or_default()
    }
}

async fn handle(State(rx): State<Receiver>, uri: Uri, headers: HeaderMap, _b: Bytes) -> StatusCode {
    let now = Instant::now();
    let Some((run, endpoint, pct)) = parse_path(uri.path()) else {
        return StatusCode::NOT_FOUND;
    };
    // hookrelay sends Standard Webhooks' `webhook-id`, svix-server its own `svix-id`.
    let Some(id) = ["webhook-id", "svix-id"]
        .iter()
        .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
    else {
        return StatusCode::BAD_REQUEST;
    };
    let Ok(mut runs) = rx.0.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    let arrival = runs
        .entry(run.to_owned())
        .or_default()
        .entry((endpoint, id.to_owned()))
        .or_insert(Arrival {
            first_attempt: now,
            first_success: None,
            attempts: 0,
        });
    arrival.attempts += 1;
    if arrival.attempts == 1 && refuses_first(id, endpoint, pct) {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    arrival.first_success.get_or_insert(now);
    StatusCode::OK
}

fn parse_path(path: &str) -> Option<(&str, u16, u8)> {
    let mut parts = path.strip_prefix("/hook/")?.split('/');
    let run = parts.next().filter(|r| !r.is_empty())?;
    let endpoint = parts.next()?.parse().ok()?;
    let pct = parts.next()?.parse().ok().filter(|p| *p <= 100)?;
    Some((run, endpoint, pct))
}

/// FNV-1a of the id and the endpoint: stable across runs and processes.
fn refuses_first(id: &str, endpoint: u16, pct: u8) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes().chain(endpoint.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % 100 < u64::from(pct)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_run_endpoint_and_share() {
        assert_eq!(parse_path("/hook/r1/3/30"), Some(("r1", 3, 30)));
        assert_eq!(parse_path("/hook/r1/3/101"), None);
        assert_eq!(parse_path("/other/r1/3/30"), None);
    }

    #[test]
    fn refusals_are_about_the_share_asked_for() {
        let refused = (0..10_000)
            .filter(|i| refuses_first(&format!("msg_{i}"), 0, 30))
            .count();
        assert!((2_700..3_300).contains(&refused), "{refused}");
        assert!(!(0..100).any(|i| refuses_first(&format!("m{i}"), 1, 0)));
    }
}
