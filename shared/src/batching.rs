//! Batch endpoints: each accepted event joins its endpoint's open batch, kept in DynamoDB
//! (the store's `add_to_batch`), in accept order. The add that fills a batch (by count or
//! by bytes) seals it and queues it as one task on the deliveries queue at once; the add
//! that opens a batch sends a timer to the batching queue, due after the interval, which
//! seals whatever has collected by then. No batch waits on a warm instance's memory or on
//! how SQS splits messages across invocations.
//!
//! Sealing is two writes around the send: mark the batch sealed (one writer wins), queue
//! it, then empty the item for the next batch. A writer that dies in between leaves the
//! batch sealed; after [`SEAL_STALE`] any other writer takes it over and queues it again.
//! Its id is derived from its members, so a second send carries the same `webhook-id`.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::queue::{Queue, QueueError};
use crate::store::{Added, BatchLimits, BatchState, NewMember, Store, StoreError};
use crate::telemetry::error_chain;
use crate::{BatchConfig, BatchTimer, DeliveryTask, EventRef, TaskBatch, Timestamp};

/// A batch's payloads together are at most this many bytes (a single bigger event goes
/// alone): receivers commonly refuse bodies over a few MiB, and the delivery function holds
/// the whole array in memory.
pub const MAX_BATCH_BYTES: u64 = 1024 * 1024;

/// A sealed batch whose writer has not emptied it after this long is taken over.
pub const SEAL_STALE: Duration = Duration::from_secs(5);

/// How often an add retries a batch that another writer is sealing, and how long it waits
/// in between: a seal is a `SendMessageBatch` and two writes, tens of milliseconds.
const SEALING_RETRIES: u32 = 40;
const SEALING_PAUSE: Duration = Duration::from_millis(25);

