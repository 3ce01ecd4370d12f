//! `make dev`: the whole system on one machine. moto's server stands in for DynamoDB and
//! SQS, and this process plays Lambda (each function's processes, with the template's
//! `Timeout` and `MemorySize`), API Gateway, the SQS event source mapping and the EventBridge
//! schedule, all read from `template.yaml`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use aws_lambda_events::event::sqs::SqsBatchResponse;
use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::any;
use hookrelay_local::esm::{self, Mapping};
use hookrelay_local::gateway;
use hookrelay_local::lambda::{FunctionSpec, LocalLambda, Outcome};
use hookrelay_local::moto::MotoServer;
use hookrelay_local::provision::provision;
use hookrelay_local::template::Template;
use hookrelay_shared::store::Store;
use rand::RngCore;

struct Options {
    port: u16,
    aws_port: u16,
    lambda_port: u16,
    receiver_port: u16,
    admin_key: String,
    sweep_every: Duration,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v.parse().map_err(|_| anyhow!("{name}={v:?} is not valid")),
        _ => Ok(default),
    }
}

fn options() -> Result<Options> {
    Ok(Options {
        port: env_or("HOOKRELAY_PORT", 3000)?,
        aws_port: env_or("HOOKRELAY_AWS_PORT", 4566)?,
        lambda_port: env_or("HOOKRELAY_LAMBDA_PORT", 9000)?,
        receiver_port: env_or("HOOKRELAY_RECEIVER_PORT", 3001)?,
        admin_key: match std::env::var("HOOKRELAY_ADMIN_KEY") {
            Ok(k) if !k.is_empty() => k,
            _ => {
                let mut b = [0u8; 16];
                rand::rng().fill_bytes(&mut b);
                format!(
                    "hr_dev_{}",
                    b.iter().map(|x| format!("{x:02x}")).collect::<String>()
                )
            }
        },
        sweep_every: Duration::from_secs(env_or("HOOKRELAY_SWEEP_INTERVAL_SECONDS", 60)?),
    })
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber_init();
    let opts = options()?;
    if opts.admin_key.len() < 16 {
        anyhow::bail!("HOOKRELAY_ADMIN_KEY must be at least 16 characters");
    }
    let root = root();

    let moto = MotoServer::start(Some(opts.aws_port)).context("starting moto_server")?;
    let aws = hookrelay_shared::aws::local(&moto.endpoint).await;
    let template = Template::load(&root.join("template.yaml"))?;
    let mut prov = provision(&template, &aws, "hookrelay-local").await?;
    prov.bindings
        .refs
        .insert("AdminKey".into(), opts.admin_key.clone());
    // The admin key lives where the template says: an SSM SecureString parameter.
    if let Some(name) = template
        .parameter_default("AdminKeyParameterName")
        .as_ref()
        .and_then(hookrelay_local::template::scalar)
    {
        aws_sdk_ssm::Client::new(&aws)
            .put_parameter()
            .name(name)
            .value(&opts.admin_key)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .overwrite(true)
            .send()
            .await
            .map_err(aws_sdk_ssm::Error::from)?;
    }
    let store = Store::new(aws_sdk_dynamodb::Client::new(&aws), prov.table("Table")?);
    store
        .ensure_workspace(hookrelay_shared::DEFAULT_WORKSPACE)
        .await?;

    let env = hookrelay_local::function_env::function_environment(
        &template,
        &prov.bindings,
        &moto.endpoint,
        |name| std::env::var(name).ok(),
    )?;
    // The functions are the binaries `make dev` built beside this one.
    let bin_dir = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow!("no directory for the function binaries"))?;
    let env: Vec<(String, String)> = env.into_iter().collect();
    let lambda = LocalLambda::new(
        template
            .functions()?
            .into_iter()
            .map(|f| FunctionSpec {
                command: bin_dir.join(&f.binary),
                name: f.binary,
                env: env.clone(),
                timeout: f.timeout,
                memory_mb: f.memory_mb,
            })
            .collect(),
    );
    // Lambda's Invoke API, for invoking a function by hand.
    let invoke_listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.lambda_port))
        .await
        .with_context(|| {
            format!(
                "port {} is taken; set HOOKRELAY_LAMBDA_PORT",
                opts.lambda_port
            )
        })?;
    let invoke_app = lambda.clone().router();
    tokio::spawn(async move {
        let _ = axum::serve(invoke_listener, invoke_app).await;
    });

    let routes = template.http_routes()?;
    let app = gateway::router(routes, lambda.clone());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port))
        .await
        .with_context(|| format!("port {} is taken; set HOOKRELAY_PORT", opts.port))?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    start_receiver(opts.receiver_port).await?;

    let sqs = aws_sdk_sqs::Client::new(&aws);
    for source in template.sqs_event_sources()? {
        let mapping = Mapping {
            queue_url: prov.queue(&source.queue)?.to_owned(),
            queue_arn: prov
                .bindings
                .arns
                .get(&source.queue)
                .cloned()
                .unwrap_or_default(),
            batch_size: source.batch_size,
            window: Duration::from_secs(source.batching_window_secs),
            report_batch_item_failures: source.report_batch_item_failures,
            fifo: Mapping::is_fifo_url(prov.queue(&source.queue)?),
        };
        let (sqs, lambda) = (sqs.clone(), lambda.clone());
        tokio::spawn(async move {
            loop {
                let round = esm::run_once(&sqs, &mapping, Duration::from_secs(10), |event| {
                    invoke::<_, SqsBatchResponse>(&lambda, &source.binary, event)
                })
                .await;
                match round {
                    Ok(Some(r)) => tracing::info!(
                        received = r.received,
                        deleted = r.deleted,
                        failed = r.failed,
                        "delivery batch"
                    ),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "queue poll failed");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
            }
        });
    }
    for schedule in template.schedules()? {
        let (lambda, every) = (lambda.clone(), opts.sweep_every);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let event = serde_json::json!({"source": "hookrelay.local-schedule", "detail-type": "Scheduled Event", "detail": {}});
                match invoke::<_, serde_json::Value>(&lambda, &schedule.binary, event).await {
                    Ok(report) => {
                        tracing::info!(function = %schedule.binary, %report, "scheduled run")
                    }
                    Err(e) => {
                        tracing::warn!(function = %schedule.binary, error = %e, "scheduled run failed")
                    }
                }
            }
        });
    }

    print_quickstart(&opts);
    let _ = tokio::signal::ctrl_c().await;
    println!("\nstopping…");
    // Dropping the service ends the function processes it started.
    drop(lambda);
    drop(moto);
    Ok(())
}

