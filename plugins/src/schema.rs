//! JSON Schema validation of inbound bodies (2020-12, and the older drafts the `jsonschema`
//! crate knows by `$schema`). References are resolved inside the schema only: no file or
//! network reads.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::rc::Rc;

use jsonschema::Validator;
use serde_json::Value;

const CACHED_SCHEMAS: usize = 64;

thread_local! {
    static VALIDATORS: RefCell<HashMap<u64, Rc<Validator>>> = RefCell::new(HashMap::new());
}

/// The first way a body fails its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// A JSON pointer to the failing value (`""` for the whole body).
    pub pointer: String,
    /// The schema keyword that failed (`required`, `minimum`, …).
    pub keyword: String,
    pub message: String,
}

/// Compiles the schema: what saving it runs.
pub fn check(schema: &Value) -> Result<(), String> {
    validator(schema).map(|_| ())
}

fn validator(schema: &Value) -> Result<Rc<Validator>, String> {
    let text = serde_json::to_string(schema).map_err(|e| e.to_string())?;
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    let k = h.finish();
    if let Some(v) = VALIDATORS.with(|v| v.borrow().get(&k).cloned()) {
        return Ok(v);
    }
    let v = Rc::new(jsonschema::validator_for(schema).map_err(|e| e.to_string())?);
    VALIDATORS.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= CACHED_SCHEMAS {
            m.clear();
        }
        m.insert(k, v.clone());
    });
    Ok(v)
}

/// Validates `instance`, answering its first failure.
pub fn validate(schema: &Value, instance: &Value) -> Result<Result<(), Failure>, String> {
    let v = validator(schema)?;
    Ok(match v.iter_errors(instance).next() {
        None => Ok(()),
        Some(e) => Err(Failure {
            pointer: e.instance_path().to_string(),
            keyword: e.kind().keyword().to_owned(),
            message: e.to_string(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_pointer_and_keyword() {
        let schema = json!({
            "type": "object",
            "required": ["id"],
            "properties": {"data": {"properties": {"amount": {"type": "integer", "minimum": 1}}}}
        });
        assert_eq!(validate(&schema, &json!({"id": 1})).unwrap(), Ok(()));
        let f = validate(&schema, &json!({"id": 1, "data": {"amount": 0}}))
            .unwrap()
            .unwrap_err();
        assert_eq!(
            (f.pointer.as_str(), f.keyword.as_str()),
            ("/data/amount", "minimum")
        );
        let f = validate(&schema, &json!({})).unwrap().unwrap_err();
        assert_eq!((f.pointer.as_str(), f.keyword.as_str()), ("", "required"));
    }

    #[test]
    fn older_drafts_and_bad_schemas() {
        let draft7 =
            json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "string"});
        assert!(validate(&draft7, &json!(1)).unwrap().is_err());
        assert!(check(&json!({"type": "nonsense"})).is_err());
        assert!(check(&json!({"$ref": "https://example.com/schema.json"})).is_err());
    }
}
