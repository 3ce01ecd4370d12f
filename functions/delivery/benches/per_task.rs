//! The delivery function's CPU per task, without the network: read the SQS message's task,
//! build and sign the request (Standard Webhooks, 1 KiB body; a batch of 10; a Lark bot
//! message), and encode the attempt item written afterwards.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use hookrelay_delivery::send::batch_body;
use hookrelay_shared::outbound::lark;
use hookrelay_shared::store::Store;
use hookrelay_shared::{
    Attempt, AttemptRequest, AttemptResponse, AttemptStatus, DeliveryTask, Event, LarkBot,
    LarkMessageType, Timestamp, TriggerMode, ids, signature,
};

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn event() -> Event {
    let mut payload = String::from(r#"{"event_type":"order.paid","data":{"id":"ord_1","note":""#);
    while payload.len() < 1024 - 3 {
        payload.push('x');
    }
    payload.push_str(r#""}}"#);
    Event {
        id: ids::new_id(ids::EVENT),
        workspace: "default".into(),
        source_id: "src_1".into(),
        event_type: "order.paid".into(),
        idempotency_key: "k".into(),
        received_at: Timestamp::now(),
        payload: payload.into_bytes(),
        endpoint_ids: vec!["ep_1".into()],
        content_type: None,
        hops: 0,
        trace: None,
    }
}

fn attempt(event: &Event, now: Timestamp) -> Attempt {
    Attempt {
        id: ids::new_id(ids::ATTEMPT),
        workspace: event.workspace.clone(),
        event_id: event.id.clone(),
        endpoint_id: "ep_1".into(),
        status: AttemptStatus::Successful,
        attempt_number: 1,
        trigger_mode: TriggerMode::Initial,
        scheduled_at: now,
        attempted_at: now,
        exhausted: false,
        error_code: None,
        error_message: None,
        next_attempt_at: None,
        request: AttemptRequest {
            method: "POST".into(),
            url: "https://example.com/hook".into(),
            headers: BTreeMap::from([
                ("content-type".into(), "application/json".into()),
                ("webhook-id".into(), event.id.clone()),
            ]),
        },
        response: Some(AttemptResponse {
            status: Some(200),
            latency: 42,
            headers: BTreeMap::from([("content-type".into(), "text/plain".into())]),
            body: Some("ok".into()),
            truncated: false,
        }),
    }
}

fn benches(c: &mut Criterion) {
    let event = event();
    let now = Timestamp::now();
    let message =
        serde_json::to_string(&DeliveryTask::new(&event, "EVT#src_1#k", "ep_1")).expect("task");

    c.bench_function("delivery/per_task", |b| {
        b.iter(|| {
            let task: DeliveryTask = serde_json::from_str(black_box(&message)).expect("task");
            let sig = signature::sign(WHSEC, &task.event_id, now.unix_seconds(), &event.payload)
                .expect("sign");
            let item = Store::attempt_item(&attempt(&event, now), Duration::from_secs(86_400))
                .expect("item");
            black_box((sig, item))
        })
    });
    let ten: Vec<&Event> = std::iter::repeat_n(&event, 10).collect();
    c.bench_function("delivery/batch_of_10_body_and_signature", |b| {
        b.iter(|| {
            let body = batch_body(black_box(&ten));
            black_box(signature::sign(WHSEC, "bat_1", now.unix_seconds(), &body).expect("sign"))
        })
    });
    let bot = LarkBot {
        secret: Some("s".into()),
        msg_type: LarkMessageType::Post,
        title: Some("{{ event_type }}".into()),
        template: Some("Order {{ data.id }}\n{{ data.note }}".into()),
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    c.bench_function("delivery/lark_post_message", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                lark::message(&bot, black_box(&event), now, Duration::from_secs(2))
                    .await
                    .expect("message"),
            )
        })
    });
}

criterion_group!(per_task, benches);
criterion_main!(per_task);
