//! The ingest pipeline: check the request, store the event once, queue one task per
//! subscribed endpoint, confirm the event is queued.

use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde::Serialize;

use hookrelay_shared::api::{self, ApiError};
use hookrelay_shared::store::InsertOutcome;
use hookrelay_shared::{DeliveryTask, Event, Timestamp, ids};

use crate::envelope::{self, BodyError};
use hookrelay_shared::telemetry::error_chain;

use crate::{Context, unavailable};

const MAX_IDEMPOTENCY_KEY: usize = 256;
const MAX_EVENT_TYPE: usize = 128;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Accepted {
    pub id: String,
    /// The idempotency key had been seen: this is the original event, nothing new was queued.
    #[serde(skip)]
    pub duplicate: bool,
}

impl Accepted {
    pub fn into_response(self) -> Response<String> {
        let mut resp = api::json(StatusCode::ACCEPTED, &self);
        if self.duplicate {
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        resp
    }
}

pub async fn accept(
    ctx: &Context,
    source_id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Accepted, ApiError> {
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
    let source = match ids::has_prefix(source_id, ids::SOURCE) {
        true => ctx.source(source_id).await?,
        false => None,
    }
    .ok_or_else(|| ApiError::not_found(format!("no source {source_id:?}")))?;
    if !source.enabled {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "source_disabled",
            "this source is disabled",
        ));
    }

    let body_type = envelope::event_type(body).map_err(|e| match e {
        BodyError::Malformed(why) => ApiError::bad_request(
            "malformed_json",
            format!("the body is not valid JSON: {why}"),
        ),
        BodyError::BadEventType => {
            ApiError::bad_request("invalid_event_type", "`event_type` must be a string")
        }
    })?;
    let header_type = source
        .event_type_header
        .as_deref()
        .and_then(|h| headers.get(h))
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError::bad_request("invalid_event_type", "the event type header is not text")
            })
        })
        .transpose()?;
    let event_type = header_type
        .map(str::to_owned)
        .or(body_type.map(|t| t.into_owned()))
        .or_else(|| source.default_event_type.clone())
        .ok_or_else(|| {
            ApiError::bad_request(
                "missing_event_type",
                match &source.event_type_header {
                    Some(h) => {
                        format!("no event type: send the {h} header or an `event_type` field")
                    }
                    None => "no event type: send an `event_type` field".to_owned(),
                },
            )
        })?;
    validate_event_type(&event_type)?;

    let event_id = ids::new_id(ids::EVENT);
    let idempotency_key = idempotency_key(headers)?.unwrap_or_else(|| event_id.clone());

    let endpoints = ctx.endpoints(&source.workspace).await?;
    let targets: Vec<String> = endpoints
        .iter()
        .filter(|ep| ep.wants(&event_type))
        .map(|ep| ep.id.clone())
        .collect();

    let event = Event {
        id: event_id,
        workspace: source.workspace.clone(),
        source_id: source.id.clone(),
        event_type,
        idempotency_key,
        received_at: Timestamp::now(),
        payload: body.to_vec(),
        endpoint_ids: targets,
    };
    let pending = !event.endpoint_ids.is_empty();
    let outcome = ctx
        .store
        .insert_event(&event, &source.id, pending, ctx.settings.retention())
        .await
        .map_err(unavailable)?;
    let event_key = match outcome {
        InsertOutcome::Duplicate(original) => {
            tracing::info!(event.id = %original.id, source.id = %source.id, "duplicate event");
            return Ok(Accepted {
                id: original.id,
                duplicate: true,
            });
        }
        InsertOutcome::Inserted { event_key } => event_key,
    };

    if pending {
        enqueue(ctx, &event, &event_key).await;
    }
    tracing::info!(
        event.id = %event.id,
        event.type = %event.event_type,
        source.id = %source.id,
        endpoints = event.endpoint_ids.len(),
        "event accepted"
    );
    Ok(Accepted {
        id: event.id,
        duplicate: false,
    })
}

/// Queues the event's tasks and clears its pending mark. The event is stored already, so a
/// failure here is not the sender's problem: the event stays pending and the sweeper
/// re-enqueues it.
async fn enqueue(ctx: &Context, event: &Event, event_key: &str) {
    let tasks: Vec<DeliveryTask> = event
        .endpoint_ids
        .iter()
        .map(|ep| DeliveryTask::new(event, event_key, ep))
        .collect();
    let mut unsent = match ctx.queue.send_tasks(&tasks).await {
        Ok(unsent) => unsent,
        Err(e) => {
            tracing::error!(event.id = %event.id, error = %error_chain(&e), "tasks could not be queued");
            return;
        }
    };
    if !unsent.is_empty() {
        unsent = ctx.queue.send_tasks(&unsent).await.unwrap_or(unsent);
    }
    if !unsent.is_empty() {
        tracing::warn!(event.id = %event.id, unsent = unsent.len(), "tasks left for reconciliation");
        return;
    }
    if let Err(e) = ctx.store.clear_pending(event_key).await {
        tracing::warn!(event.id = %event.id, error = %error_chain(&e), "pending mark not cleared; reconciliation may deliver twice");
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers
        .get("idempotency-key")
        .or_else(|| headers.get("webhook-id"))
    else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_idempotency_key",
                format!("the idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
            )
        })?;
    Ok(Some(key.to_owned()))
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
