//! `template.yaml` read as data: the resources to create locally, the HTTP routes, the SQS
//! event sources and the functions' environment, with `!Ref`, `!GetAtt` and `!Sub`
//! resolved against parameter defaults and the locally created resources.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context as _, Result, anyhow, bail};
use serde_yaml_ng::{Mapping, Value};

pub struct Template {
    root: Value,
}

/// What `!Ref` and `!GetAtt …Arn` of each resource resolve to locally.
#[derive(Debug, Default, Clone)]
pub struct Bindings {
    pub refs: HashMap<String, String>,
    pub arns: HashMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpRoute {
    pub method: String,
    pub path: String,
    /// The cargo binary serving it (`Metadata.BuildProperties.Binary`).
    pub binary: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SqsEventSource {
    pub queue: String,
    pub binary: String,
    pub batch_size: usize,
    pub batching_window_secs: u64,
    pub report_batch_item_failures: bool,
}

/// A function's limits: `Timeout` and `MemorySize`, its own or from `Globals`, else Lambda's
/// defaults (3 s, 128 MB).
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionConfig {
    pub logical_id: String,
    pub binary: String,
    pub timeout: std::time::Duration,
    pub memory_mb: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub binary: String,
    pub expression: String,
}

impl Template {
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self> {
        let root: Value = serde_yaml_ng::from_str(text).context("template.yaml is not YAML")?;
        Ok(Self { root })
    }

    /// The workspace's `template.yaml`.
    pub fn workspace_default() -> Result<Self> {
        Self::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml"))
    }

    pub fn resources(&self) -> Result<&Mapping> {
        self.root
            .get("Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| anyhow!("template has no Resources"))
    }

    pub fn resource(&self, logical_id: &str) -> Result<&Value> {
        self.resources()?
            .get(logical_id)
            .ok_or_else(|| anyhow!("template has no resource {logical_id}"))
    }

    /// Logical ids of resources of one type, in template order.
    pub fn of_type(&self, ty: &str) -> Result<Vec<String>> {
        Ok(self
            .resources()?
            .iter()
            .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(ty))
            .filter_map(|(k, _)| k.as_str().map(str::to_owned))
            .collect())
    }

    /// The whole document, for what the helpers here do not cover (`Globals`, `Parameters`).
    pub fn root(&self) -> &Value {
        &self.root
    }

    /// A parameter's declaration: type, default, bounds, pattern.
    pub fn parameter(&self, name: &str) -> Option<&Value> {
        self.root.get("Parameters")?.get(name)
    }

    pub fn parameter_default(&self, name: &str) -> Option<Value> {
        self.root
            .get("Parameters")?
            .get(name)?
            .get("Default")
            .cloned()
    }

    /// Resolves intrinsic functions the local stack understands.
    pub fn resolve(&self, v: &Value, b: &Bindings) -> Result<Value> {
        Ok(match v {
            Value::Tagged(t) => {
                let tag = t.tag.to_string();
                self.intrinsic(tag.trim_start_matches('!'), &t.value, b)?
            }
            Value::Mapping(m) if m.len() == 1 => {
                let (k, inner) = m.iter().next().ok_or_else(|| anyhow!("empty mapping"))?;
                match k.as_str() {
                    Some("Ref") => self.intrinsic("Ref", inner, b)?,
                    Some("Fn::GetAtt") => self.intrinsic("GetAtt", inner, b)?,
                    Some("Fn::Sub") => self.intrinsic("Sub", inner, b)?,
                    _ => {
                        let mut out = Mapping::new();
                        out.insert(k.clone(), self.resolve(inner, b)?);
                        Value::Mapping(out)
                    }
                }
            }
            Value::Mapping(m) => {
                let mut out = Mapping::new();
                for (k, v) in m {
                    out.insert(k.clone(), self.resolve(v, b)?);
                }
                Value::Mapping(out)
            }
            Value::Sequence(s) => Value::Sequence(
                s.iter()
                    .map(|v| self.resolve(v, b))
                    .collect::<Result<_>>()?,
            ),
            other => other.clone(),
        })
    }

    fn intrinsic(&self, name: &str, arg: &Value, b: &Bindings) -> Result<Value> {
        match name {
            "Ref" => {
                let target = arg.as_str().ok_or_else(|| anyhow!("!Ref needs a name"))?;
                Ok(Value::String(self.reference(target, b)?))
            }
            "GetAtt" => {
                let (res, att) = match arg {
                    Value::String(s) => s
                        .split_once('.')
                        .map(|(r, a)| (r.to_owned(), a.to_owned()))
                        .ok_or_else(|| anyhow!("!GetAtt {s} has no attribute"))?,
                    Value::Sequence(s) if s.len() == 2 => (
                        s[0].as_str().unwrap_or_default().to_owned(),
                        s[1].as_str().unwrap_or_default().to_owned(),
                    ),
                    _ => bail!("!GetAtt needs Resource.Attribute"),
                };
                Ok(Value::String(self.attribute(&res, &att, b)?))
            }
            "Sub" => {
                let text = arg.as_str().ok_or_else(|| anyhow!("!Sub needs a string"))?;
                Ok(Value::String(self.substitute(text, b)?))
            }
            other => bail!("intrinsic {other} is not supported by the local stack"),
        }
    }

    fn reference(&self, target: &str, b: &Bindings) -> Result<String> {
        if let Some(v) = b.refs.get(target) {
            return Ok(v.clone());
        }
        if let Some(d) = self.parameter_default(target) {
            return scalar(&d).ok_or_else(|| anyhow!("parameter {target} default is not a scalar"));
        }
        Ok(match target {
            "AWS::Region" => "us-east-1".into(),
            "AWS::AccountId" => "123456789012".into(),
            "AWS::StackName" => "hookrelay-local".into(),
            "AWS::Partition" => "aws".into(),
            "AWS::URLSuffix" => "amazonaws.com".into(),
            _ => bail!("!Ref {target} has no local value"),
        })
    }

    fn attribute(&self, res: &str, att: &str, b: &Bindings) -> Result<String> {
        match att {
            "Arn" => b
                .arns
                .get(res)
                .cloned()
                .ok_or_else(|| anyhow!("!GetAtt {res}.Arn: {res} is not created locally")),
            _ => bail!("!GetAtt {res}.{att} is not supported locally"),
        }
    }

    fn substitute(&self, text: &str, b: &Bindings) -> Result<String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..]
                .find('}')
                .ok_or_else(|| anyhow!("unclosed ${{ in !Sub {text}"))?;
            let name = &rest[start + 2..start + end];
            match name.split_once('.') {
                Some((r, a)) if !r.starts_with("AWS::") => out.push_str(&self.attribute(r, a, b)?),
                _ => out.push_str(&self.reference(name, b)?),
            }
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The function's cargo binary.
    pub fn binary_of(&self, function: &str) -> Result<String> {
        self.resource(function)?
            .get("Metadata")
            .and_then(|m| m.get("BuildProperties"))
            .and_then(|p| p.get("Binary"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("{function} has no Metadata.BuildProperties.Binary"))
    }

    pub fn functions(&self) -> Result<Vec<FunctionConfig>> {
        let globals = self.root.get("Globals").and_then(|g| g.get("Function"));
        let b = Bindings::default();
        let mut out = Vec::new();
        for f in self.of_type("AWS::Serverless::Function")? {
            let own = self.resource(&f)?.get("Properties");
            let setting = |key: &str| -> Result<Option<u64>> {
                for scope in [own, globals].into_iter().flatten() {
                    if let Some(v) = scope.get(key) {
                        let v = self.resolve(v, &b)?;
                        return scalar(&v)
                            .and_then(|s| s.parse().ok())
                            .map(Some)
                            .ok_or_else(|| anyhow!("{f}: {key} is not a number"));
                    }
                }
                Ok(None)
            };
            out.push(FunctionConfig {
                binary: self.binary_of(&f)?,
                timeout: std::time::Duration::from_secs(setting("Timeout")?.unwrap_or(3)),
                memory_mb: setting("MemorySize")?.unwrap_or(128),
                logical_id: f,
            });
        }
        Ok(out)
    }

    /// The limits of the function a cargo binary is built into.
    pub fn function_of_binary(&self, binary: &str) -> Result<FunctionConfig> {
        self.functions()?
            .into_iter()
            .find(|f| f.binary == binary)
            .ok_or_else(|| anyhow!("no function is built from the binary {binary}"))
    }

    fn function_events(&self) -> Result<Vec<(String, String, &Value)>> {
        let mut out = Vec::new();
        for f in self.of_type("AWS::Serverless::Function")? {
            let Some(events) = self
                .resource(&f)?
                .get("Properties")
                .and_then(|p| p.get("Events"))
                .and_then(Value::as_mapping)
            else {
                continue;
            };
            for (_, ev) in events {
                let ty = ev.get("Type").and_then(Value::as_str).unwrap_or_default();
                out.push((f.clone(), ty.to_owned(), ev));
            }
        }
        Ok(out)
    }

    pub fn http_routes(&self) -> Result<Vec<HttpRoute>> {
        let b = Bindings::default();
        let mut routes = Vec::new();
        for (f, ty, ev) in self.function_events()? {
            if ty != "HttpApi" {
                continue;
            }
            let props = ev
                .get("Properties")
                .ok_or_else(|| anyhow!("{f}: event without Properties"))?;
            let get = |k: &str| -> Result<String> {
                props
                    .get(k)
                    .map(|v| self.resolve(v, &b))
                    .transpose()?
                    .as_ref()
                    .and_then(scalar)
                    .ok_or_else(|| anyhow!("{f}: HttpApi event without {k}"))
            };
            routes.push(HttpRoute {
                method: get("Method")?.to_uppercase(),
                path: get("Path")?,
                binary: self.binary_of(&f)?,
            });
        }
        Ok(routes)
    }

    pub fn sqs_event_sources(&self) -> Result<Vec<SqsEventSource>> {
        let mut out = Vec::new();
        for (f, ty, ev) in self.function_events()? {
            if ty != "SQS" {
                continue;
            }
            let props = self.resolve(
                ev.get("Properties")
                    .ok_or_else(|| anyhow!("{f}: SQS event without Properties"))?,
                &Bindings::default().with_unresolved_arns(self)?,
            )?;
            let queue_arn = props.get("Queue").and_then(scalar).unwrap_or_default();
            let queue = queue_arn
                .strip_prefix("arn-of:")
                .ok_or_else(|| anyhow!("{f}: SQS event Queue must be !GetAtt <queue>.Arn"))?
                .to_owned();
            out.push(SqsEventSource {
                queue,
                binary: self.binary_of(&f)?,
                batch_size: number(&props, "BatchSize").unwrap_or(10) as usize,
                batching_window_secs: number(&props, "MaximumBatchingWindowInSeconds").unwrap_or(0),
                report_batch_item_failures: props
                    .get("FunctionResponseTypes")
                    .and_then(Value::as_sequence)
                    .is_some_and(|s| {
                        s.iter()
                            .any(|v| v.as_str() == Some("ReportBatchItemFailures"))
                    }),
            });
        }
        Ok(out)
    }

    pub fn schedules(&self) -> Result<Vec<Schedule>> {
        let mut out = Vec::new();
        for (f, ty, ev) in self.function_events()? {
            if ty != "ScheduleV2" && ty != "Schedule" {
                continue;
            }
            let expression = ev
                .get("Properties")
                .and_then(|p| p.get("ScheduleExpression"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            out.push(Schedule {
                binary: self.binary_of(&f)?,
                expression,
            });
        }
        Ok(out)
    }

    /// The environment a function gets: Globals merged with its own, resolved locally.
    pub fn function_environment(
        &self,
        function: &str,
        b: &Bindings,
    ) -> Result<BTreeMap<String, String>> {
        let mut env = BTreeMap::new();
        for vars in self.environment_variables(function)? {
            let resolved = self.resolve(vars, b)?;
            for (k, v) in resolved.as_mapping().into_iter().flatten() {
                if let (Some(k), Some(v)) = (k.as_str(), scalar(v)) {
                    env.insert(k.to_owned(), v);
                }
            }
        }
        Ok(env)
    }

    /// `Globals` then the function's own `Environment.Variables`, unresolved.
    pub fn environment_variables(&self, function: &str) -> Result<Vec<&Value>> {
        let global = self
            .root
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("Environment"))
            .and_then(|e| e.get("Variables"));
        let own = self
            .resource(function)?
            .get("Properties")
            .and_then(|p| p.get("Environment"))
            .and_then(|e| e.get("Variables"));
        Ok([global, own].into_iter().flatten().collect())
    }
}

impl Bindings {
    /// Arns that name their resource, to find which queue an event source reads.
    fn with_unresolved_arns(mut self, t: &Template) -> Result<Self> {
        for (k, _) in t.resources()? {
            if let Some(k) = k.as_str() {
                self.arns.insert(k.to_owned(), format!("arn-of:{k}"));
            }
        }
        Ok(self)
    }
}

pub fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub fn number(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(scalar).and_then(|s| s.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_projects_template() {
        let t = Template::workspace_default().unwrap();
        let routes = t.http_routes().unwrap();
        assert!(routes.contains(&HttpRoute {
            method: "POST".into(),
            path: "/in/{source}".into(),
            binary: "ingest".into()
        }));
        let sources = t.sqs_event_sources().unwrap();
        assert_eq!(sources.len(), 3);
        assert_eq!(sources[0].queue, "DeliveriesQueue");
        assert_eq!(sources[1].queue, "BatchingQueue");
        assert_eq!(sources[2].queue, "OrderedDeliveriesQueue");
        assert_eq!(sources[2].batching_window_secs, 0);
        assert_eq!(sources[1].batch_size, 100);
        assert_eq!(sources[0].binary, "delivery");
        assert!(sources[0].report_batch_item_failures);
        assert_eq!(t.schedules().unwrap()[0].binary, "sweeper");
        let delivery = t.function_of_binary("delivery").unwrap();
        assert_eq!(delivery.timeout, std::time::Duration::from_secs(30));
        assert_eq!(delivery.memory_mb, 256, "from Globals");
    }

    #[test]
    fn resolves_intrinsics() {
        let t = Template::parse(
            "Parameters:\n  P:\n    Default: 7\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n",
        )
        .unwrap();
        let mut b = Bindings::default();
        b.arns.insert("Q".into(), "arn:q".into());
        b.refs.insert("Q".into(), "http://q".into());
        let v: Value = serde_yaml_ng::from_str(
            "a: !Ref P\nb: !GetAtt Q.Arn\nc: !Sub '${Q}/x/${Q.Arn}/${AWS::Region}'\nd: {Ref: Q}",
        )
        .unwrap();
        let r = t.resolve(&v, &b).unwrap();
        assert_eq!(r["a"], Value::String("7".into()));
        assert_eq!(r["b"], Value::String("arn:q".into()));
        assert_eq!(r["c"], Value::String("http://q/x/arn:q/us-east-1".into()));
        assert_eq!(r["d"], Value::String("http://q".into()));
        assert!(
            t.resolve(&serde_yaml_ng::from_str("!Ref Nope").unwrap(), &b)
                .is_err()
        );
    }
}
