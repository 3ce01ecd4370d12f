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
        Ok::<SqsBatchResponse, Error>(
            hookrelay_delivery::handle_traced(ctx, event.payload, trace.as_deref()).await,
        )
    }))
    .await
}
