//! The one RFC 3339 parser of pdm: payload timestamps (the codec) and query parameters (the
//! server) read times through [`Timestamp::parse_rfc3339`], so both round alike.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::model::Timestamp;

/// Why a text is not an RFC 3339 time pdm can hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimestampError {
    /// Not an RFC 3339 date-time (the parser's reason).
    #[error("{0}")]
    Invalid(String),
    /// A valid time beyond the range of epoch milliseconds in an `i64`.
    #[error("out of range")]
    OutOfRange,
}

impl Timestamp {
    /// Parses an RFC 3339 date-time (`2026-01-01T00:00:00.5Z`, any offset).
    ///
    /// Sub-millisecond digits are rounded towards the past (floor), before 1970 as after: a
    /// time is never moved to a later millisecond, so `1969-12-31T23:59:59.9995Z` is
    /// millisecond `-1`, not `0`.
    ///
    /// ```
    /// use pdm_core::Timestamp;
    /// assert_eq!(Timestamp::parse_rfc3339("1970-01-01T00:00:01.5Z").map(Timestamp::as_millis), Ok(1500));
    /// assert!(Timestamp::parse_rfc3339("yesterday").is_err());
    /// ```
    pub fn parse_rfc3339(s: &str) -> Result<Timestamp, TimestampError> {
        let t = OffsetDateTime::parse(s, &Rfc3339)
            .map_err(|e| TimestampError::Invalid(e.to_string()))?;
        let ms = t.unix_timestamp_nanos().div_euclid(1_000_000);
        i64::try_from(ms)
            .map(Timestamp::from_millis)
            .map_err(|_| TimestampError::OutOfRange)
    }

    /// The time as RFC 3339 in UTC with milliseconds (`2023-11-14T22:13:20.500Z`), or the
    /// milliseconds in words when the calendar cannot hold them (for messages, never for data).
    ///
    /// ```
    /// use pdm_core::Timestamp;
    /// assert_eq!(Timestamp::from_millis(1_700_000_000_500).to_rfc3339(), "2023-11-14T22:13:20.5Z");
    /// ```
    pub fn to_rfc3339(self) -> String {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.as_millis()) * 1_000_000)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| format!("{} ms since 1970", self.as_millis()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> Result<i64, TimestampError> {
        Timestamp::parse_rfc3339(s).map(Timestamp::as_millis)
    }

    #[test]
    fn whole_and_fractional_milliseconds() {
        assert_eq!(ms("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert_eq!(ms("2023-11-14T22:13:20.5Z"), Ok(1_700_000_000_500));
        assert_eq!(ms("2023-11-14T23:13:20+01:00"), Ok(1_700_000_000_000));
        assert_eq!(ms("1970-01-01T00:00:00Z"), Ok(0));
    }

    #[test]
    fn sub_millisecond_digits_round_towards_the_past() {
        assert_eq!(ms("1970-01-01T00:00:00.0009Z"), Ok(0));
        assert_eq!(ms("2023-11-14T22:13:20.5009Z"), Ok(1_700_000_000_500));
        // Before 1970 the floor is the earlier millisecond, not the one nearer zero.
        assert_eq!(ms("1969-12-31T23:59:59.9995Z"), Ok(-1));
        assert_eq!(ms("1969-12-31T23:59:59.999Z"), Ok(-1));
        assert_eq!(ms("1969-12-31T23:59:59.0001Z"), Ok(-1000));
        assert_eq!(ms("1969-12-31T23:59:59Z"), Ok(-1000));
    }

    #[test]
    fn refusals() {
        assert!(matches!(ms("yesterday"), Err(TimestampError::Invalid(_))));
        assert!(matches!(
            ms("2023-11-14 22:13:20"),
            Err(TimestampError::Invalid(_))
        ));
        assert!(matches!(
            ms("2023-13-01T00:00:00Z"),
            Err(TimestampError::Invalid(_))
        ));
        assert_eq!(
            TimestampError::OutOfRange.to_string(),
            "out of range",
            "the codec's wording"
        );
    }
}
