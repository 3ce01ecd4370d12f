//! Settings read once at cold start from the environment the template (or the local stack)
//! gives each function. A missing or malformed setting stops the function at start-up with a
//! message naming it, rather than failing requests later.

use std::env;
use std::str::FromStr;
use std::time::Duration;

use crate::payload_objects::{INLINE_PAYLOAD_MAX, MAX_PAYLOAD};
use crate::retry::{RetryPolicy, RetryPolicyError};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("setting {0} is required")]
    Missing(&'static str),
    #[error("setting {name} has an invalid value {value:?}: expected {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("setting RETRY_SCHEDULE is invalid")]
    Retry(#[from] RetryPolicyError),
    #[error(
        "setting RETENTION_DAYS is {days}, shorter than the retry schedule needs: events and \
         attempts must outlive the last retry, so with this schedule keep them at least \
         {min_days} days (raise RetentionDays or shorten RetrySchedule)"
    )]
    RetentionTooShort { days: u32, min_days: u32 },
}

/// The shortest retention a retry schedule allows: the schedule's longest span (every delay
/// at the top of its jitter), rounded up to whole days, plus a day for the queueing,
/// postponements and last attempt that follow. An event whose TTL ran out before its last
/// retry could no longer be delivered or shown in its attempt history.
pub fn min_retention_days(retry: &RetryPolicy) -> u32 {
    let span = retry.max_span().as_secs();
    (span.div_ceil(86_400) + 1) as u32
}

/// The longest config lease a deployment may set: every change through the API waits it out.
pub const MAX_CONFIG_LEASE_MS: u64 = 5000;
/// The config lease a deployment records unless told otherwise: a second's wait in an answer
/// to a change, for a stamp read about once a second by a busy ingest instance.
pub const DEFAULT_CONFIG_LEASE_MS: u64 = 1000;

