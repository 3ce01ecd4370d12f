//! Attempt listings kept a page at a time: what a batch writes, that pages written by batches
//! that overlap in time still list each attempt once and newest first, and that attempts
//! from before pages are moved onto them by the sweeper.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use futures::StreamExt;
use hookrelay_shared::store::{Store, item_bytes};
use hookrelay_shared::{Attempt, AttemptStatus, Timestamp};
use hookrelay_tests::listings::{all_ids, attempt};
use hookrelay_tests::{Stack, admin_call};
use serde_json::Value;

use super::COUNTING;

/// The page items of a page partition.
async fn pages(stack: &Stack, pk: &str) -> Vec<BTreeMap<String, AttributeValue>> {
    hookrelay_tests::listings::page_items(stack, pk)
        .await
        .into_iter()
        .map(|i| i.into_iter().collect())
        .collect()
}

fn newest_first<'a>(attempts: impl Iterator<Item = &'a Attempt>) -> Vec<String> {
    let mut ids: Vec<String> = attempts.map(|a| a.id.clone()).collect();
    ids.sort();
    ids.reverse();
    ids
}

/// A delivery batch of ten attempts to one endpoint writes two page items, the workspace's
/// and the endpoint's, each within one write unit: two units for ten attempts' listings,
/// where an index copy per attempt and listing cost twenty. The attempt items carry no
/// index keys any more.
#[tokio::test]
async fn a_batch_of_ten_attempts_lists_them_for_two_write_units() {
    let _one_at_a_time = COUNTING.lock().await;
    let stack = Stack::new().await;
    let second = (Timestamp::now().unix_millis() as u64 / 1000) * 1000;
    let batch: Vec<Attempt> = (0..10)
        .map(|n| attempt(second + 10 * n, n, "ep_one", AttemptStatus::Successful))
        .collect();
    stack
        .store
        .put_attempts(&batch, stack.settings.retention())
        .await
        .unwrap();
    for pk in ["PAGE#default#ATT", "PAGE#default#ATT#EP#ep_one"] {
        let found = pages(&stack, pk).await;
        assert_eq!(found.len(), 1, "{pk}: one page for one batch in one second");
        let item = found[0].clone().into_iter().collect();
        assert!(
            item_bytes(&item) <= 1024,
            "{pk}: {} bytes",
            item_bytes(&item)
        );
        let key = found[0]["sk"].as_s().unwrap();
        assert_eq!(
            key.split_once('#').map(|(id, _)| id),
            Some(batch[9].id.as_str()),
            "keyed by its newest, then a digest of what it names: {key}"
        );
        assert!(found[0].contains_key("expires_at"), "pages expire too");
    }
    let item = Store::attempt_item(&batch[0], stack.settings.retention()).unwrap();
    for key in ["gsi1pk", "gsi1sk", "link_pk"] {
        assert!(!item.contains_key(key), "{key} would cost an index copy");
    }
    let listed = all_ids(&stack, "/workspaces/default/attempts", 4).await;
    assert_eq!(listed, newest_first(batch.iter()));
}

