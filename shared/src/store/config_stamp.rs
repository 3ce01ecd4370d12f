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

    /// The workspace's current stamp (0 before its first change) and its lease.
    pub async fn config_stamp(&self, ws: &str) -> Result<ConfigStamp> {
        let item = self.get(keys::config_stamp(ws), true).await?;
        Ok(ConfigStamp {
            value: number(item.as_ref(), keys::STAMP),
            lease: Duration::from_millis(number(item.as_ref(), keys::STAMP_LEASE)),
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
            Some(owed) => update
                .update_expression("ADD #v :one SET #l = :lease")
                .expression_attribute_names("#l", keys::STAMP_LEASE)
                .expression_attribute_values(
                    ":lease",
                    AttributeValue::N(owed.lease.as_millis().to_string()),
                )
                .return_values(ReturnValue::UpdatedOld),
            None => update.update_expression("ADD #v :one"),
        };
        let out = update
            .send()
            .await
            .map_err(|e| StoreError::dynamo("UpdateItem", e))?;
        if let Some(owed) = &self.change_lease {
            let before = Duration::from_millis(number(out.attributes.as_ref(), keys::STAMP_LEASE));
            // A reader's lease began before it sent its read, and it read the old stamp
            // before this raise was answered: from now, the longer lease is enough.
            let until = Instant::now() + owed.lease.max(before);
            let mut at = owed.settled_at.lock().unwrap_or_else(|p| p.into_inner());
            *at = Some(at.map_or(until, |t| t.max(until)));
        }
        Ok(())
    }
}
