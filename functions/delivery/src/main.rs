use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use hookrelay_delivery::Context;
use hookrelay_shared::{aws, config::Settings, telemetry};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let settings = Settings::from_env()?;
    let ctx: &'static Context = Box::leak(Box::new(Context::new(&aws::load().await, settings)?));
    // The connections' handshakes in init, side by side (see shared/src/warm.rs).
    hookrelay_shared::warm::connections(&ctx.store, &ctx.queue).await;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let trace = event.context.xray_trace_id.clone();
        // The deadline is wall-clock milliseconds; turn it into time left from now.
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        // A deadline already past when the invocation starts is not Lambda's (a local runtime
        // may send none): deliveries are then bounded by their own timeouts only.
        let deadline = (event.context.deadline > now_ms).then(|| {
            std::time::Instant::now()
                + std::time::Duration::from_millis(event.context.deadline - now_ms)
        });
        Ok::<SqsBatchResponse, Error>(
            hookrelay_delivery::handle_traced(ctx, event.payload, trace.as_deref(), deadline).await,
        )
    }))
    .await
}
