//! API Gateway's part, played locally: the template's `HttpApi` routes on one port, each
//! forwarded to the function that serves it (through `cargo lambda watch`'s function URLs).

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri};
use axum::routing::any;

use crate::template::HttpRoute;

/// Does `path` match the template's route path? `{name}` takes one segment, `{name+}` the
/// rest (at least one).
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let mut pat = pattern.trim_matches('/').split('/');
    let mut segs = path.trim_matches('/').split('/');
    loop {
        match (pat.next(), segs.next()) {
            (None, None) => return true,
            (Some(p), Some(s)) if p.starts_with('{') && p.ends_with("+}") => return !s.is_empty(),
            (Some(p), Some(s)) if p.starts_with('{') && p.ends_with('}') => {
                if s.is_empty() {
                    return false;
                }
            }
            (Some(p), Some(s)) if p == s => {}
            _ => return false,
        }
    }
}

/// The route API Gateway would choose: among those that match, the most specific (more
/// literal segments, no greedy variable), and an exact method before `ANY`.
pub fn find<'a>(routes: &'a [HttpRoute], method: &Method, path: &str) -> Option<&'a HttpRoute> {
    routes
        .iter()
        .filter(|r| {
            (r.method == "ANY" || r.method == method.as_str()) && path_matches(&r.path, path)
        })
        .max_by_key(|r| {
            let literal = r
                .path
                .split('/')
                .filter(|s| !s.is_empty() && !s.starts_with('{'))
                .count();
            (!r.path.contains("+}"), literal, r.method != "ANY")
        })
}

struct Gateway {
    routes: Vec<HttpRoute>,
    lambda_base: String,
    http: reqwest::Client,
}

/// The router: every request goes to the function its route names, or gets API Gateway's
/// own 404.
pub fn router(routes: Vec<HttpRoute>, lambda_base: String) -> Router {
    let gw = Arc::new(Gateway {
        routes,
        lambda_base,
        http: reqwest::Client::new(),
    });
    Router::new().fallback(any(forward)).with_state(gw)
}

async fn forward(
    State(gw): State<Arc<Gateway>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let Some(route) = find(&gw.routes, &method, uri.path()) else {
        return plain(StatusCode::NOT_FOUND, r#"{"message":"Not Found"}"#);
    };
    let target = format!(
        "{}/lambda-url/{}{}{}",
        gw.lambda_base,
        route.binary,
        uri.path(),
        uri.query().map(|q| format!("?{q}")).unwrap_or_default()
    );
    let mut req = gw.http.request(method, &target).body(body);
    for (k, v) in headers.iter() {
        if k != axum::http::header::HOST {
            req = req.header(k, v);
        }
    }
    match req.send().await {
        Ok(resp) => {
            let mut out = Response::builder().status(resp.status());
            for (k, v) in resp.headers() {
                out = out.header(k, v);
            }
            let bytes = resp.bytes().await.unwrap_or_default();
            out.body(Body::from(bytes))
                .unwrap_or_else(|_| plain(StatusCode::BAD_GATEWAY, r#"{"message":"Bad Gateway"}"#))
        }
        Err(e) => {
            tracing::warn!(error = %e, function = %route.binary, "function unreachable");
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"message":"Service Unavailable"}"#,
            )
        }
    }
}

fn plain(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_template_paths() {
        assert!(path_matches("/in/{source}", "/in/src_1"));
        assert!(!path_matches("/in/{source}", "/in/"));
        assert!(!path_matches("/in/{source}", "/in/a/b"));
        assert!(path_matches("/healthz", "/healthz"));
        assert!(path_matches(
            "/workspaces/{proxy+}",
            "/workspaces/default/endpoints/ep_1"
        ));
        assert!(!path_matches("/workspaces/{proxy+}", "/workspaces"));
        assert!(!path_matches("/workspaces/{proxy+}", "/other/x"));
    }

    #[test]
    fn finds_routes_by_method() {
        let routes = vec![
            HttpRoute {
                method: "POST".into(),
                path: "/in/{source}".into(),
                binary: "ingest".into(),
            },
            HttpRoute {
                method: "ANY".into(),
                path: "/workspaces/{proxy+}".into(),
                binary: "admin".into(),
            },
        ];
        assert_eq!(
            find(&routes, &Method::POST, "/in/x").unwrap().binary,
            "ingest"
        );
        assert!(find(&routes, &Method::GET, "/in/x").is_none());
        assert_eq!(
            find(&routes, &Method::DELETE, "/workspaces/a/b")
                .unwrap()
                .binary,
            "admin"
        );
    }
}
