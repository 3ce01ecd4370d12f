//! The environment `make dev` gives the functions: the template's, resolved locally, with the
//! settings present in `make dev`'s own environment taking the place of the template's
//! parameter defaults (`RETRY_SCHEDULE=1,1,1 make dev`), as parameters would on a deploy.

use std::collections::BTreeMap;

use anyhow::Result;
use serde_yaml_ng::Value;

use crate::template::{Bindings, Template};

/// Settings the functions read that the template leaves at their defaults.
pub const UNSET_BY_TEMPLATE: &[&str] = &[
    "MAX_BODY_BYTES",
    "DELIVERY_TIMEOUT_SECONDS",
    "CACHE_TTL_SECONDS",
    "RECONCILE_AFTER_SECONDS",
    "CIRCUIT_BREAKER_AFTER",
    "CIRCUIT_PROBE_SECONDS",
    "CONFIG_LEASE_MS",
];

/// The local stack's own values: a short cache, so a change made through the API shows at
/// once, and deliveries to the developer's machine.
const LOCAL: &[(&str, &str)] = &[
    ("CACHE_TTL_SECONDS", "2"),
    ("DELIVERY_ALLOW_NETWORKS", "127.0.0.1/32,::1/128"),
];

/// Every function's environment merged (each function gets all of it), plus the
/// local AWS endpoint; `lookup` reads `make dev`'s environment.
pub fn function_environment(
    template: &Template,
    bindings: &Bindings,
    aws_endpoint: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    let mut settable: Vec<String> = UNSET_BY_TEMPLATE.iter().map(|s| (*s).to_owned()).collect();
    for f in template.of_type("AWS::Serverless::Function")? {
        env.extend(template.function_environment(&f, bindings)?);
        settable.extend(template.settings_of(&f)?);
    }
    for (k, v) in LOCAL {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    for name in settable {
        if let Some(v) = lookup(&name).filter(|v| !v.is_empty()) {
            env.insert(name, v);
        }
    }
    env.insert("AWS_ENDPOINT_URL".into(), aws_endpoint.to_owned());
    env.insert("AWS_REGION".into(), "us-east-1".into());
    env.insert("AWS_ACCESS_KEY_ID".into(), "test".into());
    env.insert("AWS_SECRET_ACCESS_KEY".into(), "test".into());
    env.insert(
        "RUST_LOG".into(),
        lookup("RUST_LOG").unwrap_or_else(|| "info".into()),
    );
    Ok(env)
}

impl Template {
    /// The function's environment variables that are settings: a parameter or a literal in
    /// the template, never a resource the stack creates.
    pub fn settings_of(&self, function: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for vars in self.environment_variables(function)? {
            for (k, v) in vars.as_mapping().into_iter().flatten() {
                let Some(k) = k.as_str() else { continue };
                if self.is_setting(v) {
                    out.push(k.to_owned());
                }
            }
        }
        Ok(out)
    }

    fn is_setting(&self, v: &Value) -> bool {
        let reference = match v {
            Value::Tagged(t) if t.tag == "Ref" => t.value.as_str(),
            Value::Mapping(m) if m.len() == 1 => m.get("Ref").and_then(Value::as_str),
            Value::Tagged(_) | Value::Mapping(_) | Value::Sequence(_) => return false,
            _ => return true,
        };
        reference.is_some_and(|r| self.parameter_default(r).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_with(vars: &[(&str, &str)]) -> BTreeMap<String, String> {
        let t = Template::workspace_default().unwrap();
        let mut b = Bindings::default();
        for r in [
            "Table",
            "DeliveriesQueue",
            "DeadLetterQueue",
            "BatchingQueue",
            "OrderedDeliveriesQueue",
            "OrderedDeadLetterQueue",
            "PayloadBucket",
        ] {
            b.refs.insert(r.into(), format!("local-{r}"));
        }
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        function_environment(&t, &b, "http://127.0.0.1:1", |k| vars.get(k).cloned()).unwrap()
    }

    #[test]
    fn settings_in_the_environment_replace_the_templates_defaults() {
        let defaults = env_with(&[]);
        assert_eq!(
            defaults["RETRY_SCHEDULE"],
            "5,300,1800,7200,18000,36000,36000"
        );
        assert_eq!(defaults["CACHE_TTL_SECONDS"], "2");
        assert_eq!(defaults["TABLE_NAME"], "local-Table");

        let set = [
            ("RETRY_SCHEDULE", "1,1,1"),
            ("RETENTION_DAYS", "2"),
            ("SWEEP_AFTER_DAYS", "3"),
            ("OPS_EVENT_BUS", "bus"),
            ("DELIVERY_MAX_TIMEOUT_SECONDS", "9"),
            ("DELIVERY_ALLOW_NETWORKS", "10.0.0.0/8"),
            ("DELIVERY_CONCURRENCY", "11"),
            ("SECRET_ROTATION_GRACE_SECONDS", "12"),
            ("MAX_BODY_BYTES", "13"),
            ("DELIVERY_TIMEOUT_SECONDS", "14"),
            ("CACHE_TTL_SECONDS", "15"),
            ("RECONCILE_AFTER_SECONDS", "16"),
        ];
        // Resources the stack creates are its own, whatever the environment says.
        let mut with_resources = set.to_vec();
        with_resources.push(("TABLE_NAME", "elsewhere"));
        with_resources.push(("DELIVERY_QUEUE_URL", "elsewhere"));
        let env = env_with(&with_resources);
        for (k, v) in set {
            assert_eq!(env[k], v, "{k}");
        }
        assert_eq!(env["TABLE_NAME"], "local-Table");
        assert_eq!(env["DELIVERY_QUEUE_URL"], "local-DeliveriesQueue");
    }

    #[test]
    fn every_setting_in_the_readme_can_be_set_locally() {
        let readme = include_str!("../../../README.md");
        let table = readme
            .split("## Settings")
            .nth(1)
            .and_then(|s| s.split("\n\n").nth(2))
            .expect("the README's settings table");
        let t = Template::workspace_default().unwrap();
        let mut settable: Vec<String> = UNSET_BY_TEMPLATE.iter().map(|s| (*s).to_owned()).collect();
        for f in t.of_type("AWS::Serverless::Function").unwrap() {
            settable.extend(t.settings_of(&f).unwrap());
        }
        // Resources of the stack and the admin key, which `make dev` sets its own way.
        let own = [
            "BATCHING_QUEUE_URL",
            "ORDERED_QUEUE_URL",
            "ORDERED_DLQ_URL",
            "PAYLOAD_BUCKET",
            "HOOKRELAY_ADMIN_KEY",
        ];
        for line in table.lines().skip(2) {
            let name = line.split('`').nth(1).expect("a setting's name");
            assert!(
                settable.iter().any(|s| s == name) || own.contains(&name),
                "{name} cannot be set for make dev"
            );
        }
    }
}
