//! Cursor pagination: a cursor is an item key (DynamoDB's `LastEvaluatedKey`, or the key of
//! the last item a page shows), base64url-encoded JSON of its string attributes. Only known
//! key attributes are accepted back.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::StoreError;
use super::keys::{Item, LINK_PK, LISTING_PK, LISTING_SK, PK, SK, TYPE_PK};

pub const DEFAULT_LIMIT: i32 = 20;
pub const MAX_LIMIT: i32 = 100;

#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub limit: Option<i32>,
    pub cursor: Option<String>,
}

impl PageRequest {
    pub fn limit(&self) -> i32 {
        self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
    }

    pub(crate) fn start_key(&self) -> Result<Option<Item>, StoreError> {
        self.cursor.as_deref().map(decode).transpose()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next: Option<String>,
}

pub(crate) fn encode(key: &Item) -> Option<String> {
    let map: BTreeMap<&str, &str> = key
        .iter()
        .filter_map(|(k, v)| v.as_s().ok().map(|s| (k.as_str(), s.as_str())))
        .collect();
    let json = serde_json::to_vec(&map).ok()?;
    Some(URL_SAFE_NO_PAD.encode(json))
}

fn decode(cursor: &str) -> Result<Item, StoreError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| StoreError::BadCursor)?;
    let map: HashMap<String, String> =
        serde_json::from_slice(&bytes).map_err(|_| StoreError::BadCursor)?;
    if map.is_empty()
        || map
            .keys()
            .any(|k| ![PK, SK, LISTING_PK, LISTING_SK, LINK_PK, TYPE_PK].contains(&k.as_str()))
    {
        return Err(StoreError::BadCursor);
    }
    Ok(map
        .into_iter()
        .map(|(k, v)| (k, AttributeValue::S(v)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_garbage() {
        let key: Item = HashMap::from([
            (PK.to_owned(), AttributeValue::S("WS#default".into())),
            (SK.to_owned(), AttributeValue::S("EP#ep_1".into())),
        ]);
        let c = encode(&key).unwrap();
        let req = PageRequest {
            limit: None,
            cursor: Some(c),
        };
        assert_eq!(req.start_key().unwrap().unwrap(), key);
        for bad in ["!!", "e30", "eyJ4IjoiMSJ9"] {
            let req = PageRequest {
                limit: None,
                cursor: Some(bad.into()),
            };
            assert!(
                matches!(req.start_key(), Err(StoreError::BadCursor)),
                "{bad}"
            );
        }
        assert_eq!(PageRequest::default().limit(), 20);
        assert_eq!(
            PageRequest {
                limit: Some(1000),
                cursor: None
            }
            .limit(),
            100
        );
    }
}
