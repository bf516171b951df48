//! The replica timeout ([`AnswerClock`], `replica_timeout_ms`): how long a client may wait for
//! the replicas' answer.
//!
//! A connection waits for an answer from the moment the client sends bytes while none is
//! awaited, until the voter releases an output byte to the client (a quorum answered). If no
//! byte is released within the timeout, no quorum of replicas answered in time: the connection
//! is reset on both sides and nobody is blamed, since fewer than a quorum answering does not show
//! which replicas are wrong. (A replica that falls behind a quorum that did answer is cut off by
//! the straggler timeout, `straggler_timeout_ms`, and blamed.)

use std::time::{Duration, Instant};

/// When a connection started waiting for the replicas' answer.
#[derive(Debug)]
pub(super) struct AnswerClock {
    /// The timeout; `None`: never.
    timeout: Option<Duration>,
    /// Client bytes in and bytes released when last observed.
    seen: (u64, u64),
    /// Since when an answer is awaited (client bytes came after the last release).
    waiting_since: Option<Instant>,
}

impl AnswerClock {
    /// Nothing awaited yet; a `timeout` of `None` never expires.
    pub fn new(timeout: Option<Duration>) -> AnswerClock {
        AnswerClock {
            timeout,
            seen: (0, 0),
            waiting_since: None,
        }
    }

    /// Notes the connection's counters now: client bytes accepted and bytes released to it.
    pub fn observe(&mut self, client_in: u64, released: u64, now: Instant) {
        let (old_in, old_released) = self.seen;
        self.seen = (client_in, released);
        if released > old_released {
            // A quorum answered: new client bytes in the same round start a new wait.
            self.waiting_since = (client_in > old_in).then_some(now);
        } else if client_in > old_in && self.waiting_since.is_none() {
            self.waiting_since = Some(now);
        }
    }

    /// When the wait expires, if an answer is awaited and there is a timeout.
    pub fn deadline(&self) -> Option<Instant> {
        Some(self.waiting_since? + self.timeout?)
    }

    /// True once the answer has been awaited for the whole timeout.
    pub fn expired(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| now >= d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64, t0: Instant) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn without_a_timeout_nothing_expires() {
        let t0 = Instant::now();
        let mut c = AnswerClock::new(None);
        c.observe(10, 0, t0);
        assert_eq!(c.deadline(), None);
        assert!(!c.expired(at(1_000_000, t0)));
    }

    #[test]
    fn a_request_without_an_answer_expires_from_its_first_byte() {
        let t0 = Instant::now();
        let mut c = AnswerClock::new(Some(Duration::from_millis(500)));
        c.observe(0, 0, t0);
        assert_eq!(c.deadline(), None, "nothing sent: nothing awaited");
        c.observe(5, 0, at(100, t0));
        // More client bytes while waiting do not restart the wait.
        c.observe(9, 0, at(300, t0));
        assert_eq!(c.deadline(), Some(at(600, t0)));
        assert!(!c.expired(at(599, t0)));
        assert!(c.expired(at(600, t0)));
    }

    #[test]
    fn an_answer_ends_the_wait_and_the_next_request_starts_another() {
        let t0 = Instant::now();
        let mut c = AnswerClock::new(Some(Duration::from_millis(500)));
        c.observe(5, 0, at(100, t0));
        c.observe(5, 7, at(400, t0));
        assert_eq!(c.deadline(), None);
        assert!(!c.expired(at(10_000, t0)));
        // An answer streaming out keeps it off; output the client did not ask for too.
        c.observe(5, 70, at(2_000, t0));
        assert_eq!(c.deadline(), None);
        c.observe(8, 70, at(3_000, t0));
        assert_eq!(c.deadline(), Some(at(3_500, t0)));
        // An answer and a new request seen in the same round: the new one is awaited.
        c.observe(12, 80, at(3_200, t0));
        assert_eq!(c.deadline(), Some(at(3_700, t0)));
    }
}
