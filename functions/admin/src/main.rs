use anyhow::Context as _;
use hookrelay_admin::Context;
use hookrelay_shared::{aws, config, telemetry};
use lambda_http::{Body, Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let settings = config::Settings::from_env()?;
    let sdk = aws::load().await;
    let admin_key = admin_key(&sdk).await?;
    // `default` needs no write at cold start: the store answers for it whether or not it
    // was ever written.
    let ctx: &'static Context = Box::leak(Box::new(Context::new(&sdk, settings, admin_key)?));
    // The connections' handshakes in init, side by side (see shared/src/warm.rs).
    hookrelay_shared::warm::connections(&ctx.store, &ctx.queue).await;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(hookrelay_admin::handle(ctx, req).await.map(Body::from))
    }))
    .await
}

/// The admin key: from the SSM SecureString parameter the template names, read once at cold
/// start, or from `HOOKRELAY_ADMIN_KEY` directly.
async fn admin_key(sdk: &aws_config::SdkConfig) -> anyhow::Result<String> {
    if let Ok(name) = std::env::var("HOOKRELAY_ADMIN_KEY_PARAMETER")
        && !name.is_empty()
    {
        let out = aws_sdk_ssm::Client::new(sdk)
            .get_parameter()
            .name(&name)
            .with_decryption(true)
            .send()
            .await
            .map_err(aws_sdk_ssm::Error::from)
            .with_context(|| format!("reading the admin key from SSM parameter {name}"))?;
        return out
            .parameter
            .and_then(|p| p.value)
            .with_context(|| format!("SSM parameter {name} has no value"));
    }
    Ok(config::required("HOOKRELAY_ADMIN_KEY")?)
}
