use futures::StreamExt;
use hookrelay_shared::api::{self, ApiError};
use hookrelay_shared::model::Recovery;
use hookrelay_shared::model::disabled_reason;
use hookrelay_shared::model::{Condition, EndpointPlugin};
use hookrelay_shared::outbound::{Sent, Try, new_attempt};
use hookrelay_shared::{
    Attempt, AttemptStatus, DeliveryConfig, DeliveryTask, Endpoint, EndpointKind, Event, LarkBot,
    RetryConfig, Timestamp, ids, signature,
};
use http::{Response, StatusCode};
use lambda_http::Request;
use serde::Deserialize;
use std::time::Duration;

use hookrelay_shared::ops_events::{self, OpsEvent};
use hookrelay_shared::store::NameKind;

use crate::preconditions::{IfMatch, with_etag};
use crate::validate::Problems;
use crate::{Context, Deadline, deadline_exceeded, names, request, secrets, store_error};

/// An endpoint's settings, as the API and config files give them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    pub name: String,
    pub url: String,
    #[serde(default = "all_events")]
    pub events: Vec<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub headers: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "EndpointKind::is_webhook")]
    pub kind: EndpointKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lark: Option<LarkBot>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<hookrelay_shared::rate_limit::RateLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Condition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<EndpointPlugin>,
    /// Create only if the endpoint answers a `hookrelay.ping` with 2xx.
    #[serde(default, skip_serializing)]
    pub verify: bool,
}

impl CreateEndpoint {
    /// The settings of a stored endpoint: what a config dump writes (never its signing
    /// secret; a bot's secret masked, which sync keeps).
    pub fn of(e: &Endpoint) -> Self {
        let e = &crate::secrets::endpoint(e);
        Self {
            name: e.name.clone(),
            url: e.url.clone(),
            events: e.events.clone(),
            enabled: e.enabled,
            headers: e.headers.clone(),
            retry: e.retry.clone(),
            timeout_seconds: e.timeout_seconds,
            kind: e.kind,
            lark: e.lark.clone(),
            delivery: e.delivery.clone(),
            rate_limit: e.rate_limit,
            filter: e.filter.clone(),
            plugins: e.plugins.clone(),
            verify: false,
        }
    }
}

fn all_events() -> Vec<String> {
    vec!["*".to_owned()]
}

fn yes() -> bool {
    true
}

/// Validates a create or full-update body and applies it to `endpoint`.
pub fn apply(
    ctx: &Context,
    req: &Request,
    mut body: CreateEndpoint,
    endpoint: &mut Endpoint,
) -> Result<(), ApiError> {
    crate::secrets::keep_lark(body.lark.as_mut(), endpoint.lark.as_ref())?;
    let mut p = Problems::default();
    p.name("name", &body.name);
    p.url("url", &body.url);
    p.not_own_host("url", &body.url, &request::own_hosts(req));
    p.event_filters("events", &body.events);
    p.headers("headers", &body.headers);
    if let Some(r) = &body.retry {
        p.schedule("retry.schedule", &r.schedule);
    }
    if let Some(t) = body.timeout_seconds {
        let max = ctx.settings.max_delivery_timeout.as_secs();
        if t == 0 || u64::from(t) > max {
            p.add("timeout_seconds", format!("must be 1 to {max} seconds"));
        }
    }
    p.delivery(&body.kind, body.lark.as_ref(), body.delivery.as_ref());
    p.rate_limit("rate_limit", body.rate_limit.as_ref());
    p.content_filter("filter", body.filter.as_ref());
    p.endpoint_plugins("plugins", &body.plugins);
    p.finish()?;
    endpoint.name = body.name.trim().to_owned();
    endpoint.url = body.url;
    endpoint.events = body.events;
    if body.enabled && !endpoint.enabled {
        endpoint.reactivate(Timestamp::now());
    } else if !body.enabled && endpoint.enabled {
        endpoint.disabled_reason = Some(disabled_reason::MANUAL.to_owned());
        endpoint.disabled_at = Some(Timestamp::now());
    }
    endpoint.enabled = body.enabled;
    endpoint.headers = body.headers.into_iter().collect();
    endpoint.retry = body.retry;
    endpoint.timeout_seconds = body.timeout_seconds;
    endpoint.kind = body.kind;
    endpoint.lark = body.lark;
    endpoint.delivery = body.delivery;
    endpoint.rate_limit = body.rate_limit;
    endpoint.filter = body.filter;
    endpoint.plugins = body.plugins;
    endpoint.updated_at = Timestamp::now();
    Ok(())
}

