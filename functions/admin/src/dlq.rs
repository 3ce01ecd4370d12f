//! The dead-letter queue: what ended there and why, and sending it back.

use hookrelay_shared::api::{self, ApiError};
use http::{Response, StatusCode};
use lambda_http::Request;
use serde_json::json;

use crate::{Context, queue_error, request};

/// `GET /dlq`: depth and a peek at up to ten dead letters (left in place).
pub async fn peek(ctx: &Context) -> Result<Response<String>, ApiError> {
    let depth = ctx
        .queue
        .depth(ctx.queue.dlq_url())
        .await
        .map_err(queue_error)?;
    let letters = ctx.queue.peek_dead_letters(10).await.map_err(queue_error)?;
    Ok(api::json(
        StatusCode::OK,
        &json!({ "depth": depth, "data": letters }),
    ))
}

/// `POST /dlq/redrive[?limit=N]`: back to the deliveries queue, attempts counted afresh.
pub async fn redrive(ctx: &Context, req: &Request) -> Result<Response<String>, ApiError> {
    let q = request::query(req);
    let limit = match q.get("limit") {
        None => 1000,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=10_000).contains(l))
            .ok_or_else(|| ApiError::bad_request("invalid_limit", "limit must be 1 to 10000"))?,
    };
    let moved = ctx.queue.redrive(limit).await.map_err(queue_error)?;
    tracing::info!(moved, "dead letters redriven");
    Ok(api::json(StatusCode::OK, &json!({ "redriven": moved })))
}
