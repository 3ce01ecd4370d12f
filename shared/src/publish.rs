//! Accepting an event, shared by ingest, the admin API's direct publish and operational
//! events: queue one task per subscribed endpoint, then store the event once per idempotency
//! key. If queueing fails the event is stored marked pending and the sweeper re-enqueues it.

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

/// Queues `event`'s tasks (its `endpoint_ids` already chosen), then stores it once per
/// idempotency key. Tasks go first so that a stored event is always queued or marked
/// pending, never neither, at the price of one write and one `SendMessageBatch` per event:
/// - the store write fails: the caller answers 503 and the sender retries; the tasks already
///   sent find no event and end without a delivery;
/// - the idempotency key was seen before: the tasks just sent carry this request's event id,
///   not the stored one's, and delivery drops them;
/// - SQS refuses tasks: the event is stored marked pending and the sweeper queues it.
pub async fn publish(
    store: &Store,
    queue: &Queue,
    event: &Event,
    scope: &str,
    retention: Duration,
) -> Result<Published, StoreError> {
    let event_key = Store::event_key(scope, &event.idempotency_key);
    let tasks: Vec<DeliveryTask> = event
        .endpoint_ids
        .iter()
        .map(|ep| DeliveryTask::new(event, &event_key, ep))
        .collect();
    let unsent = if tasks.is_empty() {
        Vec::new()
    } else {
        match queue.send_tasks(&tasks).await {
            Ok(unsent) if unsent.is_empty() => unsent,
            // One more try for what SQS refused, before leaving it to reconciliation.
            Ok(unsent) => queue.send_tasks(&unsent).await.unwrap_or(unsent),
            Err(e) => {
                tracing::error!(event.id = %event.id, error = %error_chain(&e), "tasks could not be queued");
                tasks.clone()
            }
        }
    };
    let pending = !unsent.is_empty();
    match store.insert_event(event, scope, pending, retention).await? {
        InsertOutcome::Duplicate(original) => {
            tracing::info!(event.id = %original.id, scope, "duplicate event");
            Ok(Published {
                id: original.id,
                duplicate: true,
                tasks_queued: 0,
                tasks_unsent: 0,
            })
        }
        InsertOutcome::Inserted { .. } => {
            if pending {
                tracing::warn!(event.id = %event.id, unsent = unsent.len(), "tasks left for reconciliation");
            }
            Ok(Published {
                id: event.id.clone(),
                duplicate: false,
                tasks_queued: tasks.len() - unsent.len(),
                tasks_unsent: unsent.len(),
            })
        }
    }
}
