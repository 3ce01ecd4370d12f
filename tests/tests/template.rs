//! The template and the code agree: index names, queue sizing against the retry policy's
//! bounds, and the event source mapping the local stack plays.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use hookrelay_local::template::{Template, number, scalar};
use hookrelay_shared::config::min_retention_days;
use hookrelay_shared::metrics;
use hookrelay_shared::retry::{MAX_RETRIES, MAX_VISIBILITY, RetryPolicy};
use hookrelay_shared::store::{
    FAILING_INDEX, LINK_INDEX, LISTING_INDEX, PENDING_INDEX, SWEEP_INDEX, TYPE_INDEX,
};
use hookrelay_tests::Stack;
use serde_yaml_ng::Value as Yaml;

#[tokio::test]
async fn provisioned_table_has_the_indexes_the_store_queries() {
    let stack = Stack::new().await;
    let ddb = aws_sdk_dynamodb::Client::new(&stack.aws);
    let table = ddb
        .describe_table()
        .table_name(&stack.settings.table_name)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let mut names: Vec<_> = table
        .global_secondary_indexes()
        .iter()
        .filter_map(|g| g.index_name().map(str::to_owned))
        .collect();
    names.sort();
    let mut expected = vec![
        LISTING_INDEX.to_owned(),
        LINK_INDEX.to_owned(),
        TYPE_INDEX.to_owned(),
        PENDING_INDEX.to_owned(),
        SWEEP_INDEX.to_owned(),
        FAILING_INDEX.to_owned(),
    ];
    expected.sort();
    assert_eq!(names, expected);
    let ttl = ddb
        .describe_time_to_live()
        .table_name(&stack.settings.table_name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|d| d.attribute_name()),
        Some("expires_at")
    );
}

#[tokio::test]
async fn queue_sizing_covers_the_longest_allowed_schedule() {
    let t = Template::workspace_default().unwrap();
    let q = &t.resource("DeliveriesQueue").unwrap()["Properties"];
    let max_receive = number(&q["RedrivePolicy"], "maxReceiveCount").unwrap();
    let retention = number(q, "MessageRetentionPeriod").unwrap();
    let visibility = number(q, "VisibilityTimeout").unwrap();

    // Every allowed attempt fits under the redrive policy, with margin for crashed invocations.
    let longest = RetryPolicy::parse(&vec!["43200"; MAX_RETRIES].join(",")).unwrap();
    assert!(
        max_receive >= u64::from(longest.max_attempts()) + 3,
        "{max_receive}"
    );
    assert!(RetryPolicy::parse(&vec!["1"; MAX_RETRIES + 1].join(",")).is_err());
    // The message outlives the longest schedule.
    let total: Duration = longest.schedule().iter().sum();
    assert!(Duration::from_secs(retention) > total + Duration::from_secs(86_400));
    assert!(MAX_VISIBILITY.as_secs() == 43_200);
    // Lambda's guidance: visibility at least six times the consumer's timeout.
    let delivery_timeout = number(
        &t.resource("DeliveryFunction").unwrap()["Properties"],
        "Timeout",
    )
    .unwrap();
    assert!(visibility >= 6 * delivery_timeout);
    // The template's parameter pattern and the code's bound agree.
    let pattern = t.parameter_default("RetrySchedule").unwrap();
    assert!(RetryPolicy::parse(pattern.as_str().unwrap()).is_ok());
}