#[derive(Debug, Clone)]
pub struct Settings {
    pub table_name: String,
    pub delivery_queue_url: String,
    pub dead_letter_queue_url: String,
    /// The queue where tasks of batch endpoints collect (`BATCHING_QUEUE_URL`).
    pub batching_queue_url: Option<String>,
    /// The FIFO queue of ordered endpoints' tasks (`ORDERED_QUEUE_URL`); unset, ordered
    /// endpoints are delivered unordered.
    pub ordered_queue_url: Option<String>,
    /// The ordered queue's dead-letter queue (`ORDERED_DLQ_URL`), which the admin API reads
    /// and redrives; unset, it has no route.
    pub ordered_dead_letter_queue_url: Option<String>,
    /// The EventBridge bus operational events go to (`OPS_EVENT_BUS`, default `default`).
    pub ops_event_bus: String,
    pub retry: RetryPolicy,
    pub max_body_bytes: usize,
    /// The S3 bucket payloads over [`INLINE_PAYLOAD_MAX`] are kept in (`PAYLOAD_BUCKET`).
    /// Without one, bodies are bounded by what a DynamoDB item holds.
    pub payload_bucket: Option<String>,
    pub retention_days: u32,
    pub sweep_after_days: u32,
    /// How long a warm function trusts its in-memory copy of endpoints and sources.
    pub cache_ttl: Duration,
    pub delivery_timeout: Duration,
    /// The longest per-endpoint timeout allowed: below the delivery function's own timeout.
    pub max_delivery_timeout: Duration,
    pub delivery_concurrency: usize,
    /// Address ranges deliveries may reach although they are not public (comma-separated
    /// IPs or CIDRs). Empty in AWS; the local stack opens 127.0.0.1.
    pub delivery_allow_networks: String,
    /// How long a rotated-out secret keeps signing.
    pub secret_grace: Duration,
    /// Events still marked pending this long after they were accepted are re-enqueued by
    /// the sweeper.
    pub reconcile_after: Duration,
    /// After this many failures in a row an endpoint's circuit opens: its tasks are parked
    /// (re-queued with a delay, not sent) and one probe at a time tests it. 0 turns it off.
    pub circuit_breaker_after: u32,
    /// The first wait between probes of an open circuit; it doubles up to 15 minutes.
    pub circuit_probe_interval: Duration,
    /// How long an ingest instance may route by the configuration it read without reading
    /// the workspace's config stamp again; a change through the API is answered only once
    /// every such lease on the configuration before it has run out.
    pub config_lease: Duration,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let settings = Self::read_env()?;
        settings.check()?;
        Ok(settings)
    }

    /// Rules between settings, which no single setting's parse can see.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes > INLINE_PAYLOAD_MAX && self.payload_bucket.is_none() {
            return Err(ConfigError::Invalid {
                name: "MAX_BODY_BYTES",
                value: self.max_body_bytes.to_string(),
                expected: "at most 262144 bytes without PAYLOAD_BUCKET (larger payloads are kept in S3)",
            });
        }
        let min_days = min_retention_days(&self.retry);
        if self.retention_days < min_days {
            return Err(ConfigError::RetentionTooShort {
                days: self.retention_days,
                min_days,
            });
        }
        Ok(())
    }

    fn read_env() -> Result<Self, ConfigError> {
        let payload_bucket = env::var("PAYLOAD_BUCKET").ok().filter(|b| !b.is_empty());
        Ok(Self {
            table_name: required("TABLE_NAME")?,
            delivery_queue_url: required("DELIVERY_QUEUE_URL")?,
            dead_letter_queue_url: required("DEAD_LETTER_QUEUE_URL")?,
            batching_queue_url: env::var("BATCHING_QUEUE_URL")
                .ok()
                .filter(|u| !u.is_empty()),
            ordered_queue_url: env::var("ORDERED_QUEUE_URL").ok().filter(|u| !u.is_empty()),
            ordered_dead_letter_queue_url: env::var("ORDERED_DLQ_URL")
                .ok()
                .filter(|u| !u.is_empty()),
            ops_event_bus: env::var("OPS_EVENT_BUS")
                .ok()
                .filter(|b| !b.is_empty())
                .unwrap_or_else(|| "default".to_owned()),
            retry: RetryPolicy::parse(
                &env::var("RETRY_SCHEDULE")
                    .unwrap_or_else(|_| crate::retry::DEFAULT_SCHEDULE.to_owned()),
            )?,
            max_body_bytes: bounded(
                "MAX_BODY_BYTES",
                parsed(
                    "MAX_BODY_BYTES",
                    if payload_bucket.is_some() {
                        MAX_PAYLOAD
                    } else {
                        INLINE_PAYLOAD_MAX
                    },
                    "a number of bytes",
                )?,
                1024..=MAX_PAYLOAD,
                "1024 to 6000000 bytes (Lambda's synchronous invocation carries at most 6 MB)",
            )?,
            payload_bucket,
            retention_days: parsed("RETENTION_DAYS", 30, "a number of days")?,
            sweep_after_days: parsed("SWEEP_AFTER_DAYS", 365, "a number of days")?,
            cache_ttl: Duration::from_secs(parsed("CACHE_TTL_SECONDS", 10, "seconds")?),
            delivery_timeout: Duration::from_secs(parsed(
                "DELIVERY_TIMEOUT_SECONDS",
                15,
                "seconds",
            )?),
            max_delivery_timeout: Duration::from_secs(parsed(
                "DELIVERY_MAX_TIMEOUT_SECONDS",
                25,
                "seconds",
            )?),
            delivery_concurrency: parsed("DELIVERY_CONCURRENCY", 32, "a positive number")?.max(1),
            delivery_allow_networks: env::var("DELIVERY_ALLOW_NETWORKS").unwrap_or_default(),
            secret_grace: Duration::from_secs(parsed(
                "SECRET_ROTATION_GRACE_SECONDS",
                86_400,
                "seconds",
            )?),
            reconcile_after: Duration::from_secs(parsed(
                "RECONCILE_AFTER_SECONDS",
                300,
                "seconds",
            )?),
            circuit_breaker_after: parsed("CIRCUIT_BREAKER_AFTER", 5, "a number of failures")?,
            circuit_probe_interval: Duration::from_secs(
                parsed("CIRCUIT_PROBE_SECONDS", 30, "seconds")?.clamp(1, 900),
            ),
            config_lease: Duration::from_millis(bounded(
                "CONFIG_LEASE_MS",
                parsed("CONFIG_LEASE_MS", DEFAULT_CONFIG_LEASE_MS, "milliseconds")?,
                0..=MAX_CONFIG_LEASE_MS,
                "0 to 5000 milliseconds",
            )?),
        })
    }

    /// Settings for tests and the local stack: everything but the resource names defaulted.
    pub fn for_resources(table_name: &str, queue_url: &str, dlq_url: &str) -> Self {
        Self {
            table_name: table_name.to_owned(),
            delivery_queue_url: queue_url.to_owned(),
            dead_letter_queue_url: dlq_url.to_owned(),
            batching_queue_url: None,
            ordered_queue_url: None,
            ordered_dead_letter_queue_url: None,
            ops_event_bus: "default".to_owned(),
            retry: RetryPolicy::default(),
            max_body_bytes: INLINE_PAYLOAD_MAX,
            payload_bucket: None,
            retention_days: 30,
            sweep_after_days: 365,
            cache_ttl: Duration::ZERO,
            delivery_timeout: Duration::from_secs(15),
            max_delivery_timeout: Duration::from_secs(25),
            delivery_concurrency: 32,
            delivery_allow_networks: String::new(),
            secret_grace: Duration::from_secs(86_400),
            reconcile_after: Duration::from_secs(300),
            circuit_breaker_after: 5,
            circuit_probe_interval: Duration::from_secs(30),
            config_lease: Duration::ZERO,
        }
    }

    pub fn retention(&self) -> Duration {
        Duration::from_secs(u64::from(self.retention_days) * 86_400)
    }

    pub fn sweep_after(&self) -> Duration {
        Duration::from_secs(u64::from(self.sweep_after_days) * 86_400)
    }
}

