//! Time formats of the JetStream API, the one home for both streams and consumers:
//! times as Go's `time.Time` marshals them in JSON (RFC 3339 in UTC with up to nine
//! fractional digits, trailing zeros dropped, `time.RFC3339Nano`; Go's zero time
//! `0001-01-01T00:00:00Z` for "never") and Go duration strings (`"1.5s"`, `"250ms"`,
//! `"1h2m"`). Weir keeps times as `i64` nanoseconds since the Unix epoch.
//!
//! Two conventions for "never" exist on the wire and both are kept byte-exact: the
//! stream code uses `Option<i64>` with `None` as the zero time ([`serde_opt_time`]);
//! the consumer code uses `0` as the zero time ([`serde_time_or_zero`],
//! [`serde_opt_time_or_zero`]).

/// Go's zero `time.Time` as it appears in JSON (e.g. `first_ts` of an empty stream).
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Nanoseconds per second.
pub const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

/// Format nanoseconds since the Unix epoch as Go's `time.RFC3339Nano` in UTC, e.g.
/// `2026-08-21T12:00:01.1Z` (no fraction when it is zero).
pub fn format_rfc3339_nano(ns: i64) -> String {
    let secs = ns.div_euclid(NANOS_PER_SEC);
    let frac = ns.rem_euclid(NANOS_PER_SEC);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let mut s = format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}", sod / 3600, sod / 60 % 60, sod % 60);
    if frac != 0 {
        let digits = format!("{frac:09}");
        s.push('.');
        s.push_str(digits.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

fn num(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

/// Parse an RFC 3339 time (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, as Go's
/// `time.Time` unmarshals) into nanoseconds since the Unix epoch. Go's zero time (in any
/// spelling of that instant) gives `Ok(None)`. Fraction digits past the ninth are
/// dropped, as Go does. A time outside the `i64` nanosecond range (years ~1678..2262) or
/// a malformed string gives `Err` with a reason.
pub fn parse_rfc3339(s: &str) -> Result<Option<i64>, String> {
    let bad = || format!("invalid RFC 3339 time {s:?}");
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    let (y, mo, d) = (num(&s[0..4]).ok_or_else(bad)?, num(&s[5..7]).ok_or_else(bad)?, num(&s[8..10]).ok_or_else(bad)?);
    let (h, mi, se) =
        (num(&s[11..13]).ok_or_else(bad)?, num(&s[14..16]).ok_or_else(bad)?, num(&s[17..19]).ok_or_else(bad)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return Err(bad());
    }
    let mut rest = &s[19..];
    let mut frac_ns = 0i64;
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return Err(bad());
        }
        let kept = n.min(9);
        frac_ns = num(&r[..kept]).ok_or_else(bad)? * 10i64.pow(9 - kept as u32);
        rest = &r[n..];
    }
    let offset_s = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && matches!(rest.as_bytes()[0], b'+' | b'-') && rest.as_bytes()[3] == b':' => {
            let v = num(&rest[1..3]).ok_or_else(bad)? * 3600 + num(&rest[4..6]).ok_or_else(bad)? * 60;
            if rest.starts_with('-') { -v } else { v }
        }
        _ => return Err(bad()),
    };
    let secs = days_from_civil(y, mo as u32, d as u32) * 86_400 + h * 3600 + mi * 60 + se - offset_s;
    if secs == ZERO_TIME_SECS && frac_ns == 0 {
        return Ok(None);
    }
    secs.checked_mul(NANOS_PER_SEC)
        .and_then(|n| n.checked_add(frac_ns))
        .map(Some)
        .ok_or_else(|| format!("time {s:?} is out of range"))
}

/// Seconds from the Unix epoch back to Go's zero time, 0001-01-01T00:00:00Z.
const ZERO_TIME_SECS: i64 = -62_135_596_800;

/// Format `ns` where `0` stands for Go's zero time (the consumer convention): `0` gives
/// [`ZERO_TIME`], anything else [`format_rfc3339_nano`].
pub fn format_rfc3339_or_zero(ns: i64) -> String {
    if ns == 0 { ZERO_TIME.to_string() } else { format_rfc3339_nano(ns) }
}

/// Parse with [`parse_rfc3339`] where `0` stands for Go's zero time (the consumer
/// convention): the zero time gives `Ok(0)`.
pub fn parse_rfc3339_or_zero(s: &str) -> Result<i64, String> {
    parse_rfc3339(s).map(|v| v.unwrap_or(0))
}

