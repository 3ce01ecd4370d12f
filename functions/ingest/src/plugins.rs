//! A source's plugins between verification and storage, and what their outcomes are answered
//! as: a rejection with the status the plugin chose, a schema failure as `400` naming the
//! failing value and keyword, a broken or runaway plugin as `502`/`504` so that the sender
//! retries (nothing was stored) while the source's owner mends it.

use http::StatusCode;

use hookrelay_plugins::SourcePlugin;
use hookrelay_plugins::inbound::{self, ChainError, Inbound, Outcome};
use hookrelay_shared::Source;
use hookrelay_shared::api::ApiError;

/// Whether a plugin may still name an event type the request does not.
pub fn may_name_event_type(source: &Source) -> bool {
    source
        .plugins
        .iter()
        .any(|p| matches!(p, SourcePlugin::Function { .. }))
}

/// Runs the source's plugins: the request to store, or `None` when a plugin dropped it.
pub fn run(
    source: &Source,
    request: Inbound,
    max_body: usize,
) -> Result<Option<Inbound>, ApiError> {
    if source.plugins.is_empty() {
        return Ok(Some(request));
    }
    match inbound::run(&source.plugins, request, max_body) {
        Ok(Outcome::Accept(r)) => Ok(Some(r)),
        Ok(Outcome::Drop) => Ok(None),
        Ok(Outcome::Reject { status, message }) => Err(ApiError::new(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            "rejected_by_plugin",
            message,
        )),
        Err(e) => Err(refusal(source, e)),
    }
}

/// What a failed chain is answered as.
fn refusal(source: &Source, e: ChainError) -> ApiError {
    let (status, code) = e.status_and_code();
    let mut err = ApiError::new(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        code,
        e.to_string(),
    );
    match e {
        ChainError::Schema(f) => {
            let at = if f.pointer.is_empty() {
                "/".to_owned()
            } else {
                f.pointer
            };
            err.fields
                .insert(at, format!("{}: {}", f.keyword, f.message));
        }
        ChainError::Plugin { index, error } => {
            tracing::warn!(source.id = %source.id, plugin = index, error = %error, "source plugin failed");
        }
    }
    err
}
