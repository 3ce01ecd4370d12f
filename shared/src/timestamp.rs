//! Timestamps in one fixed-width UTC format, so that they sort as strings: DynamoDB range
//! conditions on GSI sort keys (the sweeper's `sweep_at < cutoff`) rely on it.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

#[derive(Debug, thiserror::Error)]
#[error("not an RFC 3339 timestamp: {0:?}")]
pub struct TimestampError(String);

impl Timestamp {
    pub fn now() -> Self {
        Self::from(OffsetDateTime::now_utc())
    }

    pub fn from_unix_millis(ms: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .ok()
            .map(Self::from)
    }

    pub fn unix_seconds(self) -> i64 {
        self.0.unix_timestamp()
    }

    pub fn unix_millis(self) -> i64 {
        (self.0.unix_timestamp_nanos() / 1_000_000) as i64
    }

    pub fn plus(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_add(time::Duration::try_from(d).unwrap_or(time::Duration::MAX)),
        )
    }

    pub fn minus(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_sub(time::Duration::try_from(d).unwrap_or(time::Duration::MAX)),
        )
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::try_from(self.0 - earlier.0).unwrap_or(Duration::ZERO)
    }

    pub fn parse(s: &str) -> Result<Self, TimestampError> {
        OffsetDateTime::parse(s, &Rfc3339)
            .map(Self::from)
            .map_err(|_| TimestampError(s.to_owned()))
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Self {
        // Millisecond precision keeps the string form fixed-width and round-trippable.
        let t = t.to_offset(UtcOffset::UTC);
        let ms = t.nanosecond() / 1_000_000 * 1_000_000;
        Self(t.replace_nanosecond(ms).unwrap_or(t))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fd = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        match self.0.format(fd) {
            Ok(s) => f.write_str(&s),
            Err(_) => Err(fmt::Error),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_form_is_fixed_width_and_sorts() {
        let a = Timestamp::from_unix_millis(1_000).unwrap();
        let b = Timestamp::from_unix_millis(1_700_000_000_123).unwrap();
        assert_eq!(a.to_string(), "1970-01-01T00:00:01.000Z");
        assert_eq!(b.to_string(), "2023-11-14T22:13:20.123Z");
        assert!(a.to_string() < b.to_string());
        assert_eq!(Timestamp::parse(&b.to_string()).unwrap(), b);
        assert_eq!(b.unix_millis(), 1_700_000_000_123);
    }

    #[test]
    fn arithmetic() {
        let a = Timestamp::from_unix_millis(10_000).unwrap();
        let b = a.plus(Duration::from_secs(5));
        assert_eq!(b.unix_millis(), 15_000);
        assert_eq!(b.since(a), Duration::from_secs(5));
        assert_eq!(a.since(b), Duration::ZERO);
        assert_eq!(b.minus(Duration::from_secs(5)), a);
    }
}
