//! Init plus the first request, over TLS, without and with the connections warmed in init.
//!
//! The local AWS emulator sits behind a TLS endpoint of its own (`tls_front`); the functions
//! run with the template's environment pointed at it and trust its authority. Ingest takes a
//! 1 KiB event for a source with one endpoint (a table read and write, a queue send), delivery
//! the task that event queued (a batch read, the request to a local receiver, the attempt's
//! write), admin a listing of endpoints (a table query). Each run is a new process given two
//! such requests: the second, on open connections, is what the first would cost without a
//! cold start, so their difference is the cold start's share of the first request. Locally
//! the emulator's own time per call (tens of milliseconds) is in both.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use axum::http::{HeaderMap, Method, Uri};
use hookrelay_local::esm::{self, Mapping};
use hookrelay_local::gateway;
use hookrelay_local::moto::MotoServer;
use hookrelay_local::provision::provision;
use hookrelay_local::template::Template;
use hookrelay_local::tls_front::TlsFront;
use hookrelay_shared::store::Store;
use serde_json::{Value, json};

use super::{Runtime, ms};

const RUNS: usize = 5;
const ADMIN_KEY: &str = "bench-admin-key-0123456789";

pub async fn measure(release: &Path, api: &str, rt: &Runtime) -> Result<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let moto = MotoServer::start(None).context("starting the AWS emulator")?;
    let aws = hookrelay_shared::aws::local(&moto.endpoint).await;
    let template = Template::load(&root.join("template.yaml"))?;
    let prov = provision(&template, &aws, "coldstart").await?;
    let tls = TlsFront::start(&moto.endpoint, &root.join("target")).await?;
    let receiver = receiver().await?;

    let table = prov.table("Table")?.to_owned();
    let store = Store::new(aws_sdk_dynamodb::Client::new(&aws), &table);
    store
        .ensure_workspace(hookrelay_shared::DEFAULT_WORKSPACE)
        .await?;
    let mut source = hookrelay_shared::Source::new("default", "coldstart");
    store.put_source(&mut source).await?;
    let mut endpoint =
        hookrelay_shared::Endpoint::new("default", "receiver", &receiver, vec!["*".to_owned()]);
    store.put_endpoint(&mut endpoint).await?;

    let mut env = hookrelay_local::function_env::function_environment(
        &template,
        &prov.bindings,
        &tls.endpoint,
        |_| None,
    )?;
    env.remove("HOOKRELAY_ADMIN_KEY_PARAMETER");
    env.insert("HOOKRELAY_ADMIN_KEY".into(), ADMIN_KEY.into());
    env.insert("SSL_CERT_FILE".into(), tls.ca_file.display().to_string());
    env.insert("AWS_LAMBDA_RUNTIME_API".into(), api.to_owned());
    env.insert("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into());
    env.insert("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), "256".into());
    env.insert("AWS_LAMBDA_LOG_STREAM_NAME".into(), "bench".into());
    env.insert("AWS_LAMBDA_LOG_GROUP_NAME".into(), "bench".into());
    env.insert("AWS_LAMBDA_LOG_LEVEL".into(), "error".into());
    env.insert("RUST_LOG".into(), "error".into());

    let routes = template.http_routes()?;
    let mapping = Mapping {
        queue_url: prov.queue("DeliveriesQueue")?.to_owned(),
        queue_arn: "arn:aws:sqs:us-east-1:000000000000:coldstart-deliveries".to_owned(),
        batch_size: 1,
        window: Duration::ZERO,
        report_batch_item_failures: true,
        fifo: false,
    };
    let sqs = aws_sdk_sqs::Client::new(&aws);

    let mut rows = Vec::new();
    println!();
    println!(
        "| function | connections warmed in init | init | first request | init + first request | second request |"
    );
    println!("|---|---|---|---|---|---|");
    for function in ["ingest", "delivery", "admin"] {
        for warm in [false, true] {
            let mut runs = Vec::new();
            for n in 0..RUNS {
                let mut events = Vec::new();
                match function {
                    "ingest" => {
                        for k in 0..2 {
                            events.push(http_event(
                                &routes,
                                Method::POST,
                                &format!("/in/{}", source.id),
                                &[("content-type", "application/json")],
                                payload(2 * n + k).as_bytes(),
                            )?);
                        }
                    }
                    "admin" => {
                        for _ in 0..2 {
                            events.push(http_event(
                                &routes,
                                Method::GET,
                                "/workspaces/default/endpoints",
                                &[("authorization", &format!("Bearer {ADMIN_KEY}"))],
                                b"",
                            )?);
                        }
                    }
                    _ => {
                        for _ in 0..2 {
                            let messages =
                                esm::receive_batch(&sqs, &mapping, Duration::from_secs(2)).await?;
                            if messages.is_empty() {
                                bail!("no task queued for delivery: did ingest's runs fail?");
                            }
                            events.push(serde_json::to_vec(&esm::to_event(&messages, &mapping))?);
                        }
                    }
                }
                let bin = release.join(function);
                runs.push(one_run(&bin, function, &env, warm, events, rt).await?);
            }
            let median = |f: &dyn Fn(&Run) -> Duration| {
                let mut v: Vec<Duration> = runs.iter().map(f).collect();
                v.sort();
                v[v.len() / 2]
            };
            let init = median(&|r| r.init);
            let first = median(&|r| r.first);
            let total = median(&|r| r.init + r.first);
            let second = median(&|r| r.second);
            println!(
                "| {function} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
                if warm { "yes" } else { "no" },
                ms(init),
                ms(first),
                ms(total),
                ms(second)
            );
            rows.push(json!({
                "function": function,
                "warmed": warm,
                "init_ms_median": ms(init),
                "first_request_ms_median": ms(first),
                "total_ms_median": ms(total),
                "second_request_ms_median": ms(second),
                "runs": RUNS,
            }));
        }
    }
    Ok(json!({
        "tls": "TLS 1.3 on 127.0.0.1 in front of the AWS emulator; no network round trip",
        "rows": rows,
    }))
}

struct Run {
    init: Duration,
    first: Duration,
    second: Duration,
}

fn payload(n: usize) -> String {
    let pad = "x".repeat(1024 - 64);
    format!(r#"{{"event_type":"order.created","n":{n},"pad":"{pad}"}}"#)
}

fn http_event(
    routes: &[hookrelay_local::template::HttpRoute],
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Vec<u8>> {
    let route = gateway::find(routes, &method, path)
        .ok_or_else(|| anyhow!("no route in the template for {method} {path}"))?;
    let uri: Uri = path.parse()?;
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.insert(
            axum::http::HeaderName::from_bytes(k.as_bytes())?,
            axum::http::HeaderValue::from_str(v)?,
        );
    }
    Ok(serde_json::to_vec(&gateway::event(
        route, &method, &uri, &map, body,
    ))?)
}

/// One process given `events` in turn: its init and its first two requests.
async fn one_run(
    bin: &Path,
    function: &str,
    env: &std::collections::BTreeMap<String, String>,
    warm: bool,
    events: Vec<Vec<u8>>,
    rt: &Runtime,
) -> Result<Run> {
    rt.reset(events)?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(bin)
        .env_clear()
        .envs(env)
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env(
            hookrelay_shared::warm::SWITCH,
            if warm { "true" } else { "false" },
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("{} missing: cargo build --release --bins", bin.display()))?;
    let answered = rt.until_answered(2, Duration::from_secs(30)).await;
    let _ = child.kill().await;
    if !answered {
        bail!("{function} did not answer its first two requests");
    }
    let asks = rt.asks();
    let answers = rt.answers();
    for a in &answers[..2] {
        if !a.ok {
            bail!(
                "{function} failed a request: {}",
                String::from_utf8_lossy(&a.body)
            );
        }
        check_answer(function, &a.body)?;
    }
    if asks.len() < 2 {
        bail!("{function} answered without asking");
    }
    Ok(Run {
        init: asks[0].duration_since(started),
        first: answers[0].at.duration_since(asks[0]),
        second: answers[1].at.duration_since(asks[1]),
    })
}

/// The first request did its work: a 2xx answer, or a batch with no failed item.
fn check_answer(function: &str, body: &[u8]) -> Result<()> {
    let v: Value = serde_json::from_slice(body)
        .with_context(|| format!("{function} answered: {}", String::from_utf8_lossy(body)))?;
    let fine = match function {
        "delivery" => v["batchItemFailures"]
            .as_array()
            .is_none_or(|f| f.is_empty()),
        _ => v["statusCode"]
            .as_u64()
            .is_some_and(|s| (200..300).contains(&s)),
    };
    if fine {
        Ok(())
    } else {
        bail!("{function}'s first request did not succeed: {v}")
    }
}

/// A receiver on 127.0.0.1 answering 200; its URL.
async fn receiver() -> Result<String> {
    let app = axum::Router::new().fallback(|| async { "ok" });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}/hook"))
}