pub async fn create(
    ctx: &Context,
    ws: &str,
    req: &Request,
    deadline: Deadline,
) -> Result<Response<String>, ApiError> {
    let body: CreateEndpoint = request::json_body(req)?;
    let verify = body.verify;
    let mut endpoint = Endpoint::new(ws, body.name.trim(), &body.url, Vec::new());
    apply(ctx, req, body, &mut endpoint)?;
    if verify {
        let attempt = ping(ctx, &endpoint, deadline).await?;
        if attempt.status != AttemptStatus::Successful {
            let mut e = ApiError::bad_request(
                "endpoint_unverified",
                format!(
                    "the endpoint did not answer the test ping with 2xx ({})",
                    attempt
                        .response
                        .as_ref()
                        .and_then(|r| r.status)
                        .map_or_else(
                            || attempt.error_code.clone().unwrap_or_default(),
                            |s| s.to_string()
                        )
                ),
            );
            e.fields
                .insert("url".into(), "did not answer the test ping with 2xx".into());
            return Err(e);
        }
    }
    save(ctx, None, &mut endpoint).await?;
    Ok(with_etag(
        api::json(StatusCode::CREATED, &endpoint),
        endpoint.version,
    ))
}

/// `PUT`: replaces every setting; the id, secret and health are kept. Turning the endpoint
/// on with `?recover_since=` starts a recovery as `enable` does; if time runs out, the answer
/// shows it in `recovery` and `POST …/enable` finishes it.
pub async fn update(
    ctx: &Context,
    ws: &str,
    id: &str,
    req: &Request,
    deadline: Deadline,
) -> Result<Response<String>, ApiError> {
    let body: CreateEndpoint = request::json_body(req)?;
    let since = recover_since(req)?;
    let if_match = IfMatch::of(req)?;
    let mut endpoint = find(ctx, ws, id).await?;
    if_match.check(endpoint.version)?;
    let old_name = endpoint.name.clone();
    let was_enabled = endpoint.enabled;
    apply(ctx, req, body, &mut endpoint)?;
    if let (false, true, Some(since)) = (was_enabled, endpoint.enabled, since) {
        endpoint.recovery = Some(Recovery::new(since, endpoint.updated_at));
    }
    save(ctx, Some(&old_name), &mut endpoint)
        .await
        .map_err(|e| if_match.on_write_error(e))?;
    let now = Timestamp::now();
    match (was_enabled, endpoint.enabled) {
        (true, false) => {
            ctx.ops
                .emit(&[OpsEvent::deactivated(
                    &endpoint,
                    disabled_reason::MANUAL,
                    now,
                )])
                .await
        }
        (false, true) => {
            let recovered = recover(ctx, &mut endpoint, deadline).await?;
            let mut ops = OpsEvent::new(ops_events::ENDPOINT_REACTIVATED, &endpoint, now);
            ops.counts.recovered_events = Some(recovered.now);
            ctx.ops.emit(&[ops]).await
        }
        _ => {}
    }
    Ok(with_etag(
        api::json(StatusCode::OK, &secrets::endpoint(&endpoint)),
        endpoint.version,
    ))
}

