//! Secrets are shown once: an endpoint's signing secret in its creation and rotation
//! answers, then masked in every read, list and dump; a source's verification secrets never
//! come back in clear. A mask sent back keeps the stored secret; only the root key reveals
//! an endpoint's secret again. Token-bearing bot URLs are masked in attempts and dead
//! letters.

use std::time::Duration;

use hookrelay_shared::redact::mask;
use hookrelay_tests::signing::github;
use hookrelay_tests::{
    Receiver, Stack, admin_call as call, admin_request, attempts_of, create_source, key_call,
    request,
};
use serde_json::{Value, json};

const GITHUB_SECRET: &str = "github-secret-for-the-shown-once-test";

fn assert_masked(v: &Value, field: &str, secret: &str) {
    assert_eq!(
        v[field].as_str(),
        Some(mask(secret).as_str()),
        "{field} is shown masked: {v}"
    );
}

/// The workspace's config dump (YAML).
async fn dump(stack: &Stack) -> String {
    let resp = hookrelay_admin::handle(
        &stack.admin(),
        admin_request("GET", "/workspaces/default/config/dump", None),
    )
    .await;
    assert_eq!(resp.status(), 200);
    resp.into_body()
}

#[tokio::test]
async fn an_endpoint_secret_is_shown_at_creation_and_rotation_only() {
    let stack = Stack::new().await;
    let (s, ep) = call(
        &stack,
        "POST",
        "/workspaces/default/endpoints",
        Some(json!({"name": "e", "url": "https://example.com/hook"})),
    )
    .await;
    assert_eq!(s, 201, "{ep}");
    let secret = ep["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_") && secret.len() > 20);
    let id = ep["id"].as_str().unwrap().to_owned();
    let path = format!("/workspaces/default/endpoints/{id}");

    let (_, got) = call(&stack, "GET", &path, None).await;
    assert_masked(&got, "secret", &secret);
    let (_, list) = call(&stack, "GET", "/workspaces/default/endpoints", None).await;
    assert_masked(&list["data"][0], "secret", &secret);
    let dump = dump(&stack).await;
    assert!(!dump.contains(&secret[6..]), "{dump}");

    // Read, change, write back: the mask keeps the secret.
    let mut body = got.clone();
    for f in [
        "id",
        "workspace",
        "secret",
        "created_at",
        "updated_at",
        "consecutive_failures",
        "version",
    ] {
        body.as_object_mut().unwrap().remove(f);
    }
    body["url"] = json!("https://example.com/other");
    let (s, up) = call(&stack, "PUT", &path, Some(body)).await;
    assert_eq!(s, 200, "{up}");
    assert_masked(&up, "secret", &secret);

    // The root key reveals it; a workspace key cannot.
    let (s, revealed) = call(&stack, "GET", &format!("{path}/secret"), None).await;
    assert_eq!(s, 200, "{revealed}");
    assert_eq!(revealed["secret"], secret.as_str());
    let (s, key) = call(
        &stack,
        "POST",
        "/workspaces/default/keys",
        Some(json!({"name": "ci"})),
    )
    .await;
    assert_eq!(s, 201, "{key}");
    let key = key["key"].as_str().unwrap();
    let (s, refused) = key_call(&stack, key, "GET", &format!("{path}/secret"), None).await;
    assert_eq!(s, 403, "{refused}");
    let (s, read) = key_call(&stack, key, "GET", &path, None).await;
    assert_eq!(s, 200);
    assert_masked(&read, "secret", &secret);

    // A rotation shows the new secret once; afterwards both are masked.
    let (s, rotated) = call(&stack, "POST", &format!("{path}/secret/rotate"), None).await;
    assert_eq!(s, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, secret);
    assert_masked(&rotated, "previous_secret", &secret);
    let (_, got) = call(&stack, "GET", &path, None).await;
    assert_masked(&got, "secret", &new);
    assert_masked(&got, "previous_secret", &secret);
}

