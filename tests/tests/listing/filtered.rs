//! Filtered listings read only what they list: a few wanted items among many others come back
//! as one full page, in one query and one read-back.

use hookrelay_shared::requests as counted;
use hookrelay_tests::listings::{self, ENDPOINT, SOURCE, Seeded, TYPE, all_ids};
use hookrelay_tests::{Stack, admin_call};

use super::COUNTING;

use hookrelay_tests::listings::page_ids as ids;

/// `(filter, path, wanted ids newest first)` for every filter the API offers.
fn cases(s: &Seeded) -> Vec<(&'static str, String, Vec<String>)> {
    let base = "/workspaces/default";
    let event = &s.events[s.events.len() - 42];
    vec![
        (
            "events by source",
            format!("{base}/events?source_id={SOURCE}"),
            s.by_source.clone(),
        ),
        (
            "events by type",
            format!("{base}/events?event_type={TYPE}"),
            s.by_type.clone(),
        ),
        (
            "events by source and type",
            format!("{base}/events?source_id={SOURCE}&event_type={TYPE}"),
            s.by_source_and_type.clone(),
        ),
        (
            "attempts by endpoint",
            format!("{base}/attempts?endpoint_id={ENDPOINT}"),
            s.by_endpoint.clone(),
        ),
        (
            "attempts by endpoint and status",
            format!("{base}/attempts?endpoint_id={ENDPOINT}&status=FAILED"),
            s.by_endpoint_failed.clone(),
        ),
        (
            "attempts by event",
            format!("{base}/attempts?event_id={event}"),
            s.by_event[event].clone(),
        ),
        (
            "attempts by event and endpoint",
            format!("{base}/attempts?event_id={event}&endpoint_id={ENDPOINT}"),
            s.by_event[event].clone(),
        ),
    ]
}

/// 123 events and attempts, of which 3 to 6 match each filter, spread from newest to oldest:
/// one page holds them all, with no cursor, for one `Query` and at most one `BatchGetItem`.
#[tokio::test]
async fn a_filtered_listing_is_one_full_page_in_two_requests() {
    let _one_at_a_time = COUNTING.lock().await;
    let stack = Stack::new().await;
    let seeded = listings::seed(&stack, 123).await;
    assert_eq!(seeded.by_source_and_type.len(), 3);
    for (what, path, wanted) in cases(&seeded) {
        assert!(!wanted.is_empty(), "{what}");
        let before = counted::snapshot();
        let (status, page) = admin_call(&stack, "GET", &path, None).await;
        let sent = counted::since(&before);
        assert_eq!(status, 200, "{what}: {page}");
        assert_eq!(ids(&page), wanted, "{what}: all of them, newest first");
        assert!(page["next"].is_null(), "{what}: nothing follows: {page}");
        let count = |op: &str| sent.get(&("DynamoDB".to_owned(), op.to_owned())).copied();
        // Events: their pages, and the index events stored before pages are in.
        let queries = if what.starts_with("events") { 2 } else { 1 };
        assert_eq!(count("Query"), Some(queries), "{what}: {sent:?}");
        assert!(count("BatchGetItem").unwrap_or(0) <= 1, "{what}: {sent:?}");
    }
}

/// Pages of two follow each other without repeating or skipping, newest first, and the last
/// one carries no cursor.
#[tokio::test]
async fn filtered_pages_list_each_item_once_newest_first() {
    let _one_at_a_time = COUNTING.lock().await;
    let stack = Stack::new().await;
    let seeded = listings::seed(&stack, 123).await;
    for (what, path, wanted) in cases(&seeded) {
        assert_eq!(all_ids(&stack, &path, 2).await, wanted, "{what}");
    }
    let everything = all_ids(&stack, "/workspaces/default/events", 50).await;
    assert_eq!(everything, seeded.events);
}

/// A cursor is valid only for the listing that gave it: another filter's, or garbage, is
/// `400 invalid_cursor`.
#[tokio::test]
async fn a_cursor_of_another_filter_is_refused() {
    let _one_at_a_time = COUNTING.lock().await;
    let stack = Stack::new().await;
    listings::seed(&stack, 50).await;
    let base = "/workspaces/default";
    let (_, page) = admin_call(
        &stack,
        "GET",
        &format!("{base}/events?source_id={SOURCE}&limit=1"),
        None,
    )
    .await;
    let cursor = page["next"].as_str().expect("a cursor").to_owned();
    for other in [
        format!("{base}/events?event_type={TYPE}&cursor={cursor}"),
        format!("{base}/events?source_id=src_o1&cursor={cursor}"),
        format!("{base}/events?cursor={cursor}"),
        format!("{base}/attempts?endpoint_id={ENDPOINT}&cursor={cursor}"),
        format!("{base}/events?source_id={SOURCE}&cursor=bm90IGpzb24"),
    ] {
        let (status, body) = admin_call(&stack, "GET", &other, None).await;
        assert_eq!(status, 400, "{other}: {body}");
        assert_eq!(body["error"]["code"], "invalid_cursor", "{other}: {body}");
    }
    let (status, _) = admin_call(
        &stack,
        "GET",
        &format!("{base}/events?source_id={SOURCE}&cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
}

/// Events written before the filter indexes existed lack their keys: they are listed
/// unfiltered, and by no filter (they expire with the retention instead).
#[tokio::test]
async fn items_without_filter_keys_are_listed_unfiltered_only() {
    let _one_at_a_time = COUNTING.lock().await;
    let stack = Stack::new().await;
    let seeded = listings::seed(&stack, 3).await;
    let before_upgrade = listings::put_legacy_event(&stack, SOURCE, TYPE, false).await;
    let (_, all) = admin_call(&stack, "GET", "/workspaces/default/events", None).await;
    let mut expected = vec![before_upgrade.clone()];
    expected.extend(seeded.events.iter().cloned());
    assert_eq!(ids(&all), expected);
    for filter in [format!("source_id={SOURCE}"), format!("event_type={TYPE}")] {
        let (_, filtered) = admin_call(
            &stack,
            "GET",
            &format!("/workspaces/default/events?{filter}"),
            None,
        )
        .await;
        assert!(!ids(&filtered).contains(&before_upgrade), "{filtered}");
        assert!(!ids(&filtered).is_empty(), "{filtered}");
    }
}
