//! Accepting an event, shared by ingest and the admin API's direct publish: store it once
//! per idempotency key, queue one task per subscribed endpoint, then confirm it queued. If
//! queueing fails the event stays marked pending and the sweeper re-enqueues it.

use std::time::Duration;

use crate::queue::Queue;
use crate::store::{InsertOutcome, Store, StoreError};
use crate::telemetry::error_chain;
use crate::{DeliveryTask, Event};

#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// The stored event's id (the original one for a duplicate).
    pub id: String,
    pub duplicate: bool,
    pub tasks_queued: usize,
    /// Tasks SQS did not take; the event stays pending for reconciliation.
    pub tasks_unsent: usize,
}

/// Stores `event` (its `endpoint_ids` already chosen) and queues its tasks.
pub async fn publish(
    store: &Store,
    queue: &Queue,
    event: &Event,
    scope: &str,
    retention: Duration,
) -> Result<Published, StoreError> {
    let pending = !event.endpoint_ids.is_empty();
    let event_key = match store.insert_event(event, scope, pending, retention).await? {
        InsertOutcome::Duplicate(original) => {
            tracing::info!(event.id = %original.id, scope, "duplicate event");
            return Ok(Published {
                id: original.id,
                duplicate: true,
                tasks_queued: 0,
                tasks_unsent: 0,
            });
        }
        InsertOutcome::Inserted { event_key } => event_key,
    };
    let mut published = Published {
        id: event.id.clone(),
        duplicate: false,
        tasks_queued: 0,
        tasks_unsent: 0,
    };
    if !pending {
        return Ok(published);
    }
    let tasks: Vec<DeliveryTask> = event
        .endpoint_ids
        .iter()
        .map(|ep| DeliveryTask::new(event, &event_key, ep))
        .collect();
    let unsent = match queue.send_tasks(&tasks).await {
        Ok(unsent) if unsent.is_empty() => unsent,
        // One more try for what SQS refused, before leaving it to reconciliation.
        Ok(unsent) => queue.send_tasks(&unsent).await.unwrap_or(unsent),
        Err(e) => {
            tracing::error!(event.id = %event.id, error = %error_chain(&e), "tasks could not be queued");
            tasks.clone()
        }
    };
    published.tasks_queued = tasks.len() - unsent.len();
    published.tasks_unsent = unsent.len();
    if !unsent.is_empty() {
        tracing::warn!(event.id = %event.id, unsent = unsent.len(), "tasks left for reconciliation");
        return Ok(published);
    }
    if let Err(e) = store.clear_pending(&event_key).await {
        tracing::warn!(event.id = %event.id, error = %error_chain(&e), "pending mark not cleared; reconciliation may deliver twice");
    }
    Ok(published)
}