#[tokio::test]
async fn source_secrets_never_come_back_and_a_returned_mask_keeps_them() {
    let stack = Stack::new().await;
    let id = create_source(
        &stack,
        json!({"name": "gh", "verification": {"type": "github", "secret": GITHUB_SECRET}}),
    )
    .await;
    let path = format!("/workspaces/default/sources/{id}");
    let (_, got) = call(&stack, "GET", &path, None).await;
    assert_masked(&got["verification"], "secret", GITHUB_SECRET);
    let (_, list) = call(&stack, "GET", "/workspaces/default/sources", None).await;
    assert!(!list.to_string().contains(GITHUB_SECRET), "{list}");
    let dump = dump(&stack).await;
    assert!(!dump.contains(GITHUB_SECRET), "{dump}");

    // The read, renamed and written back: still verifies with the original secret.
    let (s, up) = call(
        &stack,
        "PUT",
        &path,
        Some(json!({"name": "gh2", "verification": got["verification"]})),
    )
    .await;
    assert_eq!(s, 200, "{up}");
    let body = br#"{"action":"opened"}"#;
    let sig = github(GITHUB_SECRET, body);
    let resp = hookrelay_ingest::handle(
        &stack.ingest(),
        request(
            "POST",
            &format!("/in/{id}"),
            &[
                ("x-hub-signature-256", &sig),
                ("x-github-event", "issues"),
                ("x-github-delivery", "d-1"),
            ],
            body,
        ),
    )
    .await;
    assert_eq!(resp.status(), 202, "{}", resp.body());

    // A mask of something else is never stored as a secret.
    let (s, refused) = call(
        &stack,
        "PUT",
        &path,
        Some(json!({"name": "gh2", "verification": {"type": "github", "secret": "****abcd"}})),
    )
    .await;
    assert_eq!(
        (s, refused["error"]["code"].as_str()),
        (400, Some("masked_secret"))
    );
}

#[tokio::test]
async fn bot_tokens_in_urls_are_masked_in_attempts_and_letters() {
    let stack = Stack::with_schedule("").await;
    let receiver = Receiver::start().await;
    receiver.script(&[], 500);
    let token = "2f6b0c7e-aaaa-bbbb-cccc-1234567890ab";
    let url = format!("{}/open-apis/bot/v2/hook/{token}", receiver.url);
    let (s, ep) = call(
        &stack,
        "POST",
        "/workspaces/default/endpoints",
        Some(json!({"name": "chat", "url": url, "kind": "lark_bot", "lark": {"secret": "bot-signing-secret-0123"}})),
    )
    .await;
    assert_eq!(s, 201, "{ep}");
    let (_, got) = call(
        &stack,
        "GET",
        &format!(
            "/workspaces/default/endpoints/{}",
            ep["id"].as_str().unwrap()
        ),
        None,
    )
    .await;
    assert_masked(&got["lark"], "secret", "bot-signing-secret-0123");

    let source = create_source(&stack, json!({"name": "s"})).await;
    let event = hookrelay_tests::send_event(&stack, &source, br#"{"event_type":"a"}"#).await;
    stack
        .deliver_once(&stack.delivery(), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(receiver.deliveries().len(), 1, "the bot was called");
    let attempts = attempts_of(&stack, &event).await;
    assert_eq!(attempts.len(), 1);
    let shown = attempts[0]["request"]["url"].as_str().unwrap();
    assert!(!shown.contains(token), "{shown}");
    assert!(shown.ends_with(&mask(token)), "{shown}");
    let letters = stack.dead_letters().await;
    assert_eq!(letters.len(), 1);
    let letter = letters[0].body.as_deref().unwrap();
    assert!(!letter.contains(token), "{letter}");
}

/// A transport error's message names the URL it failed on: the token in it stays out of the
/// attempt and the logs.
#[tokio::test]
async fn a_connection_error_does_not_repeat_the_bot_token() {
    let stack = Stack::with_schedule("").await;
    let token = "2f6b0c7e-dddd-eeee-ffff-1234567890ab";
    // Nothing listens on port 9 here: the connection is refused.
    let url = format!("http://127.0.0.1:9/open-apis/bot/v2/hook/{token}");
    let (s, ep) = call(
        &stack,
        "POST",
        "/workspaces/default/endpoints",
        Some(json!({"name": "chat", "url": url, "kind": "lark_bot"})),
    )
    .await;
    assert_eq!(s, 201, "{ep}");
    let source = create_source(&stack, json!({"name": "s"})).await;
    let event = hookrelay_tests::send_event(&stack, &source, br#"{"event_type":"a"}"#).await;
    stack
        .deliver_once(&stack.delivery(), Duration::ZERO)
        .await
        .unwrap();
    let attempts = attempts_of(&stack, &event).await;
    assert_eq!(attempts[0]["error_code"], "CONNECTION", "{:?}", attempts[0]);
    let text = attempts[0].to_string();
    assert!(!text.contains(token), "{text}");
}