fn tracing_subscriber_init() {
    hookrelay_shared::telemetry::init();
}

/// Invokes a function as Lambda's event sources do: a function error fails the invocation.
async fn invoke<E: serde::Serialize, R: serde::de::DeserializeOwned>(
    lambda: &LocalLambda,
    function: &str,
    event: E,
) -> Result<R> {
    match lambda.invoke(function, serde_json::to_vec(&event)?).await? {
        Outcome::Ok(body) => serde_json::from_slice(&body).map_err(|e| {
            anyhow!(
                "{function} answered something unexpected ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        }),
        Outcome::FunctionError(body) => Err(anyhow!(
            "{function} failed: {}",
            String::from_utf8_lossy(&body)
        )),
    }
}

/// A demo endpoint that prints each delivery, so the quickstart shows the whole trip.
async fn start_receiver(port: u16) -> Result<()> {
    let app = Router::new().fallback(any(|headers: HeaderMap, body: Bytes| async move {
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
        println!(
            "\n>>> demo receiver got a delivery\n    webhook-id: {}\n    webhook-timestamp: {}\n    webhook-signature: {}\n    body: {}\n",
            h("webhook-id"),
            h("webhook-timestamp"),
            h("webhook-signature"),
            String::from_utf8_lossy(&body)
        );
        "ok"
    }));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("port {port} is taken; set HOOKRELAY_RECEIVER_PORT"))?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(())
}

fn print_quickstart(o: &Options) {
    let api = format!("http://127.0.0.1:{}", o.port);
    println!(
        r#"
hookrelay is running locally.

  API (ingest + admin):  {api}
  web console:           {api}/console  (sign in with the admin key)
  admin key:             {key}
  demo receiver:         http://127.0.0.1:{rp}/hook  (prints what it receives)
  local AWS (moto):      http://127.0.0.1:{ap}
  sweeper runs every {sweep}s. Ctrl-C stops everything.

Quickstart, in another terminal:

  export HOOKRELAY={api} KEY={key}

  # 1. an endpoint that receives every event
  curl -s -X POST $HOOKRELAY/workspaces/default/endpoints -H "authorization: Bearer $KEY" \
    -d '{{"name":"demo","url":"http://127.0.0.1:{rp}/hook","events":["*"]}}'

  # 2. a source to send webhooks to
  SOURCE=$(curl -s -X POST $HOOKRELAY/workspaces/default/sources -H "authorization: Bearer $KEY" \
    -d '{{"name":"demo"}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

  # 3. send a webhook; the demo receiver prints it here
  curl -i -X POST $HOOKRELAY/in/$SOURCE -H 'content-type: application/json' \
    -d '{{"event_type":"order.created","data":{{"id":1}}}}'

  # 4. its delivery attempts
  curl -s "$HOOKRELAY/workspaces/default/attempts" -H "authorization: Bearer $KEY"

The same with the command line client (cargo install --path cli):

  export HOOKRELAY_URL={api} HOOKRELAY_KEY={key}
  hookrelay endpoints create --name cli-demo --url http://127.0.0.1:{rp}/hook
  hookrelay sources create --name cli-demo
  hookrelay send <the source's src_ id> --event-type order.created
  hookrelay attempts list
  hookrelay tail
"#,
        key = o.admin_key,
        rp = o.receiver_port,
        ap = o.aws_port,
        sweep = o.sweep_every.as_secs(),
    );
}
