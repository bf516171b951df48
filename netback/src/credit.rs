//! Credit-based rate limiting of a vif's guest TX, from the toolstack's `rate` key (what xl's
//! `vif = ['rate=10Mb/s']` writes), with the semantics of Linux netback (`xen_net_read_rate`,
//! `tx_add_credit`, `tx_credit_exceeded`).
//!
//! A vif may send `bytes` per `interval`; unused credit accumulates up to one interval's worth
//! but at least 128 KiB (so a 64 KiB packet can always go). A packet larger than the credit left
//! waits, and with it every packet behind it, until the next interval. Time is a parameter.

use std::time::{Duration, Instant};

/// The least a vif may accumulate: a burst big enough for a 128 KiB jumbo packet (Linux's).
pub const MIN_BURST: u64 = 128 * 1024;

/// Parses a `rate` value, `"<bytes>,<usec>"` (decimal; bytes per interval, interval in
/// microseconds), as Linux's `xen_net_read_rate` does; `None` if malformed (traffic unlimited).
pub fn parse_rate(s: &str) -> Option<(u64, Duration)> {
    let (b, u) = s.trim_end_matches('\0').split_once(',')?;
    let num = |t: &str| -> Option<u64> {
        if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    Some((num(b)?, Duration::from_micros(num(u)?)))
}

/// The TX credit of one vif.
#[derive(Clone, Debug)]
pub struct Credit {
    /// Bytes granted per interval (`u64::MAX`: unlimited).
    bytes: u64,
    interval: Duration,
    remaining: u64,
    window_start: Instant,
    /// Set while limited: when credit is added again (Linux's `credit_timeout` timer).
    refill_at: Option<Instant>,
}

impl Credit {
    /// No limit (no `rate` key).
    pub fn unlimited(now: Instant) -> Self {
        Self::new(u64::MAX, Duration::ZERO, now)
    }

    /// `bytes` per `interval`, starting with one interval's credit.
    pub fn new(bytes: u64, interval: Duration, now: Instant) -> Self {
        Credit {
            bytes,
            interval,
            remaining: bytes,
            window_start: now,
            refill_at: None,
        }
    }

    /// Whether a packet of `size` bytes may be sent now; if so, it is charged.
    pub fn take(&mut self, size: u64, now: Instant) -> bool {
        if size > self.remaining && self.exceeded(size, now) {
            return false;
        }
        self.remaining -= size;
        true
    }

    /// While limited: when credit comes back (poll the vif again then).
    pub fn refill_at(&self) -> Option<Instant> {
        self.refill_at
    }

    fn add_credit(&mut self) {
        let max_burst = self.bytes.max(MIN_BURST);
        self.remaining = self.remaining.saturating_add(self.bytes).min(max_burst);
    }

    /// Linux's `tx_credit_exceeded`: refills at the end of a window; true if `size` still does
    /// not fit (the window then ends at the refill time).
    fn exceeded(&mut self, size: u64, now: Instant) -> bool {
        if let Some(t) = self.refill_at {
            if now < t {
                return true;
            }
            self.refill_at = None;
            self.add_credit();
        }
        let next = self.window_start + self.interval;
        if now >= next {
            self.window_start = now;
            self.add_credit();
        }
        if size > self.remaining {
            self.refill_at = Some(next);
            self.window_start = next;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_parsed_like_linux() {
        assert_eq!(
            parse_rate("1250000,50000"),
            Some((1_250_000, Duration::from_millis(50)))
        );
        for bad in [
            "", "1000", "1000,", ",50", "10 00,5", "-1,5", "1,5,6", "1,5x",
        ] {
            assert_eq!(parse_rate(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn unlimited_never_limits() {
        let t = Instant::now();
        let mut c = Credit::unlimited(t);
        assert!((0..10_000).all(|_| c.take(65535, t)));
        assert_eq!(c.refill_at(), None);
    }

    /// 200 KB per 100 ms: one interval's worth goes at once, the next packet waits for the
    /// window's end, and over a second about ten intervals' worth gets through.
    #[test]
    fn bytes_per_interval_with_linux_semantics() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut c = Credit::new(200_000, ms(100), t0);
        let sent = (0..1000).take_while(|_| c.take(1500, t0)).count();
        assert_eq!(sent, 200_000 / 1500);
        assert_eq!(c.refill_at(), Some(t0 + ms(100)));
        assert!(!c.take(1500, t0 + ms(99)), "limited until the refill");
        assert!(c.take(1500, t0 + ms(100)));
        // Over a second, sending as fast as allowed.
        let mut bytes = 0u64;
        let mut t = t0 + ms(100);
        while t < t0 + ms(1100) {
            while c.take(1500, t) {
                bytes += 1500;
            }
            t += ms(1);
        }
        assert!((1_900_000..=2_100_000).contains(&bytes), "{bytes}");
    }

    /// A rate below 128 KiB per interval still lets a 64 KiB packet through (credit accumulates
    /// up to the minimum burst), instead of seizing up.
    #[test]
    fn small_rates_accumulate_up_to_the_minimum_burst() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut c = Credit::new(10_000, ms(10), t0);
        let mut t = t0;
        while !c.take(65535, t) {
            t += ms(1);
            assert!(t < t0 + ms(200), "a 64 KiB packet never went");
        }
        assert!(t >= t0 + ms(60));
    }
}
