//! The few request shapes every item kind shares.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use serde::de::DeserializeOwned;

use super::codec::from_item;
use super::keys::{self, Item, PK, SK, s};
use super::page::{self, Page, PageRequest};
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

    /// Runs one page of a query, newest first.
    pub(super) async fn page<T: DeserializeOwned>(
        &self,
        what: &'static str,
        query: QueryFluentBuilder,
        req: &PageRequest,
    ) -> Result<Page<T>> {
        let start = req.start_key()?;
        if let Some(start) = &start {
            // A cursor belongs to one listing: its partition must be this query's (`:pk`).
            let attr = if query.get_index_name().as_deref() == Some(super::keys::GSI1) {
                super::keys::GSI1PK
            } else {
                PK
            };
            let expected = query
                .get_expression_attribute_values()
                .as_ref()
                .and_then(|v| v.get(":pk"));
            if expected.is_none() || start.get(attr) != expected {
                return Err(StoreError::BadCursor);
            }
        }
        let out = query
            .table_name(&self.table)
            .scan_index_forward(false)
            .limit(req.limit())
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| {
                // A cursor from another listing fails DynamoDB's own key checks.
                if req.cursor.is_some()
                    && e.as_service_error().and_then(|s| s.meta().code())
                        == Some("ValidationException")
                {
                    StoreError::BadCursor
                } else {
                    StoreError::dynamo("Query", e)
                }
            })?;
        Ok(Page {
            data: out
                .items
                .unwrap_or_default()
                .into_iter()
                .map(|i| from_item(what, i))
                .collect::<Result<_>>()?,
            next: out.last_evaluated_key.as_ref().and_then(page::encode),
        })
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
