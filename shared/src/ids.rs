//! Sortable unique ids with a type prefix: a ULID sorts by creation time, so listing newest
//! first is a reverse key order in DynamoDB.

use ulid::Ulid;

pub const EVENT: &str = "evt";
pub const ENDPOINT: &str = "ep";
pub const SOURCE: &str = "src";
pub const ATTEMPT: &str = "att";
pub const WORKSPACE: &str = "ws";

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", Ulid::new())
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
