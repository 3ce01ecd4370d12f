//! API Gateway's part, played locally: the template's `HttpApi` routes on one port. Each
//! request becomes the event API Gateway's HTTP API sends (payload format 2.0), the function
//! its route names is invoked with it, and the function's answer becomes the HTTP response:
//! what reaches a function, and what the client gets back, is what AWS would give.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::apigw::{
    ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContext,
    ApiGatewayV2httpRequestContextHttpDescription, ApiGatewayV2httpResponse,
};
use aws_lambda_events::encodings::Body as LambdaBody;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Uri, header};
use axum::routing::any;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures::future::BoxFuture;

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

/// The values of the route's `{name}` and `{name+}` variables in `path`, as API Gateway
/// passes them in `pathParameters`.
pub fn path_parameters(pattern: &str, path: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut segs = path.trim_matches('/').split('/');
    for p in pattern.trim_matches('/').split('/') {
        if let Some(name) = p.strip_prefix('{').and_then(|p| p.strip_suffix("+}")) {
            out.insert(name.to_owned(), segs.by_ref().collect::<Vec<_>>().join("/"));
            break;
        }
        let seg = segs.next().unwrap_or_default();
        if let Some(name) = p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            out.insert(name.to_owned(), seg.to_owned());
        }
    }
    out
}

/// Does API Gateway's HTTP API hand a body of this `Content-Type` to the function as text?
/// Only `text/*`, `application/json`, `application/xml` and `application/javascript` are
/// text; any other type, and a body without a `Content-Type`, arrives base64-encoded
/// (`isBase64Encoded: true`).
pub fn is_text_media_type(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let media = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media.starts_with("text/")
        || matches!(
            media.as_str(),
            "application/json" | "application/xml" | "application/javascript"
        )
}

/// The event's `body` and `isBase64Encoded` for a request body. A text body that is not
/// UTF-8 cannot travel in a JSON string without losing bytes, so it is base64-encoded too:
/// the function always gets the exact bytes.
pub fn event_body(content_type: Option<&str>, body: &[u8]) -> (Option<String>, bool) {
    if body.is_empty() {
        return (None, false);
    }
    if is_text_media_type(content_type)
        && let Ok(text) = std::str::from_utf8(body)
    {
        return (Some(text.to_owned()), false);
    }
    (Some(B64.encode(body)), true)
}

/// The event API Gateway's HTTP API (payload format 2.0) sends a function for one request
/// on `route`.
pub fn event(
    route: &HttpRoute,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiGatewayV2httpRequest {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let (body, is_base64_encoded) = event_body(content_type, body);
    // Format 2.0 joins repeated headers with commas and moves cookies to their own field.
    let mut joined = HeaderMap::new();
    let mut cookies = Vec::new();
    for name in headers.keys() {
        let values: Vec<&[u8]> = headers.get_all(name).iter().map(|v| v.as_bytes()).collect();
        if name == header::COOKIE {
            cookies.extend(values.iter().flat_map(|v| {
                String::from_utf8_lossy(v)
                    .split("; ")
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            }));
            continue;
        }
        if let Ok(v) = HeaderValue::from_bytes(&values.join(&b","[..])) {
            joined.insert(name.clone(), v);
        }
    }
    let route_key = format!(
        "{} {}",
        if route.method == "ANY" {
            "ANY"
        } else {
            route.method.as_str()
        },
        route.path
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
    http.method = method.clone();
    http.path = Some(uri.path().to_owned());
    http.protocol = Some("HTTP/1.1".into());
    http.source_ip = Some("127.0.0.1".into());
    http.user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut ctx = ApiGatewayV2httpRequestContext::default();
    ctx.route_key = Some(route_key.clone());
    ctx.account_id = Some("123456789012".into());
    ctx.stage = Some("$default".into());
    ctx.request_id = Some(ulid::Ulid::new().to_string());
    ctx.apiid = Some("local".into());
    ctx.domain_name = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    ctx.time_epoch = now.as_millis() as i64;
    ctx.http = http;
    let mut ev = ApiGatewayV2httpRequest::default();
    ev.version = Some("2.0".into());
    ev.route_key = Some(route_key);
    ev.raw_path = Some(uri.path().to_owned());
    ev.raw_query_string = Some(uri.query().unwrap_or_default().to_owned());
    ev.cookies = (!cookies.is_empty()).then_some(cookies);
    ev.headers = joined;
    ev.path_parameters = path_parameters(&route.path, uri.path());
    ev.request_context = ctx;
    ev.body = body;
    ev.is_base64_encoded = is_base64_encoded;
    ev
}

/// The HTTP response API Gateway makes of a function's answer.
pub fn response(answer: ApiGatewayV2httpResponse) -> Response<Body> {
    let body = match answer.body {
        None | Some(LambdaBody::Empty) => Vec::new(),
        Some(LambdaBody::Text(t)) if answer.is_base64_encoded => match B64.decode(t.as_bytes()) {
            Ok(b) => b,
            Err(_) => return internal_error(),
        },
        Some(LambdaBody::Text(t)) => t.into_bytes(),
        Some(LambdaBody::Binary(b)) => b,
        Some(_) => Vec::new(),
    };
    let mut out = Response::builder().status(u16::try_from(answer.status_code).unwrap_or(500));
    for (k, v) in answer.headers.iter() {
        out = out.header(k, v);
    }
    for c in &answer.cookies {
        out = out.header(header::SET_COOKIE, c);
    }
    out.body(Body::from(body))
        .unwrap_or_else(|_| internal_error())
}

/// What the functions are invoked through: the local Lambda service under `make dev`, the
/// handlers in-process in the tests. Answers the function's JSON output.
pub trait Invoke: Send + Sync + 'static {
    fn invoke<'a>(
        &'a self,
        function: &'a str,
        event: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, InvokeError>>;
}

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The function could not be reached (not built yet, crashed, not running).
    #[error("function unreachable: {0}")]
    Unreachable(String),
    /// The function ran and failed (an error, a panic, a timeout).
    #[error("function failed: {0}")]
    Failed(String),
}

