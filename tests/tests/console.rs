//! The web console in a real headless Chromium (driven over WebDriver by chromedriver),
//! against the stack's HTTP API on a real port (the gateway `make dev` runs, the functions
//! in-process, the delivery function fed by the event source mapping in the background): an
//! operator signs in, creates an endpoint and a source, watches a webhook arrive, opens its
//! attempt, retries it and redrives a dead letter, by keyboard and on a phone-sized screen.
//!
//! Needs Debian's `chromium` and `chromium-driver`; without them the test says so and passes,
//! unless `CI` is set (`.ci/run` installs them).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hookrelay_tests::{ADMIN_KEY, Receiver, Stack, admin_call, gateway};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ENTER: &str = "\u{E007}";

struct Browser {
    client: Client,
    driver: tokio::process::Child,
    profile: PathBuf,
    shots: Option<PathBuf>,
}

/// A failed test never reaches `close`: chromedriver goes with its handle, but the browser
/// it started would outlive the test; its profile directory names it.
impl Drop for Browser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("pkill")
            .arg("-f")
            .arg(self.profile.as_os_str())
            .status();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Browser {
    async fn start() -> Option<Self> {
        if !std::path::Path::new(CHROMIUM).exists() || !std::path::Path::new(CHROMEDRIVER).exists()
        {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must install chromium and chromium-driver for the console test"
            );
            eprintln!("skipped: install Debian's chromium and chromium-driver to run it");
            return None;
        }
        let port = hookrelay_local::moto::free_port().expect("a free port");
        let driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let profile = std::env::temp_dir().join(format!("hookrelay-console-{port}"));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if started.elapsed() < Duration::from_secs(20) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("chromedriver did not start a session: {e}"),
            }
        };
        // A relative directory is the workspace's (cargo runs tests in the crate's own).
        let shots = std::env::var_os("HOOKRELAY_CONSOLE_SCREENSHOTS")
            .map(|d| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(d));
        Some(Self {
            client,
            driver,
            profile,
            shots,
        })
    }

    async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script {script}: {e}"))
    }

    /// The text of the first element matching `css`, or "" when there is none.
    async fn text(&self, css: &str) -> String {
        let script = format!(
            "const e = document.querySelector({}); return e ? e.textContent : '';",
            json!(css)
        );
        self.js(&script)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the element `css` contains `needle` (the page re-renders meanwhile).
    async fn wait_text(&self, css: &str, needle: &str) -> String {
        let started = Instant::now();
        loop {
            let text = self.text(css).await;
            if text.contains(needle) {
                return text;
            }
            assert!(
                started.elapsed() < Duration::from_secs(45),
                "{css} never showed {needle:?}; it shows {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// The element `css`, once the page has drawn it.
    async fn element(&self, locator: Locator<'_>) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(locator)
            .await
            .unwrap_or_else(|e| panic!("{locator:?} never appeared: {e}"))
    }

    /// [`Browser::wait_text`] on a page that does not refresh by itself: reloaded every few
    /// seconds, each time given the time to draw (a loaded machine may take a while).
    async fn wait_text_reloading(&self, css: &str, needle: &str) {
        let started = Instant::now();
        loop {
            let drawn = Instant::now();
            while drawn.elapsed() < Duration::from_secs(3) {
                if self.text(css).await.contains(needle) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{css} never showed {needle:?}"
            );
            self.client.refresh().await.expect("reload");
        }
    }

    async fn type_into(&self, css: &str, text: &str) {
        for _ in 0..10 {
            let el = self.element(Locator::Css(css)).await;
            match el.clear().await.and(el.send_keys(text).await) {
                Ok(()) => return,
                Err(e) if format!("{e:?}").contains("StaleElementReference") => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("type into {css}: {e}"),
            }
        }
        panic!("{css} kept being redrawn");
    }

    async fn click(&self, css: &str) {
        self.click_on(Locator::Css(css)).await;
    }

    /// Clicks the button whose label contains `label`.
    async fn press(&self, label: &str) {
        let xpath = format!("//button[contains(., '{label}')]");
        self.click_on(Locator::XPath(&xpath)).await;
    }

    /// The page may draw itself again between finding an element and clicking it (a
    /// second render after an action): the element is then found again.
    async fn click_on(&self, locator: Locator<'_>) {
        for _ in 0..10 {
            match self.element(locator).await.click().await {
                Ok(()) => return,
                Err(e) if format!("{e:?}").contains("StaleElementReference") => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("click {locator:?}: {e}"),
            }
        }
        panic!("{locator:?} kept being redrawn");
    }

    async fn go(&self, base: &str, hash: &str) {
        self.client
            .goto(&format!("{base}/console{hash}"))
            .await
            .expect("navigate");
    }

    async fn shot(&self, name: &str) {
        if let Some(dir) = &self.shots {
            std::fs::create_dir_all(dir).expect("screenshot dir");
            let png = self.client.screenshot().await.expect("screenshot");
            std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
        }
    }

    async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
    }
}

/// The delivery function, fed by the event source mapping for as long as the test runs.
fn deliver_in_background(stack: Arc<Stack>) {
    tokio::spawn(async move {
        let ctx = stack.delivery();
        loop {
            stack.deliver_once(&ctx, Duration::from_millis(200)).await;
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_the_whole_day_from_the_console() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let stack = Arc::new(Stack::new().await);
    let base = gateway::serve(&stack).await;
    let receiver = Receiver::start().await;
    deliver_in_background(stack.clone());

    // The page and its files carry the policy; nothing inline, nothing remote.
    let page = reqwest::get(format!("{base}/console")).await.expect("page");
    assert_eq!(page.status(), 200);
    assert_eq!(
        page.headers()["content-security-policy"],
        hookrelay_admin::CONSOLE_CONTENT_SECURITY_POLICY
    );

    // Sign in by keyboard: the key field has the focus, Enter submits.
    b.go(&base, "").await;
    b.wait_text("h1", "hookrelay console").await;
    b.shot("sign-in").await;
    let focused = b.js("return document.activeElement.id").await;
    assert_eq!(focused, "key");
    b.client
        .active_element()
        .await
        .expect("focus")
        .send_keys(&format!("{ADMIN_KEY}{ENTER}"))
        .await
        .expect("type the key");
    b.wait_text("#who", "admin").await;
    assert_eq!(
        b.js("return sessionStorage.getItem('hookrelay.key')").await,
        ADMIN_KEY
    );
    assert!(
        !b.client
            .current_url()
            .await
            .expect("url")
            .as_str()
            .contains(ADMIN_KEY)
    );

    // An endpoint, from the form.
    b.go(&base, "#/endpoints/new").await;
    b.type_into("#endpoint-name", "orders-service").await;
    b.type_into("#endpoint-url", &receiver.url).await;
    b.type_into("#endpoint-events", "order.created").await;
    b.press("Create endpoint").await;
    let flash = b.wait_text("#flash", "signing secret").await;
    assert!(flash.contains("whsec_"), "{flash}");
    b.wait_text("h1", "orders-service").await;

    // A source, and its ingest URL as the page shows it.
    b.go(&base, "#/sources").await;
    b.type_into("#source-name", "shop").await;
    b.type_into("#source-event-type", "order.created").await;
    b.press("Create source").await;
    b.wait_text("main table", "shop").await;
    b.shot("sources").await;
    let ingest_url = b.text("main table td.mono").await;
    assert!(
        ingest_url.starts_with(&format!("{base}/in/src_")),
        "{ingest_url}"
    );

    // A webhook arrives: the events page shows it by itself (live), then its payload and
    // its successful attempt.
    b.go(&base, "#/events").await;
    let sent = reqwest::Client::new()
        .post(&ingest_url)
        .header("content-type", "application/json")
        .body(json!({"order": 42, "note": "<b>not markup</b>"}).to_string())
        .send()
        .await
        .expect("ingest");
    assert_eq!(sent.status(), 202);
    let answer: Value = serde_json::from_str(&sent.text().await.expect("body")).expect("json");
    let event_id = answer["id"].as_str().expect("id").to_owned();
    b.wait_text("main table", &event_id).await;
    b.shot("events").await;
    b.click(&format!("a[href='#/events/{event_id}']")).await;
    b.wait_text("#payload", "not markup").await;
    assert!(b.text("#payload").await.contains("\"order\": 42"));
    b.wait_text_reloading("main", "SUCCESSFUL").await;
    assert_eq!(receiver.deliveries().len(), 1);

    // The attempt, with the request and the receiver's answer; then a manual retry.
    b.click("main table a[href^='#/attempts/']").await;
    b.wait_text("h1", "SUCCESSFUL").await;
    let request = b.text("main").await;
    assert!(request.contains("webhook-signature"), "{request}");
    assert!(request.contains("HTTP 200"), "{request}");
    b.shot("attempt").await;
    b.click("#retry").await;
    b.wait_text("#flash", "queued").await;
    let started = Instant::now();
    while receiver.deliveries().len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "retry never sent"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The endpoint's health after two successes, and a test ping from its page.
    b.go(&base, "#/endpoints").await;
    b.wait_text("main table", "healthy").await;
    b.click("main table a[href^='#/endpoints/ep_']").await;
    b.wait_text("main", "100% of the last 2").await;
    b.press("Send test ping").await;
    b.wait_text("#flash", "Test ping: SUCCESSFUL").await;
    b.shot("endpoint").await;

    // Disable and enable, a secret rotation (its confirmation accepted), an edit.
    b.press("Disable").await;
    b.wait_text("main", "disabled").await;
    b.press("Enable").await;
    b.wait_text("#flash", "Endpoint enabled").await;
    b.wait_text("main", "healthy").await;
    b.js("window.confirm = () => true; return null").await;
    b.press("Rotate secret").await;
    let rotated = b.wait_text("#flash", "New secret").await;
    assert!(rotated.contains("whsec_"), "{rotated}");
    b.click("a[href$='/edit']").await;
    b.type_into("#endpoint-events", "order.created, order.updated")
        .await;
    b.press("Save").await;
    b.wait_text("#flash", "Endpoint saved").await;
    b.wait_text("main", "order.created, order.updated").await;

    // A dead letter: an endpoint that always fails, with no retries, then a redrive.
    receiver.script(&[], 200);
    let failing = Receiver::start().await;
    failing.script(&[], 500);
    let (status, _) = admin_call(
        &stack,
        "POST",
        "/workspaces/default/endpoints",
        Some(
            json!({"name": "broken", "url": failing.url, "events": ["order.failed"],
            "retry": {"schedule": []}}),
        ),
    )
    .await;
    assert_eq!(status, 201);
    let sent = reqwest::Client::new()
        .post(&ingest_url)
        .header("content-type", "application/json")
        .body(json!({"event_type": "order.failed", "order": 43}).to_string())
        .send()
        .await
        .expect("ingest");
    assert_eq!(sent.status(), 202);
    b.go(&base, "#/dlq").await;
    b.wait_text_reloading("main table", &failing.url).await;
    b.shot("dead-letters").await;
    b.click("#redrive").await;
    b.wait_text("#flash", "1 moved").await;
    // The ordered queue's own dead-letter queue, one click away, is empty.
    b.click("#dlq-queue a").await;
    b.wait_text("#dlq-queue strong", "Ordered queue").await;
    b.wait_text("main", "The dead-letter queue is empty.").await;

    // Config: the dump, and a sync previewed without changing anything.
    b.go(&base, "#/config").await;
    b.wait_text("#config", "orders-service").await;
    b.click("#preview").await;
    b.wait_text("#plan", "unchanged").await;
    b.shot("config").await;

    // Names are shown as text: a hostile one cannot add markup to the page.
    let (status, _) = admin_call(
        &stack,
        "POST",
        "/workspaces/default/endpoints",
        Some(json!({"name": "<img src=x id=pwned>", "url": receiver.url})),
    )
    .await;
    assert_eq!(status, 201);
    b.go(&base, "#/endpoints").await;
    b.wait_text("main table", "<img src=x id=pwned>").await;
    assert_eq!(
        b.js("return document.querySelectorAll('img').length").await,
        0
    );

    // A phone: nothing wider than the screen but the tables' own scroll boxes.
    b.client.set_window_size(390, 844).await.expect("resize");
    b.go(&base, "#/endpoints").await;
    b.wait_text("main table", "orders-service").await;
    let overflow = b
        .js("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        .await;
    assert_eq!(overflow, 0, "the page scrolls sideways on a phone");
    b.shot("phone-endpoints").await;
    b.client.set_window_size(1280, 900).await.expect("resize");

    // A workspace key sees its workspace and no admin-only section.
    let (status, key) = admin_call(
        &stack,
        "POST",
        "/workspaces/default/keys",
        Some(json!({"name": "console"})),
    )
    .await;
    assert_eq!(status, 201);
    b.press("Sign out").await;
    b.wait_text("h1", "hookrelay console").await;
    b.type_into("#key", key["key"].as_str().expect("key")).await;
    b.type_into("#workspace", "default").await;
    b.press("Sign in").await;
    b.wait_text("#who", "default").await;
    b.wait_text("main table", "orders-service").await;
    let nav = b.text("#nav").await;
    assert!(
        !nav.contains("Dead letters") && !nav.contains("Workspaces"),
        "{nav}"
    );

    b.close().await;
}