/// Batches overlap in time: concurrent invocations each write pages holding attempts from
/// the same seconds, and one batch may hold attempts from several seconds. Paged through in
/// small pages, the workspace's listing, each endpoint's and each status filter list every
/// attempt once, newest first; a cursor works only for the listing that gave it.
#[tokio::test]
async fn overlapping_batches_list_each_attempt_once_newest_first() {
    let _one_at_a_time = COUNTING.lock().await;
    let stack = Stack::new().await;
    let start = (Timestamp::now().unix_millis() as u64 / 1000 - 5) * 1000;
    let all: Vec<Attempt> = (0..90)
        .map(|n| {
            let endpoint = ["ep_a", "ep_b", "ep_c"][(n % 3) as usize];
            let status = if n % 4 == 0 {
                AttemptStatus::Failed
            } else {
                AttemptStatus::Successful
            };
            // Three seconds, 30 attempts each, 33 ms apart.
            attempt(start + (n / 30) * 1000 + (n % 30) * 33, n, endpoint, status)
        })
        .collect();
    // Seven batches, each taking every seventh attempt: every batch spans all three seconds
    // and every page interleaves with the others'.
    for b in 0..7 {
        let batch: Vec<Attempt> = all.iter().skip(b).step_by(7).cloned().collect();
        stack
            .store
            .put_attempts(&batch, stack.settings.retention())
            .await
            .unwrap();
    }
    let base = "/workspaces/default/attempts";
    assert_eq!(all_ids(&stack, base, 7).await, newest_first(all.iter()));
    assert_eq!(all_ids(&stack, base, 100).await, newest_first(all.iter()));
    for ep in ["ep_a", "ep_b", "ep_c"] {
        let wanted = newest_first(all.iter().filter(|a| a.endpoint_id == ep));
        assert_eq!(
            all_ids(&stack, &format!("{base}?endpoint_id={ep}"), 4).await,
            wanted,
            "{ep}"
        );
        let failed = newest_first(
            all.iter()
                .filter(|a| a.endpoint_id == ep && a.status == AttemptStatus::Failed),
        );
        assert_eq!(
            all_ids(&stack, &format!("{base}?endpoint_id={ep}&status=FAILED"), 2).await,
            failed,
            "{ep} failed"
        );
    }
    let succeeded = newest_first(all.iter().filter(|a| a.status == AttemptStatus::Successful));
    assert_eq!(
        all_ids(&stack, &format!("{base}?status=SUCCESSFUL"), 9).await,
        succeeded
    );

    let (_, first) = admin_call(&stack, "GET", &format!("{base}?limit=5"), None).await;
    let cursor = first["next"].as_str().expect("a cursor").to_owned();
    let (status, body) = admin_call(
        &stack,
        "GET",
        &format!("{base}?endpoint_id=ep_a&cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_cursor");

    // Each attempt by id, and not from another workspace.
    for a in all.iter().step_by(11) {
        let (status, got) = admin_call(&stack, "GET", &format!("{base}/{}", a.id), None).await;
        assert_eq!(status, 200, "{got}");
        assert_eq!(got["event_id"], Value::String(a.event_id.clone()));
    }
    let (status, _) = admin_call(
        &stack,
        "POST",
        "/workspaces",
        Some(serde_json::json!({"name": "other"})),
    )
    .await;
    assert!(status == 201 || status == 200, "{status}");
    let (status, _) = admin_call(
        &stack,
        "GET",
        &format!("/workspaces/other/attempts/{}", all[0].id),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

/// Attempts stored before listing pages were copied to the `listing` and `link` indexes.
/// They stay readable by id throughout; the sweeper moves them onto pages, drops their
/// copies, and marks the move done so later runs skip it. The listings then show them with
/// everything written since, in order.
#[tokio::test]
async fn the_sweeper_moves_attempts_from_before_pages_onto_them() {
    let _one_at_a_time = COUNTING.lock().await;
    let stack = Stack::new().await;
    let retention = stack.settings.retention();
    let start = (Timestamp::now().unix_millis() as u64 / 1000 - 60) * 1000;
    let old: Vec<Attempt> = (0..250)
        .map(|n| {
            let ep = if n % 2 == 0 { "ep_a" } else { "ep_b" };
            attempt(start + n * 97, n, ep, AttemptStatus::Successful)
        })
        .collect();
    let ddb = aws_sdk_dynamodb::Client::new(&stack.aws);
    for a in &old {
        let mut item = Store::attempt_item(a, retention).unwrap();
        item.insert("gsi1pk".into(), AttributeValue::S("default#ATT".into()));
        item.insert("gsi1sk".into(), AttributeValue::S(a.id.clone()));
        item.insert(
            "link_pk".into(),
            AttributeValue::S(format!("default#ATT#EP#{}", a.endpoint_id)),
        );
        ddb.put_item()
            .table_name(&stack.settings.table_name)
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
    }
    let new: Vec<Attempt> = (0..5)
        .map(|n| attempt(start + 60_000 + n, 1000 + n, "ep_a", AttemptStatus::Failed))
        .collect();
    stack.store.put_attempts(&new, retention).await.unwrap();
    let base = "/workspaces/default/attempts";
    let (status, got) = admin_call(&stack, "GET", &format!("{base}/{}", old[7].id), None).await;
    assert_eq!(status, 200, "readable by id before the move: {got}");

    let report = hookrelay_sweeper::handle(&stack.sweeper(), Timestamp::now())
        .await
        .unwrap();
    assert_eq!(report.legacy_attempts_paged, old.len());
    let everything = newest_first(old.iter().chain(&new));
    assert_eq!(all_ids(&stack, base, 40).await, everything);
    assert_eq!(
        all_ids(&stack, &format!("{base}?endpoint_id=ep_b"), 40).await,
        newest_first(old.iter().filter(|a| a.endpoint_id == "ep_b"))
    );
    let (status, got) = admin_call(&stack, "GET", &format!("{base}/{}", old[7].id), None).await;
    assert_eq!(status, 200, "readable by id after: {got}");
    let copies = ddb
        .query()
        .table_name(&stack.settings.table_name)
        .index_name(hookrelay_shared::store::LISTING_INDEX)
        .key_condition_expression("gsi1pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S("default#ATT".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(copies.count, 0, "the index copies are gone");

    assert!(!stack.store.legacy_attempts_paged().await.unwrap());
    let again = hookrelay_sweeper::handle(&stack.sweeper(), Timestamp::now())
        .await
        .unwrap();
    assert_eq!(again.legacy_attempts_paged, 0);
    assert!(
        stack.store.legacy_attempts_paged().await.unwrap(),
        "a pass that found none marks the move done"
    );
    assert_eq!(all_ids(&stack, base, 100).await, everything);
}

/// 300 attempts, the `n`th made at `at_ms(n)`, the first the only canceled one.
fn oldest_canceled(at_ms: impl Fn(u64) -> u64) -> Vec<Attempt> {
    (0..300)
        .map(|n| {
            let status = if n == 0 {
                AttemptStatus::Canceled
            } else {
                AttemptStatus::Successful
            };
            attempt(at_ms(n), n, "ep_a", status)
        })
        .collect()
}

/// The canceled attempts, listed one a page, following cursors (short pages too, as a
/// budget cuts them), and how many calls that took: at most 20.
async fn canceled_one_at_a_time(stack: &Stack) -> (Vec<String>, usize) {
    let base = "/workspaces/default/attempts?status=CANCELED&limit=1";
    let mut found = Vec::new();
    let mut uri = base.to_owned();
    for calls in 1..=20 {
        let (status, page) = admin_call(stack, "GET", &uri, None).await;
        assert_eq!(status, 200, "{uri}: {page}");
        found.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["id"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => uri = format!("{base}&cursor={next}"),
            None => return (found, calls),
        }
    }
    panic!("no end after 20 pages: {found:?}");
}

/// A status filter that matches one old attempt among hundreds of pages runs out of its
/// query budget first: it answers a short page with a cursor, and the cursor carries on from
/// where the reading stopped until the match, then the end.
#[tokio::test]
async fn a_rare_status_is_reached_across_budget_cut_pages() {
    let _one_at_a_time = COUNTING.lock().await;
    let stack = Stack::new().await;
    let start = (Timestamp::now().unix_millis() as u64 / 1000 - 400) * 1000;
    // One attempt a second: a page each, 300 of them, the oldest the only canceled one.
    let all = oldest_canceled(|n| start + n * 1000);
    stack
        .store
        .put_attempts(&all, stack.settings.retention())
        .await
        .unwrap();
    let (found, calls) = canceled_one_at_a_time(&stack).await;
    assert!(calls > 1, "the budget should have cut the first page short");
    assert_eq!(found, vec![all[0].id.clone()]);
}

/// The same within one busy second: 300 pages of one second (each its own delivery batch),
/// more than the budget reads, the oldest attempt the only canceled one. A read that stopped
/// inside the second would resume where it began, for ever; the listing reaches the match.
#[tokio::test]
async fn a_rare_status_is_reached_across_a_second_of_many_pages() {
    let _one_at_a_time = COUNTING.lock().await;
    let stack = Stack::new().await;
    let second = (Timestamp::now().unix_millis() as u64 / 1000 - 100) * 1000;
    let all = oldest_canceled(|n| second + n);
    futures::stream::iter(all.chunks(1))
        .for_each_concurrent(8, |one| {
            let stack = &stack;
            async move {
                stack
                    .store
                    .put_attempts(one, stack.settings.retention())
                    .await
                    .unwrap()
            }
        })
        .await;
    let (found, _) = canceled_one_at_a_time(&stack).await;
    assert_eq!(found, vec![all[0].id.clone()]);
    // Every attempt, a page of 100 at a time, each once.
    let mut everything: Vec<String> = all.iter().map(|a| a.id.clone()).collect();
    everything.reverse();
    assert_eq!(
        all_ids(&stack, "/workspaces/default/attempts", 100).await,
        everything
    );
}

/// An attempt named on two pages (a move of legacy attempts that stopped between writing
/// pages and dropping copies, then ran again) is listed once.
#[tokio::test]
async fn an_attempt_named_on_two_pages_is_listed_once() {
    let _one_at_a_time = COUNTING.lock().await;
    let stack = Stack::new().await;
    let second = (Timestamp::now().unix_millis() as u64 / 1000) * 1000;
    let batch: Vec<Attempt> = (0..8)
        .map(|n| attempt(second + 10 * n, n, "ep_a", AttemptStatus::Successful))
        .collect();
    let retention = stack.settings.retention();
    stack.store.put_attempts(&batch, retention).await.unwrap();
    // The first five again, on pages of their own with other keys.
    stack
        .store
        .put_attempts(&batch[..5], retention)
        .await
        .unwrap();
    assert_eq!(pages(&stack, "PAGE#default#ATT").await.len(), 2);
    for limit in [3, 100] {
        assert_eq!(
            all_ids(&stack, "/workspaces/default/attempts", limit).await,
            newest_first(batch.iter()),
            "limit {limit}"
        );
    }
}
