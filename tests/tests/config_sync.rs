//! Declarative config: sync upserts by name (ids and secrets kept), prunes only when asked,
//! plans without changing anything on a dry run, and dump → sync → dump is a fixed point.

use hookrelay_tests::{ADMIN_KEY, Stack, request};
use serde_json::Value;

async fn call(stack: &Stack, method: &str, uri: &str, body: &str) -> (u16, String) {
    let auth = format!("Bearer {ADMIN_KEY}");
    let resp = hookrelay_admin::handle(
        &stack.admin(),
        request(
            method,
            uri,
            &[
                ("authorization", &auth),
                ("content-type", "application/yaml"),
            ],
            body.as_bytes(),
        ),
    )
    .await;
    (resp.status().as_u16(), resp.body().clone())
}

fn plan(body: &str) -> Value {
    serde_json::from_str::<Value>(body).unwrap()["plan"].clone()
}

fn names(v: &Value) -> Vec<String> {
    let mut n: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}:{}",
                c["kind"].as_str().unwrap(),
                c["name"].as_str().unwrap()
            )
        })
        .collect();
    n.sort();
    n
}

#[tokio::test]
async fn sync_dry_run_prune_and_round_trip() {
    let stack = Stack::new().await;
    let example = include_str!("../../examples/config.yaml");

    let (s, body) = call(
        &stack,
        "POST",
        "/workspaces/default/config/sync?dry_run=true",
        example,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(names(&plan(&body)["create"]).len(), 5);
    let (_, dumped) = call(&stack, "GET", "/workspaces/default/config/dump", "").await;
    assert!(!dumped.contains("github"), "a dry run changes nothing");

    let (s, body) = call(&stack, "POST", "/workspaces/default/config/sync", example).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(names(&plan(&body)["create"]).len(), 5);
    let (_, eps) = get_json(&stack, "/workspaces/default/endpoints").await;
    let before: Vec<(String, String)> = eps["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_owned(),
                e["secret"].as_str().unwrap().to_owned(),
            )
        })
        .collect();

    // The same file again: nothing to do.
    let (_, body) = call(&stack, "POST", "/workspaces/default/config/sync", example).await;
    assert_eq!(names(&plan(&body)["unchanged"]).len(), 5, "{body}");

    // Round trip: dump → sync → dump is the same file, ids and secrets kept.
    let (s, dump1) = call(&stack, "GET", "/workspaces/default/config/dump", "").await;
    assert_eq!(s, 200);
    assert!(
        !dump1.contains("whsec_change_me"),
        "secrets stay out of dumps: endpoints' are left out, sources' masked"
    );
    let (_, body) = call(&stack, "POST", "/workspaces/default/config/sync", &dump1).await;
    assert_eq!(names(&plan(&body)["unchanged"]).len(), 5, "{body}");
    let (_, dump2) = call(&stack, "GET", "/workspaces/default/config/dump", "").await;
    assert_eq!(dump1, dump2);
    let (_, eps) = get_json(&stack, "/workspaces/default/endpoints").await;
    let after: Vec<(String, String)> = eps["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_owned(),
                e["secret"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(before, after);

    // An update, and a file that drops entries: kept without prune, deleted with it.
    let smaller = "endpoints:\n  - name: everything\n    url: https://audit.example.com/v2\n    events: ['*']\n";
    let (_, body) = call(
        &stack,
        "POST",
        "/workspaces/default/config/sync?dry_run=true&prune=true",
        smaller,
    )
    .await;
    let p = plan(&body);
    assert_eq!(names(&p["update"]), vec!["endpoint:everything"]);
    assert_eq!(names(&p["delete"]).len(), 4);
    let (_, body) = call(&stack, "POST", "/workspaces/default/config/sync", smaller).await;
    assert!(plan(&body)["delete"].as_array().unwrap().is_empty());
    let (_, still) = call(&stack, "GET", "/workspaces/default/config/dump", "").await;
    assert!(still.contains("github") && still.contains("audit.example.com/v2"));
    let (_, _) = call(
        &stack,
        "POST",
        "/workspaces/default/config/sync?prune=true",
        smaller,
    )
    .await;
    let (_, pruned) = call(&stack, "GET", "/workspaces/default/config/dump", "").await;
    assert!(
        !pruned.contains("github") && !pruned.contains("orders-service"),
        "{pruned}"
    );
    assert!(
        stack.store.source_for_path("/log").await.unwrap().is_none(),
        "the pruned source's path is free"
    );

    // Bad files are 400s with the reason, and change nothing.
    for bad in [
        "sources: [{name: x, bogus: 1}]",
        "endpoints:\n  - {name: a, url: 'ftp://x'}",
        "endpoints: [{name: a, url: 'https://a.com'}, {name: a, url: 'https://b.com'}]",
        ": :",
    ] {
        let (s, body) = call(&stack, "POST", "/workspaces/default/config/sync", bad).await;
        assert_eq!(s, 400, "{bad}: {body}");
        assert!(json_of_str(&body)["error"]["code"].is_string());
    }
}

async fn get_json(stack: &Stack, uri: &str) -> (u16, Value) {
    let (s, body) = call(stack, "GET", uri, "").await;
    (s, json_of_str(&body))
}

fn json_of_str(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}
