//! Times as Go's `time.Time` marshals them in JSON: RFC 3339 in UTC with up to nine
//! fractional digits, trailing zeros dropped (`time.RFC3339Nano`), and Go's zero time
//! `0001-01-01T00:00:00Z` for "never". Weir keeps times as `i64` nanoseconds since
//! the Unix epoch; `None` stands for Go's zero time.

/// Go's zero `time.Time` as it appears in JSON (e.g. `first_ts` of an empty stream).
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

const NS_PER_SEC: i64 = 1_000_000_000;

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
    let secs = ns.div_euclid(NS_PER_SEC);
    let frac = ns.rem_euclid(NS_PER_SEC);
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
/// `time.Time` unmarshals) into nanoseconds since the Unix epoch. Go's zero time gives
/// `Ok(None)`; a time outside the `i64` nanosecond range (years ~1678..2262) or a
/// malformed string gives `Err` with a reason.
pub fn parse_rfc3339(s: &str) -> Result<Option<i64>, String> {
    let bad = || format!("invalid RFC 3339 time {s:?}");
    if s == ZERO_TIME {
        return Ok(None);
    }
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
        if n == 0 || n > 9 {
            return Err(bad());
        }
        frac_ns = num(&r[..n]).ok_or_else(bad)? * 10i64.pow(9 - n as u32);
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
    secs.checked_mul(NS_PER_SEC)
        .and_then(|n| n.checked_add(frac_ns))
        .map(Some)
        .ok_or_else(|| format!("time {s:?} is out of range"))
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
        assert!(parse_rfc3339("2026-08-21T14:00:00.1234567891Z").is_err());
        assert!(parse_rfc3339("3000-01-01T00:00:00Z").is_err());
    }

    proptest! {
        #[test]
        fn round_trips(ns in any::<i64>()) {
            prop_assert_eq!(parse_rfc3339(&format_rfc3339_nano(ns)), Ok(Some(ns)));
        }
    }
}
