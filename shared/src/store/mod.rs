//! The DynamoDB store: one table, single-table design.
//!
//! | item      | pk                      | sk          | listing index: gsi1pk / gsi1sk | filter indexes | sparse GSIs |
//! |-----------|-------------------------|-------------|------------------|---------------------------|-------------|
//! | workspace | `WS#{name}`             | `WS`        | `WS` / id        |                           |             |
//! | source    | `SRC#{id}`              | `SRC`       | `{ws}#SRC` / id  |                           |             |
//! | endpoint  | `WS#{ws}`               | `EP#{id}`   |                  |                           | `sweep` while enabled, `failing` in a failure streak |
//! | event     | `EVT#{scope}#{idem key}`| `EVT`       | (before listing pages: `{ws}#EVT` / id) | (before listing pages: link `{ws}#EVT#SRC#{source}`, type `{ws}#EVT#TYPE#{type}`) | `pending` until queued, naming the endpoints not yet (`pending_endpoints`) |
//! | event listing page | `PAGE#{ws}#EVT`, `PAGE#{ws}#EVT#SRC#{source}`, `PAGE#{ws}#EVT#TYPE#{type}` | newest id on it | | | |
//! | attempt   | `ATT#{event id}`        | id          |                  |                           |             |
//! | attempt listing page | `PAGE#{ws}#ATT`, `PAGE#{ws}#ATT#EP#{endpoint}` | newest id on it | | |   |
//! | migration mark | `MIGRATION#{name}` | `MIGRATION` |               |                           |             |
//! | name claim| `NAME#{ws}#{kind}#{name}`| `NAME`     |                  |                           |             |
//! | config stamp (`v`, `lease_ms`, `lease_of`) | `CFG#{ws}` | `CFG` |                  |                           |             |
//! | open batch| `BATCH#{ws}#{endpoint}` | `BATCH`     |                  |                           |             |
//! | rate window | `RATE#{scope}#{window}` | `RATE`  |                  |                           |             |
//!
//! An inline payload is kept zstd-compressed (`payload_zstd`) when that makes its event item
//! cost fewer write units, and every read inflates it ([`compressed_payload`]). An event
//! whose idempotency key is its id (the sender gave none) is stored without the copy.
//!
//! A payload over 256 KiB is not in its event item: the item names an S3 object
//! (`payload_object`, see [`crate::payload_objects`]) and reads of the event bring the bytes
//! back, except listings, which never show payloads.
//!
//! Ids are ULIDs, so a reverse query on a sort key holding ids lists newest first. The event's
//! partition key is its idempotency key: a conditional put is the whole dedupe. The `listing`
//! index's key attributes keep the names `gsi1pk` / `gsi1sk` they had when it was `gsi1`.
//!
//! The `listing` index copies keys and the few attributes listings filter on, never a
//! payload. A page of it is read back from the table with one `BatchGetItem`.
//!
//! Events and attempts are not copied to any index: they are listed on pages
//! ([`listing_pages`]). The delivery function lists the events of the tasks it receives
//! (the one task of each new event that carries its listing) on one page per workspace,
//! source and type, before it delivers them, and writes, with its attempts, one page for
//! the workspace and one per endpoint. Ten events cost three write units of listing where
//! index copies cost thirty, and ten attempts two where copies cost twenty; a filtered
//! listing is still its own partition, a full page in one `Query` and one `BatchGetItem`
//! however rare its items are in the workspace. The price: an event accepted through ingest
//! shows in listings and reads by id once its first task is received, normally within a
//! second (one published through the API is listed at once). Events stored before pages
//! keep their copies in the `listing`, `link` (`link_pk`) and `type` (`type_pk`) indexes
//! until they expire, and event reads merge the two. Attempts of one event are the table's
//! own `ATT#{event id}` partition. How an index page is filled: [`pager`].

mod attempts;
mod batches;
mod codec;
mod compressed_payload;
mod config_stamp;
mod endpoints;
mod events;
mod item_size;
mod keys;
mod keys_api;
mod listing_pages;
mod names;
mod ops;
mod page;
mod pager;
mod rate_windows;
mod sources;
mod sweep;
mod workspaces;

use aws_sdk_dynamodb::Client;

use crate::payload_objects::PayloadObjects;

pub use attempts::AttemptFilter;
pub use batches::{Added, BatchLimits, BatchState, NewMember};
pub use compressed_payload::inflate as inflate_payload;
pub use config_stamp::ConfigStamp;
pub use events::{EventFilter, InsertOutcome, Pending};
pub use item_size::item_bytes;
pub use keys::{
    FAILING_INDEX, LINK_INDEX, LISTING_INDEX, PENDING_INDEX, SHARDS, SWEEP_INDEX, TYPE_INDEX,
};
pub use keys_api::ApiKey;
pub use names::{Claim, NameKind};
pub use page::{Page, PageRequest};
pub use pager::QUERY_BUDGET;
pub use sweep::{EndpointRef, PendingCursor, PendingEvent};

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
    /// A versioned write found another version than the one it was made from.
    #[error("the item changed since it was read")]
    Conflict,
    #[error("a stored event's compressed payload could not be inflated")]
    Inflate {
        #[source]
        source: std::io::Error,
    },
    #[error("an event's payload object could not be kept or read")]
    Payload(#[from] crate::payload_objects::PayloadObjectError),
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
    /// Where payloads too large for an item go; none: such payloads are refused.
    payloads: Option<PayloadObjects>,
    /// Set where changes through the API are answered: see [`config_stamp`].
    change_lease: Option<std::sync::Arc<config_stamp::ChangeLease>>,
}

impl Store {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            payloads: None,
            change_lease: None,
        }
    }

    /// This store, keeping payloads over [`INLINE_PAYLOAD_MAX`](crate::payload_objects::INLINE_PAYLOAD_MAX)
    /// in `payloads`.
    pub fn with_payloads(mut self, payloads: Option<PayloadObjects>) -> Self {
        self.payloads = payloads;
        self
    }

    /// The table and the payload bucket the settings name.
    pub fn connect(aws: &aws_config::SdkConfig, settings: &crate::config::Settings) -> Self {
        Self::new(crate::requests::dynamodb(aws), &settings.table_name)
            .with_payloads(PayloadObjects::connect(aws, settings))
    }

    /// One eventually consistent read of a key nothing is stored under (half a read unit):
    /// the client's connection to the table, opened ahead of the first real request.
    pub async fn warm(&self) -> Result<(), String> {
        use aws_sdk_dynamodb::types::AttributeValue;
        self.client
            .get_item()
            .table_name(&self.table)
            .key(keys::PK, AttributeValue::S("warm".to_owned()))
            .key(keys::SK, AttributeValue::S("warm".to_owned()))
            .projection_expression("#pk")
            .expression_attribute_names("#pk", keys::PK)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| crate::telemetry::error_chain(&e))
    }
}
