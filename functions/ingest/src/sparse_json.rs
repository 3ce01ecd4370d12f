//! A JSON body read into a tree of only the members some JSON pointers name. Identifying a
//! provider's event reads two or three strings from a body; a full `serde_json::Value` of a
//! 1 KiB webhook allocates every key and string in it, which cost more than verifying the
//! signature. Every member is still parsed, so a body that is not JSON is refused as before,
//! and each named member comes out as it is in the full tree.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// `body` as a tree holding what `pointers` (RFC 6901, e.g. `/header/event_type`) name, and
/// the objects and arrays on their way; any other member is left out.
pub fn parse(body: &[u8], pointers: &[&str]) -> serde_json::Result<Value> {
    let paths: Vec<Vec<Cow<'_, str>>> = pointers.iter().filter_map(|p| segments(p)).collect();
    let wanted: Vec<&[Cow<'_, str>]> = paths.iter().map(Vec::as_slice).collect();
    let mut de = serde_json::Deserializer::from_slice(body);
    let tree = Pick(&wanted).deserialize(&mut de)?;
    de.end()?;
    Ok(tree)
}

/// A pointer's reference tokens, unescaped (borrowed unless they hold an escape); none for
/// a string that is not a pointer.
fn segments(pointer: &str) -> Option<Vec<Cow<'_, str>>> {
    if pointer.is_empty() {
        return Some(Vec::new());
    }
    let rest = pointer.strip_prefix('/')?;
    Some(
        rest.split('/')
            .map(|s| {
                if s.contains('~') {
                    Cow::Owned(s.replace("~1", "/").replace("~0", "~"))
                } else {
                    Cow::Borrowed(s)
                }
            })
            .collect(),
    )
}

/// Reads a value keeping the members the remaining paths go through.
struct Pick<'a>(&'a [&'a [Cow<'a, str>]]);

impl Pick<'_> {
    fn below<'p>(&self, token: impl Fn(&str) -> bool) -> Vec<&'p [Cow<'p, str>]>
    where
        Self: 'p,
    {
        self.0
            .iter()
            .filter(|p| p.first().is_some_and(|t| token(t)))
            .map(|p| &p[1..])
            .collect()
    }
}

impl<'de> DeserializeSeed<'de> for Pick<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.0.iter().any(|p| p.is_empty()) {
            // A pointer ends here: this value whole.
            return Value::deserialize(d);
        }
        d.deserialize_any(self)
    }
}

/// What a pointer that goes on below a number, string, boolean or null finds: nothing, as
/// in the full tree.
macro_rules! nothing_below {
    ($($name:ident: $t:ty),*) => {
        $(fn $name<E: serde::de::Error>(self, _: $t) -> Result<Value, E> {
            Ok(Value::Null)
        })*
    };
}

impl<'de> Visitor<'de> for Pick<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    nothing_below!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64,
        visit_str: &str, visit_bytes: &[u8]);

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let below = self.below(|t| t == key);
            if below.is_empty() {
                map.next_value::<IgnoredAny>()?;
            } else {
                // A repeated member replaces the one before, as in the full tree.
                out.insert(key.into_owned(), map.next_value_seed(Pick(&below))?);
            }
        }
        Ok(Value::Object(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        loop {
            let index = out.len();
            let below = self.below(|t| t.parse::<usize>() == Ok(index));
            let next = if below.is_empty() {
                seq.next_element::<IgnoredAny>()?.map(|_| Value::Null)
            } else {
                seq.next_element_seed(Pick(&below))?
            };
            match next {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }
}

/// A member's name, borrowed from the body unless it holds an escape.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{
        "id": "evt_1", "type": "invoice.paid", "a~b": {"c/d": 1},
        "header": {"event_type": "im.message", "event_id": "e-1", "token": "t"},
        "event": {"type": "message", "text": "hi \u00e9", "items": [{"x": 1}, {"y": [true, null]}]},
        "esc\u0061ped": "yes", "dup": 1, "dup": {"k": "second"},
        "data": {"object": {"lines": [1, 2, 3], "memo": "m"}}
    }"#;

    #[test]
    fn every_named_member_is_as_in_the_full_tree() {
        let full: Value = serde_json::from_slice(BODY).unwrap();
        let pointers = [
            "/id",
            "/type",
            "/header/event_type",
            "/header/event_id",
            "/event/type",
            "/event/items/1/y/0",
            "/event/items/0",
            "/a~0b/c~1d",
            "/escaped",
            "/dup/k",
            "/data/object",
            "/missing/deeper",
            "/id/below/a/string",
            "/event/items/7",
            "",
        ];
        for p in pointers {
            let sparse = parse(BODY, &[p]).unwrap();
            assert_eq!(sparse.pointer(p), full.pointer(p), "{p}");
        }
        let all = parse(BODY, &pointers).unwrap();
        for p in pointers {
            assert_eq!(all.pointer(p), full.pointer(p), "{p} among all");
        }
    }

    #[test]
    fn what_no_pointer_names_is_left_out() {
        let sparse = parse(BODY, &["/header/event_type"]).unwrap();
        assert_eq!(
            sparse,
            serde_json::json!({"header": {"event_type": "im.message"}})
        );
    }

    #[test]
    fn a_body_that_is_not_json_is_refused_as_the_full_parse_refuses_it() {
        for bad in [
            &br#"{"type": "a", "rest": [1, 2"#[..],
            br#"{"type": "a"} trailing"#,
            br#"{"type": "a", "x": tru}"#,
            b"",
            b"\xff",
        ] {
            let full = serde_json::from_slice::<Value>(bad).unwrap_err();
            let sparse = parse(bad, &["/type"]).unwrap_err();
            assert_eq!(sparse.to_string(), full.to_string());
        }
    }
}
