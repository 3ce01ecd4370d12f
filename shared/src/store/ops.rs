//! The few request shapes every item kind shares.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::AttributeValue;

use super::keys::{self, Item, PK, SK, s};
use super::{Result, Store, StoreError};

impl Store {
    pub(super) async fn get(
        &self,
        (pk, sk): (String, String),
        consistent: bool,
    ) -> Result<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(keys::key(pk, sk)))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        Ok(out.item)
    }

    /// Deletes an item; answers whether it existed.
    pub(super) async fn delete(&self, (pk, sk): (String, String)) -> Result<bool> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(keys::key(pk, sk)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("DeleteItem", e))?;
        Ok(out.attributes.is_some())
    }

    /// Writes a settings item whose stored `version` must still be `expected` (0: an item
    /// not written yet, or written before items had versions); the item carries
    /// `expected + 1`. A concurrent writer since the read makes it [`StoreError::Conflict`].
    pub(super) async fn put_versioned(&self, item: Item, expected: u64) -> Result<()> {
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let req = if expected == 0 {
            req.condition_expression("attribute_not_exists(version) OR version = :v")
        } else {
            req.condition_expression("version = :v")
        }
        .expression_attribute_values(":v", AttributeValue::N(expected.to_string()));
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(StoreError::dynamo("PutItem", e)),
        }
    }

    /// Deletes a settings item while its `version` is still `expected` (any, with none).
    pub(super) async fn delete_versioned(
        &self,
        (pk, sk): (String, String),
        expected: Option<u64>,
    ) -> Result<bool> {
        let mut req = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(keys::key(pk, sk)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld);
        if let Some(v) = expected {
            req = if v == 0 {
                req.condition_expression("attribute_not_exists(version) OR version = :v")
            } else {
                req.condition_expression("version = :v")
            }
            .expression_attribute_values(":v", AttributeValue::N(v.to_string()));
        }
        match req.send().await {
            Ok(out) => Ok(out.attributes.is_some()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(DeleteItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(StoreError::dynamo("DeleteItem", e)),
        }
    }

    /// Deletes an item only while its `owner_attr` is `owner`: someone else's is left alone,
    /// and an item already gone is no error.
    pub(super) async fn delete_if_owned(
        &self,
        (pk, sk): (String, String),
        owner_attr: &str,
        owner: &str,
    ) -> Result<()> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(keys::key(pk, sk)))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", owner_attr)
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(aws_sdk_dynamodb::operation::delete_item::DeleteItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(StoreError::dynamo("DeleteItem", e)),
        }
    }

    pub(super) async fn put(&self, item: Item) -> Result<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("PutItem", e))?;
        Ok(())
    }

    /// The table's items for index items, in the index's order. One that was deleted since
    /// the index saw it is left out.
    pub(super) async fn in_table(&self, index_items: Vec<Item>) -> Result<Vec<Item>> {
        let wanted: Vec<(String, String)> = index_items
            .iter()
            .filter_map(|i| {
                Some((
                    keys::get_s(i, PK)?.to_owned(),
                    keys::get_s(i, SK)?.to_owned(),
                ))
            })
            .collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let found = self
            .batch_get(
                wanted
                    .iter()
                    .map(|(pk, sk)| keys::key(pk.clone(), sk.clone()))
                    .collect(),
                false,
            )
            .await?;
        let mut by_key: std::collections::HashMap<(String, String), Item> = found
            .into_iter()
            .filter_map(|i| {
                let k = (
                    keys::get_s(&i, PK)?.to_owned(),
                    keys::get_s(&i, SK)?.to_owned(),
                );
                Some((k, i))
            })
            .collect();
        Ok(wanted.iter().filter_map(|k| by_key.remove(k)).collect())
    }

    /// The table's item for the one index item a query by id found.
    pub(super) async fn one_in_table(&self, index_item: Option<Item>) -> Result<Option<Item>> {
        let Some(i) = index_item else { return Ok(None) };
        match (keys::get_s(&i, PK), keys::get_s(&i, SK)) {
            (Some(pk), Some(sk)) => self.get((pk.to_owned(), sk.to_owned()), false).await,
            _ => Ok(None),
        }
    }
}

/// Adds the item's own key to its attributes.
pub(super) fn with_key(mut item: Item, (pk, sk): (String, String)) -> Item {
    item.insert(PK.into(), s(pk));
    item.insert(SK.into(), s(sk));
    item
}

/// A conditional update: `Ok(false)` when its condition did not hold.
pub(super) fn condition_held<R>(
    result: std::result::Result<UpdateItemOutput, SdkError<UpdateItemError, R>>,
) -> Result<bool>
where
    SdkError<UpdateItemError, R>: Into<aws_sdk_dynamodb::Error>,
{
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(UpdateItemError::ConditionalCheckFailedException(_))
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(StoreError::dynamo("UpdateItem", e)),
    }
}