/// Lambda's Invoke API at `base` (the local stack's is on `HOOKRELAY_LAMBDA_PORT`).
pub struct LambdaApi {
    pub base: String,
    pub http: reqwest::Client,
}

impl Invoke for LambdaApi {
    fn invoke<'a>(
        &'a self,
        function: &'a str,
        event: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, InvokeError>> {
        Box::pin(async move {
            let resp = self
                .http
                .post(format!(
                    "{}/2015-03-31/functions/{function}/invocations",
                    self.base
                ))
                .body(event)
                .send()
                .await
                .map_err(|e| InvokeError::Unreachable(e.to_string()))?;
            let status = resp.status();
            let function_error = resp.headers().contains_key("x-amz-function-error");
            let body = resp
                .bytes()
                .await
                .map_err(|e| InvokeError::Unreachable(e.to_string()))?;
            if !status.is_success() || function_error {
                return Err(InvokeError::Failed(format!(
                    "{status}: {}",
                    String::from_utf8_lossy(&body)
                )));
            }
            Ok(body.to_vec())
        })
    }
}

struct Gateway {
    routes: Vec<HttpRoute>,
    functions: Arc<dyn Invoke>,
}

/// The router: every request goes to the function its route names, or gets API Gateway's
/// own 404.
pub fn router(routes: Vec<HttpRoute>, functions: Arc<dyn Invoke>) -> Router {
    let gw = Arc::new(Gateway { routes, functions });
    Router::new()
        .fallback(any(forward))
        .with_state(gw)
        .layer(axum::extract::DefaultBodyLimit::max(HTTP_API_MAX_BODY))
}

/// HTTP API's largest request body; a larger one never reaches a function.
pub const HTTP_API_MAX_BODY: usize = 10 * 1024 * 1024;
/// Lambda's largest synchronous invocation request ("Request must be smaller than 6291456
/// bytes for the InvokeFunction operation") and response. The request is the whole event:
/// the body, escaped as a JSON string or base64-encoded, with the request's headers.
pub const LAMBDA_MAX_REQUEST: usize = 6_291_456;
pub const LAMBDA_MAX_RESPONSE: usize = 6_291_556;

