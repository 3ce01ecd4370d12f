//! An event's inline payload, zstd-compressed in its item when that makes the item cost fewer
//! write units (one per started KB): JSON webhooks of 2 KiB and more lose a unit or more (a
//! 64 KiB one goes from 65 units to 26). A 1 KiB one with random ids shrinks to about 60 %,
//! which beside its event's keys and attributes (about 375 bytes since events carry no index
//! keys) makes a one-unit item of a two-unit one, for about 4 µs of CPU. A payload whose item
//! fits either way is stored as it came, and no read pays to inflate it.
//!
//! Level 1 was chosen by measurement on 1 KiB JSON webhooks: about 4 µs to compress and
//! 1.4 µs to inflate, against about 8 µs and 5.5 µs for DEFLATE at its fastest level, for
//! nearly the same size.

use std::cell::{Cell, RefCell};

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

/// Shares are kept in 1/256ths.
const WHOLE: u32 = 256;
/// A skipped payload is compressed anyway once in this many, so the estimate follows a
/// workload whose bodies start to compress better.
const PROBE_EVERY: u32 = 16;

thread_local! {
    // A compression context costs more to make than a 1 KiB body costs to compress.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    /// What this thread's recent payloads shrank to, as a share of their size: whether a
    /// payload can shrink enough to save a unit is judged from it before any CPU is spent.
    /// It starts at one half.
    static RECENT_SHARE: Cell<u32> = const { Cell::new(WHOLE / 2) };
    static SKIPPED: Cell<u32> = const { Cell::new(0) };
}

/// Whether to compress a payload of `raw_len` bytes that must end at most `may_keep` bytes
/// long to save a unit: when recent payloads shrank about that far (with a sixteenth to
/// spare), and once in [`PROBE_EVERY`] skips whatever they did.
fn worth_trying(raw_len: usize, may_keep: usize) -> bool {
    let needed = (may_keep as u64 * u64::from(WHOLE) / raw_len.max(1) as u64) as u32;
    if RECENT_SHARE.get() <= needed + WHOLE / 16 {
        return true;
    }
    let skipped = SKIPPED.get() + 1;
    SKIPPED.set(skipped % PROBE_EVERY);
    skipped == PROBE_EVERY
}

fn remember_share(raw_len: usize, packed_len: usize) {
    let share =
        (packed_len as u64 * u64::from(WHOLE) / raw_len.max(1) as u64).min(u64::from(WHOLE)) as u32;
    RECENT_SHARE.set((3 * RECENT_SHARE.get() + share) / 4);
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
    // How much smaller the payload must get for the item to lose a unit. A 1 KiB JSON
    // webhook with random ids shrinks by about 40 %, larger ones by more: compressing one
    // that cannot shrink enough costs about 4 µs for nothing, so the recent shares decide.
    let to_save = before - (units(before) - 1) * WRITE_UNIT + PAYLOAD_ZSTD.len() - PAYLOAD.len();
    if to_save >= raw_len || !worth_trying(raw_len, raw_len - to_save) {
        return;
    }
    let Some(packed) = compress(raw.as_ref()) else {
        return;
    };
    remember_share(raw_len, packed.len());
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
    fn payloads_that_cannot_shrink_enough_are_not_compressed_for_nothing_and_probed_now_and_then() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        // Random bytes as text: they shrink to about three quarters, never by half.
        let mut poor = || -> Vec<u8> {
            let mut b = vec![0u8; 1500];
            rand::RngCore::fill_bytes(&mut rng, &mut b);
            b.iter().map(|x| b'a' + x % 64).collect()
        };
        for _ in 0..8 {
            compress_if_cheaper(&mut item(&poor()));
        }
        assert!(RECENT_SHARE.get() > WHOLE * 2 / 3, "{}", RECENT_SHARE.get());
        let tried = (0..PROBE_EVERY * 2)
            .filter(|_| {
                let before = RECENT_SHARE.get();
                let mut it = item(&poor());
                compress_if_cheaper(&mut it);
                assert!(it.contains_key(PAYLOAD), "no unit saved, kept as it came");
                RECENT_SHARE.get() != before
            })
            .count();
        assert!(
            (1..=3).contains(&tried),
            "probed {tried} times in {}",
            PROBE_EVERY * 2
        );

        // A workload whose bodies turn compressible is followed within a probe or two.
        let json = br#"{"event_type":"a.b","data":{"amount":100,"currency":"usd"}}"#.repeat(20);
        let compressed = (0..PROBE_EVERY * 3)
            .filter(|_| {
                let mut it = item(&json);
                compress_if_cheaper(&mut it);
                it.contains_key(PAYLOAD_ZSTD)
            })
            .count();
        assert!(
            compressed as u32 >= PROBE_EVERY * 3 - PROBE_EVERY - 1,
            "{compressed}"
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
