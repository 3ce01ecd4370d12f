//! A workspace's configuration stamp: a counter every change to its sources or endpoints
//! raises before the change is answered. Ingest keeps sources and endpoints in memory and
//! uses them only while the stamp it last read is current, so a change made through the API
//! governs the very next event, in AWS as locally.
//!
//! Reading the stamp (strongly consistent) for every event would cost a read unit an event.
//! Instead a stamp carries a lease: a reader may trust it for that long after it sent the
//! read, and a change through the API is answered only once every lease on the stamp before
//! it has run out (the lease recorded on the stamp it replaced, and its own). An instance
//! busy with a workspace then reads its stamp about once a lease, not once an event. The
//! price is the lease's wait in every answer that changed something: once an answer, however
//! many changes it made (a config sync), not once a change.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::keys::{self, Item};
use super::{Result, Store, StoreError};

/// A workspace's stamp as read, and how long it may be trusted from the moment the read was
/// sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigStamp {
    pub value: u64,
    pub lease: Duration,
}

fn number(item: Option<&Item>, name: &str) -> u64 {
    item.and_then(|i| i.get(name))
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// What a store answering changes owes its answers: the lease it records, and the time
/// until which a reader may still trust a stamp it replaced.
#[derive(Debug)]
pub(super) struct ChangeLease {
    lease: Duration,
    settled_at: Mutex<Option<Instant>>,
}

impl ChangeLease {
    fn settle_after(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut at = self.settled_at.lock().unwrap_or_else(|p| p.into_inner());
        *at = Some(at.map_or(until, |t| t.max(until)));
    }
}

/// A raise sent and not yet answered. Until it is, the lease it must wait out is not known:
/// one that failed, or was cut off with its invocation's deadline, may still have been made,
/// so it owes the longest lease a deployment may set.
struct RaiseInFlight<'a> {
    owed: &'a ChangeLease,
    done: bool,
}

impl<'a> RaiseInFlight<'a> {
    fn new(owed: &'a ChangeLease) -> Self {
        Self { owed, done: false }
    }

    /// The raise was made over a stamp that carried lease `before`.
    fn answered(&mut self, before: Duration) {
        self.owed.settle_after(self.owed.lease.max(before));
        self.done = true;
    }
}

impl Drop for RaiseInFlight<'_> {
    fn drop(&mut self) {
        if !self.done {
            let longest = Duration::from_millis(crate::config::MAX_CONFIG_LEASE_MS);
            self.owed.settle_after(self.owed.lease.max(longest));
        }
    }
}

impl Store {
    /// This store answers changes through the API: each change records `lease` on the stamp
    /// it raises, and [`Store::changes_settled`] returns only when no reader can still trust
    /// a stamp it replaced. Without it (the functions that change configuration on their
    /// own, as the sweeper disabling a stale endpoint, which delivery checks again anyway) a
    /// change records no lease and owes no wait.
    pub fn answering_changes(mut self, lease: Duration) -> Self {
        self.change_lease = Some(Arc::new(ChangeLease {
            lease,
            settled_at: Mutex::new(None),
        }));
        self
    }

    /// Returns once every change this store made is governing: no reader trusts a stamp
    /// from before it any more. Awaited before an answer; at once when nothing changed.
    pub async fn changes_settled(&self) {
        let Some(owed) = &self.change_lease else {
            return;
        };
        let until = owed
            .settled_at
            .lock()
            .map(|at| *at)
            .unwrap_or_else(|p| *p.into_inner());
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }

    /// The workspace's current stamp (0 before its first change) and its lease: none when
    /// the lease on the item was recorded with another stamp (a raise that recorded none
    /// came after it, and nobody waits out a lease on this one).
    pub async fn config_stamp(&self, ws: &str) -> Result<ConfigStamp> {
        let item = self.get(keys::config_stamp(ws), true).await?;
        let value = number(item.as_ref(), keys::STAMP);
        let own = value > 0 && number(item.as_ref(), keys::STAMP_LEASE_OF) == value;
        Ok(ConfigStamp {
            value,
            lease: if own {
                Duration::from_millis(number(item.as_ref(), keys::STAMP_LEASE))
            } else {
                Duration::ZERO
            },
        })
    }

    /// Raises the stamp: every cached copy of this workspace's configuration is stale from
    /// now on. Called after the change is written, so a reader that sees the new stamp reads
    /// the change too. A store answering changes records when the leases on the old stamp
    /// (the one recorded on it, and this store's own) have run out.
    pub(super) async fn bump_config(&self, ws: &str) -> Result<()> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::key_of(keys::config_stamp(ws))))
            .expression_attribute_names("#v", keys::STAMP)
            .expression_attribute_values(":one", AttributeValue::N("1".into()));
        update = match &self.change_lease {
            // Every action of one SET reads the item as it was: the lease is recorded with
            // the stamp this raise makes.
            Some(owed) => update
                .update_expression(
                    "SET #v = if_not_exists(#v, :zero) + :one, #of = if_not_exists(#v, :zero) + :one, #l = :lease",
                )
                .expression_attribute_names("#of", keys::STAMP_LEASE_OF)
                .expression_attribute_names("#l", keys::STAMP_LEASE)
                .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                .expression_attribute_values(
                    ":lease",
                    AttributeValue::N(owed.lease.as_millis().to_string()),
                )
                .return_values(ReturnValue::UpdatedOld),
            None => update.update_expression("ADD #v :one"),
        };
        let mut in_flight = self.change_lease.as_deref().map(RaiseInFlight::new);
        let out = update
            .send()
            .await
            .map_err(|e| StoreError::dynamo("UpdateItem", e))?;
        if let Some(raise) = in_flight.as_mut() {
            // A reader's lease began before it sent its read, and it read the old stamp
            // before this raise was answered: from now, the longer lease is enough.
            let before = Duration::from_millis(number(out.attributes.as_ref(), keys::STAMP_LEASE));
            raise.answered(before);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owed(lease_ms: u64) -> ChangeLease {
        ChangeLease {
            lease: Duration::from_millis(lease_ms),
            settled_at: Mutex::new(None),
        }
    }

    fn wait_left(owed: &ChangeLease) -> Duration {
        let at = owed.settled_at.lock().unwrap().expect("a wait owed");
        at.saturating_duration_since(Instant::now())
    }

    #[test]
    fn an_answered_raise_waits_the_longer_of_its_lease_and_the_one_before() {
        let lease = owed(1000);
        RaiseInFlight::new(&lease).answered(Duration::from_millis(3000));
        assert!(wait_left(&lease) > Duration::from_millis(2000));
        let lease = owed(1000);
        RaiseInFlight::new(&lease).answered(Duration::ZERO);
        assert!(wait_left(&lease) <= Duration::from_millis(1000));
    }

    #[test]
    fn a_raise_cut_off_or_failed_waits_the_longest_lease() {
        let lease = owed(1000);
        drop(RaiseInFlight::new(&lease));
        assert!(wait_left(&lease) > Duration::from_millis(4000));
    }

    #[test]
    fn a_later_shorter_wait_never_shortens_one_owed() {
        let lease = owed(0);
        RaiseInFlight::new(&lease).answered(Duration::from_millis(3000));
        RaiseInFlight::new(&lease).answered(Duration::ZERO);
        assert!(wait_left(&lease) > Duration::from_millis(2000));
    }
}
