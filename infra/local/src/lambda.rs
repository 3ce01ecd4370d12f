//! The Lambda service, played locally: each function runs as its own processes (execution
//! environments) that speak the Lambda Runtime API to this module, and the Invoke API
//! (`POST /2015-03-31/functions/<name>/invocations`) hands them events. Where correctness
//! depends on it, the local service behaves as Lambda does:
//!
//! - An invocation that runs past the function's `Timeout` is stopped: its environment is
//!   killed and the caller gets a function error (`Sandbox.Timedout`), as Lambda answers
//!   (Lambda's execution environment lifecycle: after a timeout or a runtime failure the
//!   environment is reset, and the next invocation initializes a new one). The Init phase
//!   has Lambda's own 10 s limit.
//! - An environment whose process crashed, was killed, or timed out is never reused: the next
//!   invocation starts a fresh one (a cold start), as in Lambda.
//! - An environment whose resident memory goes past `MemorySize` is killed as Lambda's
//!   out-of-memory stop does (`Runtime.OutOfMemory`). What can be measured locally is the
//!   process's resident set, sampled every 50 ms during an invocation: a spike shorter than
//!   that can pass, and debug builds use more memory than the release builds Lambda runs.
//! - An invocation request over 6 291 456 bytes is refused (`RequestEntityTooLargeException`)
//!   and an answer over 6 291 556 bytes is a function error, Lambda's synchronous limits.
//! - Environments serve one invocation at a time; concurrent invocations get more of them.
//! - A binary rebuilt since an idle environment started retires it, so the next invocation
//!   runs the new code.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::process::{Child, Command};
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Lambda's limit on a function's init phase (on-demand functions).
const INIT_LIMIT: Duration = Duration::from_secs(10);
const MEMORY_SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// Environments per function at once (Lambda scales further; a laptop does not need to).
const MAX_ENVIRONMENTS: usize = 16;

/// One function as the template declares it.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// The name it is invoked by (the cargo binary's name).
    pub name: String,
    pub command: PathBuf,
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    pub memory_mb: u64,
}

/// An invocation's outcome, as Lambda's Invoke API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok(Vec<u8>),
    /// A function error (`X-Amz-Function-Error: Unhandled`) with its JSON body.
    FunctionError(Vec<u8>),
}

impl Outcome {
    fn error(kind: &str, message: &str) -> Self {
        Outcome::FunctionError(
            serde_json::json!({"errorType": kind, "errorMessage": message})
                .to_string()
                .into_bytes(),
        )
    }
}

pub struct LocalLambda {
    functions: HashMap<String, Arc<Function>>,
}

struct Function {
    spec: FunctionSpec,
    idle: Mutex<Vec<Environment>>,
    slots: Semaphore,
    started: std::sync::atomic::AtomicU64,
}

struct Environment {
    child: Child,
    pid: u32,
    next: mpsc::Sender<Pending>,
    built: Option<SystemTime>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Environment {
    fn drop(&mut self) {
        self.server.abort();
        let _ = self.child.start_kill();
    }
}

struct Pending {
    id: String,
    event: Bytes,
    timeout: Duration,
    /// When the runtime took the event: the invocation's clock starts then.
    taken: oneshot::Sender<Instant>,
    answer: oneshot::Sender<Outcome>,
}

impl LocalLambda {
    pub fn new(specs: Vec<FunctionSpec>) -> Arc<Self> {
        let functions = specs
            .into_iter()
            .map(|spec| {
                (
                    spec.name.clone(),
                    Arc::new(Function {
                        spec,
                        idle: Mutex::new(Vec::new()),
                        slots: Semaphore::new(MAX_ENVIRONMENTS),
                        started: Default::default(),
                    }),
                )
            })
            .collect();
        Arc::new(Self { functions })
    }

