//! One truth in the docs: the OpenAPI document, the README and docs/ name exactly the error
//! codes, enum values, template variables and fields the code produces. Every list here comes
//! from the code (its types, its constants, or a scan of its sources), never from a list kept
//! by hand in this file, so a new code, variant or field fails this test until it is
//! documented, and a documented one the code no longer produces fails it too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use hookrelay_shared::model::{attempt_error, disabled_reason};
use hookrelay_shared::ops_events;
use hookrelay_shared::store::ApiKey;
use hookrelay_shared::{
    Attempt, AttemptRequest, AttemptResponse, AttemptStatus, BatchConfig, DeactivationWarning,
    DeadLetter, DeliveryConfig, DeliveryMode, DeliveryTask, Endpoint, EndpointKind, Event,
    EventRef, FailingPolicy, HmacAlgorithm, LarkBot, LarkMessageType, RetryConfig,
    SignatureEncoding, Source, SourceResponse, TaskBatch, Timestamp, TriggerMode, Verification,
    Workspace, WorkspaceSettings,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

type Set = BTreeSet<String>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn openapi() -> Value {
    serde_json::from_str(&read("docs/openapi.json")).expect("docs/openapi.json is JSON")
}

fn set<I: IntoIterator<Item = S>, S: ToString>(items: I) -> Set {
    items.into_iter().map(|s| s.to_string()).collect()
}

fn at<'a>(doc: &'a Value, pointer: &str) -> &'a Value {
    doc.pointer(pointer)
        .unwrap_or_else(|| panic!("docs/openapi.json has nothing at {pointer}"))
}

/// The `enum` of the schema at `pointer` (without the empty string a query parameter may
/// allow to mean "any").
fn enum_at(doc: &Value, pointer: &str) -> Set {
    at(doc, &format!("{pointer}/enum"))
        .as_array()
        .unwrap_or_else(|| panic!("{pointer}/enum is not an array"))
        .iter()
        .filter_map(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What is written between backticks.
fn ticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Backticked bare names (`raw`, `not_found`), leaving out JSON, paths and prose in backticks.
fn ticked_names(text: &str) -> Set {
    ticked(text)
        .into_iter()
        .filter(|t| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        })
        .collect()
}

/// The text from `start` up to the next `end` after it.
fn passage<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("the docs no longer say {start:?}"))
        + start.len();
    let len = text[from..]
        .find(end)
        .unwrap_or_else(|| panic!("nothing ends {start:?} with {end:?}"));
    &text[from..from + len]
}

/// The first column of the first table under the markdown heading `heading`.
fn table_keys(md: &str, heading: &str) -> Set {
    let mut lines = md.lines().skip_while(|l| l.trim() != heading);
    assert!(lines.next().is_some(), "no heading {heading:?}");
    let rows: Vec<&str> = lines
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .collect();
    assert!(!rows.is_empty(), "no table under {heading:?}");
    rows.iter()
        .map(|row| {
            let cell = row.split('|').nth(1).unwrap_or_default();
            ticked(cell)
                .into_iter()
                .next()
                .unwrap_or_else(|| panic!("the first cell of {row:?} is not in backticks"))
        })
        .collect()
}

/// Every string in the document.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(o) => o.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// The serialized names of a serde enum's variants, read from the error serde gives for an
/// unknown one: nothing to keep in step when a variant is added.
fn variants<T: DeserializeOwned>(probe: Value) -> Set {
    let err = serde_json::from_value::<T>(probe)
        .err()
        .expect("the probe is no variant")
        .to_string();
    let expected = err
        .split_once("expected")
        .unwrap_or_else(|| panic!("serde's error changed its wording: {err}"))
        .1;
    let names = set(ticked(expected));
    assert!(!names.is_empty(), "no variants in {err:?}");
    names
}

fn unit_variants<T: DeserializeOwned>() -> Set {
    variants::<T>(json!("\u{1}"))
}

fn assert_same(what: &str, documented: &Set, truth: &Set) {
    let missing: Vec<_> = truth.difference(documented).collect();
    let extra: Vec<_> = documented.difference(truth).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: the code produces {missing:?} but the docs do not say so; \
         the docs list {extra:?} but the code never produces them"
    );
}

