//! Reading query strings and JSON bodies, with 400s that say what is wrong.

use std::collections::HashMap;

use hookrelay_shared::api::ApiError;
use hookrelay_shared::store::PageRequest;
use lambda_http::{Request, RequestExt};
use serde::de::DeserializeOwned;

pub fn query(req: &Request) -> HashMap<String, String> {
    let mut q: HashMap<String, String> = req
        .uri()
        .query()
        .map(|qs| {
            url::form_urlencoded::parse(qs.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    for (k, v) in req.query_string_parameters().iter() {
        q.entry(k.to_owned()).or_insert_with(|| v.to_owned());
    }
    q
}

pub fn page(q: &HashMap<String, String>) -> Result<PageRequest, ApiError> {
    let limit = q
        .get("limit")
        .map(|l| {
            l.parse::<i32>()
                .ok()
                .filter(|l| (1..=100).contains(l))
                .ok_or_else(|| ApiError::bad_request("invalid_limit", "limit must be 1 to 100"))
        })
        .transpose()?;
    Ok(PageRequest {
        limit,
        cursor: q.get("cursor").filter(|c| !c.is_empty()).cloned(),
    })
}

pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let body = req.body().as_ref();
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "missing_body",
            "a JSON body is required",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_body", format!("the body is not valid: {e}")))
}

/// The hosts (with ports) this deployment answers on, as the request shows them: its `Host`
/// header, and API Gateway's domain name and default `execute-api` name for the API. An
/// endpoint pointing at one of them would feed the deployment its own deliveries.
pub fn own_hosts(req: &Request) -> Vec<(String, u16)> {
    let mut hosts = Vec::new();
    let mut add = |authority: &str| {
        if let Ok(a) = authority.parse::<http::uri::Authority>() {
            hosts.push((
                a.host().trim_matches(['[', ']']).to_ascii_lowercase(),
                a.port_u16().unwrap_or(443),
            ));
        }
    };
    if let Some(host) = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
    {
        add(host);
    }
    if let Some(lambda_http::request::RequestContext::ApiGatewayV2(c)) = req.request_context_ref() {
        if let Some(domain) = &c.domain_name {
            add(domain);
        }
        if let (Some(api), Ok(region)) = (&c.apiid, std::env::var("AWS_REGION")) {
            add(&format!("{api}.execute-api.{region}.amazonaws.com"));
        }
    }
    hosts
}