/// Parse a Go duration string (`"300ms"`, `"-1.5h"`, `"2h45m"`, units `ns us µs ms s m h`)
/// into nanoseconds, as Go's `time.ParseDuration` (used for `-NAK <duration>` bodies).
/// `None` when malformed or out of `i64` range.
pub fn parse_go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let n = rest.bytes().take_while(|c| c.is_ascii_digit() || *c == b'.').count();
        if n == 0 {
            return None;
        }
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[u..];
        total += value * unit;
    }
    if total > i64::MAX as f64 {
        return None;
    }
    let ns = total.round() as i64;
    Some(if neg { -ns } else { ns })
}

/// Format nanoseconds as Go's `time.Duration.String()` (`"5s"`, `"1m30s"`, `"1.5s"`,
/// `"250ms"`, `"0s"`), as nats-server prints durations in its error texts.
pub fn format_go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let frac = |v: u64, unit: u64| -> String {
        let whole = v / unit;
        let rest = v % unit;
        if rest == 0 {
            whole.to_string()
        } else {
            let width = unit.ilog10() as usize;
            let digits = format!("{rest:0width$}");
            format!("{whole}.{}", digits.trim_end_matches('0'))
        }
    };
    let body = if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        format!("{}µs", frac(u, 1_000))
    } else if u < 1_000_000_000 {
        format!("{}ms", frac(u, 1_000_000))
    } else {
        let secs_ns = u % 60_000_000_000;
        let mins = u / 60_000_000_000;
        let (h, m) = (mins / 60, mins % 60);
        let mut s = String::new();
        if h > 0 {
            s.push_str(&format!("{h}h"));
        }
        if h > 0 || m > 0 {
            s.push_str(&format!("{m}m"));
        }
        s.push_str(&format!("{}s", frac(secs_ns, 1_000_000_000)));
        s
    };
    if neg { format!("-{body}") } else { body }
}

/// `#[serde(with = "serde_time")]` for an `i64` of nanoseconds written as RFC 3339.
pub mod serde_time {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Serialise as [`super::format_rfc3339_nano`].
    pub fn serialize<S: Serializer>(ns: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_rfc3339_nano(*ns))
    }

    /// Deserialise with [`super::parse_rfc3339`]; Go's zero time reads as 0.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_rfc3339(&s).map(|v| v.unwrap_or(0)).map_err(D::Error::custom)
    }
}

/// `#[serde(with = "serde_opt_time")]` for an `Option<i64>` of nanoseconds where `None`
/// is Go's zero time (`0001-01-01T00:00:00Z`, never `null`), as `first_ts` is written.
pub mod serde_opt_time {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Serialise `Some` as RFC 3339, `None` as [`super::ZERO_TIME`].
    pub fn serialize<S: Serializer>(ns: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match ns {
            Some(ns) => s.serialize_str(&super::format_rfc3339_nano(*ns)),
            None => s.serialize_str(super::ZERO_TIME),
        }
    }

    /// Deserialise RFC 3339; Go's zero time and `null` read as `None`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => super::parse_rfc3339(&s).map_err(D::Error::custom),
        }
    }
}

/// `#[serde(with = "serde_time_or_zero")]` for an `i64` of nanoseconds where `0` is
/// Go's zero time both ways (the consumer's `created` and `ts`).
pub mod serde_time_or_zero {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Serialise as [`super::format_rfc3339_or_zero`].
    pub fn serialize<S: Serializer>(ns: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_rfc3339_or_zero(*ns))
    }

    /// Deserialise with [`super::parse_rfc3339_or_zero`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_rfc3339_or_zero(&s).map_err(D::Error::custom)
    }
}

/// `#[serde(with = "serde_opt_time_or_zero", skip_serializing_if = "Option::is_none")]`
/// for an `Option<i64>` of nanoseconds that nats-server omits when unset (a `*time.Time`
/// with `omitempty`: `opt_start_time`, `pause_until`, `last_active`). `Some(0)` is a set
/// zero time and round-trips as `0001-01-01T00:00:00Z`; `None` writes `null` (callers
/// skip it) and reads from `null`.
pub mod serde_opt_time_or_zero {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Serialise `Some` as [`super::format_rfc3339_or_zero`], `None` as `null`.
    pub fn serialize<S: Serializer>(ns: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match ns {
            Some(ns) => s.serialize_str(&super::format_rfc3339_or_zero(*ns)),
            None => s.serialize_none(),
        }
    }

