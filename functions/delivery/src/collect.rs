//! Batch endpoints: their tasks wait on the batching queue, whose event source mapping hands
//! them over in groups; here they become batch tasks on the deliveries queue once `size` of
//! an endpoint's events have collected or `interval` has passed since the first of them.
//! Events not yet due are put back on the batching queue, invisible until they are: the
//! waiting is SQS's, so a cold start loses nothing. A warm function also remembers when each
//! endpoint's open batch is due, so events arriving later wait for the same moment and come
//! back together; without that memory they still go out in time, in smaller batches.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsBatchResponse;
use hookrelay_shared::telemetry::error_chain;
use hookrelay_shared::{DeliveryTask, EventRef, TaskBatch, Timestamp, ids};

use crate::{Context, Endpoints, Received};

/// Collected events count as due this close to their time: SQS visibility is in seconds.
const DUE_SLACK: Duration = Duration::from_millis(500);

/// Tasks of batch endpoints that came through the deliveries queue move to the batching
/// queue. Answers the ones SQS did not take (to be retried by the caller).
pub async fn forward(ctx: &Context, url: &str, received: Vec<Received>) -> Vec<Received> {
    let tasks: Vec<DeliveryTask> = received.iter().map(|r| r.task.clone()).collect();
    match ctx.queue.send_tasks_to(url, &tasks).await {
        Ok(unsent) => received
            .into_iter()
            .filter(|r| unsent.contains(&r.task))
            .collect(),
        Err(e) => {
            tracing::error!(error = %error_chain(&e), "tasks not moved to the batching queue");
            received
        }
    }
}

/// Handles records from the batching queue.
pub async fn collect(
    ctx: &Context,
    url: &str,
    received: Vec<Received>,
    endpoints: &Endpoints,
    response: &mut SqsBatchResponse,
) {
    let now = Timestamp::now();
    let mut groups: BTreeMap<(String, String), Vec<Received>> = BTreeMap::new();
    for r in received {
        groups
            .entry((r.task.workspace.clone(), r.task.endpoint_id.clone()))
            .or_default()
            .push(r);
    }
    let mut batches: Vec<(DeliveryTask, Vec<String>)> = Vec::new();
    let mut held: Vec<(String, Duration)> = Vec::new();
    for (key, mut items) in groups {
        items.sort_by_key(|r| r.sent_at);
        let Some(config) = endpoints.get(&key).and_then(|ep| ep.batching()) else {
            // Deleted, or no longer batching: each goes out (or is cancelled) on its own.
            for r in items {
                let ids = vec![r.message_id.clone()];
                batches.push((r.task, ids));
            }
            continue;
        };
        let size = config
            .size
            .clamp(1, hookrelay_shared::BatchConfig::MAX_SIZE) as usize;
        let interval = Duration::from_secs(u64::from(config.interval));
        let mut chunks: Vec<Vec<Received>> = Vec::new();
        while items.len() >= size {
            let rest = items.split_off(size);
            chunks.push(std::mem::replace(&mut items, rest));
        }
        let mut waiting = false;
        if !items.is_empty() {
            let first = items[0].sent_at.unwrap_or(now);
            let due = ctx.open_batch_due(&key, first.plus(interval), now);
            let wait = due.since(now);
            if wait <= DUE_SLACK {
                chunks.push(items);
            } else {
                let secs = (wait.as_millis() as u64).div_ceil(1000);
                waiting = true;
                for r in items {
                    held.push((r.receipt_handle.clone(), Duration::from_secs(secs)));
                    response.add_failure(r.message_id);
                }
            }
        }
        if !waiting {
            ctx.close_batch(&key);
        }
        batches.extend(chunks.into_iter().map(batch_task));
    }

    if !batches.is_empty() {
        let tasks: Vec<DeliveryTask> = batches.iter().map(|(t, _)| t.clone()).collect();
        let unsent = match ctx.queue.send_tasks(&tasks).await {
            Ok(unsent) => unsent,
            Err(e) => {
                tracing::error!(error = %error_chain(&e), "batches not queued");
                tasks
            }
        };
        for (task, message_ids) in &batches {
            if unsent.contains(task) {
                // Their messages stay on the batching queue and come back.
                for id in message_ids {
                    response.add_failure(id.clone());
                }
            }
        }
        tracing::info!(
            batches = batches.len() - unsent.len(),
            unsent = unsent.len(),
            "batches queued"
        );
    }
    if !held.is_empty()
        && let Err(e) = ctx.queue.delay_on(url, &held).await
    {
        tracing::warn!(error = %error_chain(&e), "held events keep the batching queue's visibility timeout");
    }
}

/// One batch task for a chunk of one endpoint's tasks, with the chunk's message ids.
fn batch_task(chunk: Vec<Received>) -> (DeliveryTask, Vec<String>) {
    let message_ids = chunk.iter().map(|r| r.message_id.clone()).collect();
    let events: Vec<EventRef> = chunk
        .iter()
        .map(|r| EventRef {
            event_key: r.task.event_key.clone(),
            event_id: r.task.event_id.clone(),
        })
        .collect();
    let mut task = chunk[0].task.clone();
    task.manual = false;
    task.batch = Some(TaskBatch {
        id: ids::new_id(ids::BATCH),
        events,
    });
    (task, message_ids)
}
