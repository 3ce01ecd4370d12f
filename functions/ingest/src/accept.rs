//! The ingest pipeline: check the request, verify it came from its source, store the event
//! once, queue one task per subscribed endpoint, confirm the event is queued.

use std::borrow::Cow;
use std::collections::BTreeMap;

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use serde::de::IgnoredAny;
use serde_json::Value;

use hookrelay_plugins::inbound::Inbound;
use hookrelay_shared::api::{self, ApiError};
use hookrelay_shared::metrics::{self as m, Metrics};
use hookrelay_shared::model::subscribed;
use hookrelay_shared::publish::{self, publish};
use hookrelay_shared::rate_limit::{self, Decision};
use hookrelay_shared::trace_context::TraceContext;
use hookrelay_shared::{Event, Source, Timestamp, ids};

use crate::envelope::{self, BodyError};
use crate::provider::{self, ENVELOPE_TYPE};
use crate::sparse_json;
use crate::verify::{self, Rejection};
use crate::{Context, unavailable};

const MAX_IDEMPOTENCY_KEY: usize = 256;
const MAX_EVENT_TYPE: usize = 128;
/// All header names and values together; API Gateway allows about 10 KB.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
const DEFAULT_TOLERANCE_SECS: u64 = 300;

/// Which source a request is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SourceRef {
    Id(String),
    Path(String),
}

/// What the request's span records beyond the answer: its context (the one the event is
/// stored with) and the source, once known.
#[derive(Debug, Clone)]
pub struct RequestSpan {
    pub trace: TraceContext,
    pub source_id: Option<String>,
    pub workspace: Option<String>,
}

impl RequestSpan {
    pub fn new(headers: &HeaderMap) -> Self {
        Self {
            trace: TraceContext::accepted(headers),
            source_id: None,
            workspace: None,
        }
    }
}

