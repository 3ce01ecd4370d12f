use base64::Engine as _;
use hookrelay_shared::api::{self, ApiError};
use hookrelay_shared::publish;
use hookrelay_shared::store::{AttemptFilter, EventFilter};
use hookrelay_shared::{AttemptStatus, DeliveryTask, Event, Timestamp, ids};
use http::{Response, StatusCode};
use lambda_http::Request;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::{Context, queue_error, request, store_error};

/// An event as the API shows it. The payload is the stored body: inline as JSON when it is
/// JSON, else as a string, UTF-8 text as it is and any other bytes in base64;
/// `payload_encoding` says which, so every body reads back byte for byte.
#[derive(Serialize)]
pub struct EventView<'a> {
    id: &'a str,
    workspace: &'a str,
    source_id: &'a str,
    event_type: &'a str,
    idempotency_key: &'a str,
    received_at: Timestamp,
    endpoint_ids: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_encoding: Option<&'static str>,
    /// For a payload too large for the answer: a link that reads it for 15 minutes.
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hops: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    traceparent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tracestate: Option<&'a str>,
}

/// Every `payload_encoding` an event view may carry.
pub const PAYLOAD_ENCODINGS: &[&str] = &["json", "text", "base64"];

/// The payload as JSON and how it is encoded: `json`, `text` or `base64`.
fn payload_of(bytes: &[u8]) -> Option<(Box<RawValue>, &'static str)> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        return Some((
            RawValue::from_string(serde_json::to_string(&b64).ok()?).ok()?,
            "base64",
        ));
    };
    if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
        return Some((RawValue::from_string(text.to_owned()).ok()?, "json"));
    }
    Some((
        RawValue::from_string(serde_json::to_string(text).ok()?).ok()?,
        "text",
    ))
}

pub fn view(e: &Event, with_payload: bool) -> EventView<'_> {
    let (payload, payload_encoding) = match with_payload.then(|| payload_of(&e.payload)).flatten() {
        Some((p, enc)) => (Some(p), Some(enc)),
        None => (None, None),
    };
    EventView {
        id: &e.id,
        workspace: &e.workspace,
        source_id: &e.source_id,
        event_type: &e.event_type,
        idempotency_key: &e.idempotency_key,
        received_at: e.received_at,
        endpoint_ids: &e.endpoint_ids,
        content_type: e.content_type.as_deref(),
        payload,
        payload_encoding,
        payload_url: None,
        hops: (e.hops > 0).then_some(e.hops),
        traceparent: e.trace.as_ref().map(|t| t.traceparent()),
        tracestate: e.trace.as_ref().and_then(|t| t.state.as_deref()),
    }
}

pub async fn get(ctx: &Context, ws: &str, id: &str) -> Result<Response<String>, ApiError> {
    let (_, event) = ctx
        .store
        .get_event(ws, id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("no event {id:?}")))?;
    let answer = api::json(StatusCode::OK, &view(&event, true));
    if fits_an_answer(answer.body()) {
        return Ok(answer);
    }
    let link = ctx.store.payload_link(&event).await.map_err(store_error)?;
    Ok(api::json(StatusCode::OK, &linked_view(&event, link)))
}

/// The view of an event whose payload is too large for an answer: a link instead of it.
pub fn linked_view(e: &Event, payload_url: Option<String>) -> EventView<'_> {
    EventView {
        payload_url,
        ..view(e, false)
    }
}

/// Lambda answers at most 6 291 556 bytes, and the body travels in it as a JSON string, so
/// its quotes and backslashes count twice; 64 KiB is left for the status and headers.
const ANSWER_BODY_BUDGET: usize = 6_291_556 - 64 * 1024;

fn fits_an_answer(body: &str) -> bool {
    let escaped: usize = body
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' => 2,
            0..0x20 => 6,
            _ => 1,
        })
        .sum();
    escaped <= ANSWER_BODY_BUDGET
}