/// Writes a created (`old_name` is none) or updated endpoint, moving its name claim when
/// the name changed.
///
/// The write is versioned: one that lost a race answers `conflict` (and gives back the new
/// name's claim), for the caller to retry on a fresh read or report.
pub async fn save(
    ctx: &Context,
    old_name: Option<&str>,
    endpoint: &mut Endpoint,
) -> Result<(), ApiError> {
    let ws = endpoint.workspace.clone();
    let ws = ws.as_str();
    let renamed = old_name != Some(endpoint.name.as_str());
    if renamed {
        names::claim(ctx, ws, NameKind::Endpoint, &endpoint.name, &endpoint.id).await?;
    }
    if let Err(e) = ctx.store.put_endpoint(endpoint).await {
        if renamed {
            names::release(ctx, ws, NameKind::Endpoint, &endpoint.name, &endpoint.id).await?;
        }
        return Err(store_error(e));
    }
    if let Some(old_name) = old_name
        && old_name != endpoint.name
    {
        names::release(ctx, ws, NameKind::Endpoint, old_name, &endpoint.id).await?;
    }
    Ok(())
}

/// Deletes an endpoint with its name claim.
pub async fn remove(
    ctx: &Context,
    endpoint: &Endpoint,
    expected: Option<u64>,
) -> Result<(), ApiError> {
    let ws = endpoint.workspace.as_str();
    ctx.store
        .delete_endpoint(ws, &endpoint.id, expected)
        .await
        .map_err(store_error)?;
    names::release(ctx, ws, NameKind::Endpoint, &endpoint.name, &endpoint.id).await
}

/// `DELETE`; with `If-Match`, only while the endpoint is still at that version.
pub async fn delete(
    ctx: &Context,
    ws: &str,
    id: &str,
    req: &Request,
) -> Result<Response<String>, ApiError> {
    let if_match = IfMatch::of(req)?;
    let endpoint = find(ctx, ws, id).await?;
    if_match.check(endpoint.version)?;
    let expected = if_match.is_given().then_some(endpoint.version);
    remove(ctx, &endpoint, expected)
        .await
        .map_err(|e| if_match.on_write_error(e))?;
    Ok(crate::workspaces::no_content())
}

/// `POST …/endpoints/{id}/test`: sends a signed `hookrelay.ping` now and answers the attempt.
pub async fn test(
    ctx: &Context,
    ws: &str,
    id: &str,
    deadline: Deadline,
) -> Result<Response<String>, ApiError> {
    let endpoint = find(ctx, ws, id).await?;
    let attempt = ping(ctx, &endpoint, deadline).await?;
    Ok(api::json(StatusCode::OK, &attempt))
}

