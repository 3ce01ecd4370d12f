//! The test harness: one moto server per test binary (started on first use), a fresh set of
//! resources from `template.yaml` per test, the real handlers called in-process, and a real
//! HTTP receiver on 127.0.0.1.

pub use hookrelay_local::webhook_bodies as bodies;
pub mod collector;
pub mod faulty;
pub mod gateway;
pub mod listings;
pub mod receiver;
pub mod requests;
pub use hookrelay_cli::sign as signing;
pub mod slow;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aws_config::SdkConfig;
use hookrelay_local::esm::{self, BatchResult, Mapping};
use hookrelay_local::moto::MotoServer;
use hookrelay_local::provision::{Provisioned, provision};
use hookrelay_local::template::Template;
use hookrelay_shared::config::Settings;
use hookrelay_shared::retry::RetryPolicy;
use hookrelay_shared::store::Store;
use lambda_http::Body;

pub use receiver::Receiver;

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

/// An S3 client for the local endpoint (buckets by path) that no function's request counter
/// sees: what the harness reads is no function's request.
pub fn s3_client(aws: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(aws)
            .force_path_style(true)
            .build(),
    )
}

/// Serves `app` on a free port of 127.0.0.1 for as long as the test's runtime lives; answers
/// the address.
pub async fn serve_on_loopback(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// The local AWS endpoint: `HOOKRELAY_TEST_AWS_ENDPOINT` when set, else a moto server this
/// process starts once and that stops when it exits.
pub fn aws_endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    static SERVER: OnceLock<MotoServer> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        if let Ok(e) = std::env::var("HOOKRELAY_TEST_AWS_ENDPOINT") {
            return e;
        }
        let server = MotoServer::start(None).expect("moto_server starts (run `make venv`)");
        let endpoint = server.endpoint.clone();
        let _ = SERVER.set(server);
        endpoint
    })
}

/// One test's own resources: a table and queues created from `template.yaml`.
pub struct Stack {
    pub aws: SdkConfig,
    pub provisioned: Provisioned,
    pub settings: Settings,
    pub store: Store,
    pub sqs: aws_sdk_sqs::Client,
    pub mapping: Mapping,
    /// The batching queue's event source mapping, as the template sets it.
    pub batching: Mapping,
    /// The ordered (FIFO) queue's event source mapping, as the template sets it.
    pub ordered: Mapping,
    /// The delivery function's `Timeout` from the template: the in-process event source
    /// mapping stops an invocation that runs longer and fails it, as Lambda does.
    pub delivery_function_timeout: Duration,
}

impl Stack {
    pub async fn new() -> Self {
        Self::with_schedule("1,1").await
    }

