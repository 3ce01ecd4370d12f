//! Sortable unique ids with a type prefix: a ULID sorts by creation time, so listing newest
//! first is a reverse key order in DynamoDB.

use ulid::Ulid;

pub const EVENT: &str = "evt";
pub const ENDPOINT: &str = "ep";
pub const SOURCE: &str = "src";
pub const ATTEMPT: &str = "att";
pub const BATCH: &str = "bat";
pub const WORKSPACE: &str = "ws";

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", Ulid::new())
}

/// The smallest (or, with `upper`, the largest) id of this kind created at `at`; open ends
/// when `at` is `None`. Lets a time range be a key condition on ids.
pub fn time_bound(prefix: &str, at: Option<crate::Timestamp>, upper: bool) -> String {
    let ulid = match (at, upper) {
        (None, false) => Ulid::nil(),
        (None, true) => Ulid::from_parts(u64::MAX, u128::MAX),
        (Some(t), false) => Ulid::from_parts(t.unix_millis().max(0) as u64, 0),
        (Some(t), true) => Ulid::from_parts(t.unix_millis().max(0) as u64, u128::MAX),
    };
    format!("{prefix}_{ulid}")
}

/// True when `id` looks like an id of this kind; used to answer 404 early for garbage paths.
pub fn has_prefix(id: &str, prefix: &str) -> bool {
    id.len() == prefix.len() + 27
        && id.starts_with(prefix)
        && id.as_bytes()[prefix.len()] == b'_'
        && Ulid::from_string(&id[prefix.len() + 1..]).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefix_and_sort_by_time() {
        let a = new_id(EVENT);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id(EVENT);
        assert!(a.starts_with("evt_"));
        assert!(a < b, "{a} should sort before {b}");
        assert!(has_prefix(&a, EVENT));
        assert!(!has_prefix(&a, ENDPOINT));
        assert!(!has_prefix("evt_nope", EVENT));
    }
}
