use hookrelay_admin::Context;
use hookrelay_shared::{aws, config, telemetry};
use lambda_http::{Body, Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let settings = config::Settings::from_env()?;
    let admin_key = config::required("HOOKRELAY_ADMIN_KEY")?;
    let ctx = Context::new(&aws::load().await, settings, admin_key)?;
    ctx.store
        .ensure_workspace(hookrelay_shared::DEFAULT_WORKSPACE)
        .await?;
    let ctx: &'static Context = Box::leak(Box::new(ctx));
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(hookrelay_admin::handle(ctx, req).await.map(Body::from))
    }))
    .await
}