/// `GET …/events?event_type=&source_id=&since=&until=`: newest first; times are RFC 3339.
pub async fn list(ctx: &Context, ws: &str, req: &Request) -> Result<Response<String>, ApiError> {
    let q = request::query(req);
    let page = request::page(&q)?;
    let time = |name: &str| {
        q.get(name)
            .map(|v| {
                Timestamp::parse(v).map_err(|_| {
                    let mut e = ApiError::bad_request(
                        "invalid_time",
                        format!("{name} must be an RFC 3339 time"),
                    );
                    e.fields
                        .insert(name.to_owned(), "not an RFC 3339 time".into());
                    e
                })
            })
            .transpose()
    };
    let filter = EventFilter {
        event_type: q.get("event_type").filter(|t| !t.is_empty()).cloned(),
        source_id: q.get("source_id").filter(|t| !t.is_empty()).cloned(),
        since: time("since")?,
        until: time("until")?,
    };
    if let (Some(since), Some(until)) = (filter.since, filter.until)
        && since > until
    {
        let mut e = ApiError::bad_request("invalid_time", "since must not be later than until");
        e.fields.insert("since".into(), "later than until".into());
        return Err(e);
    }
    let events = ctx
        .store
        .find_events(ws, &filter, &page)
        .await
        .map_err(store_error)?;
    let data: Vec<_> = events.data.iter().map(|e| view(e, false)).collect();
    Ok(api::json(
        StatusCode::OK,
        &serde_json::json!({ "data": data, "next": events.next }),
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    event_type: String,
    #[serde(default)]
    #[allow(dead_code)]
    data: Option<serde_json::Value>,
}

/// `POST …/events`: publishes `{"event_type", "data"}` directly, fanned out like an ingested
/// event; `Idempotency-Key` makes a retry of the same publish a no-op.
pub async fn publish(ctx: &Context, ws: &str, req: &Request) -> Result<Response<String>, ApiError> {
    let start = std::time::SystemTime::now();
    let trace = hookrelay_shared::trace_context::TraceContext::accepted(req.headers());
    let answer = publish_traced(ctx, ws, req, trace.clone()).await;
    if let Some(exporter) = &ctx.otlp {
        let status = match &answer {
            Ok(resp) => resp.status(),
            Err(e) => e.status,
        };
        let span = hookrelay_shared::otlp::Span::server(
            &trace,
            req.headers(),
            "POST",
            "/workspaces/{workspace}/events",
            status,
            start,
        )
        .map(|s| {
            let s = s.str("hookrelay.workspace", ws);
            let id = answer
                .as_ref()
                .ok()
                .and_then(|resp| serde_json::from_str::<serde_json::Value>(resp.body()).ok())
                .and_then(|body| body["id"].as_str().map(str::to_owned));
            match id {
                Some(id) => s.str("hookrelay.event.id", id),
                None => s,
            }
        });
        exporter.export(span.into_iter().collect()).await;
    }
    answer
}

/// [`publish`] under `trace`: the event carries its span as the parent of its deliveries.
async fn publish_traced(
    ctx: &Context,
    ws: &str,
    req: &Request,
    trace: hookrelay_shared::trace_context::TraceContext,
) -> Result<Response<String>, ApiError> {
    // The ingest route's limit: what is stored must fit an event item and its tasks' reads.
    let len = req.body().as_ref().len();
    if len > ctx.settings.max_body_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the body is {len} bytes; the limit is {}",
                ctx.settings.max_body_bytes
            ),
        ));
    }
    let body: PublishBody = request::json_body(req)?;
    if body.event_type.is_empty() || body.event_type.len() > 128 {
        let mut e = ApiError::bad_request(
            "invalid_event_type",
            "event_type must be 1 to 128 characters",
        );
        e.fields
            .insert("event_type".into(), "must be 1 to 128 characters".into());
        return Err(e);
    }
    let endpoints = ctx
        .store
        .workspace_endpoints(ws)
        .await
        .map_err(store_error)?;
    let id = ids::new_id(ids::EVENT);
    let key = match req.headers().get("idempotency-key") {
        None => id.clone(),
        Some(v) => match v.to_str().map(str::trim) {
            Ok(k) if !k.is_empty() && k.len() <= 256 => k.to_owned(),
            _ => {
                let mut e = ApiError::bad_request(
                    "invalid_idempotency_key",
                    "Idempotency-Key must be 1 to 256 visible ASCII characters",
                );
                e.fields
                    .insert("Idempotency-Key".into(), "1 to 256 characters".into());
                return Err(e);
            }
        },
    };
    let event = Event {
        endpoint_ids: hookrelay_shared::model::subscribed(
            &endpoints,
            &body.event_type,
            req.body().as_ref(),
            &Default::default(),
        )
        .into_iter()
        .map(|e| e.id.clone())
        .collect(),
        id,
        workspace: ws.to_owned(),
        source_id: PUBLISH_SOURCE.to_owned(),
        event_type: body.event_type,
        idempotency_key: key,
        received_at: Timestamp::now(),
        payload: req.body().as_ref().to_vec(),
        content_type: None,
        hops: 0,
        trace: Some(trace),
    };
    let published = publish::publish(
        &ctx.store,
        &ctx.queue,
        &event,
        &format!("{PUBLISH_SOURCE}:{ws}"),
        ctx.settings.retention(),
        &publish::Targets {
            list_now: true,
            ..publish::targets(&ctx.queue, &endpoints)
        },
    )
    .await
    .map_err(store_error)?;
    let mut resp = api::json(
        StatusCode::ACCEPTED,
        &serde_json::json!({ "id": published.id, "endpoint_ids": event.endpoint_ids }),
    );
    if published.duplicate {
        resp.headers_mut().insert(
            "idempotent-replayed",
            http::HeaderValue::from_static("true"),
        );
    }
    Ok(resp)
}

