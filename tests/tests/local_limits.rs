//! The local stack behaves as AWS does where the code relies on it. Each test shows one
//! rule enforced by the local stack itself, so a test of the code that depends on it means
//! something.

use aws_sdk_dynamodb::types::AttributeValue;
use hookrelay_tests::Stack;

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
