//! The template's HTTP API on a real port, served by the handlers in-process: what tools that
//! speak HTTP (schemathesis) test against. Routing is the local stack's API Gateway rules.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri};
use axum::routing::any;
use hookrelay_local::gateway::find;
use hookrelay_local::template::{HttpRoute, Template};

use crate::Stack;

struct Functions {
    routes: Vec<HttpRoute>,
    ingest: hookrelay_ingest::Context,
    admin: hookrelay_admin::Context,
}

/// Serves the stack's API on 127.0.0.1; answers its base URL. The server lives as long as
/// the test's runtime.
pub async fn serve(stack: &Stack) -> String {
    let routes = Template::workspace_default()
        .and_then(|t| t.http_routes())
        .expect("template routes");
    let functions = Arc::new(Functions {
        routes,
        ingest: stack.ingest(),
        admin: stack.admin(),
    });
    let app = Router::new().fallback(any(dispatch)).with_state(functions);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

async fn dispatch(
    State(f): State<Arc<Functions>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let Some(route) = find(&f.routes, &method, uri.path()) else {
        let mut r = Response::new(Body::from(r#"{"message":"Not Found"}"#));
        *r.status_mut() = StatusCode::NOT_FOUND;
        return r;
    };
    let mut req = http::Request::builder().method(method).uri(uri);
    for (k, v) in &headers {
        req = req.header(k, v);
    }
    let body = if body.is_empty() {
        lambda_http::Body::Empty
    } else {
        lambda_http::Body::Binary(body.to_vec())
    };
    let req = req.body(body).expect("request");
    let resp = match route.binary.as_str() {
        "ingest" => hookrelay_ingest::handle(&f.ingest, req).await,
        "admin" => hookrelay_admin::handle(&f.admin, req).await,
        other => panic!("no HTTP function {other}"),
    };
    let (parts, body) = resp.into_parts();
    Response::from_parts(parts, Body::from(body))
}
