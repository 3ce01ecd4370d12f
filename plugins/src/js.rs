//! JavaScript functions in QuickJS: one runtime per script, cached per warm instance, with no
//! I/O, no clock and no randomness, a memory limit, a stack limit and a deadline enforced by
//! interrupting the script. A script's state never reaches another script, and a run that hits
//! a limit throws its runtime away.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::rc::Rc;
use std::time::{Duration, Instant};

use rquickjs::context::intrinsic;
use rquickjs::{CatchResultExt, CaughtError, Context, Function, Runtime, Value as JsValue};
use serde_json::Value;

use crate::PluginError;

/// Heap of one script's runtime.
pub const MEMORY_LIMIT: usize = 16 * 1024 * 1024;
const STACK_LIMIT: usize = 512 * 1024;
/// Scripts kept compiled per thread; past it the cache starts over.
const CACHED_SCRIPTS: usize = 32;
/// What a cached script's runtime may hold between calls, after a collection. A script that
/// keeps more (globals it grows on purpose) is compiled afresh on its next call, so the cache
/// holds at most `CACHED_SCRIPTS` times this, whoever wrote the scripts.
pub const RETAINED_LIMIT: usize = 1024 * 1024;

/// What a script finds besides the language: no `Date`, no `Math.random`, no `eval`.
const PRELUDE: &str = "delete Math.random; delete globalThis.eval;";

struct Script {
    // Field order: the context is dropped before its runtime.
    context: Context,
    _runtime: Runtime,
    deadline: Rc<Cell<Option<Instant>>>,
}

thread_local! {
    static SCRIPTS: RefCell<HashMap<u64, Rc<Script>>> = RefCell::new(HashMap::new());
}

fn key(code: &str) -> u64 {
    let mut h = DefaultHasher::new();
    code.hash(&mut h);
    h.finish()
}

/// Compiles `code` and checks it defines `handle`: what saving a script runs, so a syntax
/// error is answered with its line and column then, not at the first request.
pub fn check(code: &str) -> Result<(), PluginError> {
    load(
        code,
        Duration::from_millis(crate::settings::MAX_TIMEOUT_MS.into()),
    )
    .map(|_| ())
}

/// Calls the script's `handle(input)` and answers what it returned (`null` for nothing).
pub fn call(code: &str, input: &Value, timeout: Duration) -> Result<Value, PluginError> {
    let script = cached(code, timeout)?;
    script.deadline.set(Some(Instant::now() + timeout));
    let input = serde_json::to_string(input).map_err(|e| PluginError::Failed(e.to_string()))?;
    let result = script.context.with(|ctx| {
        let handle: Function = ctx
            .globals()
            .get("handle")
            .map_err(|_| PluginError::Failed("the script defines no function handle".into()))?;
        let arg = ctx
            .json_parse(input)
            .catch(&ctx)
            .map_err(|e| caught(e, &script))?;
        let out: JsValue = handle
            .call((arg,))
            .catch(&ctx)
            .map_err(|e| caught(e, &script))?;
        if out.is_undefined() || out.is_null() {
            return Ok(Value::Null);
        }
        let text = ctx
            .json_stringify(out)
            .catch(&ctx)
            .map_err(|e| caught(e, &script))?
            .map(|s| s.to_string())
            .transpose()
            .map_err(|e| PluginError::Failed(e.to_string()))?
            .unwrap_or_else(|| "null".to_owned());
        serde_json::from_str(&text)
            .map_err(|e| PluginError::Failed(format!("the result is not JSON: {e}")))
    });
    script.deadline.set(None);
    // A script's garbage is collected between calls, not left to pile up to the limit.
    script._runtime.run_gc();
    let retained =
        usize::try_from(script._runtime.memory_usage().malloc_size).unwrap_or(usize::MAX);
    if matches!(result, Err(PluginError::Timeout | PluginError::Memory))
        || retained > RETAINED_LIMIT
    {
        // Interrupted, out of memory, or holding on to too much: the next call starts afresh.
        SCRIPTS.with(|s| s.borrow_mut().remove(&key(code)));
    }
    result
}

fn cached(code: &str, timeout: Duration) -> Result<Rc<Script>, PluginError> {
    let k = key(code);
    if let Some(s) = SCRIPTS.with(|s| s.borrow().get(&k).cloned()) {
        return Ok(s);
    }
    let script = Rc::new(load(code, timeout)?);
    SCRIPTS.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() >= CACHED_SCRIPTS {
            s.clear();
        }
        s.insert(k, script.clone());
    });
    Ok(script)
}

fn load(code: &str, timeout: Duration) -> Result<Script, PluginError> {
    let runtime = Runtime::new().map_err(|e| PluginError::Failed(e.to_string()))?;
    runtime.set_memory_limit(MEMORY_LIMIT);
    runtime.set_max_stack_size(STACK_LIMIT);
    let deadline = Rc::new(Cell::new(Some(Instant::now() + timeout)));
    let watched = deadline.clone();
    runtime.set_interrupt_handler(Some(Box::new(move || {
        watched.get().is_some_and(|d| Instant::now() >= d)
    })));
    let context = Context::custom::<(
        intrinsic::Eval,
        intrinsic::Json,
        intrinsic::RegExp,
        intrinsic::RegExpCompiler,
        intrinsic::MapSet,
        intrinsic::TypedArrays,
    )>(&runtime)
    .map_err(|e| PluginError::Failed(e.to_string()))?;
    let script = Script {
        context,
        _runtime: runtime,
        deadline,
    };
    script.context.with(|ctx| {
        ctx.eval::<(), _>(PRELUDE)
            .catch(&ctx)
            .map_err(|e| caught(e, &script))?;
        ctx.eval::<(), _>(code)
            .catch(&ctx)
            .map_err(|e| caught(e, &script))?;
        match ctx.globals().get::<_, JsValue>("handle") {
            Ok(v) if v.is_function() => Ok(()),
            _ => Err(PluginError::Failed(
                "the script must define a function handle(request)".into(),
            )),
        }
    })?;
    script.deadline.set(None);
    Ok(script)
}

