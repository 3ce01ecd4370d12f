use hookrelay_ingest::Context;
use hookrelay_shared::{aws, config::Settings, telemetry};
use lambda_http::{Body, Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let settings = Settings::from_env()?;
    let ctx: &'static Context = Box::leak(Box::new(Context::new(&aws::load().await, settings)));
    // The connections' handshakes in init, side by side (see shared/src/warm.rs).
    hookrelay_shared::warm::connections(&ctx.store, &ctx.queue).await;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(hookrelay_ingest::handle(ctx, req).await.map(Body::from))
    }))
    .await
}
