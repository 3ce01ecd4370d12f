//! A function for testing the local Lambda service: it speaks the Lambda Runtime API and does
//! what each event asks (`sleep_ms`, `exit`, `alloc_mb`), then answers with its process id
//! and how many invocations this process has served, so a test sees which environment ran.

use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API")?;
    let base = format!("http://{api}/2018-06-01/runtime");
    let http = reqwest::Client::new();
    let mut served = 0u64;
    let mut kept: Vec<Vec<u8>> = Vec::new();
    loop {
        let next = http.get(format!("{base}/invocation/next")).send().await?;
        let id = next
            .headers()
            .get("lambda-runtime-aws-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let deadline_ms = next
            .headers()
            .get("lambda-runtime-deadline-ms")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let event: serde_json::Value = serde_json::from_slice(&next.bytes().await?)?;
        served += 1;
        if let Some(ms) = event["sleep_ms"].as_u64() {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if let Some(code) = event["exit"].as_i64() {
            std::process::exit(code as i32);
        }
        if let Some(mb) = event["alloc_mb"].as_u64() {
            // Touch every page so the memory is resident, as a real allocation's use makes it.
            for _ in 0..mb {
                kept.push(vec![1u8; 1024 * 1024]);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let answer = serde_json::json!({
            "pid": std::process::id(),
            "served": served,
            "memory_size": std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").unwrap_or_default(),
            "deadline_ms": deadline_ms,
        });
        http.post(format!("{base}/invocation/{id}/response"))
            .body(answer.to_string())
            .send()
            .await?;
    }
}