/// Delivers a ping event to `endpoint` (stored, or about to be), recording the event and the
/// attempt. The request is bounded by the endpoint's timeout and by the call's deadline, less
/// the time to record the attempt: a receiver that never answers gives a `FAILED` attempt
/// (`TIMEOUT`) in time, not a gateway timeout.
async fn ping(ctx: &Context, endpoint: &Endpoint, deadline: Deadline) -> Result<Attempt, ApiError> {
    // The delivery code keeps two seconds of the deadline for recording and needs one to
    // send; with less, there is no point storing an event.
    if !deadline.allows(PING_MIN) {
        return Err(deadline_exceeded("the test ping"));
    }
    let id = ids::new_id(ids::EVENT);
    let payload = serde_json::json!({
        "event_type": PING,
        "data": {"endpoint_id": endpoint.id, "sent_at": Timestamp::now()},
    });
    let event = Event {
        id: id.clone(),
        workspace: endpoint.workspace.clone(),
        source_id: crate::events::PUBLISH_SOURCE.to_owned(),
        event_type: PING.to_owned(),
        idempotency_key: id.clone(),
        received_at: Timestamp::now(),
        payload: payload.to_string().into_bytes(),
        endpoint_ids: vec![endpoint.id.clone()],
        content_type: None,
        hops: 0,
        trace: Some(hookrelay_shared::trace_context::TraceContext::start()),
    };
    let scope = format!("{}:{}", crate::events::PUBLISH_SOURCE, endpoint.workspace);
    ctx.store
        .insert_event(&event, &scope, false, ctx.settings.retention())
        .await
        .map_err(store_error)?;
    let task = DeliveryTask {
        manual: true,
        ..DeliveryTask::new(&event, "", &endpoint.id)
    };
    let try_ = Try {
        task: &task,
        attempt: 1,
        sent_at: None,
        trace_id: None,
        deadline: Some(deadline.instant()),
    };
    let now = Timestamp::now();
    let mut attempt = new_attempt(&try_, Some(endpoint), now);
    if endpoint.enabled {
        attempt = match ctx
            .sender
            .send(&try_, &[&event], endpoint, attempt, now)
            .await
        {
            Sent::NoTime => return Err(deadline_exceeded("the test ping")),
            Sent::Done { attempt, .. } => *attempt,
        };
        // A test is one try: no schedule, no dead letter.
        attempt.exhausted = attempt.status != AttemptStatus::Successful;
    } else {
        attempt.error_code =
            Some(hookrelay_shared::model::attempt_error::ENDPOINT_DISABLED.to_owned());
    }
    ctx.store
        .put_attempts(std::slice::from_ref(&attempt), ctx.settings.retention())
        .await
        .map_err(store_error)?;
    Ok(attempt)
}

const PING: &str = "hookrelay.ping";

/// The least time a ping needs: the two seconds the delivery code keeps back for recording,
/// one to send, and the event's write.
const PING_MIN: Duration = Duration::from_millis(3500);

pub(crate) async fn find(ctx: &Context, ws: &str, id: &str) -> Result<Endpoint, ApiError> {
    ctx.store
        .get_endpoint(ws, id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("no endpoint {id:?}")))
}

pub async fn get(ctx: &Context, ws: &str, id: &str) -> Result<Response<String>, ApiError> {
    let endpoint = find(ctx, ws, id).await?;
    Ok(with_etag(
        api::json(StatusCode::OK, &secrets::endpoint(&endpoint)),
        endpoint.version,
    ))
}

/// `GET …/endpoints/{id}/secret` (root key only): the signing secrets, shown again.
pub async fn reveal_secret(
    ctx: &Context,
    ws: &str,
    id: &str,
) -> Result<Response<String>, ApiError> {
    let endpoint = find(ctx, ws, id).await?;
    tracing::info!(endpoint.id = %id, workspace = ws, "endpoint secret revealed");
    Ok(api::json(
        StatusCode::OK,
        &serde_json::json!({
            "secret": endpoint.secret,
            "previous_secret": endpoint.previous_secret,
            "previous_secret_expires_at": endpoint.previous_secret_expires_at,
        }),
    ))
}

/// `POST …/endpoints/{id}/secret/rotate`: a new secret signs from now on; the old one
/// signs too until the grace period ends, so receivers can switch without losing events.
pub async fn rotate_secret(
    ctx: &Context,
    ws: &str,
    id: &str,
) -> Result<Response<String>, ApiError> {
    let now = Timestamp::now();
    let endpoint = ctx
        .store
        .rotate_secret(
            ws,
            id,
            &signature::generate_secret(),
            now.plus(ctx.settings.secret_grace),
            now,
        )
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("no endpoint {id:?}")))?;
    tracing::info!(endpoint.id = %id, "endpoint secret rotated");
    Ok(with_etag(
        api::json(StatusCode::OK, &secrets::rotated(&endpoint)),
        endpoint.version,
    ))
}

pub async fn list(ctx: &Context, ws: &str, req: &Request) -> Result<Response<String>, ApiError> {
    let page = request::page(&request::query(req))?;
    let endpoints = ctx
        .store
        .list_endpoints(ws, &page)
        .await
        .map_err(store_error)?;
    let data: Vec<Endpoint> = endpoints.data.iter().map(secrets::endpoint).collect();
    Ok(api::json(
        StatusCode::OK,
        &serde_json::json!({ "data": data, "next": endpoints.next }),
    ))
}

