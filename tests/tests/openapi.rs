//! The OpenAPI document: committed, served at `GET /openapi.json` without a key, covering
//! every route of the template, and the running API checked against it by schemathesis.

use std::process::Command;
use std::time::Duration;

use hookrelay_local::template::Template;
use hookrelay_tests::{ADMIN_KEY, Stack, gateway, request};
use serde_json::Value;

fn document() -> Value {
    serde_json::from_str(hookrelay_admin::OPENAPI).expect("docs/openapi.json is JSON")
}

#[tokio::test]
async fn the_document_is_served_without_a_key() {
    let stack = Stack::new().await;
    let resp =
        hookrelay_admin::handle(&stack.admin(), request("GET", "/openapi.json", &[], b"")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let served: Value = serde_json::from_str(resp.body()).unwrap();
    assert_eq!(served, document());
    assert_eq!(served["openapi"], "3.1.0");
    let resp =
        hookrelay_admin::handle(&stack.admin(), request("POST", "/openapi.json", &[], b"")).await;
    assert_eq!(resp.status(), 405);
}

/// `{source}` and `{proxy+}` in the template are named parameters in the document; custom
/// source paths cannot be listed, so the greedy ingest route is the one exception.
#[test]
fn every_template_route_is_described() {
    let doc = document();
    let paths = doc["paths"].as_object().expect("paths");
    let shape = |p: &str| {
        p.split('/')
            .map(|s| if s.starts_with('{') { "{}" } else { s })
            .collect::<Vec<_>>()
            .join("/")
    };
    let described: Vec<String> = paths.keys().map(|p| shape(p)).collect();
    for route in Template::workspace_default()
        .unwrap()
        .http_routes()
        .unwrap()
    {
        if route.path == "/{proxy+}" {
            continue;
        }
        if let Some(prefix) = route.path.strip_suffix("/{proxy+}") {
            assert!(
                described
                    .iter()
                    .any(|d| d.starts_with(&format!("{prefix}/"))),
                "nothing under {prefix}/ is described"
            );
            continue;
        }
        let want = shape(&route.path);
        let Some((path, item)) = paths.iter().find(|(p, _)| shape(p) == want) else {
            panic!("{} {} is not described", route.method, route.path);
        };
        if route.method != "ANY" {
            assert!(
                item.get(route.method.to_lowercase()).is_some(),
                "{} {path} is not described",
                route.method
            );
        }
    }
}

/// schemathesis (pinned in `infra/requirements-dev.txt`) against the handlers behind the
/// template's routes: no 5xx, statuses, content types and bodies as documented, and 401
/// without the key. Bounded in examples per operation and in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_api_matches_the_document() {
    let stack = Stack::new().await;
    let base = gateway::serve(&stack).await;
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/schemathesis");
    let report =
        std::env::temp_dir().join(format!("hookrelay-schemathesis-{}", std::process::id()));
    let run = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .current_dir(std::env::temp_dir())
            .args(["run", &format!("{base}/openapi.json")])
            .args(["--url", &base])
            .args(["-H", &format!("Authorization: Bearer {ADMIN_KEY}")])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,ignored_auth",
            ])
            .args(["--phases", "examples,coverage,fuzzing"])
            .args(["--max-examples", "10", "--seed", "20261123"])
            .args(["--max-time", "120", "--request-timeout", "20"])
            .args(["--workers", "1", "--generation-database", "none"])
            .args(["--no-color", "--output-truncate", "true"])
            .arg("--report-dir")
            .arg(&report)
            .output()
    });
    let out = tokio::time::timeout(Duration::from_secs(420), run)
        .await
        .expect("schemathesis finishes within its bound")
        .unwrap()
        .expect("schemathesis runs (run `make venv`)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "schemathesis found the API and its document disagree:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
