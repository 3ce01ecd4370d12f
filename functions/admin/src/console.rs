//! The web console: three static files built into the binary, served without a key (they
//! hold no data; every read they make is an admin API call with the key the user typed).

use http::{HeaderValue, Method, Response, StatusCode, header};

/// No inline script or style, nothing from another origin, no framing: a tenant's name or
/// payload that reaches the page as markup still cannot run.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("../../../console/index.html");
const SCRIPT: &str = include_str!("../../../console/app.js");
const STYLE: &str = include_str!("../../../console/app.css");

/// The files under `/console/`: name, content, content type.
const FILES: [(&str, &str, &str); 2] = [
    ("app.js", SCRIPT, "text/javascript; charset=utf-8"),
    ("app.css", STYLE, "text/css; charset=utf-8"),
];

/// The names of the files served under `/console/`.
pub const FILE_NAMES: [&str; 2] = [FILES[0].0, FILES[1].0];

/// Whether `path` (its trailing `/` kept) is the console's.
pub fn owns(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// The answer for a path [`owns`] accepts.
pub fn serve(method: &Method, path: &str) -> Response<String> {
    if method != Method::GET && method != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "the console accepts GET");
    }
    match path {
        "/console" => asset(INDEX, "text/html; charset=utf-8"),
        // The page's links are relative to `/console`; from `/console/` they would miss.
        "/console/" => redirect("../console"),
        _ => match FILES
            .iter()
            .find(|(name, _, _)| path.strip_prefix("/console/") == Some(name))
        {
            Some((_, body, content_type)) => asset(body, content_type),
            None => plain(StatusCode::NOT_FOUND, "no such console file"),
        },
    }
}

fn asset(body: &str, content_type: &'static str) -> Response<String> {
    let mut resp = Response::new(body.to_owned());
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Small files; revalidating keeps an upgraded deployment's page and script in step.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secure(resp)
}

fn redirect(to: &'static str) -> Response<String> {
    let mut resp = Response::new(String::new());
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    resp.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    secure(resp)
}

fn plain(status: StatusCode, body: &str) -> Response<String> {
    let mut resp = hookrelay_shared::api::text(status, body);
    if status == StatusCode::METHOD_NOT_ALLOWED {
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    secure(resp)
}

fn secure(mut resp: Response<String>) -> Response<String> {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_three_files_with_the_policy() {
        for (path, kind) in [
            ("/console", "text/html"),
            ("/console/app.js", "text/javascript"),
            ("/console/app.css", "text/css"),
        ] {
            let resp = serve(&Method::GET, path);
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            let ct = resp.headers()[header::CONTENT_TYPE].to_str().unwrap();
            assert!(ct.starts_with(kind), "{path}: {ct}");
            assert_eq!(
                resp.headers()[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY
            );
            assert!(!resp.body().is_empty());
        }
        assert_eq!(
            serve(&Method::GET, "/console/").status(),
            StatusCode::PERMANENT_REDIRECT
        );
        assert_eq!(
            serve(&Method::GET, "/console/../openapi.json").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            serve(&Method::POST, "/console").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert!(owns("/console") && owns("/console/app.js") && !owns("/consoles"));
    }

    #[test]
    fn the_page_has_no_inline_script_or_style_and_loads_nothing_remote() {
        let lower = INDEX.to_ascii_lowercase();
        for tag in lower.split("<script").skip(1) {
            let open = &tag[..tag.find('>').unwrap()];
            assert!(open.contains("src="), "inline script: <script{open}>");
            assert!(tag[tag.find('>').unwrap() + 1..].starts_with("</script>"));
        }
        assert!(!lower.contains("<style") && !lower.contains(" style="));
        for handler in [
            "onclick=",
            "onload=",
            "onerror=",
            "onsubmit=",
            "javascript:",
        ] {
            assert!(!lower.contains(handler), "inline handler {handler}");
        }
        for file in [INDEX, SCRIPT, STYLE] {
            assert!(!file.contains("http://") && !file.contains("https://"));
            assert!(!file.contains("innerHTML") && !file.contains("eval("));
        }
    }
}
