//! WebAssembly transforms in wasmi, an interpreter: no imports (so no I/O, clock or
//! randomness), a memory limit, and fuel in proportion to the plugin's time limit. The ABI is
//! JSON in, JSON out, the same contract as a JavaScript `handle`:
//!
//! - the module exports `memory`, `alloc(len: i32) -> i32` and `handle(ptr: i32, len: i32) -> i64`;
//! - the request's JSON is written at `alloc(len)`; `handle` answers `(ptr << 32) | len` of its
//!   result's JSON in `memory` (length 0 for no change).

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::rc::Rc;
use std::time::Duration;

use serde_json::Value;
use wasmi::{Config, Engine, Linker, Module, Store, StoreLimits, StoreLimitsBuilder};

use crate::PluginError;

/// Linear memory of one run.
pub const MEMORY_LIMIT: usize = 16 * 1024 * 1024;
/// Fuel (about one per instruction) per millisecond of the plugin's time limit.
const FUEL_PER_MS: u64 = 200_000;
const CACHED_MODULES: usize = 32;

thread_local! {
    static ENGINE: Engine = {
        let mut config = Config::default();
        config.consume_fuel(true);
        Engine::new(&config)
    };
    static MODULES: RefCell<HashMap<u64, Rc<Module>>> = RefCell::new(HashMap::new());
}

fn key(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// Compiles the module and checks its exports: what saving a plugin runs.
pub fn check(bytes: &[u8]) -> Result<(), PluginError> {
    let module = compile(bytes)?;
    for (name, what) in [
        ("memory", "a memory"),
        ("alloc", "a function"),
        ("handle", "a function"),
    ] {
        if module.get_export(name).is_none() {
            return Err(PluginError::Failed(format!(
                "the module must export {what} `{name}`"
            )));
        }
    }
    if module.imports().len() > 0 {
        return Err(PluginError::Failed(
            "the module must not import anything".into(),
        ));
    }
    Ok(())
}

fn compile(bytes: &[u8]) -> Result<Rc<Module>, PluginError> {
    let k = key(bytes);
    if let Some(m) = MODULES.with(|m| m.borrow().get(&k).cloned()) {
        return Ok(m);
    }
    let module = ENGINE
        .with(|e| Module::new(e, bytes))
        .map_err(|e| PluginError::Failed(format!("the module does not compile: {e}")))?;
    let module = Rc::new(module);
    MODULES.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= CACHED_MODULES {
            m.clear();
        }
        m.insert(k, module.clone());
    });
    Ok(module)
}

/// Runs the module's `handle` on `input` in a fresh instance.
pub fn call(bytes: &[u8], input: &Value, timeout: Duration) -> Result<Value, PluginError> {
    let module = compile(bytes)?;
    let input = serde_json::to_vec(input).map_err(|e| PluginError::Failed(e.to_string()))?;
    let engine = ENGINE.with(Engine::clone);
    let limits = StoreLimitsBuilder::new()
        .memory_size(MEMORY_LIMIT)
        .instances(1)
        .trap_on_grow_failure(true)
        .build();
    let mut store: Store<StoreLimits> = Store::new(&engine, limits);
    store.limiter(|l| l);
    let fuel = FUEL_PER_MS
        .saturating_mul(timeout.as_millis() as u64)
        .max(1);
    store.set_fuel(fuel).map_err(trap)?;
    let instance = Linker::<StoreLimits>::new(&engine)
        .instantiate_and_start(&mut store, &module)
        .map_err(trap)?;
    let memory = instance
        .get_memory(&store, "memory")
        .ok_or_else(|| PluginError::Failed("the module exports no memory".into()))?;
    let alloc = instance
        .get_typed_func::<i32, i32>(&store, "alloc")
        .map_err(|e| PluginError::Failed(format!("alloc: {e}")))?;
    let handle = instance
        .get_typed_func::<(i32, i32), i64>(&store, "handle")
        .map_err(|e| PluginError::Failed(format!("handle: {e}")))?;
    let len = i32::try_from(input.len()).map_err(|_| PluginError::Memory)?;
    let at = alloc.call(&mut store, len).map_err(trap)?;
    memory
        .write(&mut store, at as u32 as usize, &input)
        .map_err(|_| PluginError::Failed("alloc answered memory out of bounds".into()))?;
    let packed = handle.call(&mut store, (at, len)).map_err(trap)? as u64;
    let (ptr, out_len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
    if out_len == 0 {
        return Ok(Value::Null);
    }
    let data = memory.data(&store);
    let out = data
        .get(ptr..ptr.saturating_add(out_len))
        .ok_or_else(|| PluginError::Failed("handle answered memory out of bounds".into()))?;
    serde_json::from_slice(out)
        .map_err(|e| PluginError::Failed(format!("the result is not JSON: {e}")))
}

fn trap(e: wasmi::Error) -> PluginError {
    let text = e.to_string();
    if text.contains("fuel") {
        PluginError::Timeout
    } else if text.contains("growth operation limited")
        || text.contains("out of bounds memory") && text.contains("grow")
    {
        PluginError::Memory
    } else {
        PluginError::Failed(format!("the module trapped: {text}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const WRAP: &str = include_str!("../examples/wrap.wat");

    #[test]
    fn the_example_wraps_the_request() {
        check(WRAP.as_bytes()).unwrap();
        let out = call(
            WRAP.as_bytes(),
            &json!({"body": {"a": 1}}),
            Duration::from_millis(100),
        )
        .unwrap();
        assert_eq!(out, json!({"body": {"request": {"body": {"a": 1}}}}));
    }

    #[test]
    fn hostile_modules_fail_alone() {
        let spin = r#"(module (memory (export "memory") 1)
            (func (export "alloc") (param i32) (result i32) i32.const 0)
            (func (export "handle") (param i32 i32) (result i64) (loop (br 0)) i64.const 0))"#;
        assert!(matches!(
            call(spin.as_bytes(), &json!({}), Duration::from_millis(10)),
            Err(PluginError::Timeout)
        ));
        let grow = r#"(module (memory (export "memory") 1)
            (func (export "alloc") (param i32) (result i32) i32.const 0)
            (func (export "handle") (param i32 i32) (result i64)
              (loop (br_if 0 (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) i64.const 0))"#;
        let grown = call(grow.as_bytes(), &json!({}), Duration::from_millis(100));
        assert!(matches!(grown, Err(PluginError::Memory)), "{grown:?}");
        let importer = r#"(module (import "env" "now" (func)) (memory (export "memory") 1)
            (func (export "alloc") (param i32) (result i32) i32.const 0)
            (func (export "handle") (param i32 i32) (result i64) i64.const 0))"#;
        assert!(check(importer.as_bytes()).is_err());
        assert!(check(b"(module").is_err());
    }
}
