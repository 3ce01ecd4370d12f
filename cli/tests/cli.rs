//! The `hookrelay` binary against the stack's HTTP API on a real port (the gateway `make dev`
//! runs, the functions in-process): every command as a person or a script uses it, its
//! output and its exit codes.

use std::time::Duration;

use hookrelay_tests::{ADMIN_KEY, Receiver, Stack, gateway};
use serde_json::{Value, json};

struct Run {
    code: i32,
    out: String,
    err: String,
}

async fn hookrelay(url: &str, key: Option<&str>, args: &[&str]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookrelay"));
    cmd.args(args)
        .env("HOOKRELAY_URL", url)
        .env_remove("HOOKRELAY_KEY")
        .env_remove("HOOKRELAY_WORKSPACE");
    if let Some(k) = key {
        cmd.env("HOOKRELAY_KEY", k);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the command finished")
        .expect("the binary ran");
    Run {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn ok(url: &str, args: &[&str]) -> String {
    let r = hookrelay(url, Some(ADMIN_KEY), args).await;
    assert_eq!(r.code, 0, "hookrelay {args:?}: {}{}", r.out, r.err);
    r.out
}

async fn ok_json(url: &str, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(url, &all).await).expect("--json prints JSON")
}

fn id_after<'a>(out: &'a str, prefix: &str) -> &'a str {
    let start = out
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} in {out}"));
    out[start..]
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .next()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_everyday_commands_work_against_the_api() {
    let stack = Stack::new().await;
    let url = gateway::serve(&stack).await;
    let receiver = Receiver::start().await;

    let out = ok(
        &url,
        &[
            "sources", "create", "--name", "gh", "--type", "github", "--secret", "s3cret",
        ],
    )
    .await;
    let source = id_after(&out, "src_").to_owned();
    assert!(out.contains("/in/"), "{out}");
    let out = ok(
        &url,
        &[
            "endpoints",
            "create",
            "--name",
            "rx",
            "--url",
            &receiver.url,
            "--events",
            "push,ping",
        ],
    )
    .await;
    let endpoint = id_after(&out, "ep_").to_owned();
    assert!(out.contains("whsec_"), "the secret is shown once: {out}");
    let listed = ok(&url, &["endpoints", "list"]).await;
    assert!(
        listed.starts_with("ID") && listed.contains(&endpoint) && listed.contains("push,ping"),
        "{listed}"
    );
    assert!(ok(&url, &["sources", "list"]).await.contains("github"));

    let sent = ok(
        &url,
        &[
            "send",
            &source,
            "--event-type",
            "push",
            "--secret",
            "s3cret",
        ],
    )
    .await;
    let event = id_after(&sent, "evt_").to_owned();
    assert!(sent.starts_with("202"), "{sent}");
    let refused = hookrelay(
        &url,
        Some(ADMIN_KEY),
        &["send", &source, "--secret", "wrong"],
    )
    .await;
    assert_eq!(refused.code, 1, "{}", refused.err);
    assert!(
        refused.err.contains("401 invalid_signature"),
        "{}",
        refused.err
    );

    stack.drain(&stack.delivery()).await;
    let events = ok_json(&url, &["events", "list", "--type", "push"]).await;
    assert_eq!(events["data"][0]["id"], event.as_str());
    assert_eq!(events["data"][0]["endpoint_ids"], json!([endpoint]));
    let attempts = ok(&url, &["attempts", "list", "--event", &event]).await;
    assert!(
        attempts.contains("SUCCESSFUL") && attempts.contains("200"),
        "{attempts}"
    );
    ok(&url, &["retry", &event, "--endpoint", &endpoint]).await;
    stack.drain(&stack.delivery()).await;
    assert_eq!(
        receiver.deliveries().len(),
        2,
        "the delivery and its manual retry"
    );
    let one = ok_json(&url, &["events", "get", &event]).await;
    assert_eq!(one["event_type"], "push");

    let dir = std::env::temp_dir().join(format!("hookrelay-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.yaml");
    std::fs::write(
        &file,
        format!(
            "sources:\n- name: orders\nendpoints:\n- name: audit\n  url: {}\n",
            receiver.url
        ),
    )
    .unwrap();
    let plan = ok(&url, &["sync", file.to_str().unwrap(), "--dry-run"]).await;
    assert!(
        plan.contains("dry run") && plan.contains("orders"),
        "{plan}"
    );
    assert!(
        !ok(&url, &["dump"]).await.contains("orders"),
        "a dry run changes nothing"
    );
    ok(&url, &["sync", file.to_str().unwrap()]).await;
    let dump = ok(&url, &["dump"]).await;
    assert!(dump.contains("orders") && dump.contains("audit"), "{dump}");

    // A letter the delivery function dead-lettered: shown, then sent back and delivered.
    let (key, stored) = stack
        .store
        .get_event("default", &event)
        .await
        .expect("read")
        .expect("stored");
    let queue = hookrelay_shared::queue::Queue::connect(&stack.aws, &stack.settings);
    queue
        .dead_letter(&hookrelay_shared::DeadLetter {
            task: hookrelay_shared::DeliveryTask::new(&stored, &key, &endpoint),
            reason: "exhausted".into(),
            attempts: 3,
            last_status: Some(500),
            last_error_code: None,
            endpoint_url: receiver.url.clone(),
            event_type: "push".into(),
            failed_at: hookrelay_shared::Timestamp::now(),
        })
        .await
        .expect("dead-lettered");
    let peek = ok(&url, &["dlq", "peek"]).await;
    assert!(peek.contains("1 letter(s) on the queue"), "{peek}");
    assert!(
        peek.contains(&event) && peek.contains("exhausted"),
        "{peek}"
    );
    let ordered = ok(&url, &["dlq", "peek", "--ordered"]).await;
    assert!(ordered.contains("0 letter(s) on the queue"), "{ordered}");
    let redriven = ok(&url, &["dlq", "redrive", "--limit", "5"]).await;
    assert!(redriven.starts_with("redrove 1 letter(s)"), "{redriven}");
    stack.drain(&stack.delivery()).await;
    assert_eq!(receiver.deliveries().len(), 3, "the redriven letter too");
    assert!(
        ok(&url, &["dlq", "redrive", "--ordered"])
            .await
            .starts_with("redrove 0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_signs_for_every_verification_type() {
    let stack = Stack::new().await;
    let url = gateway::serve(&stack).await;
    let whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let cases: Vec<(Value, Option<&str>, Vec<&str>)> = vec![
        (json!({"type": "none"}), None, vec![]),
        (
            json!({"type": "stripe", "secret": "sk"}),
            Some("sk"),
            vec![],
        ),
        (
            json!({"type": "standard_webhooks", "secret": whsec}),
            Some(whsec),
            vec![],
        ),
        (
            json!({"type": "shopify", "secret": "sh"}),
            Some("sh"),
            vec![],
        ),
        (json!({"type": "slack", "secret": "sl"}), Some("sl"), vec![]),
        (
            json!({"type": "hmac", "header": "X-Sig", "secret": "hm", "algorithm": "sha512", "encoding": "base64", "prefix": "sha512="}),
            Some("hm"),
            vec![],
        ),
        (
            json!({"type": "basic_auth", "username": "u", "password": "pw"}),
            Some("pw"),
            vec![],
        ),
        (
            json!({"type": "api_key", "header": "X-Key", "value": "k1"}),
            Some("k1"),
            vec![],
        ),
        (
            json!({"type": "lark", "encrypt_key": "ek"}),
            Some("ek"),
            vec![],
        ),
        (
            json!({"type": "lark", "verification_token": "tok"}),
            None,
            vec!["--token", "tok"],
        ),
    ];
    for (i, (verification, secret, extra)) in cases.into_iter().enumerate() {
        let kind = verification["type"].as_str().unwrap().to_owned();
        let body = json!({"name": format!("s{i}"), "verification": verification}).to_string();
        let out = ok(&url, &["sources", "create", "--body", &body]).await;
        let source = id_after(&out, "src_").to_owned();
        let mut args = vec!["send", source.as_str()];
        if let Some(s) = secret {
            args.extend(["--secret", s]);
        }
        args.extend(extra);
        let sent = ok(&url, &args).await;
        assert!(sent.starts_with("202 accepted as evt_"), "{kind}: {sent}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_clear_messages_and_exit_codes() {
    let stack = Stack::new().await;
    let url = gateway::serve(&stack).await;
    let no_key = hookrelay(&url, None, &["sources", "list"]).await;
    assert_eq!(no_key.code, 1);
    assert!(no_key.err.contains("401 unauthorized"), "{}", no_key.err);
    let invalid = hookrelay(
        &url,
        Some(ADMIN_KEY),
        &["endpoints", "create", "--name", "x", "--url", "ftp://nope"],
    )
    .await;
    assert_eq!(invalid.code, 1);
    assert!(
        invalid.err.contains("validation_failed") && invalid.err.contains("url:"),
        "{}",
        invalid.err
    );
    let down = hookrelay("http://127.0.0.1:9", Some(ADMIN_KEY), &["sources", "list"]).await;
    assert_eq!(down.code, 3, "{}", down.err);
    assert!(down.err.contains("cannot reach"), "{}", down.err);
    let usage = hookrelay(
        &url,
        Some(ADMIN_KEY),
        &["events", "list", "--limit", "many"],
    )
    .await;
    assert_eq!(usage.code, 2, "{}", usage.err);
    let missing = hookrelay(&url, Some(ADMIN_KEY), &["sync", "/nonexistent/config.yaml"]).await;
    assert_eq!(missing.code, 2, "{}", missing.err);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_follows_new_events_and_attempts() {
    let stack = Stack::new().await;
    let url = gateway::serve(&stack).await;
    let receiver = Receiver::start().await;
    let out = ok(&url, &["sources", "create", "--name", "t"]).await;
    let source = id_after(&out, "src_").to_owned();
    ok(
        &url,
        &[
            "endpoints",
            "create",
            "--name",
            "rx",
            "--url",
            &receiver.url,
        ],
    )
    .await;
    let old = ok(&url, &["send", &source]).await;
    let old = id_after(&old, "evt_").to_owned();
    let tail = {
        let url = url.clone();
        tokio::spawn(async move {
            hookrelay(
                &url,
                Some(ADMIN_KEY),
                &["--json", "tail", "--interval", "0.3", "--duration", "4"],
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let new = ok(&url, &["send", &source]).await;
    let new = id_after(&new, "evt_").to_owned();
    stack.drain(&stack.delivery()).await;
    let tailed = tail.await.unwrap();
    assert_eq!(tailed.code, 0, "{}", tailed.err);
    let lines: Vec<Value> = tailed
        .out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["kind"] == "event" && l["item"]["id"] == new.as_str()),
        "{}",
        tailed.out
    );
    assert!(
        lines
            .iter()
            .any(|l| l["kind"] == "attempt" && l["item"]["event_id"] == new.as_str()),
        "{}",
        tailed.out
    );
    assert!(
        !lines
            .iter()
            .any(|l| l["kind"] == "event" && l["item"]["id"] == old.as_str()),
        "history is not news: {}",
        tailed.out
    );
}
