//! What more than one hookrelay function needs: the model, the DynamoDB store, the SQS queue,
//! signatures, the retry policy, settings and telemetry.

/// String values the code writes into a field typed as a plain string, declared once with
/// the list of them all, so the docs test enumerates exactly what the code can write.
macro_rules! string_values {
    ($(#[$all_meta:meta])* $all:ident; $($(#[$meta:meta])* $name:ident = $value:literal),+ $(,)?) => {
        $($(#[$meta])* pub const $name: &str = $value;)+
        $(#[$all_meta])*
        pub const $all: &[&str] = &[$($name),+];
    };
}

pub mod api;
pub mod aws;
pub mod batching;
pub mod cache;
pub mod config;
pub mod filter;
pub mod held_metrics;
pub mod hops;
pub mod ids;
pub mod metrics;
pub mod model;
pub mod ops_events;
pub mod ordering;
#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(feature = "outbound")]
pub mod outbound;
pub mod payload_objects;
pub mod publish;
pub mod queue;
pub mod rate_limit;
pub mod redact;
pub mod requests;
pub mod retry;
pub mod signature;
pub mod store;
pub mod telemetry;
pub mod timestamp;
pub mod trace_context;
pub mod warm;

pub use model::{
    Attempt, AttemptRequest, AttemptResponse, AttemptStatus, BatchConfig, BatchTimer,
    DEFAULT_WORKSPACE, DeactivationWarning, DeadLetter, DeliveryConfig, DeliveryMode,
    DeliveryOrdering, DeliveryTask, Endpoint, EndpointKind, Event, EventRef, FailingPolicy,
    HmacAlgorithm, LarkBot, LarkMessageType, RetryConfig, SignatureEncoding, Source,
    SourceResponse, TaskBatch, TriggerMode, Verification, Workspace, WorkspaceSettings,
};
pub use timestamp::Timestamp;

/// The `User-Agent` of outbound deliveries.
pub const USER_AGENT: &str = concat!("hookrelay/", env!("CARGO_PKG_VERSION"));
