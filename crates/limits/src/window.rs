//! Budget windows aligned to the UTC calendar (as agentgateway aligns its budgets): the
//! current hour, day or month, named by a number that changes when the window does.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

/// A budget's period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Window {
    /// The current UTC hour.
    Hour,
    /// The current UTC day.
    Day,
    /// The current UTC calendar month.
    Month,
}

impl Window {
    /// The window holding `now`: its number and how long until it ends.
    pub fn at(self, now: SystemTime) -> (u64, Duration) {
        let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        match self {
            Window::Hour => (secs / 3600, Duration::from_secs(3600 - secs % 3600)),
            Window::Day => (secs / 86_400, Duration::from_secs(86_400 - secs % 86_400)),
            Window::Month => {
                let days = secs / 86_400;
                let (y, m, _) = civil_from_days(days as i64);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                let next = days_from_civil(ny, nm, 1) as u64 * 86_400;
                ((y as u64) * 12 + u64::from(m) - 1, Duration::from_secs(next.saturating_sub(secs)))
            }
        }
    }
}

use tollgate_core::telemetry::access_log::civil_from_days;

/// The day number of a civil date (inverse of `civil_from_days`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_align_to_the_utc_calendar() {
        // 2026-02-28T23:30:00Z
        let t = UNIX_EPOCH + Duration::from_secs(1_772_321_400);
        assert_eq!(civil_from_days(1_772_321_400 / 86_400), (2026, 2, 28));
        assert_eq!(Window::Hour.at(t).1, Duration::from_secs(1800));
        assert_eq!(Window::Day.at(t).1, Duration::from_secs(1800));
        assert_eq!(Window::Month.at(t).1, Duration::from_secs(1800), "February 2026 has 28 days");
        let (march, _) = Window::Month.at(t + Duration::from_secs(1800));
        assert_eq!(march, Window::Month.at(t).0 + 1);
        assert_eq!(days_from_civil(2024, 3, 1) - days_from_civil(2024, 2, 1), 29);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
    }
}
