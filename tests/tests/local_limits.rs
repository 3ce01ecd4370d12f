//! The local stack behaves as AWS does where the code relies on it. Each test shows one
//! rule enforced by the local stack itself, so a test of the code that depends on it means
//! something.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use hookrelay_local::lambda::{FunctionSpec, LocalLambda, Outcome};
use hookrelay_local::moto::MotoServer;
use hookrelay_tests::receiver::Reply;
use hookrelay_tests::{Receiver, Stack, create_endpoint, create_source, send_event};
use serde_json::{Value, json};

/// DynamoDB applies each write to an item atomically: a conditional update's check and change
/// are one step, and concurrent updates of one item never lose each other. Batch endpoints'
/// open batches depend on it. moto alone loses updates under concurrency; the local stack's
/// server locks its DynamoDB backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_conditional_updates_of_one_item_are_atomic() {
    let stack = Stack::new().await;
    let client = aws_sdk_dynamodb::Client::new(&stack.aws);
    let table = stack.settings.table_name.clone();
    let writers = 64;
    let updates = (0..writers).map(|i| {
        let client = client.clone();
        let table = table.clone();
        tokio::spawn(async move {
            client
                .update_item()
                .table_name(&table)
                .key("pk", AttributeValue::S("ATOMIC#1".into()))
                .key("sk", AttributeValue::S("ATOMIC".into()))
                .update_expression(
                    "SET members = list_append(if_not_exists(members, :empty), :one_member) \
                     ADD n :one, ids :id_set",
                )
                .condition_expression(
                    "NOT contains(ids, :id) AND (attribute_not_exists(n) OR n < :limit)",
                )
                .expression_attribute_values(":empty", AttributeValue::L(vec![]))
                .expression_attribute_values(
                    ":one_member",
                    AttributeValue::L(vec![AttributeValue::S(format!("m{i}"))]),
                )
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .expression_attribute_values(":id_set", AttributeValue::Ss(vec![format!("m{i}")]))
                .expression_attribute_values(":id", AttributeValue::S(format!("m{i}")))
                .expression_attribute_values(":limit", AttributeValue::N("100000".into()))
                .send()
                .await
                .expect("update")
        })
    });
    for u in futures::future::join_all(updates).await {
        u.expect("task");
    }
    let item = client
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S("ATOMIC#1".into()))
        .key("sk", AttributeValue::S("ATOMIC".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let n: usize = item["n"].as_n().unwrap().parse().unwrap();
    let members = item["members"].as_l().unwrap().len();
    let ids = item["ids"].as_ss().unwrap().len();
    assert_eq!((n, members, ids), (writers, writers, writers));
}

// --- Lambda: Timeout, MemorySize, crashed environments ------------------------------------

fn test_function(timeout: Duration, memory_mb: u64) -> std::sync::Arc<LocalLambda> {
    LocalLambda::new(vec![FunctionSpec {
        name: "probe".into(),
        command: env!("CARGO_BIN_EXE_hookrelay-test-function").into(),
        env: vec![],
        timeout,
        memory_mb,
    }])
}

async fn call(lambda: &LocalLambda, event: Value) -> Result<Value, Value> {
    match lambda
        .invoke("probe", event.to_string().into_bytes())
        .await
        .expect("the service runs the function")
    {
        Outcome::Ok(b) => Ok(serde_json::from_slice(&b).expect("JSON answer")),
        Outcome::FunctionError(b) => Err(serde_json::from_slice(&b).expect("JSON error")),
    }
}

/// An invocation past the function's `Timeout` is stopped, answers Lambda's timeout error,
/// and the next invocation runs in a fresh environment.
#[tokio::test]
async fn an_invocation_past_the_function_timeout_is_stopped() {
    let lambda = test_function(Duration::from_secs(1), 128);
    let warm = call(&lambda, json!({})).await.expect("runs");
    assert_eq!(
        warm["memory_size"], "128",
        "MemorySize reaches the function"
    );
    let started = Instant::now();
    let err = call(&lambda, json!({"sleep_ms": 5000}))
        .await
        .expect_err("stopped");
    assert_eq!(err["errorType"], "Sandbox.Timedout");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let after = call(&lambda, json!({})).await.expect("runs again");
    assert_ne!(after["pid"], warm["pid"], "a fresh environment");
    assert_eq!(after["served"], 1);
    assert_eq!(lambda.cold_starts("probe"), 2);
}

/// A function whose process was killed (as `kill -9` does) or crashed gets a fresh
/// environment on the next invocation; a warm one is reused.
#[tokio::test]
async fn a_crashed_or_killed_function_gets_a_fresh_environment() {
    let lambda = test_function(Duration::from_secs(5), 128);
    let first = call(&lambda, json!({})).await.expect("runs");
    let again = call(&lambda, json!({})).await.expect("runs");
    assert_eq!(
        (again["pid"].clone(), again["served"].clone()),
        (first["pid"].clone(), json!(2))
    );

    let pid = first["pid"].as_u64().unwrap();
    assert_eq!(lambda.idle_pids("probe"), vec![pid as u32]);
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after_kill = call(&lambda, json!({}))
        .await
        .expect("a fresh environment runs it");
    assert_ne!(after_kill["pid"], first["pid"]);

    let err = call(&lambda, json!({"exit": 3}))
        .await
        .expect_err("crashes");
    assert_eq!(err["errorType"], "Runtime.ExitError");
    let after_crash = call(&lambda, json!({})).await.expect("runs again");
    assert_ne!(after_crash["pid"], after_kill["pid"]);
    assert_eq!(after_crash["served"], 1);
}

/// An environment whose memory goes past `MemorySize` is stopped, as Lambda's out-of-memory
/// stop does.
#[tokio::test]
async fn a_function_past_its_memory_size_is_stopped() {
    let lambda = test_function(Duration::from_secs(10), 64);
    let first = call(&lambda, json!({"alloc_mb": 16})).await.expect("fits");
    let err = call(&lambda, json!({"alloc_mb": 128}))
        .await
        .expect_err("out of memory");
    assert_eq!(err["errorType"], "Runtime.OutOfMemory");
    let after = call(&lambda, json!({})).await.expect("runs again");
    assert_ne!(after["pid"], first["pid"]);
}

/// The test harness's event source mapping stops the in-process delivery handler at the
/// template's delivery `Timeout` and fails the invocation: the batch stays on the queue.
#[tokio::test]
async fn the_harness_stops_a_delivery_invocation_at_the_function_timeout() {
    let mut stack = Stack::new().await;
    assert_eq!(stack.delivery_function_timeout, Duration::from_secs(30));
    // Scaled down, as the in-flight quota is: the rule is the same, the test is shorter.
    stack.delivery_function_timeout = Duration::from_millis(500);
    let receiver = Receiver::start().await;
    receiver.replies(vec![], Reply::status(200).delay(Duration::from_secs(2)));
    let source = create_source(&stack, json!({"name": "s"})).await;
    create_endpoint(&stack, json!({"name": "slow", "url": receiver.url})).await;
    send_event(&stack, &source, br#"{"event_type":"a","data":{}}"#).await;
    let r = stack
        .deliver_once(&stack.delivery(), Duration::from_secs(2))
        .await
        .expect("a batch");
    assert_eq!((r.received, r.deleted, r.failed), (1, 0, 1));
    let (visible, in_flight) = stack.queue_depth(&stack.settings.delivery_queue_url).await;
    assert_eq!(visible + in_flight, 1, "the task stays on the queue");
}

// --- SQS -------------------------------------------------------------------------------

async fn send_n(stack: &Stack, url: &str, n: usize) {
    for i in 0..n {
        stack
            .sqs
            .send_message()
            .queue_url(url)
            .message_body(format!("m{i}"))
            .send()
            .await
            .expect("send");
    }
}

/// A short poll samples SQS's servers: with messages waiting it can answer fewer than there
/// are, or none. A long poll finds them.
#[tokio::test]
async fn short_polls_answer_a_sample_and_long_polls_find_everything() {
    let stack = Stack::new().await;
    let url = stack.settings.dead_letter_queue_url.clone();
    send_n(&stack, &url, 10).await;
    let mut answers = Vec::new();
    for _ in 0..10 {
        let got = stack
            .sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .wait_time_seconds(0)
            .send()
            .await
            .expect("receive")
            .messages
            .unwrap_or_default();
        answers.push(got.len());
    }
    assert!(answers.iter().any(|n| *n < 10), "{answers:?}");
    let long = stack
        .sqs
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .expect("receive")
        .messages
        .unwrap_or_default();
    assert_eq!(long.len(), 10);
}

/// At the in-flight quota (scaled down here), a long poll answers nothing and no error, and a
/// short poll answers `OverLimit`; deleting a message frees a slot.
#[tokio::test]
async fn at_the_in_flight_quota_receives_get_nothing() {
    let server =
        MotoServer::start_with(None, &[("HOOKRELAY_SQS_INFLIGHT_QUOTA", "5")]).expect("moto");
    let aws = hookrelay_shared::aws::local(&server.endpoint).await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let url = sqs
        .create_queue()
        .queue_name("quota")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    for i in 0..8 {
        sqs.send_message()
            .queue_url(&url)
            .message_body(format!("m{i}"))
            .send()
            .await
            .unwrap();
    }
    let receive = |wait: i32| {
        sqs.receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .wait_time_seconds(wait)
            .send()
    };
    let taken = receive(1).await.unwrap().messages.unwrap_or_default();
    assert_eq!(taken.len(), 5, "no more than the quota is in flight");
    let started = Instant::now();
    let none = receive(1).await.expect("no error on a long poll");
    assert!(none.messages.unwrap_or_default().is_empty());
    assert!(started.elapsed() >= Duration::from_millis(900));
    let err = receive(0).await.expect_err("OverLimit on a short poll");
    assert_eq!(
        err.as_service_error().and_then(|e| e.meta().code()),
        Some("OverLimit"),
        "{err:?}"
    );
    sqs.delete_message()
        .queue_url(&url)
        .receipt_handle(taken[0].receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    let one = receive(1).await.unwrap().messages.unwrap_or_default();
    assert_eq!(one.len(), 1, "a deleted message frees one slot");
}

/// A queue's messages are at most 256 KiB (the default `MaximumMessageSize`), counted in
/// bytes.
#[tokio::test]
async fn messages_over_256_kib_are_refused() {
    let stack = Stack::new().await;
    let url = stack.settings.delivery_queue_url.clone();
    let size = stack
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::MaximumMessageSize)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default()
        .get(&aws_sdk_sqs::types::QueueAttributeName::MaximumMessageSize)
        .cloned();
    assert_eq!(size.as_deref(), Some("262144"));
    let send = |body: String| {
        stack
            .sqs
            .send_message()
            .queue_url(&url)
            .message_body(body)
            .send()
    };
    send("a".repeat(262_144)).await.expect("256 KiB fits");
    send("a".repeat(262_145))
        .await
        .expect_err("one byte more does not");
    // 131 073 characters, 262 146 bytes: SQS counts bytes.
    send("é".repeat(131_073))
        .await
        .expect_err("counted in bytes");
}

// --- DynamoDB ----------------------------------------------------------------------------

fn item(pk: &str, filler: usize) -> std::collections::HashMap<String, AttributeValue> {
    [
        ("pk".to_owned(), AttributeValue::S(pk.into())),
        ("sk".to_owned(), AttributeValue::S("LIMIT".into())),
        ("blob".to_owned(), AttributeValue::S("x".repeat(filler))),
    ]
    .into()
}

/// An item is at most 400 KB (moto enforces it on PutItem), and `BatchWriteItem` refuses the
/// whole batch when one item is too big: nothing of it is written (moto alone wrote the items
/// before the big one).
#[tokio::test]
async fn items_over_400_kb_are_refused_and_so_is_their_whole_batch() {
    let stack = Stack::new().await;
    let client = aws_sdk_dynamodb::Client::new(&stack.aws);
    let table = stack.settings.table_name.clone();
    client
        .put_item()
        .table_name(&table)
        .set_item(Some(item("LIMIT#ok", 300_000)))
        .send()
        .await
        .expect("300 KB fits");
    client
        .put_item()
        .table_name(&table)
        .set_item(Some(item("LIMIT#big", 420_000)))
        .send()
        .await
        .expect_err("420 KB does not");
    let put = |pk: &str, filler: usize| {
        WriteRequest::builder()
            .put_request(
                PutRequest::builder()
                    .set_item(Some(item(pk, filler)))
                    .build()
                    .unwrap(),
            )
            .build()
    };
    let err = client
        .batch_write_item()
        .request_items(
            &table,
            vec![
                put("LIMIT#a", 10),
                put("LIMIT#b", 10),
                put("LIMIT#c", 420_000),
            ],
        )
        .send()
        .await
        .expect_err("the batch is refused");
    assert_eq!(
        err.as_service_error().and_then(|e| e.meta().code()),
        Some("ValidationException")
    );
    for pk in ["LIMIT#a", "LIMIT#b"] {
        let got = client
            .get_item()
            .table_name(&table)
            .key("pk", AttributeValue::S(pk.into()))
            .key("sk", AttributeValue::S("LIMIT".into()))
            .send()
            .await
            .unwrap();
        assert!(got.item.is_none(), "{pk} was written from a refused batch");
    }
}