/// `POST …/endpoints/{id}/enable[?recover_since=<RFC 3339>]`: turns a disabled endpoint back
/// on with fresh failure counters; with `recover_since`, re-enqueues the events since then
/// that it subscribes to and has not received, once each.
///
/// The reactivation and the recovery's plan (from `recover_since` to now) are one write, made
/// first, so that events arriving from then on reach the endpoint and recovered tasks are not
/// cancelled as sent to a disabled endpoint. The recovery then goes step by step, recording
/// its progress on the endpoint after each; when the call's time runs out (or SQS fails) the
/// answer says `"complete": false`, and calling `enable` again carries on from there: nothing
/// is lost and nothing is queued twice. An endpoint that is on with no recovery pending is
/// left as it is.
pub async fn enable(
    ctx: &Context,
    ws: &str,
    id: &str,
    req: &Request,
    deadline: Deadline,
) -> Result<Response<String>, ApiError> {
    let since = recover_since(req)?;
    let mut tries = 0;
    // A concurrent call that turned it on first wins; this one then carries on with the
    // recovery that call planned.
    let (mut endpoint, reactivated) = loop {
        let mut endpoint = find(ctx, ws, id).await?;
        if endpoint.enabled {
            break (endpoint, false);
        }
        let now = Timestamp::now();
        endpoint.reactivate(now);
        if let Some(since) = since {
            endpoint.recovery = Some(Recovery::new(since, now));
        }
        match ctx.store.put_endpoint(&mut endpoint).await {
            Ok(()) => break (endpoint, true),
            Err(hookrelay_shared::store::StoreError::Conflict) if tries < 2 => tries += 1,
            Err(e) => return Err(store_error(e)),
        }
    };
    let recovered = recover(ctx, &mut endpoint, deadline).await?;
    if reactivated {
        tracing::info!(endpoint.id = %endpoint.id, workspace = ws, recovered = recovered.now, "endpoint reactivated");
        let mut ops = OpsEvent::new(
            ops_events::ENDPOINT_REACTIVATED,
            &endpoint,
            Timestamp::now(),
        );
        ops.counts.recovered_events = Some(recovered.now);
        ctx.ops.emit(&[ops]).await;
    }
    Ok(api::json(
        StatusCode::OK,
        &serde_json::json!({
            "endpoint": secrets::endpoint(&endpoint),
            "reactivated": reactivated,
            "recovered": recovered.total,
            "complete": endpoint.recovery.is_none(),
        }),
    ))
}

/// `?recover_since=<RFC 3339>`, if given.
fn recover_since(req: &Request) -> Result<Option<Timestamp>, ApiError> {
    request::query(req)
        .get("recover_since")
        .map(|v| {
            Timestamp::parse(v).map_err(|_| {
                let mut e =
                    ApiError::bad_request("invalid_time", "recover_since must be an RFC 3339 time");
                e.fields
                    .insert("recover_since".into(), "not an RFC 3339 time".into());
                e
            })
        })
        .transpose()
}

/// Events one recovery step reads by default: small enough that a step ends well inside the
/// time kept for it, large enough that few steps are needed.
pub(crate) const RECOVERY_PAGE: i32 = 100;

/// The time a recovery step may take (a page of events, the attempt reads for each, up to ten
/// `SendMessageBatch` calls and the progress write), with margin: a step starts only if this
/// much is left, so the deadline never falls between queuing a page and recording it.
const RECOVERY_STEP: Duration = Duration::from_secs(4);

/// Attempt reads in flight at once while a step checks which events were delivered.
const RECOVERY_READS: usize = 16;

/// Events a recovery queued: in this call, and in all its calls so far.
#[derive(Debug, Default, Clone, Copy)]
struct Recovered {
    now: usize,
    total: usize,
}

