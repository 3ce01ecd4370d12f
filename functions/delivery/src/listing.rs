//! Newly accepted events are listed by the first of their tasks to be received
//! (`DeliveryTask::list`), before anything is delivered: a batch's events go onto their
//! listings' pages in one write (see the store's `listing_pages`), instead of three index
//! copies per event written by ingest.

use hookrelay_shared::Timestamp;
use hookrelay_shared::telemetry::error_chain;

use crate::{DELIVERIES_MAX_RECEIVE_COUNT, Events, Outcome, Received, STORE_GRACE};

/// Lists the events of the tasks that carry the listing, and answers what became of the
/// tasks that only list (their outcomes) with the tasks left to deliver. A task whose
/// listing could not be written is not delivered now: it comes back and lists again.
pub async fn list_new(
    ctx: &crate::Context,
    received: Vec<Received>,
    events: &Events,
) -> (Vec<(Received, Outcome)>, Vec<Received>) {
    // A task whose event is stored under another id is a duplicate's: it lists nothing.
    let stored = |r: &Received| {
        events
            .get(&r.task.event_key)
            .filter(|e| e.id == r.task.event_id)
    };
    let to_list: Vec<(&str, &hookrelay_shared::Event)> = received
        .iter()
        .filter(|r| r.task.list && r.task.batch.is_none())
        .filter_map(|r| stored(r).map(|e| (r.task.event_key.as_str(), e)))
        .collect();
    let written = to_list.is_empty()
        || match ctx
            .store
            .list_new_events(&to_list, ctx.settings.retention())
            .await
        {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(events = to_list.len(), error = %error_chain(&e), "events not listed; their tasks come back");
                false
            }
        };
    let mut outcomes = Vec::new();
    let mut deliver = Vec::with_capacity(received.len());
    for mut r in received {
        let listed_here = r.task.list && r.task.batch.is_none() && stored(&r).is_some();
        if listed_here && !written {
            // Back after a pause, not at once: an outage of the table must not spend the
            // task's receives in a minute.
            outcomes.push((r, Outcome::NotStoredYet));
        } else if !r.task.lists_only() {
            // Listed: a retry of this task does not list again.
            r.task.list &= !listed_here;
            deliver.push(r);
        } else if listed_here {
            outcomes.push((r, Outcome::Dropped));
        } else {
            let young = r
                .sent_at
                .is_some_and(|at| Timestamp::now().since(at) < STORE_GRACE);
            let outcome = if young && r.receive_count < DELIVERIES_MAX_RECEIVE_COUNT {
                Outcome::NotStoredYet
            } else {
                // The event was never stored (its request was answered 503), or is a
                // duplicate's: nothing to list.
                Outcome::Dropped
            };
            outcomes.push((r, outcome));
        }
    }
    (outcomes, deliver)
}
