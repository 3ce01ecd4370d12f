//! Content filters of endpoints: conditions on an event's payload and on the request's
//! headers, combined with `all`, `any` and `not`. Evaluated at ingest, so an event that does
//! not match queues no task for the endpoint.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Nesting and size bounds, checked when a filter is saved.
pub const MAX_DEPTH: usize = 8;
pub const MAX_CONDITIONS: usize = 64;
pub const MAX_BYTES: usize = 8 * 1024;

/// One node: a combination (`all`, `any`, `not`) or a test of one value (`path` into the
/// payload, or a `header`) by one or more operators, all of which must hold.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<Vec<Condition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any: Option<Vec<Condition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<Box<Condition>>,
    /// A JSON pointer into the payload (`/data/object/amount`); `""` is the whole payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A request header (any case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eq: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ne: Option<Value>,
    #[serde(default, rename = "in", skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gte: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lt: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lte: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// What a filter looks at. Headers are keyed in lower case; events published through the
/// admin API or recovered after a reactivation have none.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub payload: Option<&'a Value>,
    pub headers: &'a BTreeMap<String, String>,
}

impl Condition {
    pub fn matches(&self, s: &Subject) -> bool {
        if let Some(all) = &self.all {
            return all.iter().all(|c| c.matches(s));
        }
        if let Some(any) = &self.any {
            return any.iter().any(|c| c.matches(s));
        }
        if let Some(not) = &self.not {
            return !not.matches(s);
        }
        let header;
        let found: Option<&Value> = match (&self.path, &self.header) {
            (Some(path), _) => s.payload.and_then(|p| p.pointer(path)),
            (None, Some(name)) => {
                header = s
                    .headers
                    .get(&name.to_ascii_lowercase())
                    .map(|v| Value::String(v.clone()));
                header.as_ref()
            }
            (None, None) => None,
        };
        self.test(found)
    }

    fn test(&self, v: Option<&Value>) -> bool {
        let number = v.and_then(Value::as_f64);
        let compare = |bound: Option<f64>, ok: fn(f64, f64) -> bool| {
            bound.is_none_or(|b| number.is_some_and(|n| ok(n, b)))
        };
        self.exists.is_none_or(|e| e == v.is_some())
            && self
                .eq
                .as_ref()
                .is_none_or(|x| v.is_some_and(|v| same(v, x)))
            && self
                .ne
                .as_ref()
                .is_none_or(|x| !v.is_some_and(|v| same(v, x)))
            && self
                .one_of
                .as_ref()
                .is_none_or(|xs| v.is_some_and(|v| xs.iter().any(|x| same(v, x))))
            && compare(self.gt, |n, b| n > b)
            && compare(self.gte, |n, b| n >= b)
            && compare(self.lt, |n, b| n < b)
            && compare(self.lte, |n, b| n <= b)
            && self.prefix.as_ref().is_none_or(|p| {
                v.and_then(Value::as_str)
                    .is_some_and(|s| s.starts_with(p.as_str()))
            })
    }

    /// Whether any test reads a header.
    pub fn reads_headers(&self) -> bool {
        self.header.is_some()
            || self.not.as_ref().is_some_and(|c| c.reads_headers())
            || self
                .all
                .iter()
                .chain(self.any.iter())
                .flatten()
                .any(Condition::reads_headers)
    }

    /// The first problem with a filter as saved: where (a path of field names below the
    /// filter, `""` for the filter itself) and why.
    pub fn problem(&self) -> Option<(String, String)> {
        let bytes = serde_json::to_vec(self).map_or(usize::MAX, |b| b.len());
        if bytes > MAX_BYTES {
            return Some((String::new(), format!("must be at most {MAX_BYTES} bytes")));
        }
        let mut count = 0;
        self.check(0, &mut count, "")
    }

