//! The workspaces' config stamps this instance may trust without reading them again: each
//! for the lease it carries, counted from the moment its read was sent (see the store's
//! `config_stamp`). A change through the API is answered only after every such lease on the
//! stamp before it has run out, so routing by a stamp held here is routing by the current
//! configuration.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use hookrelay_shared::store::ConfigStamp;

/// Beyond this many workspaces held, ended leases are dropped before another is taken.
const TIDY_ABOVE: usize = 1024;

/// When a stamp's read was sent, on both clocks: a frozen Lambda instance's monotonic clock
/// need not count the time it was frozen, which the wall clock does; a wall clock set back
/// is caught by the monotonic one. A lease runs only while both say it does.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    at: Instant,
    wall: SystemTime,
}

impl Sent {
    pub fn now() -> Self {
        Self {
            at: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    fn within(&self, lease: Duration, now: &Sent) -> bool {
        now.at.saturating_duration_since(self.at) < lease
            && now.wall.duration_since(self.wall).is_ok_and(|d| d < lease)
    }
}

#[derive(Debug, Clone, Copy)]
struct Held {
    value: u64,
    lease: Duration,
    sent: Sent,
}

#[derive(Debug, Default)]
pub struct StampLeases {
    held: Mutex<HashMap<String, Held>>,
}

impl StampLeases {
    pub fn new() -> Self {
        Self::default()
    }

    /// The workspace's stamp, while a lease on it runs.
    pub fn current(&self, ws: &str) -> Option<u64> {
        self.current_at(ws, &Sent::now())
    }

    fn current_at(&self, ws: &str, now: &Sent) -> Option<u64> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.get(ws)
            .filter(|h| h.sent.within(h.lease, now))
            .map(|h| h.value)
    }

    /// Holds `stamp`, read by a request sent at `sent`, for its lease.
    pub fn hold(&self, ws: &str, stamp: ConfigStamp, sent: Sent) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if stamp.lease.is_zero() {
            held.remove(ws);
            return;
        }
        if held.len() >= TIDY_ABOVE {
            let now = Sent::now();
            held.retain(|_, h| h.sent.within(h.lease, &now));
        }
        held.insert(
            ws.to_owned(),
            Held {
                value: stamp.value,
                lease: stamp.lease,
                sent,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn stamp(value: u64, lease: Duration) -> ConfigStamp {
        ConfigStamp { value, lease }
    }

    fn later(sent: Sent, mono: Duration, wall: Duration) -> Sent {
        Sent {
            at: sent.at + mono,
            wall: sent.wall + wall,
        }
    }

    #[test]
    fn a_stamp_is_trusted_only_within_its_lease() {
        let leases = StampLeases::new();
        let sent = Sent::now();
        leases.hold("ws", stamp(7, SECOND), sent);
        let soon = later(sent, SECOND / 2, SECOND / 2);
        assert_eq!(leases.current_at("ws", &soon), Some(7));
        assert_eq!(leases.current_at("other", &soon), None);
        assert_eq!(leases.current_at("ws", &later(sent, SECOND, SECOND)), None);
    }

    #[test]
    fn either_clock_ends_a_lease() {
        let leases = StampLeases::new();
        let sent = Sent::now();
        leases.hold("ws", stamp(1, SECOND), sent);
        // Frozen for an hour: the monotonic clock did not count it, the wall clock did.
        let thawed = later(sent, SECOND / 10, Duration::from_secs(3600));
        assert_eq!(leases.current_at("ws", &thawed), None);
        // The wall clock set back: the monotonic clock still counts.
        let set_back = Sent {
            at: sent.at + 2 * SECOND,
            wall: sent.wall - Duration::from_secs(60),
        };
        assert_eq!(leases.current_at("ws", &set_back), None);
        // Set back a little within the lease: not trusted either, as the wall clock cannot
        // say how long it has been.
        let slightly = Sent {
            at: sent.at + SECOND / 10,
            wall: sent.wall - Duration::from_millis(5),
        };
        assert_eq!(leases.current_at("ws", &slightly), None);
    }

    #[test]
    fn a_stamp_without_a_lease_is_not_held_and_ends_the_one_before() {
        let leases = StampLeases::new();
        let sent = Sent::now();
        leases.hold("ws", stamp(1, SECOND), sent);
        leases.hold("ws", stamp(2, Duration::ZERO), sent);
        assert_eq!(leases.current_at("ws", &sent), None);
    }

    #[test]
    fn ended_leases_are_dropped_when_many_are_held() {
        let leases = StampLeases::new();
        let long_ago = Sent {
            at: Instant::now(),
            wall: SystemTime::now() - Duration::from_secs(3600),
        };
        for i in 0..TIDY_ABOVE {
            leases.hold(&format!("ws{i}"), stamp(1, SECOND), long_ago);
        }
        leases.hold("fresh", stamp(1, SECOND), Sent::now());
        let held = leases.held.lock().unwrap();
        assert_eq!(held.len(), 1);
        assert!(held.contains_key("fresh"));
    }
}