/// The source id of events published through the admin API.
pub const PUBLISH_SOURCE: &str = "api";

/// `POST /workspaces/{ws}/events/{id}/retry?endpoint_id=…`: one more delivery of the
/// event to one endpoint, recorded as a `MANUAL` attempt.
pub async fn retry(
    ctx: &Context,
    ws: &str,
    id: &str,
    req: &Request,
) -> Result<Response<String>, ApiError> {
    let q = request::query(req);
    let endpoint_id = q
        .get("endpoint_id")
        .filter(|e| !e.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing_endpoint_id", "give ?endpoint_id=…"))?;
    let (event_key, event) = ctx
        .store
        .get_event(ws, id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("no event {id:?}")))?;
    let endpoint = ctx
        .store
        .get_endpoint(ws, endpoint_id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("no endpoint {endpoint_id:?}")))?;
    // An ordered endpoint's retry joins the end of its line.
    let mut task = DeliveryTask::for_endpoint(&event, &event_key, &endpoint);
    task.manual = true;
    let unsent = ctx
        .queue
        .send_tasks(std::slice::from_ref(&task))
        .await
        .map_err(queue_error)?;
    if !unsent.is_empty() {
        return Err(ApiError::unavailable(
            "the retry could not be queued; try again",
        ));
    }
    Ok(api::json(
        StatusCode::ACCEPTED,
        &serde_json::json!({ "event_id": event.id, "endpoint_id": endpoint_id, "queued": true }),
    ))
}

/// `GET …/attempts?event_id=&endpoint_id=&status=`: newest first.
pub async fn list_attempts(
    ctx: &Context,
    ws: &str,
    req: &Request,
) -> Result<Response<String>, ApiError> {
    let q = request::query(req);
    let page = request::page(&q)?;
    let status = match q.get("status").map(String::as_str) {
        None | Some("") => None,
        Some("SUCCESSFUL") => Some(AttemptStatus::Successful),
        Some("FAILED") => Some(AttemptStatus::Failed),
        Some("CANCELED") => Some(AttemptStatus::Canceled),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_status",
                "status must be SUCCESSFUL, FAILED or CANCELED",
            ));
        }
    };
    let filter = AttemptFilter {
        event_id: q.get("event_id").filter(|v| !v.is_empty()).cloned(),
        endpoint_id: q.get("endpoint_id").filter(|v| !v.is_empty()).cloned(),
        status,
    };
    let attempts = ctx
        .store
        .find_attempts(ws, &filter, &page)
        .await
        .map_err(store_error)?;
    Ok(api::json(StatusCode::OK, &attempts))
}

pub async fn get_attempt(ctx: &Context, ws: &str, id: &str) -> Result<Response<String>, ApiError> {
    let attempt = ctx
        .store
        .get_attempt(ws, id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("no attempt {id:?}")))?;
    Ok(api::json(StatusCode::OK, &attempt))
}
