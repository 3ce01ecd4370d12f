//! `dlq peek` and `dlq redrive`: the dead-letter queues (the admin key's); `--ordered` for the
//! ordered queue's own.

use clap::Subcommand;

use super::query;
use crate::api::{Api, CliError};
use crate::table;

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Look at letters without taking them off the queue.
    Peek {
        /// The ordered queue's dead-letter queue instead of the deliveries'.
        #[arg(long)]
        ordered: bool,
    },
    /// Send letters back for delivery, each to the queue its task belongs on.
    Redrive {
        /// At most this many letters.
        #[arg(long)]
        limit: Option<u32>,
        /// The ordered queue's dead-letter queue instead of the deliveries'.
        #[arg(long)]
        ordered: bool,
    },
}

fn which(ordered: bool) -> Option<String> {
    ordered.then(|| "ordered".to_owned())
}

pub async fn run(api: &Api, c: DlqCommand, json: bool) -> Result<String, CliError> {
    match c {
        DlqCommand::Peek { ordered } => {
            let q = query(&[("queue", which(ordered))]);
            let peek = api.get(&format!("/dlq{q}")).await?;
            if json {
                return Ok(table::json(&peek));
            }
            let letters = peek["data"].as_array().cloned().unwrap_or_default();
            let mut out = format!(
                "{} letter(s) on the queue\n",
                peek["depth"]["visible"]
                    .as_u64()
                    .unwrap_or(letters.len() as u64)
            );
            out.push_str(&table::render(
                &letters,
                &[
                    ("EVENT", "/task/event_id"),
                    ("ENDPOINT", "/task/endpoint_id"),
                    ("REASON", "/reason"),
                    ("ERROR", "/last_error_code"),
                    ("ATTEMPTS", "/attempts"),
                ],
            ));
            Ok(out)
        }
        DlqCommand::Redrive { limit, ordered } => {
            let q = query(&[
                ("limit", limit.map(|l| l.to_string())),
                ("queue", which(ordered)),
            ]);
            let answer = api.post(&format!("/dlq/redrive{q}"), None).await?;
            Ok(if json {
                table::json(&answer)
            } else {
                let more = if answer["complete"].as_bool() == Some(false) {
                    format!(
                        "; about {} left: run it again",
                        answer["remaining_estimate"].as_u64().unwrap_or_default()
                    )
                } else {
                    String::new()
                };
                format!(
                    "redrove {} letter(s){more}\n",
                    answer["moved"].as_u64().unwrap_or_default()
                )
            })
        }
    }
}
