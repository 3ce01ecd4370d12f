use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use hookrelay_delivery::Context;
use hookrelay_shared::{aws, config::Settings, telemetry};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let settings = Settings::from_env()?;
    let ctx: &'static Context = Box::leak(Box::new(Context::new(&aws::load().await, settings)?));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let trace = event.context.xray_trace_id.clone();
        // The deadline is wall-clock milliseconds; turn it into time left from now.
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let left = std::time::Duration::from_millis(event.context.deadline.saturating_sub(now_ms));
        let deadline = std::time::Instant::now() + left;
        Ok::<SqsBatchResponse, Error>(
            hookrelay_delivery::handle_traced(ctx, event.payload, trace.as_deref(), Some(deadline))
                .await,
        )
    }))
    .await
}
