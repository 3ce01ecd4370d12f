//! JSON logs through `tracing`. The level comes from `AWS_LAMBDA_LOG_LEVEL` (set by the
//! template) or `RUST_LOG`.
//!
//! Every line carries its own RFC 3339 `timestamp` beside its `level`: Lambda's log-level
//! filter counts a line without a valid timestamp as INFO, so at `LogLevel=WARN` it would
//! drop the very warnings and errors the setting is meant to keep.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;

pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned())
        .to_lowercase();
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"));
    // try_init: a second call (tests, the local stack) is harmless.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .try_init();
}

use std::sync::atomic::{AtomicU64, Ordering};

static LOG_BYTES: AtomicU64 = AtomicU64::new(0);
static WARN_LOG_BYTES: AtomicU64 = AtomicU64::new(0);

/// Bytes of log lines (the same JSON the functions write) counted by [`init_counting`].
pub fn log_bytes() -> u64 {
    LOG_BYTES.load(Ordering::Relaxed)
}

/// Of [`log_bytes`], the lines at WARN or above: what `LogLevel=WARN` keeps.
pub fn warn_log_bytes() -> u64 {
    WARN_LOG_BYTES.load(Ordering::Relaxed)
}

/// A sink that counts what it is given and keeps nothing.
struct Counting(&'static AtomicU64);

impl std::io::Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The functions' logging at `info`, into a byte counter instead of stdout: the cost
/// benchmark measures log volume per event with it.
pub fn init_counting() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(EnvFilter::new("info"))
        .with_current_span(false)
        .with_target(false)
        .with_writer(
            (|| Counting(&LOG_BYTES))
                .and((|| Counting(&WARN_LOG_BYTES)).with_max_level(tracing::Level::WARN)),
        )
        .try_init();
}

/// An error with its chain of causes on one line, for logs: the SDK's outer errors say
/// little ("service error") without their sources.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::Value;

    use crate::metrics::{LAMBDA_LOG_LEVELS, passes_log_filter};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn log_lines_carry_a_level_and_timestamp_lambda_reads() {
        let out = Captured::default();
        let writer = out.clone();
        // The same format as `init`, into a buffer.
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_current_span(false)
            .with_target(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(endpoint.id = "ep_1", "endpoint failing");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["level"], "WARN");
        assert!(LAMBDA_LOG_LEVELS.contains(&line["level"].as_str().unwrap()));
        crate::Timestamp::parse(line["timestamp"].as_str().unwrap()).unwrap();
        assert!(passes_log_filter("WARN", "WARN"));
    }
}
