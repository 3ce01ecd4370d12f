use hookrelay_shared::{Timestamp, aws, config::Settings, telemetry};
use hookrelay_sweeper::{Context, SweepOptions, SweepReport};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let settings = Settings::from_env()?;
    let ctx: &'static Context = Box::leak(Box::new(Context::new(&aws::load().await, settings)));
    // The schedule's event carries nothing the sweep needs; `{"dry_run": true}` asks for
    // the report alone.
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let opts = SweepOptions::from_input(&event.payload);
            Ok::<SweepReport, Error>(hookrelay_sweeper::run(ctx, Timestamp::now(), opts).await?)
        },
    ))
    .await
}
