//! Start-up and per-call cost of a typical transform in each candidate engine.
use std::time::Instant;

const SCRIPT: &str = include_str!("../../../plugins/examples/stripe-to-slack.js");

fn input() -> String {
    serde_json::json!({"method": "POST", "url": "https://hooks.slack.com/x", "headers": {"content-type": "application/json"},
      "body": {"id": "evt_9", "type": "invoice.paid", "data": {"object": {"amount_paid": 4200, "currency": "eur", "customer_email": "a@b.c",
      "lines": {"data": [{"id": "il_1", "amount": 4200, "description": "Pro plan", "period": {"start": 1, "end": 2}}]}}}},
      "event": {"id": "evt_1", "type": "invoice.paid"}}).to_string()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[cfg(feature = "quickjs")]
fn run() -> (f64, f64, String) {
    use rquickjs::{Context, Function, Runtime, context::intrinsic};
    let t = Instant::now();
    let rt = Runtime::new().unwrap();
    rt.set_memory_limit(16 << 20);
    let ctx = Context::custom::<(intrinsic::Eval, intrinsic::Json, intrinsic::RegExp, intrinsic::RegExpCompiler, intrinsic::MapSet, intrinsic::TypedArrays)>(&rt).unwrap();
    ctx.with(|c| c.eval::<(), _>(SCRIPT).unwrap());
    let startup = t.elapsed().as_secs_f64() * 1e6;
    let inp = input();
    let mut out = String::new();
    let mut calls = Vec::new();
    for _ in 0..3000 {
        let t = Instant::now();
        out = ctx.with(|c| {
            let f: Function = c.globals().get("handle").unwrap();
            let arg = c.json_parse(inp.clone()).unwrap();
            let r: rquickjs::Value = f.call((arg,)).unwrap();
            c.json_stringify(r).unwrap().unwrap().to_string().unwrap()
        });
        let _: serde_json::Value = serde_json::from_str(&out).unwrap();
        calls.push(t.elapsed().as_secs_f64() * 1e6);
    }
    (startup, median(calls), out)
}

#[cfg(feature = "boa")]
fn run() -> (f64, f64, String) {
    use boa_engine::{Context, JsValue, Source, js_string, object::builtins::JsFunction};
    let t = Instant::now();
    let mut ctx = Context::default();
    ctx.eval(Source::from_bytes(SCRIPT)).unwrap();
    let startup = t.elapsed().as_secs_f64() * 1e6;
    let f = ctx.global_object().get(js_string!("handle"), &mut ctx).unwrap();
    let f = JsFunction::from_object(f.as_object().unwrap().clone()).unwrap();
    let inp = input();
    let mut out = String::new();
    let mut calls = Vec::new();
    for _ in 0..3000 {
        let t = Instant::now();
        let v: serde_json::Value = serde_json::from_str(&inp).unwrap();
        let arg = JsValue::from_json(&v, &mut ctx).unwrap();
        let r = f.call(&JsValue::undefined(), &[arg], &mut ctx).unwrap();
        out = r.to_json(&mut ctx).unwrap().unwrap().to_string();
        calls.push(t.elapsed().as_secs_f64() * 1e6);
    }
    (startup, median(calls), out)
}

#[cfg(not(any(feature = "quickjs", feature = "boa")))]
fn run() -> (f64, f64, String) {
    (0.0, 0.0, input())
}

/// Links the WebAssembly interpreter and the JSON Schema validator (for their binary size)
/// and runs each once.
fn others() -> usize {
    let mut used = 0;
    #[cfg(feature = "wasm")]
    {
        let engine = wasmi::Engine::default();
        let wat = include_str!("../../../plugins/examples/wrap.wat");
        used += wasmi::Module::new(&engine, wat).map_or(0, |_| 1);
    }
    #[cfg(feature = "schema")]
    {
        let schema = serde_json::json!({"type": "object", "required": ["body"]});
        let v = jsonschema::validator_for(&schema).unwrap();
        let input: serde_json::Value = serde_json::from_str(&input()).unwrap();
        used += usize::from(v.is_valid(&input));
    }
    used
}

fn main() {
    let (startup, call, out) = run();
    let others = others();
    println!(
        "{{\"startup_us\": {startup:.0}, \"call_us\": {call:.1}, \"out_bytes\": {}, \"others\": {others}}}",
        out.len()
    );
}