    /// How many environments `function` has started so far (cold starts).
    pub fn cold_starts(&self, function: &str) -> u64 {
        self.functions
            .get(function)
            .map(|f| f.started.load(std::sync::atomic::Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// The process ids of `function`'s idle environments.
    pub fn idle_pids(&self, function: &str) -> Vec<u32> {
        self.functions
            .get(function)
            .and_then(|f| {
                f.idle
                    .lock()
                    .ok()
                    .map(|i| i.iter().map(|e| e.pid).collect())
            })
            .unwrap_or_default()
    }

    /// Invokes `function` with `event`. `Err` is the service's own failure (no such function,
    /// an environment that could not start), not the function's.
    pub async fn invoke(&self, function: &str, event: Vec<u8>) -> Result<Outcome> {
        let f = self
            .functions
            .get(function)
            .ok_or_else(|| anyhow!("Function not found: {function}"))?;
        let _slot = f.slots.acquire().await?;
        let mut env = match f.take_idle() {
            Some(env) => env,
            None => f.start().await?,
        };
        let outcome = f.run(&mut env, event.into()).await;
        if let Some(outcome) = outcome.keep {
            if let Ok(mut idle) = f.idle.lock() {
                idle.push(env);
            }
            return Ok(outcome);
        }
        Ok(outcome.result)
    }

    /// Lambda's Invoke API.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/2015-03-31/functions/{name}/invocations", post(invoke_api))
            .with_state(self)
            .layer(axum::extract::DefaultBodyLimit::max(
                2 * crate::gateway::LAMBDA_MAX_REQUEST,
            ))
    }
}

async fn invoke_api(
    State(lambda): State<Arc<LocalLambda>>,
    UrlPath(name): UrlPath<String>,
    body: Bytes,
) -> Response {
    if body.len() > crate::gateway::LAMBDA_MAX_REQUEST {
        let mut r = (
            StatusCode::PAYLOAD_TOO_LARGE,
            serde_json::json!({
                "Type": "User",
                "message": format!(
                    "Request must be smaller than {} bytes for the InvokeFunction operation",
                    crate::gateway::LAMBDA_MAX_REQUEST
                ),
            })
            .to_string(),
        )
            .into_response();
        r.headers_mut().insert(
            "x-amzn-errortype",
            HeaderValue::from_static("RequestEntityTooLargeException"),
        );
        return r;
    }
    match lambda.invoke(&name, body.to_vec()).await {
        Ok(Outcome::Ok(b)) if b.len() > crate::gateway::LAMBDA_MAX_RESPONSE => {
            let mut r = (
                StatusCode::OK,
                serde_json::json!({
                    "errorType": "Function.ResponseSizeTooLarge",
                    "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
                })
                .to_string(),
            )
                .into_response();
            r.headers_mut().insert(
                "x-amz-function-error",
                HeaderValue::from_static("Unhandled"),
            );
            r
        }
        Ok(Outcome::Ok(b)) => (StatusCode::OK, b).into_response(),
        Ok(Outcome::FunctionError(b)) => {
            let mut r = (StatusCode::OK, b).into_response();
            r.headers_mut().insert(
                "x-amz-function-error",
                HeaderValue::from_static("Unhandled"),
            );
            r
        }
        Err(e) => (StatusCode::NOT_FOUND, e.to_string()).into_response(),
    }
}

/// What one run leaves: an answer to keep the environment with, or the result of one that
/// was stopped.
struct RunResult {
    keep: Option<Outcome>,
    result: Outcome,
}

impl Function {
    fn take_idle(&self) -> Option<Environment> {
        let built = binary_time(&self.spec.command);
        let mut idle = self.idle.lock().ok()?;
        while let Some(mut env) = idle.pop() {
            // A process that died while idle (killed, crashed) is gone for good.
            if !matches!(env.child.try_wait(), Ok(None)) {
                continue;
            }
            if built.is_some() && env.built != built {
                continue;
            }
            return Some(env);
        }
        None
    }

    async fn start(&self) -> Result<Environment> {
        let (next, queue) = mpsc::channel::<Pending>(1);
        let api = RuntimeApi {
            queue: Arc::new(tokio::sync::Mutex::new(queue)),
            waiting: Arc::new(Mutex::new(HashMap::new())),
            arn: format!(
                "arn:aws:lambda:us-east-1:000000000000:function:{}",
                self.spec.name
            ),
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(invocation_response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(api)
            // The limit on answers is the Invoke API's to apply, with Lambda's error.
            .layer(axum::extract::DefaultBodyLimit::max(
                2 * crate::gateway::LAMBDA_MAX_RESPONSE,
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let built = binary_time(&self.spec.command);
        let n = self
            .started
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let child = Command::new(&self.spec.command)
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &self.spec.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                self.spec.memory_mb.to_string(),
            )
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", self.spec.name),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("local/{n}"))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (build it: cargo build --bin {})",
                    self.spec.command.display(),
                    self.spec.name
                )
            })?;
        let pid = child.id().unwrap_or_default();
        Ok(Environment {
            child,
            pid,
            next,
            built,
            server,
        })
    }

    async fn run(&self, env: &mut Environment, event: Bytes) -> RunResult {
        let stopped = |result: Outcome| RunResult { keep: None, result };
        let (taken_tx, taken_rx) = oneshot::channel();
        let (answer_tx, answer_rx) = oneshot::channel();
        let pending = Pending {
            id: ulid::Ulid::new().to_string().to_lowercase(),
            event,
            timeout: self.spec.timeout,
            taken: taken_tx,
            answer: answer_tx,
        };
        if env.next.send(pending).await.is_err() {
            return stopped(Outcome::error(
                "Runtime.Unknown",
                "the environment's runtime API is gone",
            ));
        }
        let limit = self.spec.memory_mb * 1024 * 1024;
        // Init (a fresh environment asks for work only once ready) has Lambda's own limit.
        let taken = tokio::select! {
            t = taken_rx => t.ok(),
            _ = tokio::time::sleep(INIT_LIMIT) => None,
            status = env.child.wait() => return stopped(exited(status)),
        };
        let Some(taken) = taken else {
            tracing::warn!(function = %self.spec.name, "init did not finish in time; stopped");
            let _ = env.child.kill().await;
            return stopped(Outcome::error(
                "Runtime.InitTimeout",
                &format!("Init timed out after {} seconds", INIT_LIMIT.as_secs()),
            ));
        };
        let deadline = tokio::time::Instant::from_std(taken + self.spec.timeout);
        let mut answer_rx = answer_rx;
        let mut sample = tokio::time::interval(MEMORY_SAMPLE_EVERY);
        loop {
            tokio::select! {
                a = &mut answer_rx => {
                    return match a {
                        Ok(outcome) => RunResult { keep: Some(outcome.clone()), result: outcome },
                        Err(_) => stopped(Outcome::error("Runtime.Unknown", "no answer")),
                    };
                }
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(function = %self.spec.name, timeout = ?self.spec.timeout, "invocation timed out; environment stopped");
                    let _ = env.child.kill().await;
                    return stopped(Outcome::error(
                        "Sandbox.Timedout",
                        &format!("Task timed out after {:.2} seconds", self.spec.timeout.as_secs_f64()),
                    ));
                }
                status = env.child.wait() => {
                    tracing::warn!(function = %self.spec.name, ?status, "runtime exited during an invocation");
                    return stopped(exited(status));
                }
                _ = sample.tick() => {
                    if resident_bytes(env.pid).is_some_and(|rss| rss > limit) {
                        tracing::warn!(function = %self.spec.name, memory_mb = self.spec.memory_mb, "out of memory; environment stopped");
                        let _ = env.child.kill().await;
                        return stopped(Outcome::error(
                            "Runtime.OutOfMemory",
                            "Runtime exited with error: signal: killed",
                        ));
                    }
                }
            }
        }
    }
}

fn exited(status: std::io::Result<std::process::ExitStatus>) -> Outcome {
    let what = match status {
        Ok(s) => s.to_string(),
        Err(e) => e.to_string(),
    };
    Outcome::error(
        "Runtime.ExitError",
        &format!("Runtime exited with error: {what}"),
    )
}

fn binary_time(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The process's resident set (`VmRSS` in `/proc/<pid>/status`), where Linux shows it.
fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[derive(Clone)]
struct RuntimeApi {
    queue: Arc<tokio::sync::Mutex<mpsc::Receiver<Pending>>>,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Outcome>>>>,
    arn: String,
}

async fn next_invocation(State(api): State<RuntimeApi>) -> Response {
    let Some(p) = api.queue.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let deadline = SystemTime::now() + p.timeout;
    let deadline_ms = deadline
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    if let Ok(mut w) = api.waiting.lock() {
        w.insert(p.id.clone(), p.answer);
    }
    let _ = p.taken.send(Instant::now());
    let mut headers = HeaderMap::new();
    let mut put = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.insert(k, v);
        }
    };
    put("lambda-runtime-aws-request-id", p.id);
    put("lambda-runtime-deadline-ms", deadline_ms.to_string());
    put("lambda-runtime-invoked-function-arn", api.arn.clone());
    put(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000;Sampled=0".into(),
    );
    (StatusCode::OK, headers, p.event).into_response()
}

fn answer(api: &RuntimeApi, id: &str, outcome: Outcome) -> StatusCode {
    let sender = api.waiting.lock().ok().and_then(|mut w| w.remove(id));
    match sender {
        Some(s) => {
            let _ = s.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn invocation_response(
    State(api): State<RuntimeApi>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    answer(&api, &id, Outcome::Ok(body.to_vec()))
}

async fn invocation_error(
    State(api): State<RuntimeApi>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    answer(&api, &id, Outcome::FunctionError(body.to_vec()))
}

async fn init_error(body: Bytes) -> StatusCode {
    tracing::warn!(error = %String::from_utf8_lossy(&body), "function init failed");
    StatusCode::ACCEPTED
}

impl crate::gateway::Invoke for LocalLambda {
    fn invoke<'a>(
        &'a self,
        function: &'a str,
        event: Vec<u8>,
    ) -> futures::future::BoxFuture<'a, Result<Vec<u8>, crate::gateway::InvokeError>> {
        use crate::gateway::InvokeError;
        Box::pin(async move {
            match LocalLambda::invoke(self, function, event).await {
                Ok(Outcome::Ok(body)) => Ok(body),
                Ok(Outcome::FunctionError(body)) => Err(InvokeError::Failed(
                    String::from_utf8_lossy(&body).into_owned(),
                )),
                Err(e) => Err(InvokeError::Unreachable(e.to_string())),
            }
        })
    }
}
