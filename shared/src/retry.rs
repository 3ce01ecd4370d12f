//! The retry schedule. SQS is the timer: after a failed attempt the message's visibility
//! timeout is set to the next delay, and its receive count is the attempt number.

use std::time::Duration;

use rand::Rng;

/// SQS refuses visibility timeouts above 12 hours.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);
/// The longest delay we ask for: SQS counts its 12 h from the receive, and the invocation
/// has run a while by the time it sets the timeout.
pub const MAX_DELAY: Duration = Duration::from_secs(12 * 60 * 60 - 300);

/// The template's queue retention and `maxReceiveCount` are sized for this many retries.
pub const MAX_RETRIES: usize = 20;

pub const DEFAULT_SCHEDULE: &str = "5,300,1800,7200,18000,36000,36000";

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    schedule: Vec<Duration>,
    /// Fraction of each delay to randomise by, so endpoints that failed together do not
    /// retry together.
    jitter: f64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RetryPolicyError {
    #[error("retry schedule entry {0:?} is not a whole number of seconds")]
    NotANumber(String),
    #[error("retry schedule entry {0}s exceeds SQS's 12 h visibility cap")]
    TooLong(u64),
    #[error("retry schedule has {0} entries; at most 20 are allowed")]
    TooMany(usize),
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::parse(DEFAULT_SCHEDULE).unwrap_or(Self {
            schedule: vec![Duration::from_secs(5)],
            jitter: 0.2,
        })
    }
}

impl RetryPolicy {
    /// Parses comma-separated seconds (`"5,300,1800"`). An empty string means no retries.
    pub fn parse(s: &str) -> Result<Self, RetryPolicyError> {
        let schedule = s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                let secs: u64 = p
                    .parse()
                    .map_err(|_| RetryPolicyError::NotANumber(p.to_owned()))?;
                if secs > MAX_VISIBILITY.as_secs() {
                    return Err(RetryPolicyError::TooLong(secs));
                }
                Ok(Duration::from_secs(secs))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if schedule.len() > MAX_RETRIES {
            return Err(RetryPolicyError::TooMany(schedule.len()));
        }
        Ok(Self {
            schedule,
            jitter: 0.2,
        })
    }

    /// A schedule given as seconds (an endpoint's own), with the same bounds as `parse`.
    pub fn from_seconds(secs: &[u64]) -> Result<Self, RetryPolicyError> {
        if let Some(&too_long) = secs.iter().find(|&&s| s > MAX_VISIBILITY.as_secs()) {
            return Err(RetryPolicyError::TooLong(too_long));
        }
        if secs.len() > MAX_RETRIES {
            return Err(RetryPolicyError::TooMany(secs.len()));
        }
        Ok(Self {
            schedule: secs.iter().map(|&s| Duration::from_secs(s)).collect(),
            jitter: 0.2,
        })
    }

    pub fn without_jitter(mut self) -> Self {
        self.jitter = 0.0;
        self
    }

    pub fn schedule(&self) -> &[Duration] {
        &self.schedule
    }

    /// The longest the retries of one task can wait in all: every delay at the top of its
    /// jitter (and under the cap SQS's visibility limit sets).
    pub fn max_span(&self) -> Duration {
        self.schedule
            .iter()
            .map(|d| d.mul_f64(1.0 + self.jitter).min(MAX_DELAY))
            .sum()
    }

    /// The first attempt plus one per scheduled retry.
    pub fn max_attempts(&self) -> u32 {
        self.schedule.len() as u32 + 1
    }

    /// The delay before the attempt after `attempt` (1-based), or `None` when `attempt` was
    /// the last one.
    pub fn delay_after(&self, attempt: u32) -> Option<Duration> {
        let base = *self.schedule.get(attempt.checked_sub(1)? as usize)?;
        Some(self.jittered(base).min(MAX_DELAY))
    }

    fn jittered(&self, base: Duration) -> Duration {
        if self.jitter <= 0.0 || base.is_zero() {
            return base;
        }
        let factor = rand::rng().random_range((1.0 - self.jitter)..=(1.0 + self.jitter));
        base.mul_f64(factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule() {
        let p = RetryPolicy::default().without_jitter();
        assert_eq!(p.max_attempts(), 8);
        assert_eq!(p.delay_after(1), Some(Duration::from_secs(5)));
        assert_eq!(p.delay_after(7), Some(Duration::from_secs(36000)));
        assert_eq!(p.delay_after(8), None);
        assert_eq!(p.delay_after(0), None);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let p = RetryPolicy::parse("100").unwrap();
        for _ in 0..200 {
            let d = p.delay_after(1).unwrap().as_secs_f64();
            assert!((80.0..=120.0).contains(&d), "{d}");
        }
    }

    #[test]
    fn bad_schedules_are_refused() {
        assert_eq!(
            RetryPolicy::parse("5,x"),
            Err(RetryPolicyError::NotANumber("x".into()))
        );
        assert_eq!(
            RetryPolicy::parse("50000"),
            Err(RetryPolicyError::TooLong(50000))
        );
        assert_eq!(RetryPolicy::parse("").unwrap().max_attempts(), 1);
    }
}
