//! Ordered endpoints: which line (SQS FIFO message group) an event's task waits in, and the
//! rules an endpoint's ordering settings must meet.
//!
//! An ordered endpoint's tasks go to the ordered queue, a FIFO queue, with a message group
//! per line: the endpoint itself, or the endpoint and the value found at its
//! `ordering_key` in the payload. SQS hands out one line's messages in the order they were
//! sent and holds the rest of a line while one of its messages is in flight, so a line is
//! delivered one event at a time, in accept order, and a failing head blocks only its line.

use sha2::{Digest, Sha256};

use crate::{DeliveryTask, Endpoint};

/// The longest `ordering_key` pointer accepted.
pub const MAX_KEY_LEN: usize = 256;

/// Hex digits of the key value's hash kept in a group id: 128 bits, so two values of one
/// endpoint never share a line by accident, and the id stays inside SQS's 128 characters
/// and allowed alphabet whatever the payload holds.
const KEY_HASH_HEX: usize = 32;

/// How an endpoint orders its deliveries, when it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ordered {
    /// A JSON pointer into the payload: one line per value found there.
    pub key: Option<String>,
}

impl Endpoint {
    /// The endpoint's ordering, when its deliveries are ordered.
    pub fn ordered(&self) -> Option<Ordered> {
        let d = self.delivery.as_ref()?;
        (d.ordering == crate::model::DeliveryOrdering::Fifo).then(|| Ordered {
            key: d.ordering_key.clone(),
        })
    }
}

/// The message group of an event's task for an ordered endpoint: the endpoint's id, or the
/// endpoint's id and a hash of the value at the ordering key. An event without that value
/// (a missing or null field, a body that is not JSON) waits in the endpoint-wide line.
pub fn group(endpoint_id: &str, ordered: &Ordered, payload: &[u8]) -> String {
    let Some(pointer) = ordered.key.as_deref() else {
        return endpoint_id.to_owned();
    };
    match key_value(pointer, payload) {
        Some(value) => {
            let digest = Sha256::digest(value.as_bytes());
            let hex: String = digest
                .iter()
                .take(KEY_HASH_HEX / 2)
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("{endpoint_id}:{hex}")
        }
        None => endpoint_id.to_owned(),
    }
}

/// The value at `pointer` as text: a string's own text, any other JSON value's compact
/// form; `None` when there is no value, or it is null.
fn key_value(pointer: &str, payload: &[u8]) -> Option<String> {
    let body: serde_json::Value = serde_json::from_slice(payload).ok()?;
    match body.pointer(pointer)? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// What is wrong with an `ordering_key`, if anything.
pub fn check_key(pointer: &str) -> Result<(), String> {
    if pointer.is_empty() || !pointer.starts_with('/') {
        return Err("must be a JSON pointer starting with / (e.g. /data/customer_id)".into());
    }
    if pointer.len() > MAX_KEY_LEN {
        return Err(format!("must be at most {MAX_KEY_LEN} characters"));
    }
    // RFC 6901: `~` only as `~0` or `~1`.
    let mut chars = pointer.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err("has a ~ that is not ~0 or ~1 (RFC 6901)".into());
        }
        if c.is_control() {
            return Err("must not contain control characters".into());
        }
    }
    Ok(())
}

/// The task's deduplication id on the ordered queue. A task's first sends (ingest, publish,
/// a second try after a refused send, the sweeper's re-enqueue of a stranded event) share
/// one id, so SQS keeps one of them within its five-minute window; a retry asked for through
/// the API or a redrive is a new task and gets an id of its own.
pub fn dedup_id(task: &DeliveryTask, fresh: bool) -> String {
    let base = format!("{}.{}", task.event_id, task.endpoint_id);
    if fresh || task.manual {
        format!("{base}.{}", ulid::Ulid::new())
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(key: &str) -> Ordered {
        Ordered {
            key: Some(key.to_owned()),
        }
    }

    #[test]
    fn the_line_is_the_endpoint_or_the_endpoint_and_the_keys_value() {
        let whole = Ordered { key: None };
        assert_eq!(group("ep_1", &whole, br#"{"a":1}"#), "ep_1");
        let by_customer = keyed("/data/customer_id");
        let a = group("ep_1", &by_customer, br#"{"data":{"customer_id":"c1"}}"#);
        let b = group("ep_1", &by_customer, br#"{"data":{"customer_id":"c2"}}"#);
        assert!(a.starts_with("ep_1:") && a.len() == "ep_1:".len() + KEY_HASH_HEX);
        assert_ne!(a, b);
        assert_eq!(
            a,
            group(
                "ep_1",
                &by_customer,
                br#"{"data":{"customer_id":"c1","x":2}}"#
            )
        );
        // Numbers are keys too; a string "7" and the number 7 are the same customer.
        assert_eq!(
            group("ep_1", &by_customer, br#"{"data":{"customer_id":7}}"#),
            group("ep_1", &by_customer, br#"{"data":{"customer_id":"7"}}"#)
        );
    }

    #[test]
    fn events_without_the_key_wait_in_the_endpoint_wide_line() {
        let by_customer = keyed("/data/customer_id");
        for body in [
            &br#"{"data":{}}"#[..],
            br#"{"data":{"customer_id":null}}"#,
            b"not json",
            b"",
        ] {
            assert_eq!(group("ep_1", &by_customer, body), "ep_1");
        }
    }

    #[test]
    fn group_ids_stay_inside_sqs_rules_whatever_the_value() {
        let long = format!(r#"{{"k":"{}"}}"#, "é".repeat(500));
        let g = group(
            &format!("ep_{}", "X".repeat(26)),
            &keyed("/k"),
            long.as_bytes(),
        );
        assert!(g.len() <= 128);
        assert!(g.chars().all(|c| c.is_ascii_graphic()));
    }

    #[test]
    fn keys_are_json_pointers() {
        assert!(check_key("/data/customer_id").is_ok());
        assert!(check_key("/a~1b/~0c").is_ok());
        assert!(check_key("data/customer_id").is_err());
        assert!(check_key("").is_err());
        assert!(check_key("/a~2").is_err());
        assert!(check_key(&format!("/{}", "a".repeat(300))).is_err());
    }
}
