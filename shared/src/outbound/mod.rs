//! What goes out of the deployment: the HTTP client behind the SSRF guard, the signed
//! request and its attempt, and Lark/Feishu bot messages with their bounded templates. Used
//! by the delivery function and by the admin function's test pings (the `outbound` feature,
//! so ingest and the sweeper carry none of it).

pub mod guard;
pub mod lark;
pub mod send;
pub mod template;

pub use send::{
    MAX_RESPONSE_BODY, Preview, Sender, SenderError, Sent, Try, Verdict, new_attempt, preview,
};
