//! Sizes and durations written as text, with nats-server's units.

use std::time::Duration;

/// The multiplier of a size suffix (case-insensitive), as nats-server's config parser:
/// `k`, `m`, `g`, `t`, `p`, `e` are powers of 1000; with `b`, `i` or `ib` appended
/// (`kb`, `ki`, `kib`, ...) powers of 1024; `b` or nothing is bytes.
pub(super) fn size_multiplier(suffix: &str) -> Option<u64> {
    let s = suffix.to_ascii_lowercase();
    let (letter, rest) = match s.chars().next() {
        None => return Some(1),
        Some(c) => (c, &s[c.len_utf8()..]),
    };
    if letter == 'b' && rest.is_empty() {
        return Some(1);
    }
    let exp = match letter {
        'k' => 1,
        'm' => 2,
        'g' => 3,
        't' => 4,
        'p' => 5,
        'e' => 6,
        _ => return None,
    };
    let base: u64 = match rest {
        "" => 1000,
        "b" | "i" | "ib" => 1024,
        _ => return None,
    };
    base.checked_pow(exp)
}

/// Parse a size such as `1048576`, `512KB`, `64MiB`, `8mb`, `10G` (= 10^10) or `1GB` (= 2^30)
/// into bytes, with nats-server's suffixes (see the module docs of `conf`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let bad = || format!("'{t}' is not a size (e.g. 1048576, 512KB, 64MiB, 1GB)");
    if digits == 0 {
        return Err(bad());
    }
    let n: u64 = t[..digits].parse().map_err(|_| bad())?;
    let mult = size_multiplier(t[digits..].trim()).ok_or_else(bad)?;
    n.checked_mul(mult).ok_or_else(|| format!("size '{t}' is too large"))
}

/// Parse a duration as Go's `time.ParseDuration` does, which nats-server uses for quoted
/// durations: one or more decimal numbers each with a unit (`ns`, `us`, `µs`, `ms`, `s`,
/// `m`, `h`), e.g. `100ms`, `2s`, `1m30s`, `1.5h`. A plain number is whole seconds, as
/// nats-server reads an integer given for a duration. Negative durations are refused.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let bad = || format!("'{t}' is not a duration (e.g. 100ms, 2s, 2m, 1h, 1m30s)");
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Duration::from_secs(t.parse().map_err(|_| bad())?));
    }
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = t;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        if num_end == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let secs = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * secs;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_nats_server_suffixes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("8MB"), Ok(8 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("64mb"), Ok(64 << 20));
        assert_eq!(parse_size("1GB"), Ok(1 << 30));
        assert_eq!(parse_size("10G"), Ok(10_000_000_000));
        assert_eq!(parse_size("2k"), Ok(2000));
        assert_eq!(parse_size("2Ki"), Ok(2048));
        assert_eq!(parse_size("100b"), Ok(100));
        assert!(parse_size("12XB").is_err());
        assert!(parse_size("MB").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999EB").unwrap_err().contains("too large"));
    }

    #[test]
    fn durations_take_go_units_and_plain_seconds() {
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        for bad in ["", "ms", "2 minutes", "-1s", "1d", "s1"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
