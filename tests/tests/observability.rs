//! The dashboard and alarms use only metrics the code emits, under the same names and
//! namespace, and the dashboard in the template is the readable file under infra/.

use std::collections::BTreeSet;

use hookrelay_local::template::Template;
use hookrelay_shared::metrics::{ALL, NAMESPACE};
use serde_json::Value;
use serde_yaml_ng::Value as Yaml;

fn dashboard_file() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/dashboard/dashboard.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn template_dashboard_is_the_file() {
    let t = Template::workspace_default().unwrap();
    let body = &t.resource("Dashboard").unwrap()["Properties"]["DashboardBody"];
    let Yaml::Tagged(sub) = body else {
        panic!("DashboardBody should be !Sub")
    };
    let inline: Value = serde_json::from_str(sub.value.as_str().unwrap()).unwrap();
    assert_eq!(
        inline,
        dashboard_file(),
        "run the dashboard sync: template and file differ"
    );
}

/// Custom metrics named by the dashboard: plain rows and SEARCH expressions.
fn dashboard_metrics(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Array(row) if row.len() >= 2 && row[0] == NAMESPACE => {
            out.insert(row[1].as_str().unwrap().to_owned());
        }
        Value::String(s) if s.contains(&format!("{{{NAMESPACE},")) => {
            for part in s
                .split("MetricName=\\\"")
                .skip(1)
                .chain(s.split("MetricName=\"").skip(1))
            {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                out.insert(name);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| dashboard_metrics(i, out)),
        Value::Object(m) => m.values().for_each(|i| dashboard_metrics(i, out)),
        _ => {}
    }
}

/// Custom metrics named by the template's alarms (plain or metric math).
fn alarm_metrics(v: &Yaml, out: &mut BTreeSet<String>) {
    match v {
        Yaml::Mapping(m) => {
            if m.get("Namespace").and_then(Yaml::as_str) == Some(NAMESPACE) {
                out.insert(
                    m.get("MetricName")
                        .and_then(Yaml::as_str)
                        .unwrap()
                        .to_owned(),
                );
            }
            m.values().for_each(|i| alarm_metrics(i, out));
        }
        Yaml::Sequence(s) => s.iter().for_each(|i| alarm_metrics(i, out)),
        Yaml::Tagged(t) => alarm_metrics(&t.value, out),
        _ => {}
    }
}

#[test]
fn dashboard_and_alarms_use_only_emitted_metrics() {
    let emitted: BTreeSet<&str> = ALL.iter().map(|(n, _)| *n).collect();
    let mut used = BTreeSet::new();
    dashboard_metrics(&dashboard_file(), &mut used);
    let t = Template::workspace_default().unwrap();
    for alarm in t.of_type("AWS::CloudWatch::Alarm").unwrap() {
        alarm_metrics(t.resource(&alarm).unwrap(), &mut used);
    }
    assert!(used.len() >= 10, "{used:?}");
    for name in &used {
        assert!(
            emitted.contains(name.as_str()),
            "{name} is charted or alarmed on but never emitted"
        );
    }
    // Every emitted metric is documented.
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md"))
        .unwrap();
    for name in &emitted {
        assert!(
            doc.contains(&format!("`{name}`")),
            "{name} is not in docs/metrics.md"
        );
    }
}

#[test]
fn every_alarm_notifies_and_the_dashboard_covers_the_system() {
    let t = Template::workspace_default().unwrap();
    let alarms = t.of_type("AWS::CloudWatch::Alarm").unwrap();
    assert!(alarms.len() >= 4);
    for a in &alarms {
        assert!(
            t.resource(a).unwrap()["Properties"]
                .get("AlarmActions")
                .is_some(),
            "{a}"
        );
    }
    let text = dashboard_file().to_string();
    for needle in [
        "DeadLetterQueue.QueueName",
        "ApproximateAgeOfOldestMessage",
        "Throttles",
        "ConcurrentExecutions",
        "WriteThrottleEvents",
        "IngestLatency",
        "DeliveryLatency",
        "EndpointsDeactivated",
    ] {
        assert!(text.contains(needle), "dashboard lacks {needle}");
    }
}

#[test]
fn alarms_cover_the_in_flight_quota_a_stalled_consumer_and_the_pending_backlog() {
    let t = Template::workspace_default().unwrap();
    let text = |id: &str| serde_json::to_string(&yaml_json(t.resource(id).unwrap())).unwrap();
    // Near SQS's ~120 000 in-flight messages, below it whatever the parameter says.
    let in_flight = text("InFlightNearQuotaAlarm");
    assert!(in_flight.contains("ApproximateNumberOfMessagesNotVisible"));
    assert!(in_flight.contains("DeliveriesQueue"));
    let threshold = t.parameter("InFlightAlarmThreshold").unwrap();
    assert!(threshold["MaxValue"].as_u64().unwrap() <= 120_000);
    assert!(threshold["Default"].as_u64().unwrap() < 120_000);
    // The age metric skips tasks received 3+ times; the stalled-consumer alarm sees them.
    let stalled = text("DeliveryConsumerStalledAlarm");
    for needle in [
        "ApproximateNumberOfMessagesVisible",
        "NumberOfMessagesDeleted",
        "StalledConsumerMinutes",
    ] {
        assert!(stalled.contains(needle), "{needle}");
    }
    assert!(text("PendingBacklogAlarm").contains("PendingEventsFound"));
}

/// YAML to JSON, tags dropped (their values kept), for searching a resource's text.
fn yaml_json(v: &Yaml) -> Value {
    match v {
        Yaml::Tagged(t) => yaml_json(&t.value),
        Yaml::Mapping(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), yaml_json(v)))
                .collect(),
        ),
        Yaml::Sequence(s) => Value::Array(s.iter().map(yaml_json).collect()),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Number(n) => serde_json::from_str(&n.to_string()).unwrap_or(Value::Null),
        Yaml::Bool(b) => Value::Bool(*b),
        Yaml::Null => Value::Null,
    }
}