#[tokio::test]
async fn provisioned_queue_has_the_templates_redrive_policy() {
    let stack = Stack::new().await;
    let attrs = stack
        .sqs
        .get_queue_attributes()
        .queue_url(&stack.settings.delivery_queue_url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let redrive: serde_json::Value =
        serde_json::from_str(&attrs[&QueueAttributeName::RedrivePolicy]).unwrap();
    let t = Template::workspace_default().unwrap();
    let q = &t.resource("DeliveriesQueue").unwrap()["Properties"];
    assert_eq!(
        redrive["maxReceiveCount"].as_u64(),
        number(&q["RedrivePolicy"], "maxReceiveCount")
    );
    assert!(
        redrive["deadLetterTargetArn"]
            .as_str()
            .unwrap()
            .ends_with("DeadLetterQueue")
    );
    assert_eq!(
        attrs[&QueueAttributeName::VisibilityTimeout],
        number(q, "VisibilityTimeout").unwrap().to_string()
    );
}

#[tokio::test]
async fn local_stack_matches_the_template() {
    let stack = Stack::new().await;
    let t = Template::workspace_default().unwrap();
    let props = &t.resource("Table").unwrap()["Properties"];
    let ddb = aws_sdk_dynamodb::Client::new(&stack.aws);
    let table = ddb
        .describe_table()
        .table_name(&stack.settings.table_name)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let keys = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> Vec<(String, String)> {
        schema
            .iter()
            .map(|k| {
                (
                    k.attribute_name().to_owned(),
                    k.key_type().as_str().to_owned(),
                )
            })
            .collect()
    };
    let yaml_keys = |v: &serde_yaml_ng::Value| -> Vec<(String, String)> {
        v.as_sequence()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["AttributeName"].as_str().unwrap().to_owned(),
                    k["KeyType"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(keys(table.key_schema()), yaml_keys(&props["KeySchema"]));
    for gsi in props["GlobalSecondaryIndexes"].as_sequence().unwrap() {
        let name = gsi["IndexName"].as_str().unwrap();
        let local = table
            .global_secondary_indexes()
            .iter()
            .find(|g| g.index_name() == Some(name))
            .unwrap_or_else(|| panic!("index {name} missing locally"));
        assert_eq!(
            keys(local.key_schema()),
            yaml_keys(&gsi["KeySchema"]),
            "{name}"
        );
        assert_eq!(
            local
                .projection()
                .and_then(|p| p.projection_type())
                .map(|p| p.as_str()),
            gsi["Projection"]["ProjectionType"].as_str(),
            "{name}"
        );
    }

    for (logical, url) in [
        ("DeliveriesQueue", &stack.settings.delivery_queue_url),
        ("DeadLetterQueue", &stack.settings.dead_letter_queue_url),
        (
            "BatchingQueue",
            stack.settings.batching_queue_url.as_ref().unwrap(),
        ),
        (
            "OrderedDeliveriesQueue",
            stack.settings.ordered_queue_url.as_ref().unwrap(),
        ),
    ] {
        let q = &t.resource(logical).unwrap()["Properties"];
        let attrs = stack
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap();
        for (prop, attr) in [
            (
                "MessageRetentionPeriod",
                QueueAttributeName::MessageRetentionPeriod,
            ),
            ("VisibilityTimeout", QueueAttributeName::VisibilityTimeout),
        ] {
            if let Some(n) = number(q, prop) {
                assert_eq!(attrs[&attr], n.to_string(), "{logical}.{prop}");
            }
        }
        // A FIFO queue locally is a FIFO queue, with the template's deduplication.
        let fifo = q
            .get("FifoQueue")
            .and_then(scalar)
            .is_some_and(|v| v == "true");
        assert_eq!(
            attrs
                .get(&QueueAttributeName::FifoQueue)
                .map(String::as_str)
                == Some("true"),
            fifo,
            "{logical}.FifoQueue"
        );
        if fifo {
            assert!(url.ends_with(".fifo"), "{logical}: {url}");
            assert_eq!(
                attrs
                    .get(&QueueAttributeName::ContentBasedDeduplication)
                    .map(String::as_str),
                q.get("ContentBasedDeduplication")
                    .and_then(scalar)
                    .as_deref(),
                "{logical}.ContentBasedDeduplication"
            );
        }
    }

    // The event source mapping the local stack plays is the template's.
    let ev = &t.resource("DeliveryFunction").unwrap()["Properties"]["Events"]["Deliveries"]["Properties"];
    let param = |v: &serde_yaml_ng::Value| {
        let resolved = t.resolve(v, &Default::default()).unwrap();
        hookrelay_local::template::scalar(&resolved)
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert_eq!(stack.mapping.batch_size as u64, param(&ev["BatchSize"]));
    assert_eq!(
        stack.mapping.window.as_secs(),
        param(&ev["MaximumBatchingWindowInSeconds"])
    );
    assert!(stack.mapping.report_batch_item_failures);

    // The ordered queue's mapping: a FIFO one, as the template's, without a window.
    let ev =
        &t.resource("DeliveryFunction").unwrap()["Properties"]["Events"]["Ordered"]["Properties"];
    assert_eq!(
        referenced(&ev["Queue"]).as_deref(),
        Some("OrderedDeliveriesQueue")
    );
    assert!(stack.ordered.fifo);
    assert_eq!(stack.ordered.batch_size as u64, param(&ev["BatchSize"]));
    assert_eq!(stack.ordered.window, std::time::Duration::ZERO);
    assert!(stack.ordered.report_batch_item_failures);
    assert!(!stack.mapping.fifo && !stack.batching.fifo);
}

#[test]
fn fifo_queues_follow_sqs_and_lambda_fifo_rules() {
    let t = Template::workspace_default().unwrap();
    let is_fifo = |logical: &str| {
        t.resource(logical).unwrap()["Properties"]
            .get("FifoQueue")
            .and_then(scalar)
            .is_some_and(|v| v == "true")
    };
    let ordered = &t.resource("OrderedDeliveriesQueue").unwrap()["Properties"];
    assert!(is_fifo("OrderedDeliveriesQueue"));
    // Deduplication by the task's own id (event and endpoint), not by its body.
    assert_eq!(
        ordered
            .get("ContentBasedDeduplication")
            .and_then(scalar)
            .as_deref(),
        Some("false")
    );
    // A FIFO queue's dead-letter queue must be FIFO too.
    let dlq = referenced(&ordered["RedrivePolicy"]["deadLetterTargetArn"]).unwrap();
    assert!(is_fifo(&dlq), "{dlq} is FIFO");
    assert_eq!(
        number(&ordered["RedrivePolicy"], "maxReceiveCount"),
        Some(u64::from(hookrelay_delivery::ORDERED_MAX_RECEIVE_COUNT)),
        "the function's receive guard is the queue's"
    );
    // Lambda: a FIFO event source takes at most 10 messages and no batching window.
    let mut fifo_sources = 0;
    for (_, e) in t.resource("DeliveryFunction").unwrap()["Properties"]["Events"]
        .as_mapping()
        .unwrap()
    {
        let p = &e["Properties"];
        if e["Type"].as_str() != Some("SQS") || !is_fifo(&referenced(&p["Queue"]).unwrap()) {
            continue;
        }
        fifo_sources += 1;
        assert!(number(p, "BatchSize").unwrap_or(10) <= 10);
        assert!(p.get("MaximumBatchingWindowInSeconds").is_none());
        assert!(p["FunctionResponseTypes"].as_sequence().is_some_and(|s| {
            s.iter()
                .any(|v| v.as_str() == Some("ReportBatchItemFailures"))
        }));
    }
    assert_eq!(fifo_sources, 1);
    // Every function that queues tasks knows the ordered queue.
    let globals = &t.root()["Globals"]["Function"]["Environment"]["Variables"];
    assert_eq!(
        referenced(&globals["ORDERED_QUEUE_URL"]).as_deref(),
        Some("OrderedDeliveriesQueue")
    );
}

fn parameter(t: &Template, name: &str) -> Yaml {
    t.parameter(name)
        .cloned()
        .unwrap_or_else(|| panic!("no parameter {name}"))
}

/// A parameter's bound (`MinValue`, `MaxValue`) or a number given as is.
fn bound(t: &Template, v: &Yaml, which: &str) -> u64 {
    match v {
        Yaml::Tagged(tag) if tag.tag == "!Ref" => {
            let name = tag.value.as_str().unwrap();
            number(&parameter(t, name), which)
                .unwrap_or_else(|| panic!("parameter {name} has no {which}"))
        }
        other => scalar(other).unwrap().parse().unwrap(),
    }
}

/// The template's intrinsic `!Ref X` or `!GetAtt X.Y`, as the logical id X.
fn referenced(v: &Yaml) -> Option<String> {
    match v {
        Yaml::Tagged(t) if t.tag == "!Ref" || t.tag == "!GetAtt" => t
            .value
            .as_str()
            .map(|s| s.split('.').next().unwrap_or(s).to_owned()),
        _ => None,
    }
}

#[test]
fn no_resource_has_a_fixed_physical_name() {
    // A name the template fixes is the same in every stack: the second stack in an account
    // and region fails to create. Names must come from CloudFormation, or from something
    // unique to the stack (a resource it created, its own name).
    let t = Template::workspace_default().unwrap();
    // Properties ending in `Name` that name something else, not the resource itself.
    let not_physical = [
        "MetricName",
        "DisplayName",
        "AttributeName",
        "IndexName",
        "FunctionName", // of a permission or mapping: the function it is for
    ];
    let stack_unique = |v: &Yaml| match v {
        Yaml::Tagged(tag) if tag.tag == "!Sub" => {
            let text = tag.value.as_str().unwrap_or_default();
            text.contains("${AWS::StackName}") || text.contains("${AWS::StackId}")
        }
        Yaml::Tagged(tag) if tag.tag == "!Ref" || tag.tag == "!GetAtt" => {
            // A resource of this stack, not a parameter with a default.
            referenced(v).is_some_and(|r| t.resource(&r).is_ok())
        }
        _ => false,
    };
    let mut checked = 0;
    for (id, r) in t.resources().unwrap() {
        let id = id.as_str().unwrap();
        let Some(props) = r["Properties"].as_mapping() else {
            continue;
        };
        for (k, v) in props {
            let k = k.as_str().unwrap();
            if k.ends_with("Name") && !not_physical.contains(&k) {
                checked += 1;
                assert!(stack_unique(v), "{id}.{k} is a fixed name: {v:?}");
            }
        }
        // SAM events that create named resources: EventBridge Scheduler names are unique per
        // group, and SAM names a ScheduleV2 after its logical id unless told otherwise.
        if let Some(events) = props.get("Events").and_then(Yaml::as_mapping) {
            for (ev, e) in events {
                let ev = ev.as_str().unwrap();
                let ty = e["Type"].as_str().unwrap_or_default();
                let p = &e["Properties"];
                if ty == "ScheduleV2" {
                    checked += 1;
                    let omitted = p["OmitName"].as_bool() == Some(true);
                    assert!(
                        omitted || p.get("Name").is_some_and(stack_unique),
                        "{id}.{ev}: a ScheduleV2 needs OmitName: true"
                    );
                }
                if let Some(name) = p.get("Name") {
                    checked += 1;
                    assert!(stack_unique(name), "{id}.{ev}.Name is fixed");
                }
            }
        }
    }
    assert!(checked >= 1, "the schedule at least was checked");
}

#[test]
fn retry_schedule_pattern_is_the_codes_bound() {
    // CloudFormation refuses what the pattern refuses; the code stops every function at cold
    // start on what it refuses. They must agree, or a deploy succeeds into a dead stack.
    let t = Template::workspace_default().unwrap();
    let p = parameter(&t, "RetrySchedule");
    let pattern = regex_lite::Regex::new(p["AllowedPattern"].as_str().unwrap()).unwrap();
    let code = |s: &str| RetryPolicy::parse(s).is_ok();
    for n in (0..=50_000u64).chain([86_400, 100_000, 999_999]) {
        let s = n.to_string();
        assert_eq!(pattern.is_match(&s), code(&s), "{s}");
    }
    let twenty = vec!["43200"; MAX_RETRIES].join(",");
    let too_many = vec!["1"; MAX_RETRIES + 1].join(",");
    for s in [
        twenty.as_str(),
        too_many.as_str(),
        "5,300,1800",
        "5,43201",
        "1,,2",
        "a",
    ] {
        if pattern.is_match(s) {
            assert!(code(s), "the template allows {s:?}, the code refuses it");
        }
    }
    assert!(pattern.is_match(&twenty));
    assert!(!pattern.is_match(&too_many));
    assert!(pattern.is_match(p["Default"].as_str().unwrap()));
}

#[test]
fn default_retention_outlives_the_default_schedule() {
    let t = Template::workspace_default().unwrap();
    let schedule =
        RetryPolicy::parse(parameter(&t, "RetrySchedule")["Default"].as_str().unwrap()).unwrap();
    let retention = parameter(&t, "RetentionDays");
    let default = number(&retention, "Default").unwrap();
    assert!(default >= u64::from(min_retention_days(&schedule)));
    // Every schedule the template allows has a retention the template allows.
    let longest = RetryPolicy::parse(&vec!["43200"; MAX_RETRIES].join(",")).unwrap();
    assert!(number(&retention, "MaxValue").unwrap() >= u64::from(min_retention_days(&longest)));
    // The rule the description states.
    let text = retention["Description"].as_str().unwrap();
    assert!(text.contains(&format!(
        "{} for the default",
        min_retention_days(&schedule)
    )));
    assert!(text.contains(&format!("at most {}", min_retention_days(&longest))));
}

#[test]
fn queue_visibility_covers_every_consumer_and_its_batching_window() {
    // Lambda: a queue's visibility timeout at least six times its consumer's timeout (and
    // never below it); messages gathered during the batching window are already received,
    // so the longest window the template allows comes on top.
    let t = Template::workspace_default().unwrap();
    let global_timeout = number(&t.root()["Globals"]["Function"], "Timeout").unwrap();
    let mut checked = 0;
    for f in t.of_type("AWS::Serverless::Function").unwrap() {
        let props = &t.resource(&f).unwrap()["Properties"];
        let timeout = number(props, "Timeout").unwrap_or(global_timeout);
        let Some(events) = props["Events"].as_mapping() else {
            continue;
        };
        for (ev, e) in events {
            if e["Type"].as_str() != Some("SQS") {
                continue;
            }
            let p = &e["Properties"];
            let queue = referenced(&p["Queue"]).unwrap();
            let visibility = number(
                &t.resource(&queue).unwrap()["Properties"],
                "VisibilityTimeout",
            )
            .unwrap();
            let window = p
                .get("MaximumBatchingWindowInSeconds")
                .map_or(0, |w| bound(&t, w, "MaxValue"));
            assert!(
                window <= 300,
                "{f}.{ev:?}: Lambda's window is at most 300 s"
            );
            assert!(
                visibility >= 6 * timeout + window,
                "{f}.{ev:?}: {queue} visibility {visibility} < 6 x {timeout} + {window}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 3);
}

#[test]
fn metric_lines_pass_every_log_level_the_template_allows() {
    let t = Template::workspace_default().unwrap();
    let logging = &t.root()["Globals"]["Function"]["LoggingConfig"];
    assert_eq!(logging["LogFormat"].as_str(), Some("JSON"));
    assert_eq!(
        referenced(&logging["ApplicationLogLevel"]).as_deref(),
        Some("LogLevel")
    );
    let allowed = parameter(&t, "LogLevel")["AllowedValues"].clone();
    let allowed = allowed.as_sequence().unwrap();
    assert!(!allowed.is_empty());
    for level in allowed {
        let level = level.as_str().unwrap();
        assert!(
            metrics::LAMBDA_LOG_LEVELS.contains(&level),
            "{level} is not a Lambda log level"
        );
        assert!(
            metrics::passes_log_filter(metrics::LOG_LEVEL, level),
            "LogLevel={level} would drop the metric lines"
        );
    }
}

#[test]
fn every_function_logs_to_a_log_group_of_the_stack() {
    // CloudWatch Logs' retention values.
    const RETENTION_DAYS: &[u64] = &[
        1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
        2922, 3288, 3653,
    ];
    let t = Template::workspace_default().unwrap();
    let allowed: Vec<u64> = parameter(&t, "LogRetentionDays")["AllowedValues"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| scalar(v).unwrap().parse().unwrap())
        .collect();
    assert_eq!(allowed, RETENTION_DAYS);
    let functions = t.of_type("AWS::Serverless::Function").unwrap();
    assert_eq!(functions.len(), 4);
    let mut groups = BTreeSet::new();
    for f in &functions {
        let group = referenced(&t.resource(f).unwrap()["Properties"]["LoggingConfig"]["LogGroup"])
            .unwrap_or_else(|| panic!("{f} logs to a group the stack does not own"));
        let g = t.resource(&group).unwrap();
        assert_eq!(g["Type"].as_str(), Some("AWS::Logs::LogGroup"), "{f}");
        assert_eq!(
            referenced(&g["Properties"]["RetentionInDays"]).as_deref(),
            Some("LogRetentionDays"),
            "{group}"
        );
        // Deleted with the stack (CloudFormation's default), unlike the retained data.
        assert!(g.get("DeletionPolicy").is_none(), "{group}");
        assert!(groups.insert(group), "{f} shares a log group");
    }
}

#[test]
fn deploy_script_applies_the_codes_retention_rule() {
    // `make deploy` refuses a RetentionDays the functions would refuse at cold start; the
    // script restates the rule in Python, so both are asked the same schedules.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/deploy.py");
    let twenty = vec!["43200"; MAX_RETRIES].join(",");
    for schedule in [
        hookrelay_shared::retry::DEFAULT_SCHEDULE,
        "",
        "5",
        "5,60",
        "86399",
        "43200",
        "36000,36000,36000",
        "40000,42000,43000",
        twenty.as_str(),
    ] {
        let Ok(policy) = RetryPolicy::parse(schedule) else {
            continue;
        };
        let out = std::process::Command::new("python3")
            .args([script, "--min-retention-days", schedule])
            .output()
            .expect("python3 runs the deploy script");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let days: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        assert_eq!(days, min_retention_days(&policy), "schedule {schedule:?}");
    }
}
