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