fn assert_within(what: &str, documented: &Set, truth: &Set) {
    let extra: Vec<_> = documented.difference(truth).collect();
    assert!(
        extra.is_empty(),
        "{what}: the docs name {extra:?} but the code never produces them"
    );
}

// ---- a scan of the sources, for values the code writes as literals ----

struct SourceFile {
    path: String,
    /// Without comment lines and without the unit tests at the end.
    text: String,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn sources() -> Vec<SourceFile> {
    let mut dirs = vec![root().join("shared/src"), root().join("plugins/src")];
    for f in std::fs::read_dir(root().join("functions")).expect("functions/") {
        dirs.push(f.expect("functions/ entry").path().join("src"));
    }
    let mut files = Vec::new();
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        rust_files(dir, &mut files);
    }
    assert!(files.len() > 20, "the source scan found only {files:?}");
    files
        .into_iter()
        .map(|path| {
            let full = std::fs::read_to_string(&path).expect("source file");
            let code = full.split("#[cfg(test)]").next().unwrap_or_default();
            let text = code
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            let path = path
                .strip_prefix(root())
                .unwrap_or(&path)
                .display()
                .to_string();
            SourceFile { path, text }
        })
        .collect()
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The arguments of every call of `name(…)`, as source text.
fn calls(text: &str, name: &str) -> Vec<Vec<String>> {
    let pattern = format!("{name}(");
    let mut out = Vec::new();
    for (i, _) in text.match_indices(&pattern) {
        if text[..i].chars().next_back().is_some_and(is_ident) {
            continue;
        }
        let mut args = Vec::new();
        let mut arg = String::new();
        let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
        for c in text[i + pattern.len()..].chars() {
            if in_str {
                arg.push(c);
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => in_str = false,
                    _ => {}
                }
                continue;
            }
            match c {
                '"' => in_str = true,
                '(' | '[' | '{' => depth += 1,
                ')' if depth == 0 => break,
                ')' | ']' | '}' => depth = depth.saturating_sub(1),
                ',' if depth == 0 => {
                    args.push(std::mem::take(&mut arg).trim().to_owned());
                    continue;
                }
                _ => {}
            }
            arg.push(c);
        }
        if !arg.trim().is_empty() {
            args.push(arg.trim().to_owned());
        }
        out.push(args);
    }
    out
}

/// The string a plain literal argument holds.
fn literal(arg: &str) -> Option<String> {
    let arg = [".to_owned()", ".to_string()", ".into()"]
        .iter()
        .fold(arg, |a, suffix| a.strip_suffix(suffix).unwrap_or(a));
    let inner = arg.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains(['"', '\\'])).then(|| inner.to_owned())
}

/// Every literal assigned to a field `field: "…"` in a struct expression.
fn field_literals(text: &str, field: &str) -> Vec<String> {
    let pattern = format!("{field}: \"");
    text.match_indices(&pattern)
        .filter(|(i, _)| !text[..*i].chars().next_back().is_some_and(is_ident))
        .filter_map(|(i, _)| {
            let rest = &text[i + pattern.len()..];
            rest.find('"').map(|end| rest[..end].to_owned())
        })
        .collect()
}

fn is_api_code(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
}

fn is_attempt_code(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_uppercase() || c == '_')
}

/// Every `code` of an API error answer: the literals given to `ApiError`'s constructors, and
/// the codes of the ingest function's verification refusals (`code: "invalid_signature"`),
/// which reach `ApiError::new` through a variable.
fn api_error_codes(files: &[SourceFile]) -> Set {
    let mut codes = Set::new();
    for f in files {
        let mut constructors = calls(&f.text, "ApiError::new");
        if f.path.ends_with("shared/src/api.rs") {
            constructors.extend(calls(&f.text, "Self::new"));
        }
        for args in constructors {
            codes.extend(args.get(1).and_then(|a| literal(a)));
        }
        for args in calls(&f.text, "bad_request") {
            codes.extend(args.first().and_then(|a| literal(a)));
        }
        codes.extend(
            field_literals(&f.text, "code")
                .into_iter()
                .filter(|c| is_api_code(c)),
        );
        codes.extend(status_code_pairs(&f.text));
    }
    // A scan that stopped matching would otherwise pass with an empty list.
    for known in [
        "not_found",
        "unavailable",
        "validation_failed",
        "method_not_allowed",
        "internal",
        "invalid_signature",
    ] {
        assert!(
            codes.contains(known),
            "the source scan no longer finds {known:?}"
        );
    }
    codes
}