fn too_large() -> Response<Body> {
    plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        r#"{"message":"Request Entity Too Large"}"#,
    )
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
    let ev = event(route, &method, &uri, &headers, &body);
    let Ok(ev) = serde_json::to_vec(&ev) else {
        return internal_error();
    };
    if ev.len() > LAMBDA_MAX_REQUEST {
        tracing::warn!(bytes = ev.len(), function = %route.binary, "invocation request over Lambda's 6 MB");
        return too_large();
    }
    match gw.functions.invoke(&route.binary, ev).await {
        Ok(out) if out.len() > LAMBDA_MAX_RESPONSE => {
            tracing::warn!(bytes = out.len(), function = %route.binary, "function response over Lambda's 6 MB");
            internal_error()
        }
        Ok(out) => match serde_json::from_slice::<ApiGatewayV2httpResponse>(&out) {
            Ok(answer) => response(answer),
            Err(e) => {
                tracing::warn!(error = %e, function = %route.binary, "function answered something that is not an HTTP response");
                internal_error()
            }
        },
        Err(InvokeError::Unreachable(e)) => {
            tracing::warn!(error = %e, function = %route.binary, "function unreachable");
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"message":"Service Unavailable"}"#,
            )
        }
        Err(InvokeError::Failed(e)) => {
            tracing::warn!(error = %e, function = %route.binary, "function failed");
            internal_error()
        }
    }
}

/// API Gateway's answer when the integration fails.
fn internal_error() -> Response<Body> {
    plain(
        StatusCode::INTERNAL_SERVER_ERROR,
        r#"{"message":"Internal Server Error"}"#,
    )
}

fn plain(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
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

    #[test]
    fn reads_path_parameters() {
        let p = path_parameters("/in/{source}", "/in/src_1");
        assert_eq!(p.get("source").map(String::as_str), Some("src_1"));
        let p = path_parameters("/workspaces/{proxy+}", "/workspaces/default/endpoints/ep_1");
        assert_eq!(
            p.get("proxy").map(String::as_str),
            Some("default/endpoints/ep_1")
        );
        assert!(path_parameters("/healthz", "/healthz").is_empty());
    }

    #[test]
    fn text_bodies_travel_as_text_and_everything_else_as_base64() {
        let bytes = b"caf\xe9 \xff\xfe";
        for ct in [
            Some("application/json"),
            Some("text/plain"),
            Some("application/octet-stream"),
            None,
        ] {
            let (body, b64) = event_body(ct, bytes);
            assert!(b64, "{ct:?}: a body that is not UTF-8 is base64-encoded");
            assert_eq!(B64.decode(body.unwrap()).unwrap(), bytes);
        }
        assert_eq!(
            event_body(Some("Text/Plain; charset=utf-8"), "é".as_bytes()),
            (Some("é".to_owned()), false)
        );
        assert_eq!(
            event_body(Some("application/json"), b"{}"),
            (Some("{}".to_owned()), false)
        );
        // API Gateway treats these as binary even when they are UTF-8.
        for ct in [
            None,
            Some("application/octet-stream"),
            Some("application/x-www-form-urlencoded"),
            Some("application/cloudevents+json"),
        ] {
            assert_eq!(
                event_body(ct, b"a=1"),
                (Some("YT0x".to_owned()), true),
                "{ct:?}"
            );
        }
        assert_eq!(event_body(Some("text/plain"), b""), (None, false));
    }

    #[test]
    fn builds_the_http_api_event() {
        let route = HttpRoute {
            method: "POST".into(),
            path: "/in/{source}".into(),
            binary: "ingest".into(),
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; b=2"));
        let uri: Uri = "/in/src_1?x=1".parse().unwrap();
        let ev = event(&route, &Method::POST, &uri, &headers, b"\xff");
        let json = serde_json::to_value(&ev).unwrap();
        assert_eq!(json["version"], "2.0");
        assert_eq!(json["routeKey"], "POST /in/{source}");
        assert_eq!(json["rawPath"], "/in/src_1");
        assert_eq!(json["rawQueryString"], "x=1");
        assert_eq!(json["pathParameters"]["source"], "src_1");
        assert_eq!(json["headers"]["x-a"], "1,2");
        assert_eq!(json["cookies"], serde_json::json!(["a=1", "b=2"]));
        assert_eq!(json["body"], "/w==");
        assert_eq!(json["isBase64Encoded"], true);
        assert_eq!(json["requestContext"]["http"]["method"], "POST");
    }

    #[test]
    fn answers_like_api_gateway() {
        let answer: ApiGatewayV2httpResponse = serde_json::from_value(serde_json::json!({
            "statusCode": 202,
            "headers": {"content-type": "application/octet-stream"},
            "body": "/w==",
            "isBase64Encoded": true,
            "cookies": []
        }))
        .unwrap();
        let r = response(answer);
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/octet-stream"
        );
    }
}
