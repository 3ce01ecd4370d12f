//! `dlq peek` and `dlq redrive`: the dead-letter queue (the admin key's).

use clap::Subcommand;

use super::query;
use crate::api::{Api, CliError};
use crate::table;

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Look at letters without taking them off the queue.
    Peek,
    /// Send letters back to the deliveries queue.
    Redrive {
        /// At most this many letters.
        #[arg(long)]
        limit: Option<u32>,
    },
}

pub async fn run(api: &Api, c: DlqCommand, json: bool) -> Result<String, CliError> {
    match c {
        DlqCommand::Peek => {
            let peek = api.get("/dlq").await?;
            if json {
                return Ok(table::json(&peek));
            }
            let letters = peek["letters"].as_array().cloned().unwrap_or_default();
            let mut out = format!(
                "{} letter(s) on the queue\n",
                peek["depth"]["visible"]
                    .as_u64()
                    .unwrap_or(letters.len() as u64)
            );
            out.push_str(&table::render(
                &letters,
                &[
                    ("EVENT", "/letter/task/event_id"),
                    ("ENDPOINT", "/letter/task/endpoint_id"),
                    ("REASON", "/letter/reason"),
                    ("ERROR", "/letter/last_error_code"),
                    ("ATTEMPTS", "/letter/attempts"),
                ],
            ));
            Ok(out)
        }
        DlqCommand::Redrive { limit } => {
            let q = query(&[("limit", limit.map(|l| l.to_string()))]);
            let answer = api.post(&format!("/dlq/redrive{q}"), None).await?;
            Ok(if json {
                table::json(&answer)
            } else {
                format!(
                    "redrove {} letter(s)\n",
                    answer["redriven"].as_u64().unwrap_or_default()
                )
            })
        }
    }
}
