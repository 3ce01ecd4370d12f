//! Model ↔ item conversion through serde, plus the key attributes the model knows nothing of.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::keys::Item;
use super::{Result, StoreError};

pub fn to_item<T: Serialize>(what: &'static str, value: &T) -> Result<Item> {
    serde_dynamo::to_item(value).map_err(|source| StoreError::Encode { what, source })
}

pub fn from_item<T: DeserializeOwned>(what: &'static str, item: Item) -> Result<T> {
    serde_dynamo::from_item(item).map_err(|source| StoreError::Decode { what, source })
}
