//! Rate limit counters (see [`crate::rate_limit`]): one item per source or endpoint and
//! window, raised by one `UpdateItem` that answers the new count, gone a minute after the
//! window by TTL.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::keys::{self, EXPIRES_AT};
use super::{Result, Store, StoreError};
use crate::Timestamp;

/// How long a window's counter outlives the window (TTL deletes it some time after).
const KEPT_FOR_SECONDS: i64 = 60;

impl Store {
    /// Counts one more request in `scope`'s window `window` (ending at `end`); answers the
    /// count with it.
    pub async fn count_in_window(&self, scope: &str, window: u64, end: Timestamp) -> Result<u64> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::key_of(keys::rate_window(scope, window))))
            .update_expression("ADD n :one SET #exp = if_not_exists(#exp, :exp)")
            .expression_attribute_names("#exp", EXPIRES_AT)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(
                ":exp",
                AttributeValue::N((end.unix_millis() / 1000 + KEPT_FOR_SECONDS).to_string()),
            )
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("UpdateItem", e))?;
        Ok(out
            .attributes()
            .and_then(|a| a.get("n"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(1))
    }
}