pub async fn accept(
    ctx: &Context,
    target: &SourceRef,
    headers: &HeaderMap,
    body: &[u8],
    metrics: &mut Metrics,
    span: &mut RequestSpan,
) -> Result<Response<String>, ApiError> {
    let header_bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Err(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("the headers are {header_bytes} bytes; the limit is {MAX_HEADER_BYTES}"),
        ));
    }
    if body.len() > ctx.settings.max_body_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the body is {} bytes; the limit is {} bytes",
                body.len(),
                ctx.settings.max_body_bytes
            ),
        ));
    }
    let hops = hookrelay_shared::hops::of_request(headers);
    if hops > hookrelay_shared::hops::MAX_HOPS {
        return Err(ApiError::new(
            StatusCode::LOOP_DETECTED,
            "loop_detected",
            format!(
                "the event came through {hops} hookrelay deliveries; the limit is {}",
                hookrelay_shared::hops::MAX_HOPS
            ),
        ));
    }
    let crate::Routing { source, endpoints } =
        ctx.routing(target).await?.ok_or_else(|| match target {
            SourceRef::Id(id) => ApiError::not_found(format!("no source {id:?}")),
            SourceRef::Path(_) => ApiError::not_found("no such route"),
        })?;
    span.source_id = Some(source.id.clone());
    span.workspace = Some(source.workspace.clone());
    if !source.enabled {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "source_disabled",
            "this source is disabled",
        ));
    }
    // A raw source takes any body: one that claims to be JSON and is not is kept as bytes.
    let is_json = content_is_json(headers)
        && !(source.accept_raw && serde_json::from_slice::<IgnoredAny>(body).is_err());
    if !is_json && !source.accept_raw {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send a JSON body with Content-Type: application/json",
        ));
    }

    let now = Timestamp::now();
    let (event_type, idempotency_key) = match identify(&source, headers, body, is_json, now)? {
        Identified::Challenge(resp) => return Ok(resp),
        Identified::Event {
            event_type,
            idempotency_key,
        } => (event_type, idempotency_key),
    };
    if let Some(limit) = &source.rate_limit
        && let Decision::Wait(wait) = rate_limit::check(
            &ctx.store,
            &rate_limit::source_scope(&source.id),
            limit,
            now,
            false,
        )
        .await
    {
        metrics.add(m::INGEST_RATE_LIMITED, 1.0);
        return Err(ApiError::too_many_requests(
            "this source's rate limit is reached; retry after Retry-After seconds",
            wait,
        ));
    }
    let request = Inbound {
        method: "POST".to_owned(),
        path: match target {
            SourceRef::Id(id) => format!("/in/{id}"),
            SourceRef::Path(p) => p.clone(),
        },
        headers: header_map(headers),
        body: body.to_vec(),
        is_json,
        event_type,
        idempotency_key,
    };
    let ran = crate::plugins::run(&source, request, ctx.settings.max_body_bytes).inspect_err(|e| {
        if matches!(e.code, "plugin_failed" | "plugin_timeout") {
            metrics.add(m::PLUGIN_FAILURES, 1.0);
        }
    });
    let request = match ran? {
        Some(r) => r,
        None => {
            metrics.add(m::INGEST_DROPPED, 1.0);
            return Ok(dropped(&source));
        }
    };
    let event_type = request.event_type.ok_or_else(|| {
        ApiError::bad_request("missing_event_type", "the request names no event type")
    })?;
    validate_event_type(&event_type)?;
    let idempotency_key = request
        .idempotency_key
        .as_deref()
        .map(checked_key)
        .transpose()?;
    let targets = subscribed(&endpoints, &event_type, &request.body, &request.headers)
        .into_iter()
        .map(|ep| ep.id.clone())
        .collect();
    let event = Event {
        hops,
        ..build_event(
            &source,
            targets,
            headers,
            request.body,
            is_json,
            now,
            event_type,
            idempotency_key,
            // The request's span, so the exported span and the deliveries' parent are one.
            span.trace.clone(),
        )
    };
    let published = publish(
        &ctx.store,
        &ctx.queue,
        &event,
        &source.id,
        ctx.settings.retention(),
        &publish::targets(&ctx.queue, &endpoints),
    )
    .await
    .map_err(unavailable)?;
    if published.duplicate {
        return Ok(answer(&source, &published.id, true));
    }
    metrics.add(m::TASKS_ENQUEUED, published.tasks_queued as f64);
    if published.tasks_unsent > 0 {
        metrics.add(m::ENQUEUE_FAILURES, published.tasks_unsent as f64);
    }
    tracing::info!(
        event.id = %event.id,
        event.type = %event.event_type,
        source.id = %source.id,
        endpoints = event.endpoint_ids.len(),
        "event accepted"
    );
    Ok(answer(&source, &event.id, false))
}

/// What a verified request is: a provider's URL challenge to answer, or an event.
#[derive(Debug)]
pub enum Identified {
    Challenge(Response<String>),
    Event {
        /// The event type, when the request names one (a source's plugin may still name it).
        event_type: Option<String>,
        /// The provider's delivery id or the sender's key, when there is one.
        idempotency_key: Option<String>,
    },
}