    fn check(&self, depth: usize, count: &mut usize, at: &str) -> Option<(String, String)> {
        *count += 1;
        if depth >= MAX_DEPTH {
            return Some((
                at.to_owned(),
                format!("nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        if *count > MAX_CONDITIONS {
            return Some((
                at.to_owned(),
                format!("has more than {MAX_CONDITIONS} conditions"),
            ));
        }
        let combinators = [self.all.is_some(), self.any.is_some(), self.not.is_some()];
        let tests = self.tests();
        let subject = [self.path.is_some(), self.header.is_some()];
        let n_comb = combinators.iter().filter(|b| **b).count();
        let n_subject = subject.iter().filter(|b| **b).count();
        let here = |why: &str| Some((at.to_owned(), why.to_owned()));
        if n_comb > 1 || (n_comb == 1 && (n_subject > 0 || tests > 0)) {
            return here("a condition is one of all, any, not, or a test of a path or header");
        }
        if n_comb == 0 {
            if n_subject != 1 {
                return here("a test names exactly one of path or header");
            }
            if tests == 0 {
                return here(
                    "a test needs an operator: eq, ne, in, exists, gt, gte, lt, lte or prefix",
                );
            }
            if let Some(p) = &self.path
                && !(p.is_empty() || p.starts_with('/'))
            {
                return Some((
                    join(at, "path"),
                    "must be a JSON pointer such as /data/id".into(),
                ));
            }
            if let Some(h) = &self.header
                && (h.is_empty() || !h.bytes().all(|b| b.is_ascii_graphic() && b != b':'))
            {
                return Some((join(at, "header"), "must be a header name".into()));
            }
            if self.one_of.as_ref().is_some_and(Vec::is_empty) {
                return Some((join(at, "in"), "must list at least one value".into()));
            }
            return None;
        }
        for (name, list) in [("all", &self.all), ("any", &self.any)] {
            if let Some(list) = list {
                if list.is_empty() {
                    return Some((join(at, name), "must list at least one condition".into()));
                }
                for (i, c) in list.iter().enumerate() {
                    if let Some(p) = c.check(depth + 1, count, &format!("{}[{i}]", join(at, name)))
                    {
                        return Some(p);
                    }
                }
            }
        }
        self.not
            .as_ref()
            .and_then(|c| c.check(depth + 1, count, &join(at, "not")))
    }

    fn tests(&self) -> usize {
        [
            self.eq.is_some(),
            self.ne.is_some(),
            self.one_of.is_some(),
            self.exists.is_some(),
            self.gt.is_some(),
            self.gte.is_some(),
            self.lt.is_some(),
            self.lte.is_some(),
            self.prefix.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count()
    }
}

fn join(at: &str, field: &str) -> String {
    if at.is_empty() {
        field.to_owned()
    } else {
        format!("{at}.{field}")
    }
}

/// JSON equality with numbers compared by value (`1` equals `1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(v: Value) -> Condition {
        serde_json::from_value(v).unwrap()
    }

    fn check(c: &Condition, payload: Value, headers: &[(&str, &str)]) -> bool {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        c.matches(&Subject {
            payload: Some(&payload),
            headers: &headers,
        })
    }

    #[test]
    fn operators() {
        let p = json!({"data": {"amount": 1500, "currency": "usd", "tags": ["a"], "id": "ord_1"}});
        assert!(check(
            &cond(json!({"path": "/data/amount", "gte": 1000})),
            p.clone(),
            &[]
        ));
        assert!(!check(
            &cond(json!({"path": "/data/amount", "lt": 1000})),
            p.clone(),
            &[]
        ));
        assert!(check(
            &cond(json!({"path": "/data/amount", "gt": 1000, "lte": 1500})),
            p.clone(),
            &[]
        ));
        assert!(check(
            &cond(json!({"path": "/data/amount", "eq": 1500.0})),
            p.clone(),
            &[]
        ));
        assert!(check(
            &cond(json!({"path": "/data/currency", "in": ["eur", "usd"]})),
            p.clone(),
            &[]
        ));
        assert!(!check(
            &cond(json!({"path": "/data/currency", "ne": "usd"})),
            p.clone(),
            &[]
        ));
        assert!(check(
            &cond(json!({"path": "/data/missing", "ne": "usd"})),
            p.clone(),
            &[]
        ));
        assert!(check(
            &cond(json!({"path": "/data/missing", "exists": false})),
            p.clone(),
            &[]
        ));
        assert!(check(
            &cond(json!({"path": "/data/id", "prefix": "ord_"})),
            p.clone(),
            &[]
        ));
        assert!(!check(
            &cond(json!({"path": "/data/currency", "gt": 1})),
            p.clone(),
            &[]
        ));
        assert!(check(
            &cond(json!({"path": "/data/tags", "eq": ["a"]})),
            p.clone(),
            &[]
        ));
        assert!(check(
            &cond(json!({"header": "X-GitHub-Event", "eq": "push"})),
            p.clone(),
            &[("x-github-event", "push")]
        ));
        assert!(!check(
            &cond(json!({"header": "x-github-event", "exists": true})),
            p,
            &[]
        ));
    }

    #[test]
    fn combinations() {
        let c = cond(json!({"all": [
            {"path": "/type", "prefix": "order."},
            {"any": [{"path": "/total", "gte": 100}, {"path": "/vip", "eq": true}]},
            {"not": {"path": "/test", "eq": true}}
        ]}));
        assert!(check(&c, json!({"type": "order.paid", "total": 150}), &[]));
        assert!(check(
            &c,
            json!({"type": "order.paid", "total": 5, "vip": true}),
            &[]
        ));
        assert!(!check(&c, json!({"type": "order.paid", "total": 5}), &[]));
        assert!(!check(
            &c,
            json!({"type": "order.paid", "total": 500, "test": true}),
            &[]
        ));
        assert!(!c.reads_headers());
        assert!(cond(json!({"not": {"header": "a", "exists": true}})).reads_headers());
    }

    #[test]
    fn problems_name_the_place() {
        let bad = |v: Value| cond(v).problem().map(|(at, _)| at);
        assert_eq!(bad(json!({"path": "/a"})), Some(String::new()));
        assert_eq!(bad(json!({"path": "a", "eq": 1})), Some("path".into()));
        assert_eq!(
            bad(json!({"all": [{"path": "/a", "eq": 1}, {"header": "a:b", "eq": 1}]})),
            Some("all[1].header".into())
        );
        assert_eq!(bad(json!({"all": [], "path": "/a"})), Some(String::new()));
        assert_eq!(bad(json!({"any": []})), Some("any".into()));
        assert_eq!(
            bad(json!({"not": {"path": "/a", "in": []}})),
            Some("not.in".into())
        );
        assert_eq!(
            bad(json!({"path": "/a", "header": "b", "eq": 1})),
            Some(String::new())
        );
        let mut deep = json!({"path": "/a", "eq": 1});
        for _ in 0..MAX_DEPTH {
            deep = json!({"not": deep});
        }
        assert!(bad(deep).is_some());
        assert_eq!(
            bad(
                json!({"all": [{"path": "/a", "eq": 1}, {"not": {"header": "x", "exists": true}}]})
            ),
            None
        );
        assert!(serde_json::from_value::<Condition>(json!({"path": "/a", "equals": 1})).is_err());
    }
}
