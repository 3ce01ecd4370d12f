//! The dead-letter queues: what ended there and why, and sending it back. `?queue=ordered`
//! picks the ordered queue's own (tasks of ordered endpoints whose invocations kept
//! crashing); the default is the deliveries' DLQ, where every exhausted task goes.

use std::time::Duration;

use hookrelay_shared::api::{self, ApiError};
use http::{Response, StatusCode};
use lambda_http::Request;
use serde_json::json;

use crate::{Context, Deadline, deadline_exceeded, queue_error, request};

/// Kept back for the depth read that follows a receive.
const DEPTH_RESERVE: Duration = Duration::from_secs(2);

/// How long a peek waits for letters: long polling asks every SQS server, and an empty
/// answer after it means an empty queue, not an unlucky sample.
const PEEK_WAIT: Duration = Duration::from_secs(1);

const DELIVERIES: &str = "deliveries";
const ORDERED: &str = "ordered";
/// What `?queue=` takes.
pub const QUEUES: [&str; 2] = [DELIVERIES, ORDERED];

/// The dead-letter queue `?queue=` names: `deliveries` (the default) or `ordered`.
fn chosen<'a>(ctx: &'a Context, req: &Request) -> Result<&'a str, ApiError> {
    match request::query(req).get("queue").map(String::as_str) {
        None | Some(DELIVERIES) => Ok(ctx.queue.dlq_url()),
        Some(ORDERED) => ctx.queue.ordered_dlq_url().ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_ordered_queue",
                "this deployment has no ordered queue",
            )
        }),
        Some(_) => Err(ApiError::bad_request(
            "invalid_queue",
            "queue must be deliveries or ordered",
        )),
    }
}

/// `GET /dlq[?queue=ordered]`: depth and a peek at up to ten dead letters (left in place).
pub async fn peek(
    ctx: &Context,
    req: &Request,
    deadline: Deadline,
) -> Result<Response<String>, ApiError> {
    let dlq = chosen(ctx, req)?;
    if !deadline.allows(PEEK_WAIT + DEPTH_RESERVE) {
        return Err(deadline_exceeded("the peek"));
    }
    let letters = ctx
        .queue
        .peek_dead_letters(dlq, 10, PEEK_WAIT)
        .await
        .map_err(queue_error)?;
    let depth = ctx.queue.depth(dlq).await.map_err(queue_error)?;
    Ok(api::json(
        StatusCode::OK,
        &json!({ "depth": depth, "data": letters }),
    ))
}

/// `POST /dlq/redrive[?limit=N][&queue=ordered]`: back to the queue each task belongs on
/// (an ordered endpoint's to the end of its line), attempts counted afresh, for as long as
/// the call's time allows. The answer says how far it got; a call that is not
/// `complete` is continued by calling again, and no letter is ever moved twice.
pub async fn redrive(
    ctx: &Context,
    req: &Request,
    deadline: Deadline,
) -> Result<Response<String>, ApiError> {
    let dlq = chosen(ctx, req)?;
    let q = request::query(req);
    let limit = match q.get("limit") {
        None => 1000,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=10_000).contains(l))
            .ok_or_else(|| ApiError::bad_request("invalid_limit", "limit must be 1 to 10000"))?,
    };
    let progress = ctx
        .queue
        .redrive(dlq, limit, deadline.less(DEPTH_RESERVE).instant())
        .await
        .map_err(queue_error)?;
    // What is left, by SQS's approximate counts: visible letters, and letters still held
    // (unreadable, unsent, or held by a concurrent call) that come back.
    let remaining = ctx
        .queue
        .depth(dlq)
        .await
        .map(|d| d.visible + d.in_flight + d.delayed)
        .map_err(queue_error)?;
    tracing::info!(
        moved = progress.moved,
        unreadable = progress.unreadable,
        unsent = progress.unsent,
        complete = progress.drained,
        remaining,
        "dead letters redriven"
    );
    Ok(api::json(
        StatusCode::OK,
        &json!({
            "moved": progress.moved,
            "unreadable": progress.unreadable,
            "unsent": progress.unsent,
            "remaining_estimate": remaining,
            "complete": progress.drained,
        }),
    ))
}
