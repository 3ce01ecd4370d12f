//! Name claims: one item per (workspace, kind, name) that holds the owner's id, so two
//! sources or two endpoints of a workspace never share a name. A conditional put is the
//! whole check, so two concurrent creations cannot both win.

use aws_sdk_dynamodb::operation::put_item::PutItemError;

use super::keys::{self, s};
use super::ops::with_key;
use super::{Result, Store, StoreError};

/// What a name belongs to; names are unique per workspace and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Source,
    Endpoint,
}

impl NameKind {
    fn as_str(self) -> &'static str {
        match self {
            NameKind::Source => "source",
            NameKind::Endpoint => "endpoint",
        }
    }
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The name is the id's now (or already was).
    Held,
    /// Another id holds it.
    TakenBy(String),
}

const OWNER: &str = "owner_id";

impl Store {
    /// Claims `name` for `id`, or takes it over from `stale_owner` (a holder found gone).
    pub async fn claim_name(
        &self,
        ws: &str,
        kind: NameKind,
        name: &str,
        id: &str,
        stale_owner: Option<&str>,
    ) -> Result<Claim> {
        let key = keys::name_claim(ws, kind.as_str(), name);
        let mut item = with_key(Default::default(), key.clone());
        item.insert(OWNER.into(), s(id));
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .expression_attribute_values(":id", s(id));
        put = match stale_owner {
            Some(stale) => put
                .condition_expression(format!(
                    "attribute_not_exists(pk) OR {OWNER} = :id OR {OWNER} = :stale"
                ))
                .expression_attribute_values(":stale", s(stale)),
            None => put.condition_expression(format!("attribute_not_exists(pk) OR {OWNER} = :id")),
        };
        match put.send().await {
            Ok(_) => Ok(Claim::Held),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                let holder = self.get(key, true).await?;
                let owner = holder
                    .as_ref()
                    .and_then(|i| keys::get_s(i, OWNER))
                    .unwrap_or_default();
                Ok(Claim::TakenBy(owner.to_owned()))
            }
            Err(e) => Err(StoreError::dynamo("PutItem", e)),
        }
    }

    /// Frees `name` if `id` holds it; a claim held by someone else is left alone.
    pub async fn release_name(&self, ws: &str, kind: NameKind, name: &str, id: &str) -> Result<()> {
        self.delete_if_owned(keys::name_claim(ws, kind.as_str(), name), OWNER, id)
            .await
    }
}
