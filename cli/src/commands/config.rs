//! `sync` and `dump`: the workspace as a config file.

use std::path::Path;

use crate::api::{Api, CliError};
use crate::table;

pub async fn sync(
    api: &Api,
    file: &Path,
    dry_run: bool,
    prune: bool,
    json: bool,
) -> Result<String, CliError> {
    let bytes = std::fs::read(file)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
    let content_type = if file.extension().is_some_and(|e| e == "json") {
        "application/json"
    } else {
        "application/yaml"
    };
    let path = api.ws(&format!("/config/sync?dry_run={dry_run}&prune={prune}"));
    let answer = api
        .call("POST", &path, Some((bytes, content_type)), None)
        .await?
        .json();
    if json {
        return Ok(table::json(&answer));
    }
    let mut changes = Vec::new();
    for action in ["create", "update", "delete"] {
        for c in answer["plan"][action].as_array().into_iter().flatten() {
            let mut row = c.clone();
            row["action"] = serde_json::json!(action);
            changes.push(row);
        }
    }
    let unchanged = answer["plan"]["unchanged"].as_array().map_or(0, Vec::len);
    let mut out = if changes.is_empty() {
        "nothing to change\n".to_owned()
    } else {
        table::render(
            &changes,
            &[
                ("ACTION", "/action"),
                ("KIND", "/kind"),
                ("NAME", "/name"),
                ("ID", "/id"),
            ],
        )
    };
    out.push_str(&format!("{unchanged} unchanged\n"));
    if dry_run {
        out.push_str("(dry run: nothing was changed)\n");
    }
    Ok(out)
}

pub async fn dump(api: &Api) -> Result<String, CliError> {
    Ok(api
        .call("GET", &api.ws("/config/dump"), None, None)
        .await?
        .text)
}
