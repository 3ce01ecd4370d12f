//! W3C Trace Context: a webhook's trace continues through hookrelay to its endpoints. Ingest
//! takes the sender's `traceparent` (or starts a trace when there is none or it is invalid,
//! as the recommendation says: an invalid header is ignored, never refused), stores the
//! context of its own span on the event, and every delivery attempt is a child span of it,
//! sent as the endpoint request's `traceparent` with the sender's `tracestate`.

use http::HeaderMap;
use serde::{Deserialize, Serialize};

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// The recommendation's bound: a `tracestate` longer than this may be dropped.
const MAX_TRACESTATE: usize = 512;

/// The context an event carries: its trace, the span that accepted it, whether the trace is
/// sampled, and the vendors' `tracestate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    /// 32 lower-case hex digits.
    pub trace_id: String,
    /// 16 lower-case hex digits: the span that accepted the event, the parent of its
    /// deliveries.
    pub span_id: String,
    pub sampled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

impl TraceContext {
    /// The context for an event accepted with these request headers: the sender's trace
    /// continued under a new span, or a new trace.
    pub fn accepted(headers: &HeaderMap) -> Self {
        let incoming = headers
            .get(TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(parse);
        match incoming {
            Some((trace_id, sampled)) => Self {
                trace_id,
                span_id: new_span_id(),
                sampled,
                state: headers
                    .get(TRACESTATE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::trim)
                    .filter(|s| !s.is_empty() && s.len() <= MAX_TRACESTATE)
                    .map(str::to_owned),
            },
            None => Self::start(),
        }
    }

    /// A new trace, sampled (nothing upstream decided otherwise).
    pub fn start() -> Self {
        Self {
            trace_id: format!("{:032x}", nonzero_u128()),
            span_id: new_span_id(),
            sampled: true,
            state: None,
        }
    }

    /// The `traceparent` of this context's span.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{}",
            self.trace_id,
            self.span_id,
            if self.sampled { "01" } else { "00" }
        )
    }

    /// A new span under this one (a delivery attempt): its `traceparent`.
    pub fn child_traceparent(&self) -> String {
        Self {
            span_id: new_span_id(),
            ..self.clone()
        }
        .traceparent()
    }
}

/// The trace id and sampled flag of a valid `traceparent`; `None` for anything else.
/// Versions above `00` are read by their first four fields, as the recommendation asks.
pub fn parse(value: &str) -> Option<(String, bool)> {
    let value = value.trim();
    let mut fields = value.split('-');
    let version = fields.next()?;
    let trace_id = fields.next()?;
    let parent_id = fields.next()?;
    let flags = fields.next()?;
    let rest = fields.next();
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !hex(version, 2) || version == "ff" || !hex(trace_id, 32) || !hex(parent_id, 16) {
        return None;
    }
    if !hex(flags, 2) || (version == "00" && rest.is_some()) {
        return None;
    }
    if trace_id.bytes().all(|b| b == b'0') || parent_id.bytes().all(|b| b == b'0') {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((trace_id.to_owned(), flags & 1 == 1))
}

/// The sender's span in a valid incoming `traceparent`: the parent of the span that
/// continues its trace.
pub fn incoming_parent(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(TRACEPARENT)?.to_str().ok()?;
    parse(value)?;
    value.trim().split('-').nth(2).map(str::to_owned)
}

fn new_span_id() -> String {
    loop {
        let id: u64 = rand::random();
        if id != 0 {
            return format!("{id:016x}");
        }
    }
}

fn nonzero_u128() -> u128 {
    loop {
        let id: u128 = rand::random();
        if id != 0 {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn continues_a_valid_trace_under_a_new_span() {
        let ctx = TraceContext::accepted(&headers(&[
            (TRACEPARENT, VALID),
            (TRACESTATE, "congo=t61rcWkgMzE"),
        ]));
        assert_eq!(ctx.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(ctx.span_id, "00f067aa0ba902b7");
        assert!(ctx.sampled);
        assert_eq!(ctx.state.as_deref(), Some("congo=t61rcWkgMzE"));
        let child = ctx.child_traceparent();
        let (trace, sampled) = parse(&child).unwrap();
        assert_eq!(trace, ctx.trace_id);
        assert!(sampled);
        assert_ne!(child, ctx.traceparent());
        assert_eq!(
            incoming_parent(&headers(&[(TRACEPARENT, VALID)])).as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert_eq!(incoming_parent(&headers(&[(TRACEPARENT, "garbage")])), None);
    }

    #[test]
    fn keeps_the_unsampled_flag() {
        let ctx = TraceContext::accepted(&headers(&[(
            TRACEPARENT,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        )]));
        assert!(!ctx.sampled);
        assert!(ctx.traceparent().ends_with("-00"));
    }

    #[test]
    fn reads_future_versions_by_their_first_fields() {
        let (trace, _) = parse(&format!("cc{}-extra", &VALID[2..])).unwrap();
        assert_eq!(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn starts_a_new_trace_for_anything_invalid() {
        for bad in [
            "",
            "garbage",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
            let ctx = TraceContext::accepted(&headers(&[(TRACEPARENT, bad), (TRACESTATE, "a=b")]));
            assert_ne!(ctx.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736", "{bad:?}");
            assert_eq!(
                ctx.state, None,
                "a tracestate without its traceparent is dropped"
            );
            assert!(parse(&ctx.traceparent()).is_some());
        }
    }

    #[test]
    fn drops_an_oversized_tracestate() {
        let long = "a=".to_owned() + &"b".repeat(600);
        let ctx = TraceContext::accepted(&headers(&[(TRACEPARENT, VALID), (TRACESTATE, &long)]));
        assert_eq!(ctx.state, None);
    }
}
