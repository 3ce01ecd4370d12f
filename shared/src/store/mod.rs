//! The DynamoDB store: one table, single-table design.
//!
//! | item      | pk                      | sk          | gsi1pk / gsi1sk (listing) | sparse GSIs        |
//! |-----------|-------------------------|-------------|-----------------------|------------------------|
//! | workspace | `WS#{name}`             | `WS`        | `WS` / id             |                        |
//! | source    | `SRC#{id}`              | `SRC`       | `{ws}#SRC` / id       |                        |
//! | endpoint  | `WS#{ws}`               | `EP#{id}`   |                       | `sweep` while enabled, `failing` in a failure streak |
//! | event     | `EVT#{scope}#{idem key}`| `EVT`       | `{ws}#EVT` / id       | `pending` until queued |
//! | attempt   | `ATT#{event id}`        | id          | `{ws}#ATT` / id       |                        |
//! | name claim| `NAME#{ws}#{kind}#{name}`| `NAME`     |                       |                        |
//!
//! Ids are ULIDs, so a reverse query on a sort key holding ids lists newest first. The event's
//! partition key is its idempotency key: a conditional put is the whole dedupe.
//!
//! The `listing` index copies keys and the few attributes listings filter on, never a
//! payload: every event and attempt is written to it, so a full copy would double their write
//! units. A page is read back from the table with one `BatchGetItem`.

mod attempts;
mod codec;
mod endpoints;
mod events;
mod keys;
mod keys_api;
mod names;
mod ops;
mod page;
mod pager;
mod sources;
mod sweep;
mod workspaces;

use aws_sdk_dynamodb::Client;

pub use attempts::AttemptFilter;
pub use events::{EventFilter, InsertOutcome};
pub use keys::{
    FAILING_INDEX, LINK_INDEX, LISTING_INDEX, PENDING_INDEX, SHARDS, SWEEP_INDEX, TYPE_INDEX,
};
pub use keys_api::ApiKey;
pub use names::{Claim, NameKind};
pub use page::{Page, PageRequest};
pub use pager::QUERY_BUDGET;
pub use sweep::{EndpointRef, PendingEvent};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DynamoDB {op} failed")]
    Dynamo {
        op: &'static str,
        #[source]
        source: Box<aws_sdk_dynamodb::Error>,
    },
    #[error("stored {what} item could not be decoded")]
    Decode {
        what: &'static str,
        #[source]
        source: serde_dynamo::Error,
    },
    #[error("{what} could not be encoded as an item")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_dynamo::Error,
    },
    #[error("DynamoDB request could not be built")]
    Build(#[from] aws_sdk_dynamodb::error::BuildError),
    #[error("the pagination cursor is not valid")]
    BadCursor,
    #[error("DynamoDB {op} left {left} items unprocessed after retries")]
    Unprocessed { op: &'static str, left: usize },
}

impl StoreError {
    fn dynamo<E>(op: &'static str, err: E) -> Self
    where
        E: Into<aws_sdk_dynamodb::Error>,
    {
        StoreError::Dynamo {
            op,
            source: Box::new(err.into()),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Clone)]
pub struct Store {
    client: Client,
    table: String,
}

impl Store {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The table the settings name.
    pub fn connect(aws: &aws_config::SdkConfig, settings: &crate::config::Settings) -> Self {
        Self::new(crate::requests::dynamodb(aws), &settings.table_name)
    }
}
