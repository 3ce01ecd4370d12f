use aws_sdk_dynamodb::types::AttributeValue;

use super::codec::{from_item, to_item};
use super::keys::{self, FAILING_SHARD, SWEEP_AT, SWEEP_SHARD, s};
use super::ops::{condition_held, with_key};
use super::page::{Page, PageRequest};
use super::{Result, Store, StoreError};
use crate::model::disabled_reason;
use crate::{Endpoint, Timestamp};

impl Store {
    /// Writes the whole endpoint. An enabled endpoint is placed in the sparse `sweep` index at
    /// the time of its last activity; a disabled one is left out of it.
    ///
    /// Versioned: `ep.version` must still be the stored one ([`StoreError::Conflict`]
    /// otherwise: a settings write, a rotation or a deactivation came in between, and is
    /// kept); on success it is the new one.
    pub async fn put_endpoint(&self, ep: &mut Endpoint) -> Result<()> {
        let expected = ep.version;
        let written = Endpoint {
            version: expected + 1,
            ..ep.clone()
        };
        let mut item = with_key(
            to_item("endpoint", &written)?,
            keys::endpoint(&ep.workspace, &ep.id),
        );
        if ep.enabled {
            item.insert(SWEEP_SHARD.into(), s(keys::shard_of(&ep.id)));
            item.insert(SWEEP_AT.into(), s(ep.activity_at().to_string()));
            if ep.failing_since.is_some() {
                item.insert(FAILING_SHARD.into(), s(keys::shard_of(&ep.id)));
            }
        }
        self.put_versioned(item, expected).await?;
        ep.version = expected + 1;
        self.bump_config(&ep.workspace).await
    }

    pub async fn get_endpoint(&self, ws: &str, id: &str) -> Result<Option<Endpoint>> {
        let item = self.get(keys::endpoint(ws, id), true).await?;
        item.map(|i| from_item("endpoint", i)).transpose()
    }

    /// Deletes an endpoint (while its version is still `expected`, when given); queued tasks
    /// to it end as `ENDPOINT_NOT_FOUND`.
    pub async fn delete_endpoint(&self, ws: &str, id: &str, expected: Option<u64>) -> Result<bool> {
        let existed = self
            .delete_versioned(keys::endpoint(ws, id), expected)
            .await?;
        self.bump_config(ws).await?;
        Ok(existed)
    }

