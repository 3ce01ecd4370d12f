//! The dead-letter queue: what ended there and why, and sending it back.

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

/// `GET /dlq`: depth and a peek at up to ten dead letters (left in place).
pub async fn peek(ctx: &Context, deadline: Deadline) -> Result<Response<String>, ApiError> {
    if !deadline.allows(PEEK_WAIT + DEPTH_RESERVE) {
        return Err(deadline_exceeded("the peek"));
    }
    let letters = ctx
        .queue
        .peek_dead_letters(10, PEEK_WAIT)
        .await
        .map_err(queue_error)?;
    let depth = ctx
        .queue
        .depth(ctx.queue.dlq_url())
        .await
        .map_err(queue_error)?;
    Ok(api::json(
        StatusCode::OK,
        &json!({ "depth": depth, "data": letters }),
    ))
}

/// `POST /dlq/redrive[?limit=N]`: back to the deliveries queue, attempts counted afresh, for
/// as long as the call's time allows. The answer says how far it got; a call that is not
/// `complete` is continued by calling again, and no letter is ever moved twice.
pub async fn redrive(
    ctx: &Context,
    req: &Request,
    deadline: Deadline,
) -> Result<Response<String>, ApiError> {
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
        .redrive(limit, deadline.less(DEPTH_RESERVE).instant())
        .await
        .map_err(queue_error)?;
    // What is left, by SQS's approximate counts: visible letters, and letters still held
    // (unreadable, unsent, or held by a concurrent call) that come back.
    let remaining = ctx
        .queue
        .depth(ctx.queue.dlq_url())
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
