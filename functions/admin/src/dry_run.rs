//! Dry runs: a source's plugin chain and content filters, or an endpoint's filter and
//! plugins, on a sample, answering what would happen without storing or sending anything.
//! A source's verification is not run: a sample carries no valid signature.

use std::collections::BTreeMap;
use std::time::Duration;

use http::{Response, StatusCode};
use lambda_http::Request;
use serde::Deserialize;
use serde_json::{Value, json};

use hookrelay_plugins::inbound::{self, Inbound, Outcome as Ran};
use hookrelay_shared::api::{self, ApiError};
use hookrelay_shared::model::subscribed;
use hookrelay_shared::{Event, Timestamp, ids};

use crate::{Context, endpoints, request, sources, store_error};

/// What ingest would do with a sample request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Stored and queued to `endpoint_ids`.
    Accepted,
    /// Answered `status` with `error`; nothing stored.
    Rejected,
    /// Answered as accepted; nothing stored.
    Dropped,
}

/// A sample request to a source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSample {
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body: any JSON value; a string is sent as text when the source accepts raw bodies.
    pub body: Value,
    /// The event type, when the sample's headers and body do not name it as the source reads it.
    #[serde(default)]
    pub event_type: Option<String>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

pub async fn source(
    ctx: &Context,
    ws: &str,
    id: &str,
    req: &Request,
) -> Result<Response<String>, ApiError> {
    let sample: SourceSample = request::json_body(req)?;
    let source = sources::find(ctx, ws, id).await?;
    let headers: BTreeMap<String, String> = sample
        .headers
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let is_json = !(source.accept_raw && sample.body.is_string());
    let body = match (&sample.body, is_json) {
        (Value::String(s), false) => s.as_bytes().to_vec(),
        (v, _) => serde_json::to_vec(v).unwrap_or_default(),
    };
    let event_type = sample
        .event_type
        .or_else(|| headers.get(source.event_type_header.as_deref()?).cloned())
        .or_else(|| {
            let ptr = source
                .event_type_pointer
                .as_deref()
                .unwrap_or("/event_type");
            sample.body.pointer(ptr)?.as_str().map(str::to_owned)
        })
        .or_else(|| source.default_event_type.clone());
    let request = Inbound {
        method: "POST".to_owned(),
        path: source
            .path
            .clone()
            .unwrap_or_else(|| format!("/in/{}", source.id)),
        headers,
        body,
        is_json,
        event_type,
        idempotency_key: sample.idempotency_key,
    };
    let answer = match inbound::run(&source.plugins, request, ctx.settings.max_body_bytes) {
        Ok(Ran::Drop) => json!({ "outcome": Outcome::Dropped }),
        Ok(Ran::Reject { status, message }) => json!({
            "outcome": Outcome::Rejected,
            "status": status,
            "error": { "code": "rejected_by_plugin", "message": message },
        }),
        Err(e) => {
            let (status, code) = e.status_and_code();
            json!({
                "outcome": Outcome::Rejected,
                "status": status,
                "error": { "code": code, "message": e.to_string() },
            })
        }
        Ok(Ran::Accept(r)) => {
            let endpoints = ctx
                .store
                .workspace_endpoints(ws)
                .await
                .map_err(store_error)?;
            let targets: Vec<&str> = match &r.event_type {
                Some(t) => subscribed(&endpoints, t, &r.body, &r.headers)
                    .into_iter()
                    .map(|e| e.id.as_str())
                    .collect(),
                None => Vec::new(),
            };
            json!({
                "outcome": if r.event_type.is_some() { Outcome::Accepted } else { Outcome::Rejected },
                "request": {
                    "headers": r.headers,
                    "body": body_value(&r.body, r.is_json),
                    "event_type": r.event_type,
                    "idempotency_key": r.idempotency_key,
                },
                "endpoint_ids": targets,
            })
        }
    };
    Ok(api::json(StatusCode::OK, &answer))
}

/// A sample event for an endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSample {
    pub event_type: String,
    pub payload: Value,
    /// The headers of the request the event came in with, for header conditions.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

pub async fn endpoint(
    ctx: &Context,
    ws: &str,
    id: &str,
    req: &Request,
) -> Result<Response<String>, ApiError> {
    let sample: EndpointSample = request::json_body(req)?;
    let endpoint = endpoints::find(ctx, ws, id).await?;
    let payload = serde_json::to_vec(&sample.payload).unwrap_or_default();
    let headers = sample
        .headers
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let mut probe = endpoint.clone();
    probe.enabled = true;
    let matches = !subscribed(
        std::slice::from_ref(&probe),
        &sample.event_type,
        &payload,
        &headers,
    )
    .is_empty();
    let now = Timestamp::now();
    let event = Event {
        id: ids::new_id(ids::EVENT),
        workspace: ws.to_owned(),
        source_id: "dry_run".to_owned(),
        event_type: sample.event_type,
        idempotency_key: String::new(),
        received_at: now,
        payload,
        endpoint_ids: vec![endpoint.id.clone()],
        content_type: None,
        hops: 0,
        trace: None,
    };
    let mut answer = json!({ "matches": matches, "enabled": endpoint.enabled });
    match hookrelay_shared::outbound::preview(&endpoint, &event, now, Duration::from_secs(2)).await
    {
        Ok(p) => {
            let is_json = p
                .headers
                .get("content-type")
                .is_some_and(|c| c.contains("json"));
            answer["request"] = json!({
                "method": "POST",
                "url": p.url,
                "headers": p.headers,
                "body": body_value(&p.body, is_json),
            });
        }
        Err((code, message)) => answer["error"] = json!({ "code": code, "message": message }),
    }
    Ok(api::json(StatusCode::OK, &answer))
}

fn body_value(body: &[u8], is_json: bool) -> Value {
    if is_json && let Ok(v) = serde_json::from_slice(body) {
        return v;
    }
    Value::String(String::from_utf8_lossy(body).into_owned())
}