/// A timer counts as due this close to its time: SQS delays are whole seconds.
const DUE_SLACK: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("the batch state could not be read or written")]
    Store(#[from] StoreError),
    #[error("the batch or its timer could not be queued")]
    Queue(#[from] QueueError),
    #[error("SQS did not take the sealed batch")]
    Unsent,
    #[error("the open batch stayed sealed by another writer")]
    Busy,
}

/// One event for one batch endpoint.
#[derive(Debug, Clone)]
pub struct Member {
    pub workspace: String,
    pub endpoint_id: String,
    pub event: EventRef,
    pub bytes: u64,
}

/// Adds `member` to its endpoint's open batch: seals and queues the batch when this add
/// fills it, starts its timer when this add opens it. Repeating an add (a crash, the
/// sweeper's reconciliation) does not add the event twice to the open batch.
pub async fn add(
    store: &Store,
    queue: &Queue,
    member: &Member,
    config: BatchConfig,
    retention: Duration,
) -> Result<(), BatchError> {
    let limits = BatchLimits {
        size: config.size.clamp(1, BatchConfig::MAX_SIZE),
        max_bytes: MAX_BATCH_BYTES,
    };
    let interval = Duration::from_secs(u64::from(config.interval));
    for _ in 0..SEALING_RETRIES {
        let now = Timestamp::now();
        let expires_at = now.plus(retention).unix_millis() / 1000;
        let added = store
            .add_to_batch(
                &member.workspace,
                &member.endpoint_id,
                NewMember {
                    event: &member.event,
                    bytes: member.bytes,
                    now,
                    expires_at,
                },
                limits,
            )
            .await?;
        match added {
            Added::Added(state) => {
                if state.members.len() == 1 {
                    start_timer(queue, member, state.seq, interval).await?;
                }
                if state.members.len() as u64 >= u64::from(limits.size)
                    || state.bytes >= limits.max_bytes
                {
                    seal_and_queue(store, queue, member, state.seq, false).await?;
                }
                return Ok(());
            }
            Added::AlreadyIn(state) => {
                // The add that put it there may have died before the timer went out: a
                // second timer for the same batch is harmless.
                let due = state
                    .opened_at
                    .and_then(Timestamp::from_unix_millis)
                    .map_or(now, |at| at.plus(interval));
                if due.since(now) <= DUE_SLACK {
                    seal_and_queue(store, queue, member, state.seq, false).await?;
                } else {
                    start_timer(queue, member, state.seq, due.since(now)).await?;
                }
                return Ok(());
            }
            Added::Full(state) => {
                // Whoever filled it seals it; helping is safe, one seal wins. The state may
                // have moved on since the refusal (sealed, emptied, refilled): only a batch
                // seen full is sealed, else the add is simply tried again.
                let full = state.members.len() as u64 >= u64::from(limits.size)
                    || state.bytes.saturating_add(member.bytes) > limits.max_bytes;
                if full {
                    seal_and_queue(store, queue, member, state.seq, false).await?;
                }
            }
            Added::Sealing(state) => {
                let stale = state
                    .sealed_at
                    .is_some_and(|at| now.unix_millis() - at > SEAL_STALE.as_millis() as i64);
                if stale {
                    seal_and_queue(store, queue, member, state.seq, true).await?;
                } else {
                    tokio::time::sleep(SEALING_PAUSE).await;
                }
            }
        }
    }
    Err(BatchError::Busy)
}

async fn start_timer(
    queue: &Queue,
    member: &Member,
    seq: u64,
    delay: Duration,
) -> Result<(), BatchError> {
    let timer = BatchTimer {
        v: 1,
        workspace: member.workspace.clone(),
        endpoint_id: member.endpoint_id.clone(),
        seq,
    };
    queue.send_batch_timer(&timer, delay).await?;
    Ok(())
}

/// Seals batch `seq` and queues it. Answers whether this call queued it (another writer
/// may have won the seal, or the batch may be gone already). With `take_over`, a batch
/// sealed by a writer that has been silent for [`SEAL_STALE`] is queued by this one.
async fn seal_and_queue(
    store: &Store,
    queue: &Queue,
    member: &Member,
    seq: u64,
    take_over: bool,
) -> Result<bool, BatchError> {
    let now = Timestamp::now();
    let stale_before = if take_over {
        now.minus(SEAL_STALE)
    } else {
        Timestamp::from_unix_millis(0).unwrap_or(now)
    };
    let Some(state) = store
        .seal_batch(
            &member.workspace,
            &member.endpoint_id,
            seq,
            now,
            stale_before,
        )
        .await?
    else {
        return Ok(false);
    };
    let Some(task) = batch_task(&member.workspace, &member.endpoint_id, &state) else {
        store
            .reset_batch(&member.workspace, &member.endpoint_id, seq)
            .await?;
        return Ok(false);
    };
    let unsent = queue.send_tasks(std::slice::from_ref(&task)).await?;
    if !unsent.is_empty() {
        // Left sealed: the next add or the timer takes it over after SEAL_STALE.
        return Err(BatchError::Unsent);
    }
    if let Err(e) = store
        .reset_batch(&member.workspace, &member.endpoint_id, seq)
        .await
    {
        // Queued already; a writer that takes it over later sends the same batch id again.
        tracing::warn!(error = %error_chain(&e), seq, "sent batch not emptied");
    }
    tracing::info!(
        endpoint.id = %member.endpoint_id,
        batch.seq = seq,
        batch.events = state.members.len(),
        "batch queued"
    );
    Ok(true)
}

/// The batch task for a sealed batch: its members in the order they were added.
pub fn batch_task(ws: &str, endpoint_id: &str, state: &BatchState) -> Option<DeliveryTask> {
    let first = state.members.first()?;
    Some(DeliveryTask {
        v: DeliveryTask::VERSION,
        workspace: ws.to_owned(),
        event_key: first.event_key.clone(),
        event_id: first.event_id.clone(),
        endpoint_id: endpoint_id.to_owned(),
        manual: false,
        batch: Some(TaskBatch {
            id: batch_id(ws, endpoint_id, state.seq, &state.members, state.opened_at),
            events: state.members.clone(),
            seq: Some(state.seq),
        }),
        attempts: 0,
        not_before: None,
        group: None,
        list: false,
    })
}

/// `bat_` and a ULID whose time is the batch's opening and whose rest is a hash of what it
/// holds: the same batch always has the same id, and ids still sort by time.
pub fn batch_id(
    ws: &str,
    endpoint_id: &str,
    seq: u64,
    members: &[EventRef],
    opened_at: Option<i64>,
) -> String {
    let mut hash = Sha256::new();
    hash.update(ws.as_bytes());
    hash.update([0]);
    hash.update(endpoint_id.as_bytes());
    hash.update([0]);
    hash.update(seq.to_be_bytes());
    for m in members {
        hash.update([0]);
        hash.update(m.event_id.as_bytes());
    }
    let digest = hash.finalize();
    let mut random = [0u8; 16];
    random.copy_from_slice(&digest[..16]);
    let ulid = ulid::Ulid::from_parts(
        opened_at.unwrap_or(0).max(0) as u64,
        u128::from_be_bytes(random),
    );
    format!("{}_{ulid}", crate::ids::BATCH)
}

/// What a timer found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerOutcome {
    /// The batch was queued (by this timer or before it): the timer is done.
    Done,
    /// Not due yet (the interval grew, or SQS was early), or another writer is sealing it:
    /// look again after this long.
    Later(Duration),
}