/// Verifies the request came from `source` and reads its event type and idempotency key:
/// the CPU part of ingest, without a network call.
pub fn identify(
    source: &Source,
    headers: &HeaderMap,
    body: &[u8],
    is_json: bool,
    now: Timestamp,
) -> Result<Identified, ApiError> {
    let tolerance = source
        .timestamp_tolerance_seconds
        .map_or(DEFAULT_TOLERANCE_SECS, u64::from);
    let verified = verify::verify(&source.verification, headers, body, now, tolerance)
        .map_err(|r| refused(source, r))?;
    if let Some(challenge) = verified.challenge {
        return Ok(Identified::Challenge(api::json(
            StatusCode::OK,
            &serde_json::json!({ "challenge": challenge }),
        )));
    }

    // What the event type and delivery id are read from: the decrypted body when there is
    // one; the stored body is always the one received.
    let readable = verified.plaintext.as_deref().unwrap_or(body);
    if is_json && let Err(e) = std::str::from_utf8(readable) {
        return Err(ApiError::bad_request(
            "malformed_json",
            format!(
                "the body is not valid JSON: it is not UTF-8 (byte {} is not)",
                e.valid_up_to()
            ),
        ));
    }
    // The tree verifying read holds what the provider's fields need, not a pointer the
    // source names itself.
    let tree: Option<Value> = match verified.tree {
        Some(tree) if is_json && source.event_type_pointer.is_none() => Some(tree),
        _ if is_json
            && (provider::reads_body(&source.verification)
                || source.event_type_pointer.is_some()) =>
        {
            let mut pointers = provider::pointers(&source.verification).to_vec();
            pointers.push(ENVELOPE_TYPE);
            pointers.extend(source.event_type_pointer.as_deref());
            Some(sparse_json::parse(readable, &pointers).map_err(|e| {
                ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}"))
            })?)
        }
        _ => None,
    };
    if let Some(challenge) = provider::slack_challenge(&source.verification, tree.as_ref()) {
        return Ok(Identified::Challenge(api::json(
            StatusCode::OK,
            &serde_json::json!({ "challenge": challenge }),
        )));
    }
    let envelope_type = match (&tree, is_json) {
        (Some(t), _) => t
            .pointer(ENVELOPE_TYPE)
            .and_then(Value::as_str)
            .map(Cow::Borrowed),
        (None, true) => envelope::event_type(readable).map_err(body_error)?,
        (None, false) => None,
    };
    let identity = provider::identify(&source.verification, headers, tree.as_ref());
    let event_type = identity
        .event_type
        .or_else(|| header_text(headers, source.event_type_header.as_deref()))
        .or_else(|| {
            let pointer = source.event_type_pointer.as_deref()?;
            tree.as_ref()?.pointer(pointer)?.as_str().map(str::to_owned)
        })
        .or(envelope_type.map(Cow::into_owned))
        .or_else(|| source.default_event_type.clone());
    if event_type.is_none() && !crate::plugins::may_name_event_type(source) {
        return Err(ApiError::bad_request(
            "missing_event_type",
            "the request names no event type",
        ));
    }
    let idempotency_key = match identity.delivery_id {
        Some(id) => Some(checked_key(&id)?),
        None => idempotency_header(headers)?,
    };
    Ok(Identified::Event {
        event_type,
        idempotency_key,
    })
}

/// The event to store: a new id, the endpoints it goes to, the body as received (or as the
/// source's plugins left it). Without an idempotency key the event's own id is used.
#[allow(clippy::too_many_arguments)]
pub fn build_event(
    source: &Source,
    targets: Vec<String>,
    headers: &HeaderMap,
    body: Vec<u8>,
    is_json: bool,
    now: Timestamp,
    event_type: String,
    idempotency_key: Option<String>,
    trace: hookrelay_shared::trace_context::TraceContext,
) -> Event {
    let event_id = ids::new_id(ids::EVENT);
    let idempotency_key = idempotency_key.unwrap_or_else(|| event_id.clone());
    Event {
        id: event_id,
        workspace: source.workspace.clone(),
        source_id: source.id.clone(),
        event_type,
        idempotency_key,
        received_at: now,
        payload: body,
        endpoint_ids: targets,
        // A body without a Content-Type is delivered as bytes, never claimed to be JSON.
        content_type: (!is_json).then(|| {
            headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/octet-stream")
                .to_owned()
        }),
        hops: 0,
        trace: Some(trace),
    }
}

fn refused(source: &Source, r: Rejection) -> ApiError {
    tracing::info!(source.id = %source.id, verification = source.verification.kind(), check = r.code, "verification failed");
    ApiError::new(StatusCode::UNAUTHORIZED, r.code, r.message)
}

fn body_error(e: BodyError) -> ApiError {
    match e {
        BodyError::Malformed(why) => ApiError::bad_request(
            "malformed_json",
            format!("the body is not valid JSON: {why}"),
        ),
        BodyError::BadEventType => {
            ApiError::bad_request("invalid_event_type", "`event_type` must be a string")
        }
    }
}