fn bounded<T: PartialOrd + ToString>(
    name: &'static str,
    value: T,
    range: std::ops::RangeInclusive<T>,
    expected: &'static str,
) -> Result<T, ConfigError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::Invalid {
            name,
            value: value.to_string(),
            expected,
        })
    }
}

pub fn required(name: &'static str) -> Result<String, ConfigError> {
    match env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing(name)),
    }
}

fn parsed<T: FromStr>(
    name: &'static str,
    default: T,
    expected: &'static str,
) -> Result<T, ConfigError> {
    match env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|_| ConfigError::Invalid {
            name,
            value: v,
            expected,
        }),
        _ => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::{MAX_RETRIES, MAX_VISIBILITY};

    fn with(retention_days: u32, schedule: &str) -> Settings {
        Settings {
            retention_days,
            retry: RetryPolicy::parse(schedule).unwrap(),
            ..Settings::for_resources("t", "q", "d")
        }
    }

    #[test]
    fn retention_must_outlive_the_retry_schedule() {
        // The default schedule waits at most 27.6 h, 33.1 h with jitter: two days, plus one.
        assert_eq!(
            min_retention_days(&RetryPolicy::parse(crate::retry::DEFAULT_SCHEDULE).unwrap()),
            3
        );
        assert!(with(30, crate::retry::DEFAULT_SCHEDULE).check().is_ok());
        assert!(with(3, crate::retry::DEFAULT_SCHEDULE).check().is_ok());
        let err = with(2, crate::retry::DEFAULT_SCHEDULE).check().unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::RetentionTooShort {
                    days: 2,
                    min_days: 3
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("RETENTION_DAYS"), "{err}");
        // A short schedule still keeps the day of margin.
        assert_eq!(min_retention_days(&RetryPolicy::parse("5,60").unwrap()), 2);
        assert_eq!(min_retention_days(&RetryPolicy::parse("").unwrap()), 1);
        // The longest schedule the template allows fits the longest retention it allows.
        let longest = vec![MAX_VISIBILITY.as_secs().to_string(); MAX_RETRIES].join(",");
        let longest = RetryPolicy::parse(&longest).unwrap();
        assert!(
            min_retention_days(&longest) <= 11,
            "{}",
            min_retention_days(&longest)
        );
    }
}
