//! Durations written as `"90s"`, `"4h"`, `"2d"`, and RFC 3339 UTC time stamps.

use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Why a duration string was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a duration: write a whole number followed by a unit, e.g. \"500ms\", \"90s\", \"30m\", \"4h\", \"2d\""
)]
pub struct InvalidDuration(pub String);

/// Parse `"<n><unit>"` with unit `ms`, `s`, `m`, `h` or `d`.
pub fn parse_duration(s: &str) -> Result<Duration, InvalidDuration> {
    let err = || InvalidDuration(s.to_owned());
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(err());
    }
    let n: u64 = num.parse().map_err(|_| err())?;
    let secs = |mult: u64| n.checked_mul(mult).map(Duration::from_secs).ok_or_else(err);
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        _ => Err(err()),
    }
}

/// Format a time as RFC 3339 in UTC, whole seconds (`2026-11-28T07:57:18Z`).
/// Milliseconds since the Unix epoch as RFC 3339 (UTC), if representable.
pub fn rfc3339_at_ms(ms: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map(rfc3339)
        .ok()
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t);
    // Formatting a valid OffsetDateTime with a year in 0..=9999 cannot fail;
    // fall back to the debug form rather than panic on exotic years.
    t.format(&Rfc3339).unwrap_or_else(|_| format!("{t:?}"))
}

/// Parse an RFC 3339 time stamp.
/// A moment as the province reads it: Beijing time (UTC+8),
/// `2026-12-06 22:27` or, `with_seconds`, `2026-12-06 22:27:19`; empty for
/// a moment out of range.
pub fn beijing(ms: i64, with_seconds: bool) -> String {
    let Ok(t) = OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)) else {
        return String::new();
    };
    let t = t.to_offset(time::macros::offset!(+8));
    let minutes = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    );
    if with_seconds {
        format!("{minutes}:{:02}", t.second())
    } else {
        minutes
    }
}

pub fn parse_rfc3339(s: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(s, &Rfc3339)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("4h"), Ok(Duration::from_secs(4 * 3600)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(2 * 86_400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        for bad in [
            "",
            "h",
            "4",
            "4x",
            "-4h",
            "4 h",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn formats_utc_whole_seconds() {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000)
            .unwrap()
            .replace_nanosecond(123)
            .unwrap();
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20Z");
        assert_eq!(
            parse_rfc3339(&rfc3339(t)).unwrap().unix_timestamp(),
            1_700_000_000
        );
    }
}
