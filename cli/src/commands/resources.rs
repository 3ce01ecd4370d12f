//! `sources` and `endpoints`: list and create.

use clap::Subcommand;
use serde_json::{Value, json};

use super::data;
use crate::api::{Api, CliError};
use crate::table;

#[derive(Debug, Subcommand)]
pub enum SourceCommand {
    /// List the workspace's sources with their ingest paths.
    List,
    /// Create a source (the full settings as JSON with --body, or the common ones as flags).
    Create {
        #[arg(long)]
        name: Option<String>,
        /// Verification type: none, github, stripe, standard_webhooks, shopify, slack, …
        #[arg(long = "type")]
        kind: Option<String>,
        /// The verification secret, for types that have one.
        #[arg(long)]
        secret: Option<String>,
        /// The source's settings as JSON (see docs/sources.md); flags override it.
        #[arg(long)]
        body: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// List the workspace's endpoints with their health.
    List,
    /// Create an endpoint; its signing secret is printed once.
    Create {
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        url: Option<String>,
        /// Event type filters, comma-separated (`order.*,invoice.paid`; default `*`).
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
        /// The endpoint's settings as JSON; flags override it.
        #[arg(long)]
        body: Option<String>,
    },
}

fn settings(body: Option<&str>) -> Result<Value, CliError> {
    match body {
        None => Ok(json!({})),
        Some(b) => {
            serde_json::from_str(b).map_err(|e| CliError::Usage(format!("--body is not JSON: {e}")))
        }
    }
}

pub async fn sources(api: &Api, c: SourceCommand, json_out: bool) -> Result<String, CliError> {
    match c {
        SourceCommand::List => {
            let page = api.get(&api.ws("/sources?limit=100")).await?;
            Ok(if json_out {
                table::json(&page)
            } else {
                table::render(
                    &data(&page),
                    &[
                        ("ID", "/id"),
                        ("NAME", "/name"),
                        ("VERIFICATION", "/verification/type"),
                        ("ENABLED", "/enabled"),
                        ("INGEST PATH", "/ingest_path"),
                    ],
                )
            })
        }
        SourceCommand::Create {
            name,
            kind,
            secret,
            body,
        } => {
            let mut b = settings(body.as_deref())?;
            if let Some(n) = name {
                b["name"] = json!(n);
            }
            if let Some(k) = kind {
                b["verification"] = json!({"type": k});
                if let Some(s) = secret {
                    b["verification"]["secret"] = json!(s);
                }
            }
            let created = api.post(&api.ws("/sources"), Some(&b)).await?;
            Ok(if json_out {
                table::json(&created)
            } else {
                format!(
                    "created source {} ({}): senders post to {}\n",
                    created["id"].as_str().unwrap_or_default(),
                    created["name"].as_str().unwrap_or_default(),
                    created["ingest_path"].as_str().unwrap_or_default()
                )
            })
        }
    }
}

pub async fn endpoints(api: &Api, c: EndpointCommand, json_out: bool) -> Result<String, CliError> {
    match c {
        EndpointCommand::List => {
            let page = api.get(&api.ws("/endpoints?limit=100")).await?;
            Ok(if json_out {
                table::json(&page)
            } else {
                table::render(
                    &data(&page),
                    &[
                        ("ID", "/id"),
                        ("NAME", "/name"),
                        ("URL", "/url"),
                        ("EVENTS", "/events"),
                        ("ENABLED", "/enabled"),
                        ("FAILURES", "/consecutive_failures"),
                        ("LAST SUCCESS", "/last_success_at"),
                    ],
                )
            })
        }
        EndpointCommand::Create {
            name,
            url,
            events,
            body,
        } => {
            let mut b = settings(body.as_deref())?;
            if let Some(n) = name {
                b["name"] = json!(n);
            }
            if let Some(u) = url {
                b["url"] = json!(u);
            }
            if !events.is_empty() {
                b["events"] = json!(events);
            }
            let created = api.post(&api.ws("/endpoints"), Some(&b)).await?;
            Ok(if json_out {
                table::json(&created)
            } else {
                format!(
                    "created endpoint {} ({})\nsigning secret (shown once): {}\n",
                    created["id"].as_str().unwrap_or_default(),
                    created["name"].as_str().unwrap_or_default(),
                    created["secret"].as_str().unwrap_or_default()
                )
            })
        }
    }
}
