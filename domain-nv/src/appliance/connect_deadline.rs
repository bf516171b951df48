//! When a replica's handshake is given up ([`ConnectDeadline`]).

use std::time::{Duration, Instant};

/// When a handshake in progress is given up: `connect_timeout_ms` after it started or, if
/// domain-nv fell behind on the replica's link meanwhile (its SYN-ACKs wait in, or are dropped
/// from, the appliance's own queue), `connect_timeout_ms` after it last fell behind plus as
/// long as the handshake had lasted by then. Both ends double their retransmission timeout at
/// each try (smoltcp's SYN and Linux's SYN-ACK: 1 s, 2 s, 4 s ...), so after a long stretch of
/// lag the next try of either may be about as far off as the handshake is old; a deadline of
/// only `connect_timeout_ms` after the lag gave up, at one instant, every handshake the lag had
/// held up (blamed `refused`). A replica that does not answer is still given up once
/// domain-nv keeps up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ConnectDeadline {
    /// When the handshake started (our first SYN).
    started: Instant,
    /// When it is given up.
    at: Instant,
}

impl ConnectDeadline {
    /// A handshake started at `now`, given up `timeout` later.
    pub(super) fn new(now: Instant, timeout: Duration) -> ConnectDeadline {
        ConnectDeadline {
            started: now,
            at: now + timeout,
        }
    }

    /// When the handshake is given up.
    pub(super) fn at(&self) -> Instant {
        self.at
    }

    /// domain-nv fell behind on the replica's link at `now`: the handshake gets `timeout`
    /// from now plus its age (never less than it had).
    pub(super) fn lagged(&mut self, now: Instant, timeout: Duration) {
        let age = now.saturating_duration_since(self.started);
        self.at = self.at.max(now + timeout + age);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(1);

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn without_lag_the_connect_timeout_counts_from_the_start() {
        let t0 = Instant::now();
        assert_eq!(ConnectDeadline::new(t0, T).at(), t0 + T);
    }

    #[test]
    fn after_a_long_lag_the_next_syn_of_the_backed_off_schedule_is_awaited() {
        let t0 = Instant::now();
        let mut d = ConnectDeadline::new(t0, T);
        // Behind on the link for 40 s: every SYN (1, 3, 7, 15, 31 s) and SYN-ACK dropped.
        for n in 0..=40 {
            d.lagged(t0 + s(n), T);
        }
        // The next SYN leaves at 63 s (RTO 32 s after the one at 31 s); answered, it is in time.
        assert!(d.at() > t0 + s(63), "{:?}", d.at() - t0);
        assert_eq!(d.at(), t0 + s(81));
    }

    #[test]
    fn a_short_lag_early_in_the_handshake_adds_little() {
        let t0 = Instant::now();
        let mut d = ConnectDeadline::new(t0, T);
        d.lagged(t0 + Duration::from_millis(300), T);
        // The SYN retransmitted at 1 s still gets its answer in time.
        assert_eq!(d.at(), t0 + Duration::from_millis(1600));
    }

    #[test]
    fn a_replica_that_never_answers_is_given_up_once_the_lag_ends() {
        let t0 = Instant::now();
        let mut d = ConnectDeadline::new(t0, T);
        d.lagged(t0 + s(5), T);
        let given_up = d.at();
        assert_eq!(given_up, t0 + s(11));
        // An earlier report of lag never moves it back.
        d.lagged(t0 + s(2), T);
        assert_eq!(d.at(), given_up);
    }
}
