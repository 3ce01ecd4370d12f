//! The time a call has. API Gateway's HTTP API waits 30 s for an answer and Lambda stops the
//! function at its timeout (29 s in the template); work that could outlast either is done in
//! steps that each start only when there is time to finish them, and answers how far it got.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_http::{Request, RequestExt};

/// A call's budget when the invocation names no deadline (tests, a local runtime that sends
/// none): inside the HTTP API's 30 s.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(25);

/// Kept back from the invocation's deadline to encode and return the answer.
pub const ANSWER_RESERVE: Duration = Duration::from_millis(500);

/// When the current call must have answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(Instant);

impl Deadline {
    pub fn at(instant: Instant) -> Self {
        Self(instant)
    }

    pub fn after(budget: Duration) -> Self {
        Self(Instant::now() + budget)
    }

    /// The invocation's deadline as Lambda gives it, or [`DEFAULT_BUDGET`] from now.
    pub fn of_invocation(req: &Request) -> Self {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        // A deadline already past is not Lambda's: a local runtime may send none.
        req.lambda_context_ref()
            .map(|c| c.deadline)
            .filter(|&d| d > now_ms)
            .map_or_else(
                || Self::after(DEFAULT_BUDGET),
                |d| Self::after(Duration::from_millis(d - now_ms)),
            )
    }

    pub fn instant(self) -> Instant {
        self.0
    }

    pub fn remaining(self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// Whether a step that may take up to `step` can still finish in time.
    pub fn allows(self, step: Duration) -> bool {
        self.remaining() > step
    }

    /// This deadline moved `reserve` earlier.
    pub fn less(self, reserve: Duration) -> Self {
        Self(self.0.checked_sub(reserve).unwrap_or_else(Instant::now))
    }
}
