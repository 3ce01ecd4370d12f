//! `tail`: new events and attempts as they happen, by polling the listings (newest first)
//! and printing what was not seen before, oldest first.

use std::collections::HashSet;
use std::time::Duration;

use clap::Args;
use serde_json::Value;

use super::data;
use super::history::{ATTEMPT_COLUMNS, EVENT_COLUMNS};
use crate::api::{Api, CliError};
use crate::table;

#[derive(Debug, Args)]
pub struct TailArgs {
    /// Seconds between polls.
    #[arg(long, default_value_t = 2.0)]
    pub interval: f64,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    pub duration: Option<f64>,
}

pub async fn run(api: &Api, args: TailArgs, json: bool) -> Result<String, CliError> {
    if !(args.interval.is_finite() && args.interval >= 0.2) {
        return Err(CliError::Usage(
            "--interval must be at least 0.2 seconds".into(),
        ));
    }
    let started = std::time::Instant::now();
    let start_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut seen: HashSet<String> = HashSet::new();
    // What exists when the tail starts is history, not news.
    for path in ["/events?limit=100", "/attempts?limit=100"] {
        for item in data(&api.get(&api.ws(path)).await?) {
            seen.extend(item["id"].as_str().map(str::to_owned));
        }
    }
    loop {
        if args
            .duration
            .is_some_and(|d| started.elapsed().as_secs_f64() >= d)
        {
            return Ok(String::new());
        }
        tokio::time::sleep(Duration::from_secs_f64(args.interval)).await;
        for (kind, path, columns) in [
            ("event", "/events?limit=100", &EVENT_COLUMNS[..]),
            ("attempt", "/attempts?limit=100", &ATTEMPT_COLUMNS[..]),
        ] {
            let fresh: Vec<Value> = data(&api.get(&api.ws(path)).await?)
                .into_iter()
                .rev()
                .filter(|i| {
                    i["id"].as_str().is_some_and(|id| {
                        // An event accepted before the tail started but listed since (its
                        // first task was received after) is history too.
                        id_millis(id).is_none_or(|at| at >= start_ms) && seen.insert(id.to_owned())
                    })
                })
                .collect();
            for item in fresh {
                let line = if json {
                    format!("{}\n", serde_json::json!({"kind": kind, "item": item}))
                } else {
                    let row = table::render(&[item], columns);
                    format!(
                        "{kind:<8} {}",
                        row.lines().nth(1).unwrap_or_default().to_owned() + "\n"
                    )
                };
                print!("{line}");
            }
        }
    }
}

/// The time an id was made (its ULID's), in Unix milliseconds.
fn id_millis(id: &str) -> Option<u64> {
    let (_, ulid) = id.split_once('_')?;
    ulid::Ulid::from_string(ulid).ok().map(|u| u.timestamp_ms())
}
