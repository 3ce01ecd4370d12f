//! A batch of ten tasks to an endpoint that answers in 200 ms: delivered concurrently it
//! takes about 200 ms, one at a time about 2 s. Runs the real per-batch delivery code
//! (`deliver_all`) against a real HTTP server on 127.0.0.1; no AWS calls are involved.

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use criterion::{Criterion, criterion_group, criterion_main};
use hookrelay_delivery::{Context, Endpoints, Events, Received, deliver_all};
use hookrelay_shared::config::Settings;
use hookrelay_shared::{DeliveryTask, Endpoint, Event, Timestamp, ids};

const ANSWER_AFTER: Duration = Duration::from_millis(200);
const BATCH: usize = 10;

fn batch(url: &str) -> (Vec<Received>, Events, Endpoints) {
    let endpoint = Endpoint::new("default", "slow", url, vec!["*".into()]);
    let mut events = HashMap::new();
    let mut received = Vec::new();
    for n in 0..BATCH {
        let event = Event {
            id: ids::new_id(ids::EVENT),
            workspace: "default".into(),
            source_id: "src_bench".into(),
            event_type: "bench".into(),
            idempotency_key: format!("k{n}"),
            received_at: Timestamp::now(),
            payload: vec![b'x'; 1024],
            content_type: None,
            endpoint_ids: vec![endpoint.id.clone()],
            hops: 0,
            trace: None,
        };
        let key = format!("EVT#bench#{n}");
        received.push(Received {
            message_id: format!("m{n}"),
            receipt_handle: String::new(),
            task: DeliveryTask::new(&event, &key, &endpoint.id),
            attempt: 1,
            receive_count: 1,
            sent_at: None,
            trace_id: None,
            deadline: None,
        });
        events.insert(key, event);
    }
    let endpoints = HashMap::from([((endpoint.workspace.clone(), endpoint.id.clone()), endpoint)]);
    (received, events, endpoints)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let url = rt.block_on(async {
        let app = Router::new().route(
            "/hook",
            post(|| async {
                tokio::time::sleep(ANSWER_AFTER).await;
                "ok"
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/hook")
    });
    // No AWS call is made: the client only needs to exist.
    let aws = rt.block_on(hookrelay_shared::aws::local("http://127.0.0.1:1"));
    let mut group = c.benchmark_group("batch_of_10_to_a_200ms_endpoint");
    group.sample_size(10).warm_up_time(Duration::from_secs(1));
    for (name, concurrency) in [("concurrent", 32), ("sequential", 1)] {
        let mut settings = Settings::for_resources("t", "q", "d");
        settings.delivery_allow_networks = "127.0.0.1".into();
        settings.delivery_concurrency = concurrency;
        let ctx = Context::new(&aws, settings).expect("context");
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let (received, events, endpoints) = batch(&url);
                let out = deliver_all(&ctx, received, &events, &endpoints).await;
                assert!(
                    out.iter()
                        .all(|(_, o)| matches!(o, hookrelay_delivery::Outcome::Delivered(_)))
                );
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
