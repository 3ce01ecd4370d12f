use hookrelay_shared::api::{self, ApiError};
use hookrelay_shared::{DeliveryTask, Event, Timestamp};
use http::{Response, StatusCode};
use lambda_http::Request;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::{Context, queue_error, request, store_error};

/// An event as the API shows it: the payload inline as JSON, exactly as received.
#[derive(Serialize)]
struct EventView<'a> {
    id: &'a str,
    workspace: &'a str,
    source_id: &'a str,
    event_type: &'a str,
    idempotency_key: &'a str,
    received_at: Timestamp,
    endpoint_ids: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<Box<RawValue>>,
}

fn view(e: &Event, with_payload: bool) -> EventView<'_> {
    EventView {
        id: &e.id,
        workspace: &e.workspace,
        source_id: &e.source_id,
        event_type: &e.event_type,
        idempotency_key: &e.idempotency_key,
        received_at: e.received_at,
        endpoint_ids: &e.endpoint_ids,
        // Payloads were validated as JSON on the way in.
        payload: with_payload
            .then(|| std::str::from_utf8(&e.payload).ok())
            .flatten()
            .and_then(|s| RawValue::from_string(s.to_owned()).ok()),
    }
}

pub async fn get(ctx: &Context, ws: &str, id: &str) -> Result<Response<String>, ApiError> {
    let (_, event) = ctx
        .store
        .get_event(ws, id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("no event {id:?}")))?;
    Ok(api::json(StatusCode::OK, &view(&event, true)))
}

pub async fn list(ctx: &Context, ws: &str, req: &Request) -> Result<Response<String>, ApiError> {
    let page = request::page(&request::query(req))?;
    let events = ctx
        .store
        .list_events(ws, &page)
        .await
        .map_err(store_error)?;
    let data: Vec<_> = events.data.iter().map(|e| view(e, false)).collect();
    Ok(api::json(
        StatusCode::OK,
        &serde_json::json!({ "data": data, "next": events.next }),
    ))
}

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
    ctx.store
        .get_endpoint(ws, endpoint_id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("no endpoint {endpoint_id:?}")))?;
    let mut task = DeliveryTask::new(&event, &event_key, endpoint_id);
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

/// `GET /workspaces/{ws}/attempts?event_id=…`: attempts newest first, for one event or for
/// the whole workspace.
pub async fn list_attempts(
    ctx: &Context,
    ws: &str,
    req: &Request,
) -> Result<Response<String>, ApiError> {
    let q = request::query(req);
    let page = request::page(&q)?;
    let attempts = match q.get("event_id").filter(|id| !id.is_empty()) {
        Some(event_id) => ctx.store.list_event_attempts(ws, event_id, &page).await,
        None => ctx.store.list_attempts(ws, &page).await,
    }
    .map_err(store_error)?;
    Ok(api::json(StatusCode::OK, &attempts))
}