    /// A stack whose retry schedule is `schedule` (seconds), without jitter.
    pub async fn with_schedule(schedule: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let prefix = format!(
            "t{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let aws = hookrelay_shared::aws::local(aws_endpoint()).await;
        let template = Template::workspace_default().expect("template.yaml parses");
        let provisioned = provision(&template, &aws, &prefix)
            .await
            .expect("resources are created from the template");
        let mut settings = Settings::for_resources(
            provisioned.table("Table").expect("table"),
            provisioned.queue("DeliveriesQueue").expect("queue"),
            provisioned.queue("DeadLetterQueue").expect("dlq"),
        );
        settings.ordered_queue_url = Some(
            provisioned
                .queue("OrderedDeliveriesQueue")
                .expect("ordered queue")
                .to_owned(),
        );
        settings.ordered_dead_letter_queue_url = Some(
            provisioned
                .queue("OrderedDeadLetterQueue")
                .expect("ordered dlq")
                .to_owned(),
        );
        settings.batching_queue_url = Some(
            provisioned
                .queue("BatchingQueue")
                .expect("batching queue")
                .to_owned(),
        );
        // Large payloads go to the template's bucket, and bodies up to 6 MB are accepted, as
        // deployed.
        settings.payload_bucket = Some(
            provisioned
                .bucket("PayloadBucket")
                .expect("payload bucket")
                .to_owned(),
        );
        settings.max_body_bytes = hookrelay_shared::payload_objects::MAX_PAYLOAD;
        // Each stack its own bus, so tests reading operational events see only their own.
        settings.ops_event_bus = format!("{prefix}-ops");
        aws_sdk_eventbridge::Client::new(&aws)
            .create_event_bus()
            .name(&settings.ops_event_bus)
            .send()
            .await
            .expect("event bus");
        settings.retry = RetryPolicy::parse(schedule)
            .expect("schedule")
            .without_jitter();
        settings.delivery_timeout = Duration::from_secs(3);
        // Test receivers listen on loopback, which the SSRF guard otherwise refuses.
        settings.delivery_allow_networks = "127.0.0.0/8,::1".into();
        let mapping_of = |queue: &str| {
            let source = template
                .sqs_event_sources()
                .expect("event sources")
                .into_iter()
                .find(|s| s.queue == queue)
                .expect("the template maps the queue to the delivery function");
            Mapping {
                queue_url: provisioned.queue(queue).expect("queue").to_owned(),
                queue_arn: provisioned
                    .bindings
                    .arns
                    .get(queue)
                    .cloned()
                    .unwrap_or_default(),
                batch_size: source.batch_size,
                window: Duration::from_secs(source.batching_window_secs),
                report_batch_item_failures: source.report_batch_item_failures,
                fifo: Mapping::is_fifo_url(provisioned.queue(queue).expect("queue")),
            }
        };
        let delivery_function_timeout = template
            .function_of_binary("delivery")
            .expect("the template has the delivery function")
            .timeout;
        let mapping = mapping_of("DeliveriesQueue");
        let batching = mapping_of("BatchingQueue");
        let ordered = mapping_of("OrderedDeliveriesQueue");
        // Not the functions' counting clients: what the harness reads is no function's request.
        let store = Store::new(aws_sdk_dynamodb::Client::new(&aws), &settings.table_name)
            .with_payloads(Some(
                hookrelay_shared::payload_objects::PayloadObjects::new(
                    s3_client(&aws),
                    settings.payload_bucket.clone().unwrap_or_default(),
                ),
            ));
        let sqs = aws_sdk_sqs::Client::new(&aws);
        Self {
            aws,
            provisioned,
            settings,
            store,
            sqs,
            mapping,
            batching,
            ordered,
            delivery_function_timeout,
        }
    }

    pub fn ingest(&self) -> hookrelay_ingest::Context {
        hookrelay_ingest::Context::new(&self.aws, self.settings.clone())
    }

    pub fn delivery(&self) -> hookrelay_delivery::Context {
        hookrelay_delivery::Context::new(&self.aws, self.settings.clone()).expect("http client")
    }

    pub fn sweeper(&self) -> hookrelay_sweeper::Context {
        hookrelay_sweeper::Context::new(&self.aws, self.settings.clone())
    }

    pub fn admin(&self) -> hookrelay_admin::Context {
        hookrelay_admin::Context::new(&self.aws, self.settings.clone(), ADMIN_KEY.to_owned())
            .expect("admin key")
    }

    /// One round of the event source mapping into the in-process delivery handler.
    pub async fn deliver_once(
        &self,
        ctx: &hookrelay_delivery::Context,
        wait: Duration,
    ) -> Option<BatchResult> {
        esm::run_once(&self.sqs, &self.mapping, wait, |event| {
            self.invoke_delivery(ctx, event)
        })
        .await
        .expect("queue round")
    }

    /// The delivery handler, in-process, stopped at the function's timeout: the future is
    /// dropped there (nothing of the handler runs after it) and the invocation fails, so the
    /// whole batch stays on the queue, as in Lambda.
    async fn invoke_delivery(
        &self,
        ctx: &hookrelay_delivery::Context,
        event: aws_lambda_events::event::sqs::SqsEvent,
    ) -> anyhow::Result<aws_lambda_events::event::sqs::SqsBatchResponse> {
        tokio::time::timeout(
            self.delivery_function_timeout,
            hookrelay_delivery::handle(ctx, event),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "Task timed out after {:.2} seconds",
                self.delivery_function_timeout.as_secs_f64()
            )
        })
    }

    /// One round of the batching queue's mapping (its batch size and window) into the
    /// in-process delivery handler.
    pub async fn collect_once(
        &self,
        ctx: &hookrelay_delivery::Context,
        wait: Duration,
    ) -> Option<BatchResult> {
        esm::run_once(&self.sqs, &self.batching, wait, |event| {
            self.invoke_delivery(ctx, event)
        })
        .await
        .expect("batching queue round")
    }

    /// One round of the ordered queue's mapping into the in-process delivery handler.
    pub async fn deliver_ordered_once(
        &self,
        ctx: &hookrelay_delivery::Context,
        wait: Duration,
    ) -> Option<BatchResult> {
        esm::run_once(&self.sqs, &self.ordered, wait, |event| {
            self.invoke_delivery(ctx, event)
        })
        .await
        .expect("ordered queue round")
    }

    /// Lets a delivery function take what is queued: an event from ingest is listed (shown
    /// in listings and read by id) when the first of its tasks is received.
    pub async fn list_accepted(&self) {
        self.drain(&self.delivery()).await;
    }

    /// Runs the mapping until a long poll finds nothing visible.
    pub async fn drain(&self, ctx: &hookrelay_delivery::Context) -> Vec<BatchResult> {
        let mut rounds = Vec::new();
        while let Some(r) = self.deliver_once(ctx, Duration::ZERO).await {
            rounds.push(r);
        }
        rounds
    }

    /// Messages on a queue, visible or not, from its attributes.
    pub async fn queue_depth(&self, url: &str) -> (u64, u64) {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .unwrap_or_default();
        let n = |a: A| attrs.get(&a).and_then(|v| v.parse().ok()).unwrap_or(0);
        (
            n(A::ApproximateNumberOfMessages),
            n(A::ApproximateNumberOfMessagesNotVisible),
        )
    }

    /// Whether a queue holds nothing at all: visible, in flight or delayed (a parked or
    /// re-sent task waits out its delay there).
    pub async fn queue_empty(&self, url: &str) -> bool {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::All)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .unwrap_or_default();
        [
            A::ApproximateNumberOfMessages,
            A::ApproximateNumberOfMessagesNotVisible,
            A::ApproximateNumberOfMessagesDelayed,
        ]
        .iter()
        .all(|a| attrs.get(a).is_none_or(|v| v == "0"))
    }

    /// A queue that receives every operational event put on this stack's bus (a rule
    /// matching `source: hookrelay`, as a user would write one). Answers its URL.
    pub async fn ops_events_queue(&self) -> String {
        let name = format!("{}-read", self.settings.ops_event_bus);
        let url = self
            .sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .expect("queue")
            .queue_url
            .expect("queue url");
        let arn = self
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue arn")
            .attributes
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                    .cloned()
            })
            .expect("arn");
        let events = aws_sdk_eventbridge::Client::new(&self.aws);
        events
            .put_rule()
            .name(&name)
            .event_bus_name(&self.settings.ops_event_bus)
            .event_pattern(r#"{"source": ["hookrelay"]}"#)
            .send()
            .await
            .expect("rule");
        events
            .put_targets()
            .rule(&name)
            .event_bus_name(&self.settings.ops_event_bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("read")
                    .arn(arn)
                    .build()
                    .expect("target"),
            )
            .send()
            .await
            .expect("targets");
        url
    }

    /// The EventBridge events that reached `queue` so far (removed from it).
    pub async fn read_ops_events(&self, queue: &str) -> Vec<serde_json::Value> {
        self.take_all(queue)
            .await
            .iter()
            .map(|m| serde_json::from_str(m.body().unwrap_or_default()).expect("event JSON"))
            .collect()
    }

    /// Every message visible on `queue` now, removed from it. Long polls: a short poll's
    /// empty answer does not mean an empty queue.
    pub async fn take_all(&self, queue: &str) -> Vec<aws_sdk_sqs::types::Message> {
        let mut out = Vec::new();
        loop {
            let got = self
                .sqs
                .receive_message()
                .queue_url(queue)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .expect("receive")
                .messages
                .unwrap_or_default();
            if got.is_empty() {
                return out;
            }
            for m in got {
                self.sqs
                    .delete_message()
                    .queue_url(queue)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete");
                out.push(m);
            }
        }
    }

    pub async fn dead_letters(&self) -> Vec<aws_sdk_sqs::types::Message> {
        self.sqs
            .receive_message()
            .queue_url(&self.settings.dead_letter_queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive from DLQ")
            .messages
            .unwrap_or_default()
    }
}

