//! Time formats of the JetStream API: RFC 3339 timestamps (as Go's `time.Time` marshals
//! them, nanoseconds with trailing zeros trimmed, UTC `Z`) and Go duration strings
//! (`"1.5s"`, `"250ms"`, `"1h2m"`), both over nanoseconds since the Unix epoch as `i64`.

/// Nanoseconds per second.
pub const NANOS_PER_SEC: i64 = 1_000_000_000;

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    // Howard Hinnant's days_from_civil: days since 1970-01-01 of a proleptic Gregorian date.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Format `ns` since the epoch as Go's RFC3339Nano in UTC (`2026-08-21T12:00:02.5Z`).
/// `0` formats as Go's zero time `0001-01-01T00:00:00Z`, as nats-server shows unset times.
pub fn format_rfc3339(ns: i64) -> String {
    if ns == 0 {
        return "0001-01-01T00:00:00Z".to_string();
    }
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

/// Parse an RFC 3339 timestamp (any fraction length, `Z` or `±hh:mm`) into ns since the
/// epoch. Go's zero time parses as `0`. `None` when malformed or out of `i64` range.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes().all(|c| c.is_ascii_digit()).then(|| t.parse().ok())?
    };
    let (y, mo, d, h, mi, se) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                frac = frac * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..9 {
            frac *= 10;
        }
    }
    let offset = match &s[i..] {
        "Z" | "z" => 0,
        rest if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) && &rest[3..4] == ":" => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    if (y, mo, d) == (1, 1, 1) && h == 0 && mi == 0 && se == 0 && frac == 0 && offset == 0 {
        return Some(0);
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset;
    secs.checked_mul(NANOS_PER_SEC)?.checked_add(frac)
}

/// Parse a Go duration string (`"300ms"`, `"-1.5h"`, `"2h45m"`, units `ns us µs ms s m h`)
/// into nanoseconds, as Go's `time.ParseDuration` (used for `-NAK <duration>` bodies).
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

/// Serde helpers for RFC 3339 timestamps stored as `i64` nanoseconds.
pub mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize as an RFC 3339 string.
    pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_rfc3339(*v))
    }

    /// Deserialize from an RFC 3339 string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_rfc3339(&s).ok_or_else(|| serde::de::Error::custom(format!("parsing time {s:?} as RFC3339")))
    }
}

/// Serde helpers for optional RFC 3339 timestamps stored as `Option<i64>` nanoseconds.
pub mod opt_rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize as an RFC 3339 string (callers skip `None`).
    pub fn serialize<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(ns) => s.serialize_str(&super::format_rfc3339(*ns)),
            None => s.serialize_none(),
        }
    }

    /// Deserialize from an RFC 3339 string or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        let v: Option<String> = Option::deserialize(d)?;
        match v {
            None => Ok(None),
            Some(s) => super::parse_rfc3339(&s)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("parsing time {s:?} as RFC3339"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_and_trims_zeros() {
        let ns = parse_rfc3339("2026-08-21T12:00:02.5Z").unwrap();
        assert_eq!(format_rfc3339(ns), "2026-08-21T12:00:02.5Z");
        let ns = parse_rfc3339("2026-11-23T07:08:41.11854663Z").unwrap();
        assert_eq!(ns, 1_795_417_721_118_546_630);
        assert_eq!(format_rfc3339(ns), "2026-11-23T07:08:41.11854663Z");
        assert_eq!(parse_rfc3339("2026-11-23T08:08:41.11854663+01:00"), Some(ns));
        assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z"), Some(0));
        assert_eq!(format_rfc3339(0), "0001-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01Z"), Some(NANOS_PER_SEC));
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
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
}