/// Carries the endpoint's pending recovery as far as `deadline` allows, recording progress
/// after each step and clearing it when done.
async fn recover(
    ctx: &Context,
    endpoint: &mut Endpoint,
    deadline: Deadline,
) -> Result<Recovered, ApiError> {
    let Some(mut plan) = endpoint.recovery.clone() else {
        return Ok(Recovered::default());
    };
    let ws = endpoint.workspace.clone();
    let mut queued = 0;
    loop {
        if !deadline.allows(RECOVERY_STEP) {
            let total = plan.recovered;
            endpoint.recovery = Some(plan);
            return Ok(Recovered { now: queued, total });
        }
        let (events, next) = ctx
            .store
            .events_between(
                &ws,
                plan.since,
                plan.until,
                plan.cursor.as_deref(),
                ctx.recovery_page,
            )
            .await
            .map_err(store_error)?;
        let page = events;
        // Recovered events have no request headers: a header condition sees none.
        let no_headers = Default::default();
        let wanted: Vec<&(String, Event)> = page
            .iter()
            .filter(|(_, e)| {
                !hookrelay_shared::model::subscribed(
                    std::slice::from_ref(endpoint),
                    &e.event_type,
                    &e.payload,
                    &no_headers,
                )
                .is_empty()
            })
            .collect();
        let ids: Vec<String> = wanted.iter().map(|(_, e)| e.id.clone()).collect();
        let (ws_ref, endpoint_id) = (ws.as_str(), endpoint.id.as_str());
        let delivered: Vec<bool> = futures::stream::iter(ids)
            .map(|id| async move { ctx.store.delivered(ws_ref, &id, endpoint_id).await })
            .buffered(RECOVERY_READS)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(store_error)?;
        let tasks: Vec<DeliveryTask> = wanted
            .iter()
            .zip(delivered)
            .filter(|(_, delivered)| !delivered)
            .map(|((key, event), _)| DeliveryTask {
                manual: true,
                ..DeliveryTask::for_endpoint(event, key, endpoint)
            })
            .collect();
        let unsent = ctx
            .queue
            .send_tasks(&tasks)
            .await
            .map_err(crate::queue_error)?;
        if let Some(first) = unsent.first() {
            // The step is recorded up to the first task SQS refused, so the next call starts
            // with it. (Tasks of the same page that SQS did take after it are checked again
            // then, and queued again only if still undelivered: SQS refusing part of a batch
            // is the one case that can repeat a recovered event.)
            let done = tasks.iter().take_while(|t| *t != first).count();
            plan.recovered += done;
            let at = page
                .iter()
                .position(|(key, _)| *key == first.event_key)
                .unwrap_or(0);
            if let Some((_, event)) = at.checked_sub(1).and_then(|i| page.get(i)) {
                plan.cursor = hookrelay_shared::store::Store::event_cursor(&ws, &event.id);
            }
            endpoint.recovery = Some(plan.clone());
            ctx.store
                .set_recovery(&ws, &endpoint.id, Some(&plan))
                .await
                .map_err(store_error)?;
            return Err(ApiError::unavailable(format!(
                "{} recovered events could not be queued; call enable again to continue",
                unsent.len()
            )));
        }
        plan.recovered += tasks.len();
        queued += tasks.len();
        match next {
            Some(cursor) => {
                plan.cursor = Some(cursor);
                ctx.store
                    .set_recovery(&ws, &endpoint.id, Some(&plan))
                    .await
                    .map_err(store_error)?;
            }
            None => {
                ctx.store
                    .set_recovery(&ws, &endpoint.id, None)
                    .await
                    .map_err(store_error)?;
                endpoint.recovery = None;
                tracing::info!(endpoint.id = %endpoint.id, recovered = plan.recovered, "recovery complete");
                return Ok(Recovered {
                    now: queued,
                    total: plan.recovered,
                });
            }
        }
    }
}
