//! An event's inline payload, zstd-compressed in its item when that makes the item cost fewer
//! write units (one per started KB). A 1 KiB JSON body with its event's keys and attributes
//! is just over one unit; compressed it usually fits in one, which halves the event's write.
//! A payload whose item fits either way is stored as it came, so no read pays to inflate it.
//!
//! Level 1 was chosen by measurement on 1 KiB JSON webhooks: about 4 µs to compress and
//! 1.4 µs to inflate, against about 8 µs and 5.5 µs for DEFLATE at its fastest level, for
//! nearly the same size.

use std::cell::RefCell;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use super::item_size::item_bytes;
use super::keys::Item;
use super::{Result, StoreError};
use crate::payload_objects::INLINE_PAYLOAD_MAX;

/// The attribute an uncompressed payload is kept in (the model's field).
pub const PAYLOAD: &str = "payload";
/// The attribute a compressed payload is kept in instead.
pub const PAYLOAD_ZSTD: &str = "payload_zstd";
const LEVEL: i32 = 1;
const WRITE_UNIT: usize = 1024;

thread_local! {
    // A compression context costs more to make than a 1 KiB body costs to compress.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
}

fn units(bytes: usize) -> usize {
    bytes.div_ceil(WRITE_UNIT).max(1)
}

fn compress(raw: &[u8]) -> Option<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = zstd::bulk::Compressor::new(LEVEL).ok();
        }
        cell.as_mut()?.compress(raw).ok()
    })
}

/// Replaces the item's `payload` with `payload_zstd` when the item then costs fewer write
/// units. Never fails: a payload that does not compress is kept as it is.
pub fn compress_if_cheaper(item: &mut Item) {
    let Some(AttributeValue::B(raw)) = item.get(PAYLOAD) else {
        return;
    };
    let before = item_bytes(item);
    if units(before) == 1 {
        return;
    }
    let raw_len = raw.as_ref().len();
    // Small JSON webhooks shrink by about 40 %: a payload that would have to lose more than
    // half of itself to save a unit is not tried, so such an event pays no CPU for nothing.
    let to_save = before - (units(before) - 1) * WRITE_UNIT + PAYLOAD_ZSTD.len() - PAYLOAD.len();
    if to_save > raw_len / 2 {
        return;
    }
    let Some(packed) = compress(raw.as_ref()) else {
        return;
    };
    let after = before - PAYLOAD.len() - raw_len + PAYLOAD_ZSTD.len() + packed.len();
    if units(after) < units(before) {
        item.remove(PAYLOAD);
        item.insert(
            PAYLOAD_ZSTD.to_owned(),
            AttributeValue::B(Blob::new(packed)),
        );
    }
}

/// Puts a compressed payload back in `payload`, where the model reads it.
pub fn inflate(item: &mut Item) -> Result<()> {
    let Some(AttributeValue::B(packed)) = item.remove(PAYLOAD_ZSTD) else {
        return Ok(());
    };
    // Only inline payloads are compressed, so none inflates past the inline limit.
    let raw = zstd::bulk::decompress(packed.as_ref(), INLINE_PAYLOAD_MAX)
        .map_err(|source| StoreError::Inflate { source })?;
    item.insert(PAYLOAD.to_owned(), AttributeValue::B(Blob::new(raw)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn item(payload: &[u8]) -> Item {
        Item::from([
            ("pk".to_owned(), AttributeValue::S("EVT#src#key".into())),
            (PAYLOAD.to_owned(), AttributeValue::B(Blob::new(payload))),
        ])
    }

    #[test]
    fn compresses_only_when_a_write_unit_is_saved_and_inflates_back() {
        let json = br#"{"event_type":"a.b","data":{"amount":100,"currency":"usd"}}"#.repeat(20);
        let mut big = item(&json);
        assert!(item_bytes(&big) > WRITE_UNIT);
        compress_if_cheaper(&mut big);
        assert!(big.contains_key(PAYLOAD_ZSTD) && !big.contains_key(PAYLOAD));
        assert_eq!(units(item_bytes(&big)), 1);
        inflate(&mut big).expect("inflate");
        assert_eq!(big, item(&json));

        let mut small = item(b"{}");
        compress_if_cheaper(&mut small);
        assert_eq!(small, item(b"{}"), "an item of one unit is left alone");

        let mut noise = vec![0u8; 1500];
        rand::RngCore::fill_bytes(&mut rand::rngs::StdRng::seed_from_u64(1), &mut noise);
        let mut incompressible = item(&noise);
        compress_if_cheaper(&mut incompressible);
        assert_eq!(
            incompressible,
            item(&noise),
            "no unit saved, kept as it came"
        );
    }

    #[test]
    fn a_corrupt_compressed_payload_is_an_error_not_a_panic() {
        let mut bad = Item::from([(
            PAYLOAD_ZSTD.to_owned(),
            AttributeValue::B(Blob::new(b"not zstd".as_slice())),
        )]);
        assert!(matches!(inflate(&mut bad), Err(StoreError::Inflate { .. })));
    }
}
