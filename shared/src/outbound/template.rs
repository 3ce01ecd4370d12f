//! Bounded rendering of the templates a workspace writes for its Lark bots.
//!
//! The delivery function is shared by every workspace, so one template must not be able to
//! run it out of memory or time: a failed invocation retries every task of its batch, from
//! any workspace, and delivers some of them twice. MiniJinja's fuel bounds the instructions
//! a render runs, but one instruction can build a huge value (`"x" * 100000000`, `s ~ s` in a
//! loop, a list literal nesting a variable in itself), so a template is also held to a
//! subset of the language in which no value can grow faster than its input: checked when
//! the endpoint is saved and again before each render, since a template saved before these
//! rules existed is still stored.

use std::cell::Cell;
use std::io;
use std::time::{Duration, Instant};

use minijinja::machinery::ast::{BinOpKind, CallArg, Expr, Stmt};
use minijinja::value::Rest;
use minijinja::{Environment, Error, ErrorKind, State, Value};

/// A rendered message is cut off with an error past this size: Lark refuses messages far
/// smaller, and a bigger one could only be a mistake or an attack.
pub const MAX_OUTPUT: usize = 64 * 1024;
const _: () = assert!(
    MAX_OUTPUT == 65_536,
    "the message in Capped::write names it"
);

/// No filter may return a string longer than this, nor a list with more items than
/// [`MAX_ITEMS`]: together they bound what one instruction can allocate.
pub const MAX_VALUE: usize = 1024 * 1024;
pub const MAX_ITEMS: usize = 65_536;

/// `range` produces at most this many numbers.
pub const MAX_RANGE: usize = 10_000;

/// Instructions one render may run. A message over a few hundred items takes a few
/// thousand; the bound is what keeps a loop inside a loop from running for minutes.
pub const FUEL: u64 = 20_000;

/// How long a render may take in wall-clock time, whatever it does.
pub const MAX_RENDER_TIME: Duration = Duration::from_secs(2);

/// The filters a template may use: those whose result is no bigger than their input (after
/// [`MAX_VALUE`]/[`MAX_ITEMS`]), plus bounded versions of `join` and `replace`. Left out:
/// `batch`, `slice`, `center`, `indent` (sizes from an argument), `chain`, `zip`, `format`,
/// `pprint` (several references to one value, or output sized by formatting).
pub const FILTERS: &[&str] = &[
    "abs",
    "attr",
    "bool",
    "capitalize",
    "count",
    "d",
    "default",
    "dictsort",
    "e",
    "escape",
    "first",
    "float",
    "groupby",
    "int",
    "items",
    "join",
    "last",
    "length",
    "lines",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "safe",
    "select",
    "selectattr",
    "sort",
    "split",
    "string",
    "sum",
    "title",
    "trim",
    "unique",
    "upper",
];

/// Why a template is refused before it runs.
fn refuse(what: impl std::fmt::Display) -> String {
    format!("{what} is not available in bot templates")
}

/// Checks a template's syntax and that it keeps to the bounded subset, for the admin API's
/// validation and before each render.
pub fn check(source: &str) -> Result<(), String> {
    let ast =
        minijinja::machinery::parse(source, "template", Default::default(), Default::default())
            .map_err(|e| e.to_string())?;
    stmt(&ast)
}

