//! AWS requests per event, as upper bounds: ingest is one conditional write and one
//! `SendMessageBatch`; delivery reads and writes per batch, not per task; nothing scans.
//! The full-size runs (1 000 events) are `make bench`'s.

use hookrelay_tests::requests::{FULL_BATCH, INGEST_INSTANCES, Scenario, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_per_event_stay_within_the_design() {
    // One run with the deployment's config lease, one with none.
    for (fanout, failure_ratio, config_lease_ms) in [(1, 0.0, 1000), (3, 0.3, 0)] {
        let events = 100;
        let r = run(Scenario {
            events,
            fanout,
            failure_ratio,
            body_bytes: 1024,
            batch_size: FULL_BATCH,
            config_lease_ms,
        })
        .await;
        println!("{}", serde_json::to_string_pretty(&r).unwrap());
        let n = events as u64;
        let ingest = &r.ingest;
        assert_eq!(
            ingest.get("DynamoDB.PutItem"),
            n,
            "one conditional write per event"
        );
        assert_eq!(
            ingest.get("SQS.SendMessageBatch"),
            n,
            "one SendMessageBatch per event"
        );
        assert_eq!(ingest.get("DynamoDB.UpdateItem"), 0);
        // A busy instance writes its routine metric values a line per many requests: one
        // per request was about 400 bytes of log ingestion an event.
        assert!(
            ingest.metric_bytes <= 40 * n,
            "{} metric bytes for {n} events",
            ingest.metric_bytes
        );
        // Each instance's first event reads the source twice, the stamp and the endpoints.
        // Then the workspace's config stamp (what makes a change apply to the next event):
        // with no lease once an event; with one, once a lease per instance.
        let instances = INGEST_INSTANCES as u64;
        let stamp_reads = if config_lease_ms == 0 {
            n
        } else {
            instances * (1 + (ingest.seconds * 1000.0 / config_lease_ms as f64).ceil() as u64)
        };
        assert!(
            ingest.get("DynamoDB.GetItem") + ingest.get("DynamoDB.Query")
                <= 3 * instances + stamp_reads,
            "{ingest:?} in {:.2} s",
            ingest.seconds
        );

        let d = &r.delivery;
        let rounds = r.delivery_invocations as u64;
        assert!(r.deliveries >= r.tasks, "every task was attempted");
        assert!(
            d.get("DynamoDB.BatchGetItem") <= rounds,
            "one batched read per invocation: {d:?}"
        );
        assert!(
            d.get("DynamoDB.BatchWriteItem") <= 2 * rounds,
            "a batch's new events listed before it delivers, its attempts written after: {d:?}"
        );
        // last_success_at at most once per endpoint per hour; failure counts once per failing
        // endpoint per batch; a circuit's probe claimed at most once per endpoint per batch.
        let failing_batches = if failure_ratio > 0.0 { rounds } else { 0 };
        assert!(
            d.get("DynamoDB.UpdateItem") <= fanout as u64 * 2 + failing_batches * fanout as u64 * 2,
            "{d:?}"
        );
        // Retries go back as new, delayed messages: one SendMessageBatch per failing batch
        // (ten tasks to a request); no visibility change holds them in flight.
        assert!(
            d.get("SQS.SendMessageBatch")
                <= failing_batches * (fanout as u64).div_ceil(1).max(1) * 2,
            "{d:?}"
        );
        assert_eq!(d.get("SQS.ChangeMessageVisibilityBatch"), 0, "{d:?}");
        // Successes are routine too: without failures, delivery's metric lines are few.
        if failure_ratio == 0.0 {
            assert!(
                d.metric_bytes <= 40 * n,
                "{} metric bytes for {n} events",
                d.metric_bytes
            );
        }
        // A page of a batch's events (ten at most) is one write unit: an entry spells out
        // its event's key only when the id and source do not make it.
        assert!(r.event_pages > 0);
        assert_eq!(r.event_page_write_units, r.event_pages, "{r:?}");
        for phase in [ingest, d] {
            assert!(
                !phase.requests.keys().any(|k| k.ends_with(".Scan")),
                "no Scan anywhere: {phase:?}"
            );
        }
    }
}
