//! ISO-8601 timestamps with milliseconds (`2025-01-01T00:00:00.000Z`), the
//! form LiveStore's reference server puts in `metadata.createdAt`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, truncated to whole milliseconds (what we store and send).
pub fn now_ms() -> SystemTime {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    UNIX_EPOCH + Duration::from_millis(since.as_millis() as u64)
}

pub fn iso8601_now() -> String {
    iso8601(SystemTime::now())
}

/// Formats a time as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
pub fn iso8601(t: SystemTime) -> String {
    let mut out = String::with_capacity(24);
    push_iso8601(&mut out, t);
    out
}

/// Appends `t` formatted by [`iso8601`]; remembers the last one, since the
/// events of one push share their timestamp (pull pages format thousands).
#[derive(Default)]
pub struct IsoCache {
    last: Option<(SystemTime, String)>,
}

impl IsoCache {
    pub fn push(&mut self, out: &mut String, t: SystemTime) {
        match &self.last {
            Some((lt, text)) if *lt == t => out.push_str(text),
            _ => {
                let text = iso8601(t);
                out.push_str(&text);
                self.last = Some((t, text));
            }
        }
    }
}

fn push_iso8601(out: &mut String, t: SystemTime) {
    let (secs, millis) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_millis()),
        Err(e) => {
            // Before 1970: round towards the past.
            let d = e.duration();
            let ms = d.as_millis() as i64;
            let total = -ms;
            (total.div_euclid(1000), total.rem_euclid(1000) as u32)
        }
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    use std::fmt::Write as _;
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
}

/// Parses `YYYY-MM-DDTHH:MM:SS.mmmZ` (what [`iso8601`] writes).
pub fn parse_iso8601(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 24
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
        || b[23] != b'Z'
    {
        return None;
    }
    // Digits only: `parse` would also take a sign.
    let n = |r: std::ops::Range<usize>| {
        let digits = s.get(r)?;
        digits.bytes().all(|b| b.is_ascii_digit()).then_some(())?;
        digits.parse::<i64>().ok()
    };
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    // Howard Hinnant's `days_from_civil`, the inverse of `civil_from_days`.
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms = (days * 86_400 + n(11..13)? * 3600 + n(14..16)? * 60 + n(17..19)?) * 1000 + n(20..23)?;
    // Negative before 1970 (as `iso8601` writes such times).
    Some(if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    })
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's
/// `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Microseconds since the Unix epoch (negative before it): the precision
/// both storages and the NDJSON export keep. Anything finer is truncated.
pub fn to_micros(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(e) => -(e.duration().as_micros() as i64),
    }
}

/// The inverse of [`to_micros`].
pub fn from_micros(us: i64) -> SystemTime {
    if us >= 0 {
        UNIX_EPOCH + std::time::Duration::from_micros(us as u64)
    } else {
        UNIX_EPOCH - std::time::Duration::from_micros(us.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_607_516_318);
        assert_eq!(iso8601(t), "2026-11-25T11:51:56.318Z");
        // A leap day.
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(iso8601(t), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn parse_inverts_format() {
        for ms in [0u64, 951_782_400_000, 1_795_607_516_318, 4_102_444_799_999] {
            let t = UNIX_EPOCH + Duration::from_millis(ms);
            assert_eq!(parse_iso8601(&iso8601(t)), Some(t));
        }
        assert_eq!(parse_iso8601("2025-01-01 00:00:00.000Z"), None);
    }

    #[test]
    fn parse_inverts_format_before_1970_and_takes_digits_only() {
        // Found by tests/fuzz (json_str_and_time): a time before 1970 parsed
        // as one 584 million years later (a negative count cast to u64).
        let t = UNIX_EPOCH - Duration::from_millis(2);
        assert_eq!(iso8601(t), "1969-12-31T23:59:59.998Z");
        assert_eq!(parse_iso8601("1969-12-31T23:59:59.998Z"), Some(t));
        let first = UNIX_EPOCH - Duration::from_secs(62_135_596_800);
        assert_eq!(parse_iso8601("0001-01-01T00:00:00.000Z"), Some(first));
        // `parse::<i64>` alone would take a sign.
        assert_eq!(parse_iso8601("1970-01-01T00:00:00.-01Z"), None);
        assert_eq!(parse_iso8601("+970-01-01T00:00:00.000Z"), None);
    }

    #[test]
    fn now_ms_has_no_sub_millisecond_part() {
        let d = now_ms().duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(d.subsec_nanos() % 1_000_000, 0);
    }
}
