//! `events`, `attempts` and `retry`: what came in and what was sent.

use clap::Subcommand;

use super::{data, query};
use crate::api::{Api, CliError};
use crate::table;

#[derive(Debug, Subcommand)]
pub enum EventCommand {
    /// Events, newest first.
    List {
        #[arg(long = "type")]
        event_type: Option<String>,
        #[arg(long)]
        source: Option<String>,
        /// RFC 3339: events received at or after it.
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// One event with its payload.
    Get { id: String },
}

#[derive(Debug, Subcommand)]
pub enum AttemptCommand {
    /// Attempts, newest first.
    List {
        #[arg(long)]
        event: Option<String>,
        #[arg(long)]
        endpoint: Option<String>,
        /// SUCCESSFUL, FAILED or CANCELED.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// One attempt with its request and response.
    Get { id: String },
}

pub const EVENT_COLUMNS: [(&str, &str); 5] = [
    ("ID", "/id"),
    ("TYPE", "/event_type"),
    ("SOURCE", "/source_id"),
    ("RECEIVED", "/received_at"),
    ("ENDPOINTS", "/endpoint_ids"),
];

pub const ATTEMPT_COLUMNS: [(&str, &str); 7] = [
    ("ID", "/id"),
    ("EVENT", "/event_id"),
    ("ENDPOINT", "/endpoint_id"),
    ("#", "/attempt_number"),
    ("STATUS", "/status"),
    ("HTTP", "/response/status"),
    ("ERROR", "/error_code"),
];

pub async fn events(api: &Api, c: EventCommand, json: bool) -> Result<String, CliError> {
    match c {
        EventCommand::List {
            event_type,
            source,
            since,
            limit,
        } => {
            let q = query(&[
                ("event_type", event_type),
                ("source_id", source),
                ("since", since),
                ("limit", Some(limit.to_string())),
            ]);
            let page = api.get(&api.ws(&format!("/events{q}"))).await?;
            Ok(if json {
                table::json(&page)
            } else {
                table::render(&data(&page), &EVENT_COLUMNS)
            })
        }
        EventCommand::Get { id } => {
            let e = api.get(&api.ws(&format!("/events/{id}"))).await?;
            Ok(table::json(&e))
        }
    }
}

pub async fn attempts(api: &Api, c: AttemptCommand, json: bool) -> Result<String, CliError> {
    match c {
        AttemptCommand::List {
            event,
            endpoint,
            status,
            limit,
        } => {
            let q = query(&[
                ("event_id", event),
                ("endpoint_id", endpoint),
                ("status", status),
                ("limit", Some(limit.to_string())),
            ]);
            let page = api.get(&api.ws(&format!("/attempts{q}"))).await?;
            Ok(if json {
                table::json(&page)
            } else {
                table::render(&data(&page), &ATTEMPT_COLUMNS)
            })
        }
        AttemptCommand::Get { id } => {
            let a = api.get(&api.ws(&format!("/attempts/{id}"))).await?;
            Ok(table::json(&a))
        }
    }
}

pub async fn retry(api: &Api, event: &str, endpoint: &str, json: bool) -> Result<String, CliError> {
    let q = query(&[("endpoint_id", Some(endpoint.to_owned()))]);
    let answer = api
        .post(&api.ws(&format!("/events/{event}/retry{q}")), None)
        .await?;
    Ok(if json {
        table::json(&answer)
    } else {
        format!("queued a manual delivery of {event} to {endpoint}\n")
    })
}
