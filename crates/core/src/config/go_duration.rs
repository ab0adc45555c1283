//! Go's `time.ParseDuration` grammar (`1h30m`, `250ms`, `1.5s`, `300µs`), the form
//! agentgateway's config writes durations in.
//!
//! Written here because the `go-parse-duration` crate panics on input the config loader
//! must refuse cleanly: it indexes characters by byte offset (`1µs` panics) and adds
//! without overflow checks. This port works on bytes, as Go does, with checked arithmetic.

/// Largest magnitude Go accepts (a negative duration may reach 1<<63 exactly).
const LIMIT: u64 = 1 << 63;

/// Parses a Go duration into signed nanoseconds; `Err` explains what is wrong.
pub fn parse_nanos(text: &str) -> Result<i128, &'static str> {
    let mut s = text.as_bytes();
    let mut negative = false;
    if let Some((&sign, rest)) = s.split_first() {
        if sign == b'-' || sign == b'+' {
            negative = sign == b'-';
            s = rest;
        }
    }
    if s == b"0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err("empty");
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err("expected a number");
        }
        let (whole, rest) = leading_int(s)?;
        let pre = rest.len() != s.len();
        s = rest;
        let (mut fraction, mut scale, mut post) = (0u64, 1f64, false);
        if let Some(rest) = s.strip_prefix(b".") {
            let (f, sc, after) = leading_fraction(rest);
            post = after.len() != rest.len();
            (fraction, scale, s) = (f, sc, after);
        }
        if !pre && !post {
            return Err("a number needs digits");
        }
        let unit_len = s.iter().position(|&b| b == b'.' || b.is_ascii_digit()).unwrap_or(s.len());
        if unit_len == 0 {
            return Err("missing unit");
        }
        let unit = unit_nanos(&s[..unit_len]).ok_or("unknown unit")?;
        s = &s[unit_len..];
        if whole > LIMIT / unit {
            return Err("overflow");
        }
        let mut value = whole * unit;
        if fraction > 0 {
            // f64 keeps nanosecond accuracy for fractions of hours, as in Go.
            value = value.checked_add((fraction as f64 * (unit as f64 / scale)) as u64).ok_or("overflow")?;
            if value > LIMIT {
                return Err("overflow");
            }
        }
        total = total.checked_add(value).filter(|t| *t <= LIMIT).ok_or("overflow")?;
    }
    if !negative && total == LIMIT {
        return Err("overflow");
    }
    Ok(if negative { -(total as i128) } else { total as i128 })
}

fn unit_nanos(unit: &[u8]) -> Option<u64> {
    Some(match unit {
        b"ns" => 1,
        b"us" => 1_000,
        // U+00B5 micro sign and U+03BC Greek small letter mu, both as UTF-8.
        b"\xc2\xb5s" | b"\xce\xbcs" => 1_000,
        b"ms" => 1_000_000,
        b"s" => 1_000_000_000,
        b"m" => 60_000_000_000,
        b"h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Consumes leading ASCII digits; errors when the number exceeds Go's limit.
fn leading_int(s: &[u8]) -> Result<(u64, &[u8]), &'static str> {
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    let mut x: u64 = 0;
    for &b in &s[..digits] {
        if x > LIMIT / 10 {
            return Err("overflow");
        }
        x = x * 10 + u64::from(b - b'0');
        if x > LIMIT {
            return Err("overflow");
        }
    }
    Ok((x, &s[digits..]))
}

/// Consumes leading digits after a decimal point; past `u64` precision the digits are
/// consumed without adding precision (Go does the same).
fn leading_fraction(s: &[u8]) -> (u64, f64, &[u8]) {
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    let (mut x, mut scale, mut overflow) = (0u64, 1f64, false);
    for &b in &s[..digits] {
        if overflow {
            continue;
        }
        if x > (LIMIT - 1) / 10 {
            overflow = true;
            continue;
        }
        let y = x * 10 + u64::from(b - b'0');
        if y > LIMIT {
            overflow = true;
            continue;
        }
        x = y;
        scale *= 10.0;
    }
    (x, scale, &s[digits..])
}

#[cfg(test)]
mod tests {
    use super::parse_nanos;

    #[test]
    fn accepts_go_forms() {
        let cases: &[(&str, i128)] = &[
            ("0", 0),
            ("-0", 0),
            ("10s", 10_000_000_000),
            ("1m30s", 90_000_000_000),
            ("250ms", 250_000_000),
            ("1.5s", 1_500_000_000),
            (".5s", 500_000_000),
            ("5.s", 5_000_000_000),
            ("300µs", 300_000),
            ("300μs", 300_000),
            ("7us", 7_000),
            ("1h", 3_600_000_000_000),
            ("-2m", -120_000_000_000),
            ("+3ns", 3),
            ("1.0000000000000000000000001s", 1_000_000_000),
            ("9223372036854775807ns", i64::MAX as i128),
            ("-9223372036854775808ns", i64::MIN as i128),
        ];
        for (text, want) in cases {
            assert_eq!(parse_nanos(text), Ok(*want), "{text}");
        }
    }

    #[test]
    fn refuses_without_panicking() {
        for text in [
            "", "-", "s", ".s", "1", "1x", "1µ", "1µx", "1é", "é", "1sé", "10", "1..5s",
            "9223372036854775808ns", "99999999999999999999h", "2562048h", "2562047h2562047h",
            "5124095576030431h", "1.9999999999999999999999h9223372036854775807ns",
        ] {
            assert!(parse_nanos(text).is_err(), "{text:?} should be refused");
        }
    }
}