/// An HTTP request as API Gateway hands it to a function.
pub fn request(
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> lambda_http::Request {
    let mut b = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let body = if body.is_empty() {
        Body::Empty
    } else {
        Body::Binary(body.to_vec())
    };
    b.body(body).expect("request")
}

/// An admin API request with the test admin key.
pub fn admin_request(
    method: &str,
    uri: &str,
    body: Option<serde_json::Value>,
) -> lambda_http::Request {
    let auth = format!("Bearer {ADMIN_KEY}");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    request(
        method,
        uri,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body.as_bytes(),
    )
}

/// An admin API call with the test admin key: the status and the JSON answer (null when
/// empty).
pub async fn admin_call(
    stack: &Stack,
    method: &str,
    uri: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    key_call(stack, ADMIN_KEY, method, uri, body).await
}

/// An admin API call with `key` as the bearer (a workspace API key, or anything else): the
/// status and the JSON answer (null when empty).
pub async fn key_call(
    stack: &Stack,
    key: &str,
    method: &str,
    uri: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let auth = format!("Bearer {key}");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let resp = hookrelay_admin::handle(
        &stack.admin(),
        request(
            method,
            uri,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body.as_bytes(),
        ),
    )
    .await;
    let status = resp.status().as_u16();
    let json = if resp.body().is_empty() {
        serde_json::Value::Null
    } else {
        json_of(&resp)
    };
    (status, json)
}

pub fn json_of(resp: &http::Response<String>) -> serde_json::Value {
    serde_json::from_str(resp.body()).unwrap_or_else(|e| panic!("not JSON ({e}): {}", resp.body()))
}

/// Verifies a delivery with the `standardwebhooks` Python package, an implementation
/// independent of ours. `Err` carries the verifier's complaint.
pub fn verify_with_standardwebhooks(secret: &str, d: &receiver::Delivery) -> Result<(), String> {
    use std::io::Write;
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python3");
    let script = "import json,sys\nfrom standardwebhooks.webhooks import Webhook\nd=json.load(sys.stdin)\nWebhook(d['secret']).verify(d['body'], d['headers'])\nprint('verified')";
    let headers: serde_json::Map<String, serde_json::Value> =
        ["webhook-id", "webhook-timestamp", "webhook-signature"]
            .iter()
            .map(|h| ((*h).to_owned(), serde_json::Value::String(d.header(h))))
            .collect();
    let input = serde_json::json!({
        "secret": secret,
        "body": String::from_utf8_lossy(&d.body),
        "headers": headers,
    });
    let mut child = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("python not available (run `make venv`): {e}"))?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(input.to_string().as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("verified") {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Creates a source through the admin API; answers its id.
pub async fn create_source(stack: &Stack, body: serde_json::Value) -> String {
    let resp = hookrelay_admin::handle(
        &stack.admin(),
        admin_request("POST", "/workspaces/default/sources", Some(body)),
    )
    .await;
    assert_eq!(resp.status(), 201, "{}", resp.body());
    json_of(&resp)["id"].as_str().expect("id").to_owned()
}

/// Creates an endpoint through the admin API; answers it as the API shows it.
pub async fn create_endpoint(stack: &Stack, body: serde_json::Value) -> serde_json::Value {
    let resp = hookrelay_admin::handle(
        &stack.admin(),
        admin_request("POST", "/workspaces/default/endpoints", Some(body)),
    )
    .await;
    assert_eq!(resp.status(), 201, "{}", resp.body());
    json_of(&resp)
}

/// Sends a webhook to a source through the ingest handler; answers the event id.
pub async fn send_event(stack: &Stack, source: &str, body: &[u8]) -> String {
    let resp = hookrelay_ingest::handle(
        &stack.ingest(),
        request("POST", &format!("/in/{source}"), &[], body),
    )
    .await;
    assert_eq!(resp.status(), 202, "{}", resp.body());
    json_of(&resp)["id"].as_str().expect("id").to_owned()
}

/// The attempts of an event through the admin API, newest first.
pub async fn attempts_of(stack: &Stack, event_id: &str) -> Vec<serde_json::Value> {
    let resp = hookrelay_admin::handle(
        &stack.admin(),
        admin_request(
            "GET",
            &format!("/workspaces/default/attempts?event_id={event_id}"),
            None,
        ),
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", resp.body());
    json_of(&resp)["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}