/// A request a source's plugin dropped: answered as the source answers an accepted one, with
/// no event id.
fn dropped(source: &Source) -> Response<String> {
    match &source.response {
        Some(_) => {
            let mut resp = answer(source, "", false);
            resp.headers_mut().remove("hookrelay-event-id");
            resp
        }
        None => api::json(
            StatusCode::ACCEPTED,
            &serde_json::json!({ "dropped": true }),
        ),
    }
}

/// Request headers as plugins and content filters see them: lower-case names, repeated
/// values joined by `, `, values that are not text left out.
pub fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let Ok(value) = value.to_str() else { continue };
        map.entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(value);
            })
            .or_insert_with(|| value.to_owned());
    }
    map
}

/// The source's own answer when it sets one, else `202 {"id": …}`.
fn answer(source: &Source, id: &str, duplicate: bool) -> Response<String> {
    let mut resp = match &source.response {
        Some(r) => {
            let mut resp = Response::new(r.body.clone());
            *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::ACCEPTED);
            if let Ok(ct) = HeaderValue::from_str(&r.content_type) {
                resp.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            resp
        }
        None => api::json(StatusCode::ACCEPTED, &serde_json::json!({ "id": id })),
    };
    if let Ok(v) = HeaderValue::from_str(id) {
        resp.headers_mut().insert("hookrelay-event-id", v);
    }
    if duplicate {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    resp
}

/// JSON unless the request says otherwise; no Content-Type is taken as JSON.
pub fn content_is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return true;
    };
    let media = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media == "application/json" || media.ends_with("+json") || media == "text/json"
}

fn header_text(headers: &HeaderMap, name: Option<&str>) -> Option<String> {
    headers
        .get(name?)?
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn idempotency_header(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers
        .get("idempotency-key")
        .or_else(|| headers.get("webhook-id"))
    else {
        return Ok(None);
    };
    let key = value.to_str().map_err(|_| bad_key())?;
    checked_key(key).map(Some)
}

fn checked_key(key: &str) -> Result<String, ApiError> {
    let key = key.trim();
    // Printable ASCII only: every key must also travel in an SQS message body.
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.bytes().all(|b| (0x20..0x7f).contains(&b))
    {
        return Err(bad_key());
    }
    Ok(key.to_owned())
}

fn bad_key() -> ApiError {
    ApiError::bad_request(
        "invalid_idempotency_key",
        format!("the idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY} visible characters"),
    )
}

fn validate_event_type(t: &str) -> Result<(), ApiError> {
    if t.is_empty() || t.len() > MAX_EVENT_TYPE || t.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_event_type",
            format!(
                "the event type must be 1 to {MAX_EVENT_TYPE} characters without control characters"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookrelay_shared::Verification;

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h
    }

    fn event_type_of(source: &Source, body: &[u8]) -> Result<Option<String>, ApiError> {
        match identify(source, &json_headers(), body, true, Timestamp::now())? {
            Identified::Event { event_type, .. } => Ok(event_type),
            Identified::Challenge(_) => panic!("a challenge"),
        }
    }

    #[test]
    fn a_source_pointer_is_read_even_where_verifying_parsed_the_body() {
        let mut lark = Source::new("default", "lark");
        lark.verification = Verification::Lark {
            verification_token: None,
            encrypt_key: None,
        };
        let body =
            br#"{"schema":"2.0","header":{"event_id":"e-1"},"event":{"kind":"custom.kind"}}"#;
        assert!(
            event_type_of(&lark, body).is_err(),
            "no type without the pointer"
        );
        lark.event_type_pointer = Some("/event/kind".into());
        assert_eq!(
            event_type_of(&lark, body).unwrap().as_deref(),
            Some("custom.kind")
        );

        let mut plain = Source::new("default", "plain");
        plain.event_type_pointer = Some("/data/object/kind".into());
        let body = br#"{"id":"evt_1","data":{"object":{"kind":"k.1","other":[1,2]}}}"#;
        assert_eq!(event_type_of(&plain, body).unwrap().as_deref(), Some("k.1"));
    }
}
