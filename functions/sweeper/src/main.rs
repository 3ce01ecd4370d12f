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
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            // A deadline already past is not Lambda's (a local runtime may send none).
            let deadline = std::time::Instant::now()
                + if event.context.deadline > now_ms {
                    std::time::Duration::from_millis(event.context.deadline - now_ms)
                } else {
                    hookrelay_sweeper::DEFAULT_BUDGET
                };
            Ok::<SweepReport, Error>(
                hookrelay_sweeper::run_until(ctx, Timestamp::now(), opts, deadline).await?,
            )
        },
    ))
    .await
}