/// Codes paired with their status where the code is chosen outside `ApiError` (a plugin
/// chain's failures): `(502, "plugin_failed")`.
fn status_code_pairs(text: &str) -> Set {
    let mut codes = Set::new();
    for (i, _) in text.match_indices('(') {
        let rest = &text[i + 1..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if digits.len() != 3 || !matches!(digits.as_bytes()[0], b'4' | b'5') {
            continue;
        }
        let after = rest[3..].trim_start();
        if let Some(lit) = after
            .strip_prefix(',')
            .map(str::trim_start)
            .and_then(|a| a.strip_prefix('"'))
            .and_then(|a| a.split('"').next())
            .filter(|c| is_api_code(c))
        {
            codes.insert(lit.to_owned());
        }
    }
    codes
}

/// The codes of the ingest function's verification refusals (its `401` answers).
fn verification_codes(files: &[SourceFile]) -> Set {
    let codes: Set = files
        .iter()
        .filter(|f| f.path.contains("functions/ingest/"))
        .flat_map(|f| field_literals(&f.text, "code"))
        .filter(|c| is_api_code(c))
        .collect();
    assert!(codes.contains("invalid_signature"), "scan found {codes:?}");
    codes
}

/// `endpoint.deactivated`-shaped names in `text`.
fn ops_types_in(text: &str) -> Set {
    ticked(text)
        .into_iter()
        .filter(|t| {
            let (head, tail) = t.split_once('.').unwrap_or_default();
            matches!(head, "endpoint" | "attempt")
                && !tail.is_empty()
                && tail.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
        .collect()
}

// ---- the tests ----

#[test]
fn every_api_error_code_is_documented() {
    let files = sources();
    let codes = api_error_codes(&files);
    let doc = openapi();
    assert_same(
        "openapi.json Error.error.code enum",
        &enum_at(
            &doc,
            "/components/schemas/Error/properties/error/properties/code",
        ),
        &codes,
    );
    assert_same(
        "README, API error codes",
        &table_keys(&read("README.md"), "### API error codes"),
        &codes,
    );

    // The codes each response names must be real ones.
    let mut texts = Vec::new();
    strings(&doc, &mut texts);
    let mut named = 0;
    for text in texts.iter().filter(|t| t.contains("Codes: ")) {
        let list = passage(text, "Codes: ", ".");
        named += 1;
        assert_within(
            &format!("openapi.json {text:?}"),
            &ticked_names(list),
            &codes,
        );
    }
    assert!(named > 10, "responses no longer name their codes");

    let verification = verification_codes(&files);
    let refusals = texts
        .iter()
        .find(|t| t.contains("`missing_header`"))
        .expect("openapi.json names the verification refusals");
    assert!(
        ticked_names(refusals).is_superset(&verification),
        "openapi.json lists the refusals {refusals:?}, the code has {verification:?}"
    );
    assert_same(
        "docs/sources.md, verification refusals",
        &ticked_names(passage(
            &read("docs/sources.md"),
            "with the check that failed",
            ")",
        )),
        &verification,
    );
    let metrics = read("docs/metrics.md");
    assert_within(
        "docs/metrics.md, EventsRejected reasons",
        &ticked_names(passage(&metrics, "(the error code:", ")")),
        &codes,
    );
}

#[test]
fn every_attempt_error_code_is_documented() {
    let truth = set(attempt_error::ALL.iter());
    // A code written as a literal instead of through the constants would escape the list.
    for f in sources() {
        let mut written: Set = field_literals(&f.text, "code")
            .into_iter()
            .filter(|c| is_attempt_code(c))
            .collect();
        for pattern in ["error_code = Some", "error_code: Some"] {
            for args in calls(&f.text, pattern) {
                written.extend(args.first().and_then(|a| literal(a)));
            }
        }
        assert_within(
            &format!(
                "{}: attempt error codes outside model::attempt_error",
                f.path
            ),
            &written,
            &truth,
        );
    }
    let doc = openapi();
    assert_same(
        "openapi.json Attempt.error_code enum",
        &enum_at(&doc, "/components/schemas/Attempt/properties/error_code"),
        &truth,
    );
    assert_same(
        "openapi.json DeadLetter.last_error_code enum",
        &enum_at(
            &doc,
            "/components/schemas/DeadLetter/properties/last_error_code",
        ),
        &truth,
    );
    let readme = read("README.md");
    assert_same(
        "README, attempt error codes",
        &table_keys(&readme, "### Attempt error codes"),
        &truth,
    );
}

#[test]
fn every_disabled_reason_is_documented() {
    let truth = set(disabled_reason::ALL.iter());
    for f in sources() {
        let mut written = Set::new();
        for (name, index) in [
            ("disable_endpoint", 2),
            ("disable_endpoint_if", 2),
            ("deactivated", 1),
        ] {
            for args in calls(&f.text, name) {
                written.extend(args.get(index).and_then(|a| literal(a)));
            }
        }
        assert_within(
            &format!("{}: disable reasons outside model::disabled_reason", f.path),
            &written,
            &truth,
        );
    }
    let doc = openapi();
    assert_same(
        "openapi.json Endpoint.disabled_reason enum",
        &enum_at(
            &doc,
            "/components/schemas/Endpoint/properties/disabled_reason",
        ),
        &truth,
    );
    let readme = read("README.md");
    assert_same(
        "README, disabled reasons",
        &table_keys(&readme, "### Why an endpoint is disabled"),
        &truth,
    );
    assert_within(
        "docs/metrics.md, EndpointsDeactivated reasons",
        &ticked_names(passage(
            &read("docs/metrics.md"),
            "| `EndpointsDeactivated` |",
            "\n",
        ))
        .into_iter()
        .filter(|t| t != "EndpointsDeactivated" && t != "Reason")
        .collect(),
        &truth,
    );
}

#[test]
fn every_ops_event_type_is_documented() {
    let truth = set(ops_events::TYPES.iter());
    let doc = openapi();
    assert_same(
        "openapi.json info.description, operational events",
        &ops_types_in(at(&doc, "/info/description").as_str().unwrap_or_default()),
        &truth,
    );
    assert_same(
        "README, operational events",
        &ops_types_in(passage(
            &read("README.md"),
            "**Operational events**",
            "\n\n",
        )),
        &truth,
    );
    assert_same(
        "docs/metrics.md, OpsEvents types",
        &ops_types_in(&read("docs/metrics.md")),
        &truth,
    );
}

/// Every `enum` of the document is one of these, each checked against its Rust type; an enum
/// added to the document without a truth in the code fails here.
#[test]
fn every_enum_matches_its_type() {
    let doc = openapi();
    let s = "/components/schemas";
    let verification = variants::<Verification>(json!({"type": "\u{1}"}));
    let config_kinds: Set = sources()
        .iter()
        .filter(|f| f.path.ends_with("functions/admin/src/config.rs"))
        .flat_map(|f| field_literals(&f.text, "kind"))
        .collect();
    let checks: Vec<(String, Set)> = vec![
        (
            format!("{s}/Attempt/properties/status"),
            unit_variants::<AttemptStatus>(),
        ),
        (
            "/paths/~1workspaces~1{ws}~1attempts/get/parameters/2/schema".into(),
            unit_variants::<AttemptStatus>(),
        ),
        (
            format!("{s}/Attempt/properties/trigger_mode"),
            unit_variants::<TriggerMode>(),
        ),
        (
            format!("{s}/Attempt/properties/error_code"),
            set(attempt_error::ALL.iter()),
        ),
        (
            format!("{s}/DeadLetter/properties/last_error_code"),
            set(attempt_error::ALL.iter()),
        ),
        (
            format!("{s}/Endpoint/properties/disabled_reason"),
            set(disabled_reason::ALL.iter()),
        ),
        (
            format!("{s}/Endpoint/properties/kind"),
            unit_variants::<EndpointKind>(),
        ),
        (
            format!("{s}/SourceDryRun/properties/outcome"),
            unit_variants::<hookrelay_admin::views::DryRunOutcome>(),
        ),
        (
            format!("{s}/EndpointInput/properties/kind"),
            unit_variants::<EndpointKind>(),
        ),
        (
            format!("{s}/EndpointSettings/properties/kind"),
            unit_variants::<EndpointKind>(),
        ),
        (
            format!("{s}/DeliveryConfig/properties/mode"),
            unit_variants::<DeliveryMode>(),
        ),
        (
            format!("{s}/DeliveryConfigInput/properties/mode"),
            unit_variants::<DeliveryMode>(),
        ),
        (
            "/components/parameters/DeadLetterQueue/schema".into(),
            set(hookrelay_admin::DEAD_LETTER_QUEUES.iter()),
        ),
        (
            format!("{s}/DeliveryConfig/properties/ordering"),
            unit_variants::<hookrelay_shared::DeliveryOrdering>(),
        ),
        (
            format!("{s}/DeliveryConfigInput/properties/ordering"),
            unit_variants::<hookrelay_shared::DeliveryOrdering>(),
        ),
        (
            format!("{s}/LarkBot/properties/msg_type"),
            unit_variants::<LarkMessageType>(),
        ),
        (
            format!("{s}/LarkBotInput/properties/msg_type"),
            unit_variants::<LarkMessageType>(),
        ),
        (
            format!("{s}/VerificationHmac/properties/algorithm"),
            unit_variants::<HmacAlgorithm>(),
        ),
        (
            format!("{s}/VerificationHmacInput/properties/algorithm"),
            unit_variants::<HmacAlgorithm>(),
        ),
        (
            format!("{s}/VerificationHmac/properties/encoding"),
            unit_variants::<SignatureEncoding>(),
        ),
        (
            format!("{s}/VerificationHmacInput/properties/encoding"),
            unit_variants::<SignatureEncoding>(),
        ),
        (
            format!("{s}/Error/properties/error/properties/code"),
            api_error_codes(&sources()),
        ),
        (format!("{s}/ConfigChange/properties/kind"), config_kinds),
        (
            format!("{s}/Event/properties/payload_encoding"),
            set(hookrelay_admin::views::PAYLOAD_ENCODINGS.iter()),
        ),
        (
            "/paths/~1console~1{file}/get/parameters/0/schema".into(),
            set(hookrelay_admin::CONSOLE_FILES.iter()),
        ),
    ];
    for (pointer, truth) in &checks {
        assert_same(
            &format!("openapi.json {pointer}"),
            &enum_at(&doc, pointer),
            truth,
        );
    }

    let mut enums = Set::new();
    fn walk(v: &Value, pointer: String, out: &mut Set) {
        match v {
            Value::Object(o) => {
                for (k, v) in o {
                    if k == "enum" {
                        out.insert(pointer.clone());
                    } else {
                        let k = k.replace('~', "~0").replace('/', "~1");
                        walk(v, format!("{pointer}/{k}"), out);
                    }
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    walk(v, format!("{pointer}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    walk(&doc, String::new(), &mut enums);
    let checked = set(checks.iter().map(|(p, _)| p));
    assert_within(
        "openapi.json enums with no type behind them",
        &enums,
        &checked,
    );

    // Verification types: the discriminators, the sources page and the README.
    for schema in ["Verification", "VerificationInput"] {
        let mapping = at(&doc, &format!("{s}/{schema}/discriminator/mapping"))
            .as_object()
            .expect("mapping");
        assert_same(
            &format!("openapi.json {schema} discriminator"),
            &set(mapping.keys()),
            &verification,
        );
    }
    assert_same(
        "docs/sources.md, verification types",
        &table_keys(&read("docs/sources.md"), "## Verification types"),
        &verification,
    );
    assert_same(
        "README, source types",
        &ticked_names(passage(
            &read("README.md"),
            "verify where a webhook came from:",
            ";",
        )),
        &verification,
    );
}

fn sample_event(payload: &str) -> Event {
    Event {
        id: "evt_1".into(),
        workspace: "default".into(),
        source_id: "src_1".into(),
        event_type: "order.paid".into(),
        idempotency_key: "k".into(),
        received_at: Timestamp::now(),
        payload: payload.as_bytes().to_vec(),
        endpoint_ids: vec!["ep_1".into()],
        content_type: Some("application/json".into()),
        hops: 2,
        trace: Some(hookrelay_shared::trace_context::TraceContext {
            state: Some("congo=t61rcWkgMzE".into()),
            ..hookrelay_shared::trace_context::TraceContext::start()
        }),
    }
}

#[test]
fn lark_template_variables_are_documented() {
    let ctx = hookrelay_shared::outbound::lark::context(&sample_event(r#"{"data": {"id": 1}}"#));
    let truth = set(ctx.as_object().expect("the context is an object").keys());
    assert_same(
        "lark::TEMPLATE_VARIABLES",
        &set(hookrelay_shared::outbound::lark::TEMPLATE_VARIABLES.iter()),
        &truth,
    );

    let doc = openapi();
    let mut texts = Vec::new();
    strings(&doc, &mut texts);
    let templates: Vec<&String> = texts
        .iter()
        .filter(|t| t.to_lowercase().contains("minijinja"))
        .collect();
    assert!(
        templates.len() >= 4,
        "the title and template of LarkBot and LarkBotInput describe their variables"
    );
    for text in templates {
        assert_same(
            &format!("openapi.json {text:?}"),
            &ticked_names(passage(text, " over ", ";")),
            &truth,
        );
    }
    assert_same(
        "README, Lark template variables",
        &ticked_names(passage(
            &read("README.md"),
            "[MiniJinja](https://docs.rs/minijinja) over",
            "; they are checked",
        )),
        &truth,
    );
}

// ---- fields: samples with every optional field set, and with none ----

fn t() -> Timestamp {
    Timestamp::now()
}

fn full_endpoint() -> Endpoint {
    let mut e = Endpoint::new(
        "default",
        "orders",
        "https://example.com/hook",
        vec!["*".into()],
    );
    e.headers.insert("X-Team".into(), "orders".into());
    e.retry = Some(RetryConfig {
        schedule: vec![5, 60],
    });
    e.timeout_seconds = Some(10);
    e.kind = EndpointKind::LarkBot;
    e.lark = Some(LarkBot {
        secret: Some("s".into()),
        msg_type: LarkMessageType::Post,
        title: Some("{{ event_type }}".into()),
        template: Some("{{ raw }}".into()),
    });
    e.delivery = Some(DeliveryConfig {
        mode: DeliveryMode::Batch,
        batch: Some(BatchConfig::default()),
        // Every field written: not a valid combination with batches.
        ordering: hookrelay_shared::DeliveryOrdering::Fifo,
        ordering_key: Some("/data/customer_id".into()),
    });
    e.rate_limit = Some(hookrelay_shared::rate_limit::RateLimit {
        per_second: 10,
        burst: Some(20),
    });
    // Every field of a condition at once: not a valid filter, but one that writes them all.
    let test = json!({"path": "/a", "eq": 1});
    e.filter = Some(
        serde_json::from_value(json!({
            "all": [test], "any": [test], "not": test, "path": "/total", "header": "x-h",
            "eq": 1, "ne": 2, "in": [3], "exists": true, "gt": 1, "gte": 1, "lt": 9, "lte": 9,
            "prefix": "p"
        }))
        .unwrap(),
    );
    e.plugins = vec![hookrelay_shared::model::EndpointPlugin::Function {
        code: "function handle(r) {}".into(),
        timeout_ms: Some(50),
    }];
    e.previous_secret = Some("whsec_old".into());
    e.previous_secret_expires_at = Some(t());
    e.last_success_at = Some(t());
    e.last_failure_at = Some(t());
    e.consecutive_failures = 3;
    e.disabled_reason = Some(disabled_reason::MANUAL.into());
    e.disabled_at = Some(t());
    e.failing_since = Some(t());
    e.probe_at = Some(t());
    e.probes = 2;
    e.enabled_at = Some(t());
    e.deactivation_warned_at = Some(t());
    e.recovery = Some(hookrelay_shared::model::Recovery {
        since: t(),
        until: t(),
        cursor: Some("c".into()),
        recovered: 10,
    });
    e
}

fn full_source() -> Source {
    let mut s = Source::new("default", "github");
    s.plugins = vec![hookrelay_shared::model::SourcePlugin::Jsonschema {
        schema: json!({"type": "object"}),
    }];
    s.rate_limit = Some(hookrelay_shared::rate_limit::RateLimit {
        per_second: 10,
        burst: None,
    });
    s.event_type_header = Some("x-github-event".into());
    s.event_type_pointer = Some("/type".into());
    s.default_event_type = Some("push".into());
    s.verification = Verification::Hmac {
        header: "X-Sig".into(),
        secret: "s".into(),
        algorithm: HmacAlgorithm::Sha256,
        encoding: SignatureEncoding::Hex,
        prefix: Some("sha256=".into()),
    };
    s.timestamp_tolerance_seconds = Some(60);
    s.path = Some("/log".into());
    s.response = Some(SourceResponse {
        status: 200,
        content_type: "text/plain".into(),
        body: "ok".into(),
    });
    s.accept_raw = true;
    s
}

fn workspace(settings: WorkspaceSettings) -> Workspace {
    Workspace {
        id: "ws_1".into(),
        name: "team".into(),
        created_at: t(),
        settings,
        version: 3,
    }
}

fn full_settings() -> WorkspaceSettings {
    WorkspaceSettings {
        disable_failing: Some(FailingPolicy::default()),
        ops_endpoint_id: Some("ep_1".into()),
        failing_after: Some(5),
        warn_before_deactivation: Some(DeactivationWarning { days: 30 }),
    }
}

fn attempt(full: bool) -> Attempt {
    let mut headers = BTreeMap::new();
    headers.insert("content-type".to_owned(), "application/json".to_owned());
    Attempt {
        id: "att_1".into(),
        workspace: "default".into(),
        event_id: "evt_1".into(),
        endpoint_id: "ep_1".into(),
        status: AttemptStatus::Failed,
        attempt_number: 1,
        trigger_mode: TriggerMode::Initial,
        scheduled_at: t(),
        attempted_at: t(),
        exhausted: false,
        error_code: full.then(|| attempt_error::HTTP_STATUS.into()),
        error_message: full.then(|| "500".into()),
        next_attempt_at: full.then(t),
        request: AttemptRequest {
            method: "POST".into(),
            url: "https://example.com/hook".into(),
            headers: if full {
                headers.clone()
            } else {
                BTreeMap::new()
            },
        },
        response: full.then(|| AttemptResponse {
            status: Some(500),
            latency: 12,
            headers,
            body: Some("oops".into()),
            truncated: full,
        }),
    }
}

fn dead_letter(full: bool) -> DeadLetter {
    let event = sample_event("{}");
    let mut task = DeliveryTask::new(&event, "EVT#1", "ep_1");
    if full {
        task.manual = true;
        task.attempts = 3;
        task.not_before = Some(Timestamp::now());
        task.group = Some("ep_1:0123456789abcdef0123456789abcdef".into());
        task.batch = Some(TaskBatch {
            id: "bat_1".into(),
            events: vec![EventRef {
                event_key: "EVT#1".into(),
                event_id: "evt_1".into(),
            }],
            seq: Some(1),
        });
    }
    DeadLetter {
        task,
        reason: "exhausted".into(),
        attempts: 8,
        last_status: full.then_some(500),
        last_error_code: full.then(|| attempt_error::HTTP_STATUS.into()),
        endpoint_url: "https://example.com/hook".into(),
        event_type: "order.paid".into(),
        failed_at: t(),
    }
}

fn api_key() -> ApiKey {
    ApiKey {
        id: "key_1".into(),
        workspace: "team".into(),
        workspace_id: Some("wsp_1".into()),
        name: "ci".into(),
        prefix: "hrk_AbCdEf".into(),
        created_at: t(),
        hash: "00".into(),
    }
}

fn json_of<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).expect("serializable")
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(doc, at(doc, r.trim_start_matches('#'))),
        None => schema,
    }
}

/// Compares what the code writes with the schema, all the way down: with `full` samples the
/// properties both ways, with minimal ones the `required` lists both ways.
fn compare(
    doc: &Value,
    schema: &Value,
    value: &Value,
    path: &str,
    full: bool,
    errors: &mut Vec<String>,
) {
    let schema = resolve(doc, schema);
    // A recursive schema (a content filter's conditions) is checked in full once, at its
    // first level; below, what is written must still be documented.
    let at: *const Value = schema;
    let repeated = ANCESTORS.with(|a| a.borrow().contains(&at));
    ANCESTORS.with(|a| a.borrow_mut().push(at));
    compare_at(doc, schema, value, path, full, repeated, errors);
    ANCESTORS.with(|a| a.borrow_mut().pop());
}

thread_local! {
    static ANCESTORS: std::cell::RefCell<Vec<*const Value>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn compare_at(
    doc: &Value,
    schema: &Value,
    value: &Value,
    path: &str,
    full: bool,
    repeated: bool,
    errors: &mut Vec<String>,
) {
    if let (Some(mapping), Some(tag)) = (
        schema.pointer("/discriminator/mapping"),
        schema
            .pointer("/discriminator/propertyName")
            .and_then(Value::as_str)
            .and_then(|p| value.get(p))
            .and_then(Value::as_str),
    ) {
        match mapping.get(tag) {
            Some(variant) => {
                compare(doc, &json!({"$ref": variant}), value, path, full, errors);
            }
            None => errors.push(format!("{path}: no schema for {tag:?}")),
        }
        return;
    }
    match value {
        Value::Object(fields) => {
            let Some(props) = schema.get("properties").and_then(Value::as_object) else {
                return;
            };
            let written = set(fields.keys());
            if full {
                let documented = set(props.keys());
                for k in written.difference(&documented) {
                    errors.push(format!("{path}.{k} is written but not in the schema"));
                }
                for k in documented.difference(&written).filter(|_| !repeated) {
                    errors.push(format!("{path}.{k} is in the schema but never written"));
                }
            } else {
                let required: Set = schema
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| {
                        r.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                for k in written.difference(&required) {
                    errors.push(format!("{path}.{k} is always written but not required"));
                }
                for k in required.difference(&written) {
                    errors.push(format!("{path}.{k} is required but may be absent"));
                }
            }
            for (k, v) in fields {
                if let Some(p) = props.get(k) {
                    compare(doc, p, v, &format!("{path}.{k}"), full, errors);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    compare(doc, item_schema, v, &format!("{path}[{i}]"), full, errors);
                }
            }
        }
        _ => {}
    }
}

#[test]
fn resource_fields_match_the_schemas() {
    use hookrelay_admin::views;

    let full_src = full_source();
    let min_src = Source::new("default", "plain");
    let full_event = sample_event(r#"{"id": 1}"#);
    let min_event = Event {
        content_type: None,
        hops: 0,
        trace: None,
        ..sample_event("{}")
    };
    let key = api_key();
    let samples: Vec<(&str, Value, bool)> = vec![
        ("Workspace", json_of(workspace(full_settings())), true),
        (
            "Workspace",
            json_of(workspace(WorkspaceSettings::default())),
            false,
        ),
        ("Source", json_of(views::source(&full_src)), true),
        ("Source", json_of(views::source(&min_src)), false),
        ("Endpoint", json_of(full_endpoint()), true),
        (
            "Endpoint",
            json_of(Endpoint::new("default", "e", "https://example.com", vec![])),
            false,
        ),
        (
            "Event",
            {
                // The payload or, when it would not fit an answer, the link to it.
                let mut full = json_of(views::event(&full_event, true));
                full["payload_url"] = json_of(views::linked_event(
                    &full_event,
                    Some("https://bucket.s3.amazonaws.com/events/default/evt_1".into()),
                ))["payload_url"]
                    .clone();
                full
            },
            true,
        ),
        ("Event", json_of(views::event(&min_event, false)), false),
        ("Attempt", json_of(attempt(true)), true),
        ("Attempt", json_of(attempt(false)), false),
        ("DeadLetter", json_of(dead_letter(true)), true),
        ("DeadLetter", json_of(dead_letter(false)), false),
        (
            "ApiKeyCreated",
            json_of(views::key(&key, Some("hrk_secret"))),
            true,
        ),
        ("ApiKey", json_of(views::key(&key, None)), true),
        ("ApiKey", json_of(views::key(&key, None)), false),
    ];
    let doc = openapi();
    let mut errors = Vec::new();
    for (name, value, full) in &samples {
        let schema = at(&doc, &format!("/components/schemas/{name}"));
        compare(&doc, schema, value, name, *full, &mut errors);
    }
    assert!(
        errors.is_empty(),
        "openapi.json and the code disagree:\n{}",
        errors.join("\n")
    );
}
