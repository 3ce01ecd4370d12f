//! `send`: a test webhook to a source, signed the way its provider signs (the secret is given
//! on the command line: the API never shows a source's secrets again).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use clap::Args;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use crate::api::{Api, CliError};
use crate::{sign, table};

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The source's id.
    pub source: String,
    /// The body (JSON); default `{"event_type": <--event-type>, "data": {}}`.
    #[arg(long)]
    pub data: Option<String>,
    /// The event type, where the provider puts it (a header for GitHub, the body otherwise).
    #[arg(long, default_value = "hookrelay.test")]
    pub event_type: String,
    /// The source's secret (password, API key value, encrypt key) for its verification type.
    #[arg(long, env = "HOOKRELAY_SOURCE_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// A Lark source's verification token, put in the body as Lark does.
    #[arg(long)]
    pub token: Option<String>,
    /// More request headers (`name: value`).
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
}

pub async fn run(api: &Api, args: SendArgs, json_out: bool) -> Result<String, CliError> {
    let source = api
        .get(&api.ws(&format!("/sources/{}", args.source)))
        .await?;
    let mut body: Value = match &args.data {
        Some(d) => serde_json::from_str(d)
            .map_err(|e| CliError::Usage(format!("--data is not JSON: {e}")))?,
        None => json!({"event_type": args.event_type, "data": {}}),
    };
    let v = &source["verification"];
    let kind = v["type"].as_str().unwrap_or("none");
    if kind == "lark"
        && let Some(token) = &args.token
    {
        body["header"]["token"] = json!(token);
    }
    let bytes = serde_json::to_vec(&body).map_err(|e| CliError::Usage(e.to_string()))?;
    let mut headers = signed_headers(kind, v, args.secret.as_deref(), &args.event_type, &bytes)?;
    for h in &args.headers {
        let (k, val) = h
            .split_once(':')
            .ok_or_else(|| CliError::Usage(format!("--header {h:?} is not `name: value`")))?;
        headers.push((k.trim().to_owned(), val.trim().to_owned()));
    }
    let path = source["ingest_path"]
        .as_str()
        .map_or_else(|| format!("/in/{}", args.source), str::to_owned);
    let answer = api.ingest(&path, bytes, &headers).await?;
    let v = answer.json();
    Ok(if json_out {
        table::json(&json!({"status": answer.status, "answer": v}))
    } else {
        match v["id"].as_str() {
            Some(id) => format!("{} accepted as {id}\n", answer.status),
            None => format!("{} {}\n", answer.status, answer.text),
        }
    })
}

/// The headers a `kind` sender sets on `body`.
pub fn signed_headers(
    kind: &str,
    v: &Value,
    secret: Option<&str>,
    event_type: &str,
    body: &[u8],
) -> Result<Vec<(String, String)>, CliError> {
    let need = || secret.ok_or_else(|| CliError::Usage(format!("a {kind} source needs --secret")));
    let now = sign::now();
    let id = format!(
        "msg_{}",
        hex::encode(&sign::hmac256(&now.to_be_bytes(), body)[..8])
    );
    let h = |k: &str, v: String| (k.to_owned(), v);
    Ok(match kind {
        "none" => Vec::new(),
        "github" => vec![
            h("X-Hub-Signature-256", sign::github(need()?, body)),
            h("X-GitHub-Event", event_type.to_owned()),
            h("X-GitHub-Delivery", id),
        ],
        "stripe" => vec![h("Stripe-Signature", sign::stripe(need()?, now, body))],
        "shopify" => vec![
            h("X-Shopify-Hmac-Sha256", sign::shopify(need()?, body)),
            h("X-Shopify-Topic", event_type.to_owned()),
            h("X-Shopify-Webhook-Id", id),
        ],
        "slack" => vec![
            h("X-Slack-Signature", sign::slack(need()?, now, body)),
            h("X-Slack-Request-Timestamp", now.to_string()),
        ],
        "standard_webhooks" => vec![
            h(
                "webhook-signature",
                sign::standard_webhooks(need()?, &id, now, body).map_err(CliError::Usage)?,
            ),
            h("webhook-id", id),
            h("webhook-timestamp", now.to_string()),
        ],
        "lark" => match secret {
            // Signed with the encrypt key; without one, the token in the body is the proof.
            Some(key) => {
                let nonce = id;
                vec![
                    h("X-Lark-Signature", sign::lark(key, now, &nonce, body)),
                    h("X-Lark-Request-Timestamp", now.to_string()),
                    h("X-Lark-Request-Nonce", nonce),
                ]
            }
            None => Vec::new(),
        },
        "hmac" => {
            let name = v["header"].as_str().unwrap_or("X-Signature");
            let mac = hmac_of(v["algorithm"].as_str().unwrap_or("sha256"), need()?, body)?;
            let encoded = match v["encoding"].as_str().unwrap_or("hex") {
                "base64" => STANDARD.encode(mac),
                "base64url" => URL_SAFE_NO_PAD.encode(mac),
                _ => hex::encode(mac),
            };
            let prefix = v["prefix"].as_str().unwrap_or_default();
            vec![h(name, format!("{prefix}{encoded}"))]
        }
        "basic_auth" => {
            let user = v["username"].as_str().unwrap_or_default();
            let pair = format!("{user}:{}", need()?);
            vec![h(
                "Authorization",
                format!("Basic {}", STANDARD.encode(pair)),
            )]
        }
        "api_key" => vec![h(
            v["header"].as_str().unwrap_or("X-API-Key"),
            need()?.to_owned(),
        )],
        other => return Err(CliError::Usage(format!("cannot sign for a {other} source"))),
    })
}

fn hmac_of(algorithm: &str, secret: &str, body: &[u8]) -> Result<Vec<u8>, CliError> {
    fn mac<M: Mac + hmac::digest::KeyInit>(secret: &str, body: &[u8]) -> Vec<u8> {
        match <M as hmac::digest::KeyInit>::new_from_slice(secret.as_bytes()) {
            Ok(mut m) => {
                m.update(body);
                m.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    }
    Ok(match algorithm {
        "sha256" => mac::<Hmac<sha2::Sha256>>(secret, body),
        "sha512" => mac::<Hmac<sha2::Sha512>>(secret, body),
        other => {
            return Err(CliError::Usage(format!(
                "cannot sign with {other}: sha256 and sha512 only"
            )));
        }
    })
}
