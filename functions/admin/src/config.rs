//! Declarative configuration: a YAML or JSON file listing a workspace's sources and
//! endpoints by name. Sync creates and updates to match (ids and endpoint secrets kept),
//! deletes what the file no longer lists only with `?prune=true`, and with `?dry_run=true`
//! answers the plan without changing anything. Dump writes a file that syncs back to the
//! same state.

use std::collections::{BTreeMap, HashSet};

use hookrelay_shared::api::{self, ApiError};
use hookrelay_shared::store::PageRequest;
use hookrelay_shared::{Endpoint, Source};
use http::{HeaderValue, Response, StatusCode, header};
use lambda_http::Request;
use serde::{Deserialize, Serialize};

use crate::endpoints::{self, CreateEndpoint};
use crate::sources::{self, CreateSource};
use crate::{Context, request, store_error};

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub sources: Vec<CreateSource>,
    #[serde(default)]
    pub endpoints: Vec<CreateEndpoint>,
}

#[derive(Debug, Default, Serialize)]
struct Plan {
    create: Vec<Change>,
    update: Vec<Change>,
    delete: Vec<Change>,
    unchanged: Vec<Change>,
}

#[derive(Debug, Serialize)]
struct Change {
    kind: &'static str,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
}

async fn all_sources(ctx: &Context, ws: &str) -> Result<Vec<Source>, ApiError> {
    let mut req = PageRequest {
        limit: Some(100),
        cursor: None,
    };
    let mut out = Vec::new();
    loop {
        let page = ctx
            .store
            .list_sources(ws, &req)
            .await
            .map_err(store_error)?;
        out.extend(page.data);
        match page.next {
            Some(c) => req.cursor = Some(c),
            None => return Ok(out),
        }
    }
}

/// Oldest first, so that among same-named entities the first made is the one matched.
fn by_name<T>(items: Vec<T>, name: impl Fn(&T) -> &str) -> BTreeMap<String, T> {
    let mut map = BTreeMap::new();
    for item in items.into_iter().rev() {
        map.entry(name(&item).to_owned()).or_insert(item);
    }
    map
}

fn parse(req: &Request) -> Result<ConfigFile, ApiError> {
    let body = req.body().as_ref();
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "missing_body",
            "send a YAML or JSON config file",
        ));
    }
    // JSON is YAML too, so one parser reads both.
    serde_yaml_ng::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_config",
            format!("the config file is not valid: {e}"),
        )
    })
}