fn stmts(body: &[Stmt<'_>]) -> Result<(), String> {
    body.iter().try_for_each(stmt)
}

fn stmt(s: &Stmt<'_>) -> Result<(), String> {
    match s {
        Stmt::Template(t) => stmts(&t.children),
        Stmt::EmitExpr(e) => expr(&e.expr),
        Stmt::EmitRaw(_) => Ok(()),
        Stmt::ForLoop(f) => {
            expr(&f.target)?;
            expr(&f.iter)?;
            f.filter_expr.as_ref().map_or(Ok(()), expr)?;
            stmts(&f.body)?;
            stmts(&f.else_body)
        }
        Stmt::IfCond(i) => {
            expr(&i.expr)?;
            stmts(&i.true_body)?;
            stmts(&i.false_body)
        }
        Stmt::WithBlock(w) => {
            for (target, value) in &w.assignments {
                expr(target)?;
                expr(value)?;
            }
            stmts(&w.body)
        }
        Stmt::Set(s) => {
            expr(&s.target)?;
            expr(&s.expr)
        }
        Stmt::SetBlock(s) => {
            expr(&s.target)?;
            s.filter.as_ref().map_or(Ok(()), expr)?;
            stmts(&s.body)
        }
        Stmt::AutoEscape(a) => {
            expr(&a.enabled)?;
            stmts(&a.body)
        }
        Stmt::FilterBlock(f) => {
            expr(&f.filter)?;
            stmts(&f.body)
        }
        Stmt::Do(_) => Err(refuse("`do`")),
    }
}

fn args(args: &[CallArg<'_>]) -> Result<(), String> {
    args.iter().try_for_each(|a| match a {
        CallArg::Pos(e) | CallArg::Kwarg(_, e) => expr(e),
        CallArg::PosSplat(_) | CallArg::KwargSplat(_) => Err(refuse("argument unpacking")),
    })
}

fn expr(e: &Expr<'_>) -> Result<(), String> {
    match e {
        Expr::Var(_) | Expr::Const(_) => Ok(()),
        Expr::Slice(s) => {
            expr(&s.expr)?;
            for part in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                expr(part)?;
            }
            Ok(())
        }
        Expr::UnaryOp(u) => expr(&u.expr),
        Expr::BinOp(b) => {
            // These build strings (or lists) from their operands: repeated or doubled, a
            // value outgrows any bound in a few instructions.
            let op = match b.op {
                BinOpKind::Add => Some("+"),
                BinOpKind::Mul => Some("*"),
                BinOpKind::Pow => Some("**"),
                BinOpKind::Concat => Some("~"),
                _ => None,
            };
            if let Some(op) = op {
                return Err(format!(
                    "{}; write values next to each other instead",
                    refuse(format_args!("the operator `{op}`"))
                ));
            }
            expr(&b.left)?;
            expr(&b.right)
        }
        Expr::Compare(c) => {
            expr(&c.expr)?;
            c.ops.iter().try_for_each(|op| expr(&op.expr))
        }
        Expr::IfExpr(i) => {
            expr(&i.test_expr)?;
            expr(&i.true_expr)?;
            i.false_expr.as_ref().map_or(Ok(()), expr)
        }
        Expr::Filter(f) => {
            if !FILTERS.contains(&f.name) {
                return Err(refuse(format_args!("the filter `{}`", f.name)));
            }
            // `map` may only project an attribute: with a filter or a default it repeats
            // one value once per item.
            if f.name == "map"
                && !matches!(
                    f.args.as_slice(),
                    [CallArg::Kwarg("attribute", Expr::Const(_))]
                )
            {
                return Err(refuse("`map` other than `map(attribute=\"name\")`"));
            }
            f.expr.as_ref().map_or(Ok(()), expr)?;
            args(&f.args)
        }
        Expr::Test(t) => {
            expr(&t.expr)?;
            args(&t.args)
        }
        Expr::GetAttr(g) => expr(&g.expr),
        Expr::GetItem(g) => {
            expr(&g.expr)?;
            expr(&g.subscript_expr)
        }
        Expr::Call(c) => {
            let allowed = match &c.expr {
                Expr::Var(v) => matches!(v.id, "range" | "loop"),
                Expr::GetAttr(g) => {
                    matches!(&g.expr, Expr::Var(v) if v.id == "loop")
                        && matches!(g.name, "cycle" | "changed")
                }
                _ => false,
            };
            if !allowed {
                return Err(refuse("this call"));
            }
            args(&c.args)
        }
        // A literal naming variables could hold one value many times, nested.
        Expr::List(l) => {
            if l.items.iter().all(|i| matches!(i, Expr::Const(_))) {
                Ok(())
            } else {
                Err(refuse("a list naming variables"))
            }
        }
        Expr::Map(m) => {
            if m.keys
                .iter()
                .chain(&m.values)
                .all(|i| matches!(i, Expr::Const(_)))
            {
                Ok(())
            } else {
                Err(refuse("a map naming variables"))
            }
        }
    }
}

fn limit_error(what: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::InvalidOperation, what)
}

