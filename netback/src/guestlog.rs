//! Rate-limited logging of guest-caused errors: a guest that sends bad packets on purpose must not
//! flood the NV domain's console (Linux netback uses `net_ratelimit()` for the same reason).
//!
//! [`GuestErrorLog`] lets through one line per vif per [`GUEST_LOG_INTERVAL`]; the errors it held
//! back are counted and reported with the next line. It decides, the caller writes the line; time
//! is a parameter.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// At most one line per vif per this interval.
pub const GUEST_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The guest-caused errors of one vif, as log lines of at most one per interval.
#[derive(Debug, Default)]
pub struct GuestErrorLog {
    last_line: Option<Instant>,
    held_back: u64,
}

impl GuestErrorLog {
    /// A log that lets its first line through at once.
    pub fn new() -> Self {
        Self::default()
    }

    fn due(&self, now: Instant) -> bool {
        self.last_line
            .is_none_or(|t| now.saturating_duration_since(t) >= GUEST_LOG_INTERVAL)
    }

    /// Records one error of vif `name`; returns the line to log, or `None` if the interval's line
    /// was already written (the error is counted for the next one).
    pub fn error(&mut self, now: Instant, name: &str, what: impl Display) -> Option<String> {
        if !self.due(now) {
            self.held_back += 1;
            return None;
        }
        let line = match std::mem::take(&mut self.held_back) {
            0 => format!("{name}: {what}"),
            n => format!("{name}: {what} (and {n} more guest errors since the last line)"),
        };
        self.last_line = Some(now);
        Some(line)
    }

    /// Records one error and writes its line (`log::warn!`) if one is due.
    pub fn warn(&mut self, now: Instant, name: &str, what: impl Display) {
        if let Some(line) = self.error(now, name, what) {
            log::warn!("{line}");
        }
    }

    /// Once the interval has passed: the line reporting errors held back since the last line,
    /// if there were any (so that a burst's count is not lost when the errors stop).
    pub fn tick(&mut self, now: Instant, name: &str) -> Option<String> {
        if self.held_back == 0 || !self.due(now) {
            return None;
        }
        let n = std::mem::take(&mut self.held_back);
        self.last_line = Some(now);
        Some(format!("{name}: {n} more guest errors since the last line"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_of_the_rest() {
        let t0 = Instant::now();
        let mut log = GuestErrorLog::new();
        let lines: Vec<String> = (0..1000)
            .filter_map(|i| log.error(t0 + Duration::from_millis(i), "vif1.0", "bad packet"))
            .collect();
        assert_eq!(lines, vec!["vif1.0: bad packet".to_string()]);
        assert_eq!(log.tick(t0 + Duration::from_secs(5), "vif1.0"), None);
        let t1 = t0 + GUEST_LOG_INTERVAL;
        assert_eq!(
            log.error(t1, "vif1.0", "bad packet").as_deref(),
            Some("vif1.0: bad packet (and 999 more guest errors since the last line)")
        );
        // A burst that stops is still counted, by the tick after the interval.
        log.error(t1 + Duration::from_secs(1), "vif1.0", "x");
        assert_eq!(log.tick(t1 + Duration::from_secs(2), "vif1.0"), None);
        assert_eq!(
            log.tick(t1 + GUEST_LOG_INTERVAL, "vif1.0").as_deref(),
            Some("vif1.0: 1 more guest errors since the last line")
        );
        assert_eq!(log.tick(t1 + 3 * GUEST_LOG_INTERVAL, "vif1.0"), None);
    }
}