    /// Deserialise with [`super::parse_rfc3339_or_zero`]; `null` reads as `None`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => super::parse_rfc3339_or_zero(&s).map(Some).map_err(D::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_like_go() {
        assert_eq!(format_rfc3339_nano(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339_nano(1_787_313_600_123_456_789), "2026-08-21T12:00:00.123456789Z");
        assert_eq!(format_rfc3339_nano(1_787_313_601_100_000_000), "2026-08-21T12:00:01.1Z");
        assert_eq!(format_rfc3339_nano(-1), "1969-12-31T23:59:59.999999999Z");
        assert_eq!(format_rfc3339_nano(951_782_400 * 1_000_000_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn parses_offsets_and_rejects_garbage() {
        assert_eq!(parse_rfc3339("2026-08-21T14:00:00.5+02:00"), Ok(Some(1_787_313_600_500_000_000)));
        assert_eq!(parse_rfc3339(ZERO_TIME), Ok(None));
        assert!(parse_rfc3339("2026-08-21 14:00:00Z").is_err());
        assert!(parse_rfc3339("2026-13-21T14:00:00Z").is_err());
        assert_eq!(parse_rfc3339("2026-08-21T14:00:00.1234567891Z"), Ok(Some(1_787_320_800_123_456_789)));
        assert_eq!(parse_rfc3339("0001-01-01T01:00:00+01:00"), Ok(None), "the zero instant in any spelling");
        assert!(parse_rfc3339("2026-08-21T14:00:00.Z").is_err());
        assert!(parse_rfc3339("3000-01-01T00:00:00Z").is_err());
    }

    #[test]
    fn zero_convention_of_the_consumer() {
        let ns = parse_rfc3339_or_zero("2026-11-23T07:08:41.11854663Z").unwrap();
        assert_eq!(ns, 1_795_417_721_118_546_630);
        assert_eq!(format_rfc3339_or_zero(ns), "2026-11-23T07:08:41.11854663Z");
        assert_eq!(parse_rfc3339_or_zero("2026-11-23T08:08:41.11854663+01:00"), Ok(ns));
        assert_eq!(parse_rfc3339_or_zero(ZERO_TIME), Ok(0));
        assert_eq!(format_rfc3339_or_zero(0), ZERO_TIME);
        assert_eq!(parse_rfc3339_or_zero("1970-01-01T00:00:01Z"), Ok(NANOS_PER_SEC));
        assert!(parse_rfc3339_or_zero("2026-13-01T00:00:00Z").is_err());
        assert!(parse_rfc3339_or_zero("yesterday").is_err());
    }

    #[test]
    fn serde_modules_keep_their_wire_shapes() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct T {
            #[serde(with = "serde_time")]
            a: i64,
            #[serde(with = "serde_opt_time")]
            b: Option<i64>,
            #[serde(with = "serde_time_or_zero")]
            c: i64,
            #[serde(default, with = "serde_opt_time_or_zero", skip_serializing_if = "Option::is_none")]
            d: Option<i64>,
        }
        let zero = T { a: 0, b: None, c: 0, d: None };
        let json = r#"{"a":"1970-01-01T00:00:00Z","b":"0001-01-01T00:00:00Z","c":"0001-01-01T00:00:00Z"}"#;
        assert_eq!(serde_json::to_string(&zero).unwrap(), json);
        assert_eq!(serde_json::from_str::<T>(json).unwrap(), zero);
        let set = T { a: 1, b: Some(1), c: 1, d: Some(0) };
        let json = concat!(
            r#"{"a":"1970-01-01T00:00:00.000000001Z","b":"1970-01-01T00:00:00.000000001Z","#,
            r#""c":"1970-01-01T00:00:00.000000001Z","d":"0001-01-01T00:00:00Z"}"#
        );
        assert_eq!(serde_json::to_string(&set).unwrap(), json);
        assert_eq!(serde_json::from_str::<T>(json).unwrap(), set);
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("5s"), Some(5 * NANOS_PER_SEC));
        assert_eq!(parse_go_duration("1m30s"), Some(90 * NANOS_PER_SEC));
        assert_eq!(parse_go_duration("250ms"), Some(250_000_000));
        assert_eq!(parse_go_duration("1.5h"), Some(5400 * NANOS_PER_SEC));
        assert_eq!(parse_go_duration("-2us"), Some(-2000));
        assert_eq!(parse_go_duration("0"), Some(0));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration("5x"), None);
        assert_eq!(parse_go_duration(""), None);
        assert_eq!(format_go_duration(5 * NANOS_PER_SEC), "5s");
        assert_eq!(format_go_duration(90 * NANOS_PER_SEC), "1m30s");
        assert_eq!(format_go_duration(3_600_500_000_000), "1h0m0.5s");
        assert_eq!(format_go_duration(250_000_000), "250ms");
        assert_eq!(format_go_duration(1_500), "1.5µs");
        assert_eq!(format_go_duration(0), "0s");
    }

    proptest! {
        #[test]
        fn round_trips(ns in any::<i64>()) {
            prop_assert_eq!(parse_rfc3339(&format_rfc3339_nano(ns)), Ok(Some(ns)));
        }
    }
}