fn caught(e: CaughtError, script: &Script) -> PluginError {
    if script.deadline.get().is_some_and(|d| Instant::now() >= d) {
        return PluginError::Timeout;
    }
    match e {
        CaughtError::Exception(ex) => {
            let message = ex.message().unwrap_or_default();
            if message.contains("out of memory") {
                return PluginError::Memory;
            }
            let name: Option<String> = ex.as_object().get("name").ok();
            let location = ex.stack().as_deref().and_then(location);
            match (name.as_deref(), location) {
                (Some("SyntaxError"), Some((line, column))) => PluginError::Syntax {
                    line,
                    column,
                    message,
                },
                (Some("InternalError"), _) if message.contains("interrupted") => {
                    PluginError::Timeout
                }
                (Some("InternalError" | "RangeError"), _)
                    if message.contains("stack overflow") || message.contains("call stack") =>
                {
                    PluginError::Memory
                }
                _ => PluginError::Failed(match (name, location) {
                    (Some(n), Some((l, c))) => format!("{n}: {message} (line {l}, column {c})"),
                    (Some(n), None) => format!("{n}: {message}"),
                    _ => message,
                }),
            }
        }
        CaughtError::Value(v) => PluginError::Failed(format!(
            "the script threw {}",
            v.as_string()
                .and_then(|s| s.to_string().ok())
                .unwrap_or_else(|| format!("a {}", v.type_name()))
        )),
        CaughtError::Error(rquickjs::Error::Allocation) => PluginError::Memory,
        CaughtError::Error(e) => PluginError::Failed(e.to_string()),
    }
}

/// The first `:line:column` of a stack trace.
fn location(stack: &str) -> Option<(u32, u32)> {
    stack.lines().find_map(|l| {
        let mut parts = l.trim().trim_end_matches(')').rsplitn(3, ':');
        let column = parts.next()?.parse().ok()?;
        let line = parts.next()?.parse().ok()?;
        Some((line, column))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MS: Duration = Duration::from_millis(100);

    #[test]
    fn calls_handle_with_the_request() {
        let code = "function handle(r) { return { body: { n: r.body.n + 1 }, seen: typeof Date } }";
        let out = call(code, &json!({"body": {"n": 1}}), MS).unwrap();
        assert_eq!(out, json!({"body": {"n": 2}, "seen": "undefined"}));
        assert_eq!(
            call("function handle(r) {}", &json!({}), MS).unwrap(),
            Value::Null
        );
    }

    #[test]
    fn syntax_errors_have_a_place() {
        match check("function handle(r) {\n  return {;\n}") {
            Err(PluginError::Syntax { line, .. }) => assert_eq!(line, 2),
            other => panic!("{other:?}"),
        }
        assert!(matches!(check("var x = 1;"), Err(PluginError::Failed(_))));
    }

    #[test]
    fn hostile_scripts_fail_alone() {
        let spin = "function handle(r) { for (;;) {} }";
        let started = Instant::now();
        assert!(matches!(
            call(spin, &json!({}), MS),
            Err(PluginError::Timeout)
        ));
        assert!(started.elapsed() < Duration::from_secs(2));
        let bomb = "function handle(r) { let a = []; for (;;) a.push('x'.repeat(1 << 16)); }";
        assert!(matches!(
            call(bomb, &json!({}), Duration::from_secs(1)),
            Err(PluginError::Memory)
        ));
        let recurse = "function handle(r) { return handle(r) + 1 }";
        assert!(matches!(
            call(recurse, &json!({}), MS),
            Err(PluginError::Memory)
        ));
        let backtrack = "function handle(r) { return /(a+)+$/.test('a'.repeat(64) + 'b') }";
        assert!(matches!(
            call(backtrack, &json!({}), MS),
            Err(PluginError::Timeout)
        ));
        let no_clock = "function handle(r) { return Math.random() }";
        assert!(matches!(
            call(no_clock, &json!({}), MS),
            Err(PluginError::Failed(_))
        ));
        // The neighbours still run, and the spinning script runs again next time.
        let ok = "function handle(r) { return 1 }";
        assert_eq!(call(ok, &json!({}), MS).unwrap(), json!(1));
        assert!(matches!(
            call(spin, &json!({}), MS),
            Err(PluginError::Timeout)
        ));
    }

    #[test]
    fn a_script_that_hoards_memory_is_not_kept() {
        let hoard = "var kept = []; function handle(r) { kept.push('x'.repeat(4 << 20)); return kept.length }";
        // Each call starts from a fresh runtime: what it kept is gone, not piled up.
        for _ in 0..5 {
            assert_eq!(call(hoard, &json!({}), MS).unwrap(), json!(1));
        }
        let modest = "var n = 0; function handle(r) { n += 1; return n }";
        call(modest, &json!({}), MS).unwrap();
        assert_eq!(
            call(modest, &json!({}), MS).unwrap(),
            json!(2),
            "a modest script stays cached"
        );
    }

    #[test]
    fn globals_are_the_scripts_own() {
        let a = "var n = 0; function handle(r) { n += 1; return n }";
        let b = "function handle(r) { return typeof n }";
        call(a, &json!({}), MS).unwrap();
        assert_eq!(call(b, &json!({}), MS).unwrap(), json!("undefined"));
    }
}
