//! `make bench`'s measurements on the local stack, written as JSON under `bench/results/`
//! (or `HOOKRELAY_BENCH_OUT`): AWS requests and log bytes per event at 1 000 events (fan-out
//! 1 and 3, all succeeding and with 30 % failures; 1 MiB events kept in S3), the sweeper's reads with 1 000 and
//! 10 000 endpoints of which 10 are stale, ingest's cost as a workspace's endpoints grow, and
//! what a listing page costs, unfiltered and filtered. Ignored in `make test`: `make bench`
//! runs them.

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use hookrelay_shared::config::DEFAULT_CONFIG_LEASE_MS;
use hookrelay_shared::{Endpoint, Timestamp};
use hookrelay_tests::requests::{FULL_BATCH, Mark, Scenario, run};
use hookrelay_tests::{Stack, admin_request, create_source, request};
use serde_json::{Value, json};

fn out_dir() -> PathBuf {
    let dir = std::env::var("HOOKRELAY_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench/results"));
    std::fs::create_dir_all(&dir).expect("results dir");
    dir
}

fn write(name: &str, value: &Value) {
    let path = out_dir().join(name);
    std::fs::write(&path, serde_json::to_string_pretty(value).unwrap()).unwrap();
    println!("wrote {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: make bench"]
async fn bench_requests_per_event() {
    hookrelay_shared::telemetry::init_counting();
    for (fanout, failure_ratio, batch_size) in scenarios() {
        let r = run(Scenario {
            events: 1000,
            fanout,
            failure_ratio,
            body_bytes: 1024,
            batch_size,
            // Full batches are a busy queue, and a busy ingest; batches of one a low rate,
            // where each event reads the config stamp.
            config_lease_ms: if batch_size == FULL_BATCH {
                DEFAULT_CONFIG_LEASE_MS
            } else {
                0
            },
        })
        .await;
        println!(
            "fan-out {fanout}, failures {failure_ratio}, batches of {batch_size}: ingest {:?}, delivery {:?}",
            r.ingest.requests, r.delivery.requests
        );
        let batch = if batch_size == FULL_BATCH {
            String::new()
        } else {
            format!("-batch{batch_size}")
        };
        write(
            &format!(
                "requests-fanout{fanout}-failures{}{batch}.json",
                (failure_ratio * 100.0) as u32
            ),
            &serde_json::to_value(&r).unwrap(),
        );
    }
}

/// Events over 256 KiB, kept in S3: the S3 requests per event beside the rest, for the cost
/// of a large event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: make bench"]
async fn bench_large_payload() {
    hookrelay_shared::telemetry::init_counting();
    let r = run(Scenario {
        events: 100,
        fanout: 1,
        failure_ratio: 0.0,
        body_bytes: 1024 * 1024,
        batch_size: FULL_BATCH,
        config_lease_ms: DEFAULT_CONFIG_LEASE_MS,
    })
    .await;
    println!(
        "1 MiB events: ingest {:?}, delivery {:?}",
        r.ingest.requests, r.delivery.requests
    );
    write("large-payload.json", &serde_json::to_value(&r).unwrap());
}

/// Write units of one event's item by payload size, its payload kept as it came and as the
/// store keeps it (compressed when that saves a unit), for realistic JSON webhooks: what the
/// cost model's DynamoDB writes scale with. No AWS call is made.
#[test]
#[ignore = "a benchmark: make bench"]
fn bench_event_item_units() {
    let units = |bytes: usize| bytes.div_ceil(1024).max(1);
    let retention = Duration::from_secs(30 * 86_400);
    let mut rows = Vec::new();
    for kib in [1, 2, 4, 8, 16, 64] {
        let (mut as_came, mut stored) = (0, 0);
        const SAMPLES: usize = 100;
        for n in 0..SAMPLES {
            let id = hookrelay_shared::ids::new_id(hookrelay_shared::ids::EVENT);
            let source = hookrelay_shared::ids::new_id(hookrelay_shared::ids::SOURCE);
            let event = hookrelay_shared::Event {
                workspace: "default".into(),
                source_id: source.clone(),
                event_type: "invoice.paid".into(),
                idempotency_key: id.clone(),
                received_at: Timestamp::now(),
                payload: hookrelay_tests::bodies::invoice_event(n as u64, kib * 1024).into_bytes(),
                endpoint_ids: vec![hookrelay_shared::ids::new_id(
                    hookrelay_shared::ids::ENDPOINT,
                )],
                content_type: None,
                hops: 0,
                trace: Some(hookrelay_shared::trace_context::TraceContext::start()),
                id,
            };
            let mut item =
                hookrelay_shared::store::Store::event_item(&event, &source, false, retention)
                    .expect("item");
            stored += units(hookrelay_shared::store::item_bytes(&item));
            hookrelay_shared::store::inflate_payload(&mut item).expect("inflate");
            as_came += units(hookrelay_shared::store::item_bytes(&item));
        }
        rows.push(json!({
            "payload_kib": kib,
            "write_units_as_came": as_came as f64 / SAMPLES as f64,
            "write_units_stored": stored as f64 / SAMPLES as f64,
        }));
    }
    write("event-item-units.json", &json!({ "rows": rows }));
}

/// The scenarios this run measures: fan-out 1 and 3, each with and without failures, in full
/// batches, and fan-out 1 in batches of one (a low rate); or the ones
/// `HOOKRELAY_BENCH_SCENARIOS` names (`fanout:failure ratio[:batch size]`, comma-separated),
/// so `make bench` can run them in two processes, each with its own emulator, at once.
fn scenarios() -> Vec<(usize, f64, usize)> {
    match std::env::var("HOOKRELAY_BENCH_SCENARIOS") {
        Ok(list) if !list.is_empty() => list
            .split(',')
            .map(|s| {
                let mut parts = s.split(':').map(str::trim);
                let fanout = parts.next().unwrap().parse().unwrap();
                let ratio = parts.next().expect("fanout:failure ratio").parse().unwrap();
                let batch = parts.next().map_or(FULL_BATCH, |b| b.parse().unwrap());
                (fanout, ratio, batch)
            })
            .collect(),
        _ => vec![
            (1, 0.0, FULL_BATCH),
            (1, 0.3, FULL_BATCH),
            (3, 0.0, FULL_BATCH),
            (3, 0.3, FULL_BATCH),
            (1, 0.0, 1),
        ],
    }
}

async fn put_endpoints(stack: &Stack, n: usize, stale: usize) {
    let old = Timestamp::now().minus(Duration::from_secs(400 * 86_400));
    futures::stream::iter(0..n)
        .for_each_concurrent(32, |i| async move {
            let mut ep = Endpoint::new(
                "default",
                &format!("e{i}"),
                "https://example.com/",
                vec!["never.matches".into()],
            );
            if i < stale {
                ep.created_at = old;
            }
            stack.store.put_endpoint(&mut ep).await.unwrap();
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: make bench"]
async fn bench_cost_growth() {
    let mut sweeper_runs = Vec::new();
    let started = std::time::Instant::now();
    let progress = |what: &str| eprintln!("[{:>6.1} s] {what}", started.elapsed().as_secs_f64());
    for total in [1000, 10_000] {
        let stack = Stack::new().await;
        put_endpoints(&stack, total, 10).await;
        progress(&format!("{total} endpoints written"));
        // A run in steady state: the one-time move of pre-page attempts is long done.
        stack.store.mark_legacy_attempts_paged().await.unwrap();
        let mark = Mark::now();
        let report = hookrelay_sweeper::handle(&stack.sweeper(), Timestamp::now())
            .await
            .unwrap();
        let phase = mark.phase();
        assert_eq!(report.deactivated, 10);
        progress(&format!("swept {total}"));
        sweeper_runs.push(json!({
            "endpoints": total,
            "stale": 10,
            "requests": phase.requests,
            "seconds": phase.seconds,
            "deactivated": report.deactivated,
        }));
    }

    // Ingest as a workspace's endpoints grow: one of them subscribed, then all of them.
    progress("ingest by endpoints");
    let mut fanout = Vec::new();
    for total in [10, 100, 1000] {
        for subscribed in ["one", "all"] {
            let stack = Stack::new().await;
            let mut stack = stack;
            stack.settings.cache_ttl = Duration::from_secs(300);
            futures::stream::iter(0..total)
                .for_each_concurrent(32, |i| {
                    let stack = &stack;
                    async move {
                        let filter = if subscribed == "all" || i == 0 {
                            "*"
                        } else {
                            "never"
                        };
                        let mut ep = Endpoint::new(
                            "default",
                            &format!("e{i}"),
                            "https://example.com/",
                            vec![filter.into()],
                        );
                        stack.store.put_endpoint(&mut ep).await.unwrap();
                    }
                })
                .await;
            let source = create_source(&stack, json!({"name": "s"})).await;
            let ingest = stack.ingest();
            let body = format!(
                r#"{{"event_type":"t","data":{{"pad":"{}"}}}}"#,
                "x".repeat(990)
            );
            // The first event reads the endpoints (a cold cache); the next ones do not.
            let cold = Mark::now();
            hookrelay_ingest::handle(
                &ingest,
                request("POST", &format!("/in/{source}"), &[], body.as_bytes()),
            )
            .await;
            let cold = cold.phase();
            // The local SQS emulator slows as a queue grows to thousands of messages, and AWS
            // does not: the tasks are purged after each event (by an uncounted client). Fewer
            // events for the widest fan-out; the counts are the same every time.
            let purge = || async {
                let _ = stack
                    .sqs
                    .purge_queue()
                    .queue_url(&stack.settings.delivery_queue_url)
                    .send()
                    .await;
            };
            purge().await;
            let warm_events = if total * usize::from(subscribed == "all") >= 1000 {
                2
            } else {
                10
            };
            let mut warm = hookrelay_tests::requests::Phase::empty();
            for _ in 0..warm_events {
                let mark = Mark::now();
                let resp = hookrelay_ingest::handle(
                    &ingest,
                    request("POST", &format!("/in/{source}"), &[], body.as_bytes()),
                )
                .await;
                assert_eq!(resp.status(), 202, "{}", resp.body());
                warm.add(mark.phase());
                purge().await;
            }
            progress(&format!("{total} endpoints, {subscribed} subscribed"));
            fanout.push(json!({
                "endpoints": total,
                "subscribed": subscribed,
                "cold_first_event": cold.requests,
                "warm_events": warm_events,
                "warm_requests": warm.requests,
                "warm_seconds_per_event": warm.seconds / warm_events as f64,
            }));
        }
    }
    write(
        "growth.json",
        &json!({
            "sweeper": sweeper_runs,
            "ingest_by_endpoints": fanout,
        }),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: make bench"]
async fn bench_listing_pages() {
    // Unfiltered: 120 events through ingest and delivery, one endpoint.
    let stack = Stack::new().await;
    let source = create_source(&stack, json!({"name": "s"})).await;
    let receiver = hookrelay_tests::Receiver::start().await;
    hookrelay_tests::create_endpoint(&stack, json!({"name": "r", "url": receiver.url})).await;
    let ingest = stack.ingest();
    for n in 0..120 {
        let body = format!(
            r#"{{"event_type":"t","data":{{"n":{n},"pad":"{}"}}}}"#,
            "x".repeat(900)
        );
        hookrelay_ingest::handle(
            &ingest,
            request("POST", &format!("/in/{source}"), &[], body.as_bytes()),
        )
        .await;
    }
    stack.drain(&stack.delivery()).await;
    let mut rows = Vec::new();
    for (what, uri, items) in [
        ("events", "/workspaces/default/events?limit=50", 120),
        ("attempts", "/workspaces/default/attempts?limit=50", 120),
        ("endpoints", "/workspaces/default/endpoints?limit=50", 1),
    ] {
        rows.push(page_cost(&stack, what, uri, items, items).await);
    }
    let page = stack
        .store
        .list_events(
            "default",
            &hookrelay_shared::store::PageRequest {
                limit: Some(50),
                cursor: None,
            },
        )
        .await
        .unwrap();
    let item_bytes: usize = page.data.iter().map(|e| e.payload.len() + 200).sum();

    // Filtered: every 41st of 2 050 events and attempts is wanted, the rest interleave.
    use hookrelay_tests::listings::{self, ENDPOINT, SOURCE, TYPE};
    let stack = Stack::new().await;
    let total = 2050;
    let seeded = listings::seed(&stack, total).await;
    let event = seeded.by_event.keys().next().unwrap().clone();
    // Every third attempt of the others failed, and those of the wanted endpoint but the first.
    let failed: Vec<String> = (0..total)
        .filter(|i| if i % 41 == 0 { *i > 0 } else { i % 3 == 0 })
        .map(|i| i.to_string())
        .collect();
    let base = "/workspaces/default";
    for (what, uri, matching) in [
        (
            "events by source",
            format!("{base}/events?source_id={SOURCE}&limit=50"),
            &seeded.by_source,
        ),
        (
            "events by type",
            format!("{base}/events?event_type={TYPE}&limit=50"),
            &seeded.by_type,
        ),
        (
            "events by source and type",
            format!("{base}/events?source_id={SOURCE}&event_type={TYPE}&limit=50"),
            &seeded.by_source_and_type,
        ),
        (
            "attempts by endpoint",
            format!("{base}/attempts?endpoint_id={ENDPOINT}&limit=50"),
            &seeded.by_endpoint,
        ),
        (
            "attempts by endpoint and status",
            format!("{base}/attempts?endpoint_id={ENDPOINT}&status=FAILED&limit=50"),
            &seeded.by_endpoint_failed,
        ),
        (
            "attempts by event",
            format!("{base}/attempts?event_id={event}&limit=50"),
            &seeded.by_event[&event],
        ),
        (
            "attempts by status (filter only)",
            format!("{base}/attempts?status=FAILED&limit=50"),
            &failed,
        ),
    ] {
        rows.push(page_cost(&stack, what, &uri, matching.len(), total as usize).await);
    }
    write(
        "listing.json",
        &json!({
            "page_size": 50,
            "listing": rows,
            "listing_event_page_item_bytes": item_bytes,
        }),
    );
}

/// One page's requests, with how many items it shows, how many match and how many of their
/// kind the workspace holds.
async fn page_cost(stack: &Stack, what: &str, uri: &str, matching: usize, among: usize) -> Value {
    let mark = Mark::now();
    let resp = hookrelay_admin::handle(&stack.admin(), admin_request("GET", uri, None)).await;
    let phase = mark.phase();
    assert_eq!(resp.status(), 200, "{uri}: {}", resp.body());
    let page: Value = serde_json::from_str(resp.body()).unwrap();
    json!({
        "listing": what,
        "page_size": 50,
        "items": page["data"].as_array().map_or(0, Vec::len),
        "matching": matching,
        "among": among,
        "more": !page["next"].is_null(),
        "requests": phase.requests,
        "response_bytes": resp.body().len(),
    })
}
