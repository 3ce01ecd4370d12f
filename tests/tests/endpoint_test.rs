//! `POST …/endpoints/{id}/test` sends a signed `hookrelay.ping` and answers the attempt;
//! creating with `"verify": true` refuses an endpoint that does not answer 2xx.

use hookrelay_tests::{Receiver, Stack, admin_request, json_of, verify_with_standardwebhooks};
use serde_json::json;

#[tokio::test]
async fn ping_and_verified_creation() {
    let stack = Stack::new().await;
    let admin = stack.admin();
    let receiver = Receiver::start().await;
    receiver.script(&[200, 503], 200);

    let resp = hookrelay_admin::handle(
        &admin,
        admin_request(
            "POST",
            "/workspaces/default/endpoints",
            Some(json!({"name": "r", "url": receiver.url, "verify": true})),
        ),
    )
    .await;
    assert_eq!(resp.status(), 201, "{}", resp.body());
    let ep = json_of(&resp);
    let first = &receiver.deliveries()[0];
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&first.body).unwrap()["event_type"],
        "hookrelay.ping"
    );
    verify_with_standardwebhooks(ep["secret"].as_str().unwrap(), first)
        .expect("the ping is signed");

    let id = ep["id"].as_str().unwrap();
    let resp = hookrelay_admin::handle(
        &admin,
        admin_request(
            "POST",
            &format!("/workspaces/default/endpoints/{id}/test"),
            None,
        ),
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", resp.body());
    let attempt = json_of(&resp);
    assert_eq!(attempt["status"], "FAILED");
    assert_eq!(attempt["response"]["status"], 503);
    assert_eq!(attempt["trigger_mode"], "MANUAL");
    let resp = hookrelay_admin::handle(
        &admin,
        admin_request(
            "POST",
            &format!("/workspaces/default/endpoints/{id}/test"),
            None,
        ),
    )
    .await;
    assert_eq!(json_of(&resp)["status"], "SUCCESSFUL");
    // Each ping, the creation one included, is in the attempt history.
    let list = json_of(
        &hookrelay_admin::handle(
            &admin,
            admin_request(
                "GET",
                &format!("/workspaces/default/attempts?endpoint_id={id}"),
                None,
            ),
        )
        .await,
    );
    assert_eq!(list["data"].as_array().unwrap().len(), 3);

    // An endpoint that does not answer 2xx is not created.
    receiver.script(&[404], 404);
    let resp = hookrelay_admin::handle(
        &admin,
        admin_request(
            "POST",
            "/workspaces/default/endpoints",
            Some(json!({"name": "r2", "url": receiver.url, "verify": true})),
        ),
    )
    .await;
    assert_eq!(resp.status(), 400, "{}", resp.body());
    assert_eq!(json_of(&resp)["error"]["code"], "endpoint_unverified");
    let all = json_of(
        &hookrelay_admin::handle(
            &admin,
            admin_request("GET", "/workspaces/default/endpoints", None),
        )
        .await,
    );
    assert_eq!(all["data"].as_array().unwrap().len(), 1);
}
