//! Accepting an event, shared by ingest, the admin API's direct publish and operational
//! events: queue one task per subscribed endpoint, then store the event once per idempotency
//! key. If queueing fails the event is stored marked pending and the sweeper re-enqueues it.

use std::collections::HashMap;
use std::time::Duration;

use crate::batching;
use crate::ordering::Ordered;
use crate::queue::Queue;
use crate::store::{InsertOutcome, Pending, Store, StoreError};
use crate::telemetry::error_chain;
use crate::{BatchConfig, DeliveryTask, Endpoint, Event, EventRef};

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
///
/// Ordered endpoints' tasks go to the ordered queue in their lines (see `ordering`).
/// Endpoints in `batching` get no task: the event joins their open batch instead, after it
/// is stored (marked pending until every batch has it), so a batch never holds an event
/// that was refused or is a duplicate, and batches keep the order events were accepted in.
///
/// The event is listed (in listings, and for reads by id) by its first plain task when the
/// delivery function receives it; here, once stored, when it has none or `targets.list_now`.
pub async fn publish(
    store: &Store,
    queue: &Queue,
    event: &Event,
    scope: &str,
    retention: Duration,
    targets: &Targets,
) -> Result<Published, StoreError> {
    let event_key = Store::event_key(scope, &event.idempotency_key);
    let mut tasks: Vec<DeliveryTask> = event
        .endpoint_ids
        .iter()
        .filter(|ep| !targets.batching.contains_key(*ep))
        .map(|ep| {
            let mut task = DeliveryTask::new(event, &event_key, ep);
            task.group = targets
                .ordered
                .get(ep)
                .map(|o| crate::ordering::group(ep, o, &event.payload));
            task
        })
        .collect();
    // A plain task, taken at once, lists the event when it is received. An event without
    // one (no endpoint, or only ordered and batch ones, which wait) is listed here, once
    // stored: its listing must not wait for a line or a batch.
    let immediate = tasks
        .iter_mut()
        .find(|t| t.group.is_none() && t.not_before.is_none());
    let list_now = match immediate {
        Some(first) if !targets.list_now => {
            first.list = true;
            false
        }
        _ => true,
    };
    let batched: Vec<(&String, BatchConfig)> = event
        .endpoint_ids
        .iter()
        .filter_map(|ep| targets.batching.get(ep).map(|c| (ep, *c)))
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
    let deliveries = |ts: &[DeliveryTask]| ts.iter().filter(|t| !t.lists_only()).count();
    // What reconciliation must send again: the tasks SQS did not take (the listing task's
    // endpoint is none, ""), and the batches the event joins only after it is stored. The
    // rest are queued and are not sent twice.
    let unconfirmed: Vec<String> = unsent
        .iter()
        .map(|t| t.endpoint_id.clone())
        .chain(batched.iter().map(|(ep, _)| (*ep).clone()))
        .collect();
    let pending = !unconfirmed.is_empty();
    let marker = if pending {
        Pending::Endpoints(&unconfirmed)
    } else {
        Pending::No
    };
    match store.insert_event(event, scope, marker, retention).await? {
        InsertOutcome::Duplicate(original) => {
            tracing::info!(event.id = %original.id, scope, "duplicate event");
            if list_now {
                // A caller repeating a request whose listing failed lists it now.
                list_at_once(store, queue, &original, &event_key, retention).await?;
            }
            Ok(Published {
                id: original.id,
                duplicate: true,
                tasks_queued: 0,
                tasks_unsent: 0,
            })
        }
        InsertOutcome::Inserted { .. } => {
            if list_now {
                list_at_once(store, queue, event, &event_key, retention).await?;
            }
            let mut batches_missed = 0;
            for (endpoint_id, config) in &batched {
                let member = batching::Member {
                    workspace: event.workspace.clone(),
                    endpoint_id: (*endpoint_id).clone(),
                    event: EventRef {
                        event_key: event_key.clone(),
                        event_id: event.id.clone(),
                    },
                    bytes: event.payload.len() as u64,
                };
                if let Err(e) = batching::add(store, queue, &member, *config, retention).await {
                    tracing::error!(event.id = %event.id, endpoint.id = %endpoint_id, error = %error_chain(&e), "event not added to its batch");
                    batches_missed += 1;
                }
            }
            let unsent_total = unsent.len() + batches_missed;
            if unsent_total > 0 {
                tracing::warn!(event.id = %event.id, unsent = unsent_total, "tasks left for reconciliation");
            } else if pending {
                // Every batch has it: out of the pending index. If this write fails the
                // sweeper adds it again, which the batch ignores.
                if let Err(e) = store.clear_pending(&event_key).await {
                    tracing::warn!(event.id = %event.id, error = %error_chain(&e), "pending marker not cleared");
                }
            }
            Ok(Published {
                id: event.id.clone(),
                duplicate: false,
                tasks_queued: deliveries(&tasks) - deliveries(&unsent) + batched.len()
                    - batches_missed,
                tasks_unsent: unsent_total,
            })
        }
    }
}

/// Lists a stored event at once; failing that, leaves it to a listing task, and failing
/// that too, answers the error (the caller's repeat lists it).
async fn list_at_once(
    store: &Store,
    queue: &Queue,
    event: &Event,
    event_key: &str,
    retention: Duration,
) -> Result<(), StoreError> {
    let Err(e) = store
        .list_new_events(&[(event_key, event)], retention)
        .await
    else {
        return Ok(());
    };
    tracing::warn!(event.id = %event.id, error = %error_chain(&e), "event not listed; a task lists it");
    match queue
        .send_tasks(&[DeliveryTask::listing(event, event_key)])
        .await
    {
        Ok(unsent) if unsent.is_empty() => Ok(()),
        _ => Err(e),
    }
}

/// Endpoints whose tasks take another way than one plain task on the deliveries queue.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    /// List the event as soon as it is stored, not when its first task is received: for a
    /// caller of the API, who may read it back at once (three write units more than a
    /// delivery batch's share of a page).
    pub list_now: bool,
    /// Batch endpoints by id, with their batching: their events join a batch.
    pub batching: HashMap<String, BatchConfig>,
    /// Ordered endpoints by id: their tasks wait in their line on the ordered queue.
    pub ordered: HashMap<String, Ordered>,
}

/// The batch and ordered endpoints among `endpoints`, for the queues the deployment has
/// (without a batching queue batch endpoints get one request per event; without an ordered
/// queue ordered endpoints are delivered unordered).
pub fn targets(queue: &Queue, endpoints: &[Endpoint]) -> Targets {
    let mut t = Targets::default();
    if queue.batching_url().is_some() {
        t.batching = endpoints
            .iter()
            .filter_map(|ep| ep.batching().map(|c| (ep.id.clone(), c)))
            .collect();
    }
    if queue.ordered_url().is_some() {
        t.ordered = endpoints
            .iter()
            .filter_map(|ep| ep.ordered().map(|o| (ep.id.clone(), o)))
            .collect();
    }
    t
}
