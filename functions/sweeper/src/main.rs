use hookrelay_shared::{Timestamp, aws, config::Settings, telemetry};
use hookrelay_sweeper::{Context, SweepReport};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let settings = Settings::from_env()?;
    let ctx: &'static Context = Box::leak(Box::new(Context::new(&aws::load().await, settings)));
    // The schedule's event carries nothing the sweep needs.
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            Ok::<SweepReport, Error>(hookrelay_sweeper::handle(ctx, Timestamp::now()).await?)
        },
    ))
    .await
}