fn out_of_time(deadline: Instant) -> Result<(), Error> {
    if Instant::now() >= deadline {
        Err(limit_error("the template ran out of time"))
    } else {
        Ok(())
    }
}

fn check_size(v: &Value) -> Result<(), Error> {
    if v.as_str().is_some_and(|s| s.len() > MAX_VALUE) {
        return Err(limit_error(format!("a value grew past {MAX_VALUE} bytes")));
    }
    if v.as_str().is_none() && v.len().is_some_and(|n| n > MAX_ITEMS) {
        return Err(limit_error(format!("a value grew past {MAX_ITEMS} items")));
    }
    Ok(())
}

/// Collects output, failing once it passes [`MAX_OUTPUT`] or the deadline.
struct Capped {
    buf: Vec<u8>,
    deadline: Instant,
    /// MiniJinja reports a failed write without its cause: this is the cause.
    stopped: Option<&'static str>,
}

impl io::Write for Capped {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > MAX_OUTPUT {
            self.stopped = Some("the message grew past 65536 bytes");
        } else if Instant::now() >= self.deadline {
            self.stopped = Some("the template ran out of time");
        }
        if let Some(why) = self.stopped {
            return Err(io::Error::other(why));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A string built piece by piece that refuses to pass [`MAX_VALUE`].
fn push(out: &mut String, piece: &str) -> Result<(), Error> {
    if out.len() + piece.len() > MAX_VALUE {
        return Err(limit_error(format!("a value grew past {MAX_VALUE} bytes")));
    }
    out.push_str(piece);
    Ok(())
}

thread_local! {
    /// The deadline of the render running on this thread. The environment's functions read
    /// it, so one environment, built once per thread, serves every render: building one
    /// registers every filter again, which costs more than a short render.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    static ENVIRONMENT: Environment<'static> = environment();
}

/// The deadline of this thread's render; a function called outside one is out of time.
fn deadline() -> Instant {
    DEADLINE.with(Cell::get).unwrap_or_else(Instant::now)
}

fn environment() -> Environment<'static> {
    let mut env = Environment::empty();
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(64);
    for name in FILTERS {
        let Some(inner) = builtin_filter(name) else {
            continue;
        };
        env.add_filter(*name, move |state: &State, args: Rest<Value>| {
            out_of_time(deadline())?;
            let rv = inner.call(state, &args)?;
            check_size(&rv)?;
            Ok(rv)
        });
    }
    env.add_filter(
        "join",
        move |value: Value, sep: Option<String>| -> Result<Value, Error> {
            out_of_time(deadline())?;
            let sep = sep.unwrap_or_default();
            let mut out = String::new();
            for (i, item) in value.try_iter()?.enumerate() {
                if i > 0 {
                    push(&mut out, &sep)?;
                }
                match item.as_str() {
                    Some(s) => push(&mut out, s)?,
                    None => push(&mut out, &item.to_string())?,
                }
            }
            Ok(Value::from(out))
        },
    );
    env.add_filter(
        "replace",
        move |s: String, from: String, to: String| -> Result<Value, Error> {
            out_of_time(deadline())?;
            let matches = if from.is_empty() {
                s.chars().count() + 1
            } else {
                s.matches(from.as_str()).count()
            };
            let grown = matches.saturating_mul(to.len().saturating_sub(from.len()));
            if s.len().saturating_add(grown) > MAX_VALUE.max(s.len()) {
                return Err(limit_error(format!("a value grew past {MAX_VALUE} bytes")));
            }
            Ok(Value::from(s.replace(from.as_str(), &to)))
        },
    );
    env.add_function(
        "range",
        move |lower: i64, upper: Option<i64>, step: Option<i64>| -> Result<Value, Error> {
            let (start, stop) = match upper {
                Some(upper) => (lower, upper),
                None => (0, lower),
            };
            let step = step.unwrap_or(1);
            if step == 0 {
                return Err(limit_error("range step must not be zero"));
            }
            let count = if (step > 0 && stop > start) || (step < 0 && stop < start) {
                (stop.abs_diff(start)).div_ceil(step.unsigned_abs())
            } else {
                0
            };
            if count > MAX_RANGE as u64 {
                return Err(limit_error(format!(
                    "range is limited to {MAX_RANGE} numbers"
                )));
            }
            // Evaluated lazily, so a loop over it is where a render that is past its
            // deadline stops, even when nothing in the loop calls a filter.
            let deadline = deadline();
            Ok(Value::make_iterable(move || {
                (0..count as i64)
                    .map(move |i| start + i * step)
                    .take_while(move |_| Instant::now() < deadline)
            }))
        },
    );
    env
}

fn builtin_filter(name: &str) -> Option<Value> {
    use minijinja::filters as f;
    Some(match name {
        "abs" => Value::from_function(f::abs),
        "attr" => Value::from_function(f::attr),
        "bool" => Value::from_function(f::bool),
        "capitalize" => Value::from_function(f::capitalize),
        "count" | "length" => Value::from_function(f::length),
        "d" | "default" => Value::from_function(f::default),
        "dictsort" => Value::from_function(f::dictsort),
        "e" | "escape" => Value::from_function(f::escape),
        "first" => Value::from_function(f::first),
        "float" => Value::from_function(f::float),
        "groupby" => Value::from_function(f::groupby),
        "int" => Value::from_function(f::int),
        "items" => Value::from_function(f::items),
        "last" => Value::from_function(f::last),
        "lines" => Value::from_function(f::lines),
        "list" => Value::from_function(f::list),
        "lower" => Value::from_function(f::lower),
        "map" => Value::from_function(f::map),
        "max" => Value::from_function(f::max),
        "min" => Value::from_function(f::min),
        "reject" => Value::from_function(f::reject),
        "rejectattr" => Value::from_function(f::rejectattr),
        "reverse" => Value::from_function(f::reverse),
        "round" => Value::from_function(f::round),
        "safe" => Value::from_function(f::safe),
        "select" => Value::from_function(f::select),
        "selectattr" => Value::from_function(f::selectattr),
        "sort" => Value::from_function(f::sort),
        "split" => Value::from_function(f::split),
        "string" => Value::from_function(f::string),
        "sum" => Value::from_function(f::sum),
        "title" => Value::from_function(f::title),
        "trim" => Value::from_function(f::trim),
        "unique" => Value::from_function(f::unique),
        "upper" => Value::from_function(f::upper),
        _ => return None,
    })
}

/// Renders `source` over `ctx` within every bound above; the error says which one it hit.
pub fn render(source: &str, ctx: &serde_json::Value) -> Result<String, String> {
    render_until(source, ctx, Instant::now() + MAX_RENDER_TIME)
}

fn render_until(
    source: &str,
    ctx: &serde_json::Value,
    deadline: Instant,
) -> Result<String, String> {
    check(source)?;
    DEADLINE.with(|d| d.set(Some(deadline)));
    let rendered = ENVIRONMENT.with(|env| {
        let template = env.template_from_str(source).map_err(|e| e.to_string())?;
        let mut out = Capped {
            buf: Vec::new(),
            deadline,
            stopped: None,
        };
        let result = template.render_captured_to(ctx, &mut out).map(drop);
        Ok::<_, String>((result, out))
    });
    DEADLINE.with(|d| d.set(None));
    let (result, out) = rendered?;
    // A `range` loop cut short by the deadline ends without an error of its own.
    out_of_time(deadline).map_err(|e| e.to_string())?;
    if let Some(why) = out.stopped {
        return Err(why.to_owned());
    }
    result.map_err(|e| e.to_string())?;
    String::from_utf8(out.buf).map_err(|e| e.to_string())
}

/// [`render`] of each of `sources` over one context, off the async runtime so a slow
/// template holds up no other delivery of the batch, and given up after [`MAX_RENDER_TIME`]
/// (or `budget`, if shorter) for them all, whatever they do. One blocking job for all of a
/// message's templates: handing work to the blocking pool costs more than a short render.
pub async fn render_bounded(
    sources: Vec<String>,
    ctx: serde_json::Value,
    budget: Duration,
) -> Result<Vec<String>, String> {
    let budget = budget.min(MAX_RENDER_TIME);
    let job = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + budget;
        sources
            .iter()
            .map(|source| render_until(source, &ctx, deadline))
            .collect::<Result<Vec<_>, _>>()
    });
    match tokio::time::timeout(budget + Duration::from_millis(100), job).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(format!("the template failed: {e}")),
        Err(_) => Err("the template ran out of time".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> serde_json::Value {
        json!({"event_type": "order.paid", "data": {"id": 7, "items": [{"name": "a"}, {"name": "b"}]}, "raw": "x".repeat(200_000)})
    }

    #[test]
    fn ordinary_templates_render() {
        let out = render(
            "{{ event_type|upper }} #{{ data.id }}: {{ data['items']|map(attribute='name')|join(', ') }}{% for i in range(3) %}.{% endfor %}{% if event_type in ['order.paid', 'x'] %}!{% endif %}",
            &ctx(),
        )
        .unwrap();
        assert_eq!(out, "ORDER.PAID #7: a, b...!");
        assert!(check("{{ data.id - 1 }} {{ raw|length // 2 }} {{ data|dictsort|first }}").is_ok());
    }

    #[test]
    fn growth_operators_and_unbounded_constructs_are_refused() {
        for hostile in [
            r#"{{ "x" * 100000000 }}"#,
            "{% set s = raw %}{% for i in range(40) %}{% set s = s ~ s %}{% endfor %}{{ s|length }}",
            "{{ raw + raw }}",
            "{{ 2 ** 1000000 }}",
            "{% set l = [raw, raw, raw] %}{{ l }}",
            "{{ {'a': raw} }}",
            "{{ [1]|batch(1000000000, raw) }}",
            "{{ raw|center(1000000000) }}",
            "{{ range(10)|map('default', raw)|list }}",
            "{{ dict(a=raw) }}",
            "{{ 'x'|format(raw) }}",
        ] {
            let err = check(hostile).unwrap_err();
            assert!(err.contains("not available"), "{hostile}: {err}");
            assert!(render(hostile, &ctx()).is_err(), "{hostile}");
        }
    }

    #[test]
    fn loops_sizes_and_output_are_bounded() {
        let started = Instant::now();
        for (hostile, why) in [
            (
                "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
                "range is limited",
            ),
            (
                "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
                "fuel",
            ),
            (
                "{% for i in range(10000) %}{{ raw }}{% endfor %}",
                "grew past",
            ),
            ("{{ raw|list|join(raw) }}", "grew past"),
            ("{{ raw|replace('x', 'yyyyyyyy') }}", "grew past"),
            ("{{ raw|list|string }}", "items"),
        ] {
            let err = render(hostile, &ctx()).unwrap_err();
            assert!(err.contains(why), "{hostile}: {err}");
        }
        assert!(
            started.elapsed() < MAX_RENDER_TIME,
            "{:?}",
            started.elapsed()
        );
    }
}