/// `POST /workspaces/{ws}/config/sync[?prune=true][&dry_run=true]`
pub async fn sync(ctx: &Context, ws: &str, req: &Request) -> Result<Response<String>, ApiError> {
    let q = request::query(req);
    let flag = |name: &str| q.get(name).is_some_and(|v| v == "true" || v == "1");
    let (prune, dry_run) = (flag("prune"), flag("dry_run"));
    let file = parse(req)?;
    for (kind, names) in [
        (
            "sources",
            file.sources
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
        ),
        (
            "endpoints",
            file.endpoints.iter().map(|e| e.name.as_str()).collect(),
        ),
    ] {
        let mut seen = HashSet::new();
        if let Some(dup) = names.iter().find(|n| !seen.insert(**n)) {
            let mut e =
                ApiError::bad_request("duplicate_name", format!("{kind} lists {dup:?} twice"));
            e.fields
                .insert(format!("{kind}.{dup}"), "listed twice".into());
            return Err(e);
        }
    }

    let mut plan = Plan::default();
    // Every entry is validated (applied to a copy) before anything is written.
    let mut existing_sources = by_name(all_sources(ctx, ws).await?, |s| s.name.as_str());
    let mut source_writes: Vec<(Option<Source>, Source, Option<String>)> = Vec::new();
    for spec in file.sources {
        let name = spec.name.clone();
        match existing_sources.remove(&name) {
            Some(old) => {
                let mut new = old.clone();
                let path = sources::apply(spec, &mut new)?;
                new.path = path.clone();
                let change = Change {
                    kind: "source",
                    name,
                    id: Some(old.id.clone()),
                };
                if CreateSource::of(&new) == CreateSource::of(&old) {
                    plan.unchanged.push(change);
                } else {
                    plan.update.push(change);
                    new.path = old.path.clone();
                    source_writes.push((Some(old.clone()), new, path));
                }
            }
            None => {
                let mut new = Source::new(ws, name.trim());
                let path = sources::apply(spec, &mut new)?;
                plan.create.push(Change {
                    kind: "source",
                    name,
                    id: None,
                });
                source_writes.push((None, new, path));
            }
        }
    }
    let mut existing_endpoints = by_name(
        ctx.store
            .workspace_endpoints(ws)
            .await
            .map_err(store_error)?,
        |e| e.name.as_str(),
    );
    let mut endpoint_writes: Vec<(Option<String>, Endpoint)> = Vec::new();
    for spec in file.endpoints {
        let name = spec.name.clone();
        match existing_endpoints.remove(&name) {
            Some(old) => {
                let mut new = old.clone();
                endpoints::apply(ctx, req, spec, &mut new)?;
                let change = Change {
                    kind: "endpoint",
                    name,
                    id: Some(old.id.clone()),
                };
                if CreateEndpoint::of(&new) == CreateEndpoint::of(&old) {
                    plan.unchanged.push(change);
                } else {
                    plan.update.push(change);
                    endpoint_writes.push((Some(old.name.clone()), new));
                }
            }
            None => {
                let mut new = Endpoint::new(ws, name.trim(), &spec.url, Vec::new());
                endpoints::apply(ctx, req, spec, &mut new)?;
                plan.create.push(Change {
                    kind: "endpoint",
                    name,
                    id: None,
                });
                endpoint_writes.push((None, new));
            }
        }
    }
    if prune {
        plan.delete
            .extend(existing_sources.values().map(|s| Change {
                kind: "source",
                name: s.name.clone(),
                id: Some(s.id.clone()),
            }));
        plan.delete
            .extend(existing_endpoints.values().map(|e| Change {
                kind: "endpoint",
                name: e.name.clone(),
                id: Some(e.id.clone()),
            }));
    }

    if !dry_run {
        for (old, mut source, new_path) in source_writes {
            sources::save(ctx, old.as_ref(), &mut source, new_path).await?;
        }
        // Each write is conditional on the version read above: a change made meanwhile
        // (a rotation, a deactivation, another sync) is not undone; the sync answers
        // `409 conflict` and can be run again.
        for (old_name, mut endpoint) in endpoint_writes {
            endpoints::save(ctx, old_name.as_deref(), &mut endpoint).await?;
        }
        if prune {
            for s in existing_sources.values() {
                sources::remove(ctx, s).await?;
            }
            for e in existing_endpoints.values() {
                endpoints::remove(ctx, e, Some(e.version)).await?;
            }
        }
    }
    Ok(api::json(
        StatusCode::OK,
        &serde_json::json!({ "dry_run": dry_run, "prune": prune, "plan": plan }),
    ))
}

/// `GET /workspaces/{ws}/config/dump`: YAML, sorted by name, endpoint secrets left out
/// (sync keeps them).
pub async fn dump(ctx: &Context, ws: &str) -> Result<Response<String>, ApiError> {
    let mut file = ConfigFile {
        sources: all_sources(ctx, ws)
            .await?
            .iter()
            .map(CreateSource::of)
            .collect(),
        endpoints: ctx
            .store
            .workspace_endpoints(ws)
            .await
            .map_err(store_error)?
            .iter()
            .map(CreateEndpoint::of)
            .collect(),
    };
    file.sources.sort_by(|a, b| a.name.cmp(&b.name));
    file.endpoints.sort_by(|a, b| a.name.cmp(&b.name));
    let yaml = serde_yaml_ng::to_string(&file).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("dump failed: {e}"),
        )
    })?;
    let mut resp = Response::new(yaml);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/yaml"),
    );
    Ok(resp)
}
