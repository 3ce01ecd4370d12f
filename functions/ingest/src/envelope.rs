//! Reading the event type from a JSON body without building a tree of it: WebhookX's
//! envelope `{"event_type": …, "data": …}`. The whole body is still validated as JSON.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;

#[derive(Debug, PartialEq)]
pub enum BodyError {
    /// Not JSON at all; the parser's message (position, what was expected).
    Malformed(String),
    /// JSON, but `event_type` is not a string.
    BadEventType,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    event_type: Option<Cow<'a, str>>,
}

/// The body's `event_type`, if it is an object that has one.
pub fn event_type(body: &[u8]) -> Result<Option<Cow<'_, str>>, BodyError> {
    let is_object = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if is_object {
        return match serde_json::from_slice::<Envelope<'_>>(body) {
            Ok(env) => Ok(env.event_type),
            Err(e) if e.is_data() => {
                // Valid JSON whose event_type has the wrong type, or a syntax error the
                // typed parse reported as data: a second, untyped parse tells which.
                match serde_json::from_slice::<IgnoredAny>(body) {
                    Ok(_) => Err(BodyError::BadEventType),
                    Err(e) => Err(BodyError::Malformed(e.to_string())),
                }
            }
            Err(e) => Err(BodyError::Malformed(e.to_string())),
        };
    }
    serde_json::from_slice::<IgnoredAny>(body)
        .map(|_| None)
        .map_err(|e| BodyError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_event_type() {
        assert_eq!(
            event_type(br#"{"event_type":"a.b","data":{}}"#)
                .unwrap()
                .as_deref(),
            Some("a.b")
        );
        assert_eq!(
            event_type(br#" {"data":{"x":"\u00e9"},"event_type":"caf\u00e9"}"#)
                .unwrap()
                .as_deref(),
            Some("café")
        );
        assert_eq!(event_type(br#"{"data":1}"#).unwrap(), None);
        assert_eq!(event_type(b"[1,2]").unwrap(), None);
        assert_eq!(event_type(b"42").unwrap(), None);
    }

    #[test]
    fn rejects_bad_bodies() {
        assert!(matches!(event_type(b"{"), Err(BodyError::Malformed(_))));
        assert!(matches!(event_type(b""), Err(BodyError::Malformed(_))));
        assert!(matches!(event_type(b"{} x"), Err(BodyError::Malformed(_))));
        assert!(matches!(
            event_type(b"not json"),
            Err(BodyError::Malformed(_))
        ));
        assert_eq!(
            event_type(br#"{"event_type":5}"#),
            Err(BodyError::BadEventType)
        );
        assert!(matches!(
            event_type(br#"{"event_type":"a","x":}"#),
            Err(BodyError::Malformed(_))
        ));
    }
}