/// A batch's timer fired: seal and queue the batch if it is still open and due.
/// `config` is the endpoint's batching as it is now (`None`: deleted or no longer
/// batching, so what has collected goes now).
pub async fn on_timer(
    store: &Store,
    queue: &Queue,
    timer: &BatchTimer,
    config: Option<BatchConfig>,
) -> Result<TimerOutcome, BatchError> {
    let Some(state) = store
        .batch_state(&timer.workspace, &timer.endpoint_id)
        .await?
    else {
        return Ok(TimerOutcome::Done);
    };
    if state.seq != timer.seq || state.members.is_empty() {
        return Ok(TimerOutcome::Done);
    }
    let now = Timestamp::now();
    let member = Member {
        workspace: timer.workspace.clone(),
        endpoint_id: timer.endpoint_id.clone(),
        event: state.members[0].clone(),
        bytes: 0,
    };
    if let Some(sealed_at) = state.sealed_at {
        if now.unix_millis() - sealed_at > SEAL_STALE.as_millis() as i64 {
            seal_and_queue(store, queue, &member, state.seq, true).await?;
            return Ok(TimerOutcome::Done);
        }
        return Ok(TimerOutcome::Later(SEAL_STALE));
    }
    if let Some(config) = config {
        let due = state
            .opened_at
            .and_then(Timestamp::from_unix_millis)
            .map_or(now, |at| {
                at.plus(Duration::from_secs(u64::from(config.interval)))
            });
        let wait = due.since(now);
        if wait > DUE_SLACK {
            return Ok(TimerOutcome::Later(wait));
        }
    }
    seal_and_queue(store, queue, &member, state.seq, false).await?;
    Ok(TimerOutcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(ids: &[&str]) -> Vec<EventRef> {
        ids.iter()
            .map(|i| EventRef {
                event_key: format!("EVT#s#{i}"),
                event_id: (*i).to_owned(),
            })
            .collect()
    }

    #[test]
    fn a_batch_id_is_derived_from_what_it_holds() {
        let a = batch_id(
            "ws",
            "ep_1",
            3,
            &refs(&["e1", "e2"]),
            Some(1_700_000_000_000),
        );
        assert_eq!(
            a,
            batch_id(
                "ws",
                "ep_1",
                3,
                &refs(&["e1", "e2"]),
                Some(1_700_000_000_000)
            )
        );
        assert!(crate::ids::has_prefix(&a, crate::ids::BATCH), "{a}");
        for other in [
            batch_id("ws", "ep_1", 3, &refs(&["e1"]), Some(1_700_000_000_000)),
            batch_id(
                "ws",
                "ep_1",
                4,
                &refs(&["e1", "e2"]),
                Some(1_700_000_000_000),
            ),
            batch_id(
                "ws",
                "ep_2",
                3,
                &refs(&["e1", "e2"]),
                Some(1_700_000_000_000),
            ),
            batch_id(
                "ws",
                "ep_1",
                3,
                &refs(&["e2", "e1"]),
                Some(1_700_000_000_000),
            ),
        ] {
            assert_ne!(a, other);
        }
    }
}