    pub async fn list_endpoints(&self, ws: &str, req: &PageRequest) -> Result<Page<Endpoint>> {
        let (pk, _) = keys::endpoint(ws, "");
        let query = self
            .client
            .query()
            .key_condition_expression("pk = :pk AND begins_with(sk, :ep)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":ep", s(keys::ENDPOINT_SK_PREFIX));
        self.page("endpoint", query, req).await
    }

    /// Every endpoint of a workspace: the fan-out read at ingest (cached by the caller).
    pub async fn workspace_endpoints(&self, ws: &str) -> Result<Vec<Endpoint>> {
        let (pk, _) = keys::endpoint(ws, "");
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :ep)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":ep", s(keys::ENDPOINT_SK_PREFIX))
            // Read after a newer config stamp: it must see the change that raised it.
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut all = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| StoreError::dynamo("Query", e))?;
            all.push(from_item("endpoint", item)?);
        }
        Ok(all)
    }

    /// Records a success at `now` unless one was recorded within `throttle` and there is no
    /// failure streak to reset: the rule this feeds is measured in months, so one write an
    /// hour per endpoint is plenty. Answers whether a write happened.
    pub async fn record_success(
        &self,
        ws: &str,
        id: &str,
        now: Timestamp,
        throttle: std::time::Duration,
    ) -> Result<bool> {
        let (pk, sk) = keys::endpoint(ws, id);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::key(pk, sk)))
            // sweep_at only matters while sweep_shard exists (enabled endpoints), so setting
            // it unconditionally never puts a disabled endpoint back in the index.
            .update_expression(
                "SET last_success_at = :now, sweep_at = :now, consecutive_failures = :zero REMOVE failing_since, failing_shard, probe_at, probes",
            )
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(last_success_at) OR last_success_at < :cutoff OR consecutive_failures > :zero)",
            )
            .expression_attribute_values(":now", s(now.to_string()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":cutoff", s(now.minus(throttle).to_string()))
            .send()
            .await;
        condition_held(result)
    }

    /// Claims the next probe of an open circuit: answers true for the one caller that may
    /// send now (the circuit is still open and no probe is due later than `now`), which
    /// moves the next probe to `next` and counts the probe.
    pub async fn claim_probe(
        &self,
        ws: &str,
        id: &str,
        open_after: u32,
        now: Timestamp,
        next: Timestamp,
    ) -> Result<bool> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::key_of(keys::endpoint(ws, id))))
            .update_expression("SET probe_at = :next ADD probes :one")
            .condition_expression(
                "attribute_exists(pk) AND consecutive_failures >= :after \
                 AND (attribute_not_exists(probe_at) OR probe_at <= :now)",
            )
            .expression_attribute_values(":after", AttributeValue::N(open_after.to_string()))
            .expression_attribute_values(":now", s(now.to_string()))
            .expression_attribute_values(":next", s(next.to_string()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await;
        condition_held(result)
    }

    /// Counts `failures` more failed attempts, atomically: concurrent batches never lose a
    /// count to a read-modify-write race. Answers the streak's new length (`None` for an
    /// endpoint deleted or disabled meanwhile).
    pub async fn record_failures(
        &self,
        ws: &str,
        id: &str,
        failures: u32,
        now: Timestamp,
    ) -> Result<Option<u32>> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::key_of(keys::endpoint(ws, id))))
            // The streak's start goes into the sparse `failing` index, where the sweeper
            // finds endpoints that have failed for days without reading the others.
            .update_expression(
                "SET last_failure_at = :now, failing_since = if_not_exists(failing_since, :now), failing_shard = if_not_exists(failing_shard, :shard) ADD consecutive_failures :n",
            )
            .condition_expression("attribute_exists(pk) AND enabled = :true")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":shard", s(keys::shard_of(id)))
            .expression_attribute_values(":now", s(now.to_string()))
            .expression_attribute_values(":n", AttributeValue::N(failures.to_string()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await;
        let streak = result.as_ref().ok().and_then(|out| {
            out.attributes()?
                .get("consecutive_failures")?
                .as_n()
                .ok()?
                .parse()
                .ok()
        });
        condition_held(result).map(|held| held.then_some(streak.unwrap_or(failures)))
    }

    /// Records that `endpoint.deactivation_pending` went out for the endpoint's current
    /// quiet spell.
    pub async fn mark_deactivation_warned(&self, ws: &str, id: &str, now: Timestamp) -> Result<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::key_of(keys::endpoint(ws, id))))
            .update_expression("SET deactivation_warned_at = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", s(now.to_string()))
            .send()
            .await;
        condition_held(result).map(|_| ())
    }

    /// Records a recovery's progress, or with none that it is done. Only this attribute is
    /// written, so deliveries' concurrent updates of the endpoint's health are kept.
    pub async fn set_recovery(
        &self,
        ws: &str,
        id: &str,
        recovery: Option<&crate::model::Recovery>,
    ) -> Result<()> {
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::key_of(keys::endpoint(ws, id))))
            .condition_expression("attribute_exists(pk)");
        let req = match recovery {
            Some(r) => req
                .update_expression("SET recovery = :r")
                .expression_attribute_values(":r", AttributeValue::M(to_item("recovery", r)?)),
            None => req.update_expression("REMOVE recovery"),
        };
        condition_held(req.send().await).map(|_| ())
    }

    /// Replaces the signing secret; the old one keeps signing until `grace_until`. Answers
    /// the endpoint as it is now, or `None` if it does not exist.
    pub async fn rotate_secret(
        &self,
        ws: &str,
        id: &str,
        new_secret: &str,
        grace_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<Endpoint>> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::key_of(keys::endpoint(ws, id))))
            .update_expression(
                "SET previous_secret = secret, previous_secret_expires_at = :until, secret = :new, updated_at = :now ADD version :one",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":until", s(grace_until.to_string()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":new", s(new_secret))
            .expression_attribute_values(":now", s(now.to_string()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                self.bump_config(ws).await?;
                out.attributes.map(|a| from_item("endpoint", a)).transpose()
            }
            Err(e) => match condition_held(Err(e)) {
                Ok(_) => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// Disables an enabled endpoint and takes it out of the sweep index. With `stale_before`,
    /// only if its last activity is still older than that (a success may have raced the
    /// sweeper). Answers whether it was disabled by this call.
    pub async fn disable_endpoint(
        &self,
        ws: &str,
        id: &str,
        reason: &str,
        now: Timestamp,
        stale_before: Option<Timestamp>,
    ) -> Result<bool> {
        self.disable_endpoint_if(ws, id, reason, now, stale_before, None)
            .await
    }

    /// Disables an enabled endpoint whose failure streak is still the one that began at
    /// `failing_since` (a success since then wins).
    pub async fn disable_failing_endpoint(
        &self,
        ws: &str,
        id: &str,
        now: Timestamp,
        failing_since: Timestamp,
    ) -> Result<bool> {
        self.disable_endpoint_if(
            ws,
            id,
            disabled_reason::FAILING,
            now,
            None,
            Some(failing_since),
        )
        .await
    }

    async fn disable_endpoint_if(
        &self,
        ws: &str,
        id: &str,
        reason: &str,
        now: Timestamp,
        stale_before: Option<Timestamp>,
        failing_since: Option<Timestamp>,
    ) -> Result<bool> {
        let (pk, sk) = keys::endpoint(ws, id);
        let mut condition = "attribute_exists(pk) AND enabled = :true".to_owned();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::key(pk, sk)))
            .update_expression(
                "SET enabled = :false, disabled_reason = :reason, disabled_at = :now, updated_at = :now REMOVE sweep_shard, sweep_at, failing_shard ADD version :one",
            )
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":reason", s(reason))
            .expression_attribute_values(":now", s(now.to_string()));
        if let Some(cutoff) = stale_before {
            condition.push_str(" AND sweep_at < :cutoff");
            req = req.expression_attribute_values(":cutoff", s(cutoff.to_string()));
        }
        if let Some(since) = failing_since {
            condition.push_str(" AND failing_since = :since");
            req = req.expression_attribute_values(":since", s(since.to_string()));
        }
        let disabled = condition_held(req.condition_expression(condition).send().await)?;
        if disabled {
            self.bump_config(ws).await?;
        }
        Ok(disabled)
    }
}
