//! Parsing of times and durations in query parameters.

use pdm_core::Timestamp;

/// Epoch milliseconds (`1700000000000`) or RFC 3339 (`2026-01-01T00:00:00Z`), read by
/// [`Timestamp::parse_rfc3339`] like payload timestamps (sub-milliseconds round towards the past).
pub fn parse_time(s: &str) -> Result<Timestamp, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(Timestamp::from_millis(ms));
    }
    Timestamp::parse_rfc3339(s).map_err(|e| match e {
        pdm_core::TimestampError::OutOfRange => format!("{s:?} is out of range"),
        e => format!("{s:?} is neither epoch milliseconds nor an RFC 3339 time ({e})"),
    })
}

/// A duration: whole milliseconds (`60000`) or a number with a unit: `ms`, `s`, `m`, `h`, `d`.
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 500ms, 10s, 5m, 1h or 1d"))?;
    let factor = match unit {
        "" | "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {s:?}; use ms, s, m, h or d"
            ))
        }
    };
    match n.checked_mul(factor) {
        Some(ms) if ms > 0 => Ok(ms),
        _ => Err(format!("{s:?} must be a positive duration")),
    }
}

/// The `[from, to)` of a range query: `to` defaults to now (inclusive of this millisecond),
/// `from` to `default_ms` before `to`; 400 naming the parameter when one is unreadable, and
/// when `from` is not before `to`.
pub fn parse_range(
    from: Option<&str>,
    to: Option<&str>,
    default_ms: i64,
) -> Result<(Timestamp, Timestamp), crate::error::ApiError> {
    use crate::error::ApiError;
    let to = match to {
        Some(t) => parse_time(t).map_err(|e| ApiError::bad_request(format!("to: {e}")))?,
        None => Timestamp::now().add_millis(1),
    };
    let from = match from {
        Some(t) => parse_time(t).map_err(|e| ApiError::bad_request(format!("from: {e}")))?,
        None => to.add_millis(-default_ms),
    };
    if from >= to {
        return Err(ApiError::bad_request("from must be earlier than to"));
    }
    Ok((from, to))
}

/// The `bucket` of a range query, when given: 400 naming it when unreadable.
pub fn parse_bucket(bucket: Option<&str>) -> Result<Option<i64>, crate::error::ApiError> {
    bucket
        .map(|b| {
            parse_duration_ms(b)
                .map_err(|e| crate::error::ApiError::bad_request(format!("bucket: {e}")))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(
            parse_time("1700000000000").map(Timestamp::as_millis),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            parse_time("2023-11-14T22:13:20.5Z").map(Timestamp::as_millis),
            Ok(1_700_000_000_500)
        );
        assert_eq!(
            parse_time("2023-11-14T23:13:20+01:00").map(Timestamp::as_millis),
            Ok(1_700_000_000_000)
        );
        assert!(parse_time("yesterday").is_err());
        // The codec's rule: before 1970 too, sub-milliseconds round towards the past.
        assert_eq!(
            parse_time("1969-12-31T23:59:59.9995Z").map(Timestamp::as_millis),
            Ok(-1)
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("250"), Ok(250));
        assert_eq!(parse_duration_ms("10s"), Ok(10_000));
        assert_eq!(parse_duration_ms("5m"), Ok(300_000));
        assert_eq!(parse_duration_ms("1d"), Ok(86_400_000));
        assert!(parse_duration_ms("0s").is_err());
        assert!(parse_duration_ms("5w").is_err());
        assert!(parse_duration_ms("-5s").is_err());
        assert!(parse_duration_ms("99999999999999999d").is_err());
    }
}
