//! Model ↔ item conversion through serde, plus the key attributes the model knows nothing of.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::keys::Item;
use super::{Result, StoreError};

pub fn to_item<T: Serialize>(what: &'static str, value: &T) -> Result<Item> {
    serde_dynamo::to_item(value).map_err(|source| StoreError::Encode { what, source })
}

/// Also inflates a compressed payload, so every read of an event sees it as it came.
pub fn from_item<T: DeserializeOwned>(what: &'static str, mut item: Item) -> Result<T> {
    super::compressed_payload::inflate(&mut item)?;
    serde_dynamo::from_item(item).map_err(|source| StoreError::Decode { what, source })
}
