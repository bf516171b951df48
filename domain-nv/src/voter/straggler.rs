//! The straggler clock.
//!
//! The voter records when the leading replicas (q under Majority, the most advanced one
//! otherwise) first produced each output offset, connected, or sent FIN; a replica that has not
//! caught up `straggler_timeout` after that is `Straggler`. A replica far ahead only sees its
//! window drop to 0; it is not blamed for that.
//!
//! Lateness the caller caused does not count: when the caller fell behind reading a replica's
//! link (its own backlog or queue drops, reported through `Voter::replica_delayed`), that
//! replica's bytes may have reached the voter late or must be retransmitted, so its straggler
//! deadline falls no sooner than a full timeout after the caller last fell behind, plus the time
//! the caller had been behind without a break (a [`Delay`]): a replica's retransmissions back
//! off while its frames are dropped, and its retransmission timeout grows with the round trips
//! the caller's lag stretched. If the caller also fell behind while the replica's connection
//! was being set up, the replica's retransmission timeout may be 3 s (see
//! [`LAGGED_HANDSHAKE_RTO`]), and that is its grace instead of a straggler timeout: a FIN (or
//! reply) of a healthy replica dropped from the caller's queue as a connect flood ends comes
//! again only then. A replica that is really slow is still cut off once the caller keeps up.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::replica::Replica;
use super::ReplicaState;

/// How long a replica may take to send again a segment the caller dropped, if the caller
/// fell behind on its link while its connection was being set up: a TCP whose SYN or SYN-ACK
/// had to be sent again starts with a retransmission timeout of 3 s (RFC 6298, 5.7; Linux's
/// `TCP_TIMEOUT_FALLBACK`) and keeps it until it measures a round trip, which a connection
/// that moves no data (a connect flood) never does; one whose handshake was answered late
/// measures that late round trip and waits about three times as long. Its FIN (or a reply)
/// lost in the caller's queue comes again only then.
const LAGGED_HANDSHAKE_RTO: Duration = Duration::from_secs(3);

/// The lead first produced output up to `offset` at time `at`.
#[derive(Debug, Clone, Copy)]
struct Milestone {
    offset: u64,
    at: Instant,
}

/// A stretch of time in which the caller kept falling behind reading one replica's link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Delay {
    /// When it first fell behind.
    since: Instant,
    /// When it last fell behind.
    last: Instant,
}

impl Delay {
    /// The caller fell behind at `now`, for the first time in a while.
    pub(super) fn new(now: Instant) -> Delay {
        Delay {
            since: now,
            last: now,
        }
    }
    /// Until when straggler judgement of the replica waits: `timeout` after the caller last
    /// fell behind, plus as long as it had been behind.
    pub(super) fn until(&self, timeout: Duration) -> Instant {
        self.last + timeout + (self.last - self.since)
    }
    /// The caller fell behind again at `now`: the same stretch if its grace had not ended,
    /// else a new one.
    pub(super) fn extended(self, now: Instant, timeout: Duration) -> Delay {
        if now > self.until(timeout) {
            Delay::new(now)
        } else {
            Delay {
                since: self.since,
                last: self.last.max(now),
            }
        }
    }
}

/// Where the lead replicas stand now, as seen by [`StragglerClock::track`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Lead {
    /// Output offset the lead has reached (`None`: fewer active replicas than the lead needs).
    pub(super) output: Option<u64>,
    /// Output offset of the slowest active replica (`None`: no active replica).
    pub(super) slowest: Option<u64>,
    /// The lead has sent FIN.
    pub(super) fin: bool,
}

/// When the lead reached each output offset, connected and sent FIN: the deadlines of the
/// replicas behind it.
#[derive(Debug)]
pub(super) struct StragglerClock {
    timeout: Duration,
    /// Offsets the lead reached that some active replica has not, oldest first.
    milestones: VecDeque<Milestone>,
    /// Furthest offset the lead reached.
    frontier: u64,
    /// When the lead had a connection outcome (connected or refused).
    connected_at: Option<Instant>,
    /// When the lead had sent FIN.
    fin_at: Option<Instant>,
}

impl StragglerClock {
    /// A clock that gives replicas `timeout` to catch up with the lead.
    pub(super) fn new(timeout: Duration) -> StragglerClock {
        StragglerClock {
            timeout,
            milestones: VecDeque::new(),
            frontier: 0,
            connected_at: None,
            fin_at: None,
        }
    }
    /// The lead has a connection outcome (the first call counts).
    pub(super) fn lead_connected(&mut self, now: Instant) {
        self.connected_at.get_or_insert(now);
    }
    /// The lead's FIN no longer counts (it was a primary that closed early).
    pub(super) fn forget_fin(&mut self) {
        self.fin_at = None;
    }
    /// Remember when the lead reached its output offset and FIN.
    pub(super) fn track(&mut self, lead: Lead, now: Instant) {
        if let Some(f) = lead.output {
            if f < self.frontier {
                // A replica that led was cut off: the others were never behind its bytes. Forget
                // them; the current lead offset counts from now (a later deadline, never earlier).
                while self.milestones.back().is_some_and(|m| m.offset > f) {
                    self.milestones.pop_back();
                }
                self.frontier = self.milestones.back().map_or(0, |m| m.offset);
            }
            if f > self.frontier {
                self.frontier = f;
                match self.milestones.back_mut() {
                    Some(last) if last.at == now => last.offset = f,
                    _ => self.milestones.push_back(Milestone { offset: f, at: now }),
                }
            }
        }
        if let Some(min) = lead.slowest {
            while self.milestones.front().is_some_and(|m| m.offset <= min) {
                self.milestones.pop_front();
            }
        }
        if lead.fin {
            self.fin_at.get_or_insert(now);
        }
    }
    /// When `rep` is cut off unless it catches up (or, after a reset, is blamed).
    pub(super) fn deadline(&self, rep: &Replica) -> Option<Instant> {
        let t = self.timeout;
        if rep.reported() {
            return None;
        }
        if let Some(reset) = rep.pending_reset() {
            return Some(reset.at + t);
        }
        if !rep.compared() || rep.state == ReplicaState::Finished || rep.fin.is_some() {
            return None;
        }
        let grace = if rep.lagged_handshake {
            t.max(LAGGED_HANDSHAKE_RTO)
        } else {
            t
        };
        let excused = |d: Instant| rep.delayed.map_or(d, |delay| d.max(delay.until(grace)));
        if rep.state == ReplicaState::Connecting {
            return self.connected_at.map(|at| excused(at + t));
        }
        let data = (rep.prod < self.frontier)
            .then(|| {
                self.milestones
                    .iter()
                    .find(|m| m.offset > rep.prod)
                    .map(|m| m.at + t)
            })
            .flatten();
        let fin = self.fin_at.map(|at| at + t);
        data.into_iter().chain(fin).min().map(excused)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::voter::test_voter::{majority_of_three, STRAGGLER_TIMEOUT};

    use crate::voter::{FaultKind, ReplicaState, Voter, VoterEvent};

    const T: Duration = STRAGGLER_TIMEOUT;

    fn stragglers(v: &mut Voter) -> Vec<usize> {
        std::iter::from_fn(|| v.poll_event())
            .filter_map(|e| match e {
                VoterEvent::Fault(f) if f.kind == FaultKind::Straggler => Some(f.replica),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn connecting_replica_on_a_delayed_link_gets_a_full_timeout_after_the_delay() {
        let t0 = Instant::now();
        let mut v = majority_of_three(t0);
        v.replica_connected(0, t0);
        v.replica_connected(1, t0);
        assert_eq!(v.poll_timeout(), Some(t0 + T));
        let behind = t0 + Duration::from_millis(700);
        v.replica_delayed(2, behind);
        assert_eq!(v.poll_timeout(), Some(behind + T), "deadline moved");
        v.handle_timeout(t0 + T);
        assert!(stragglers(&mut v).is_empty(), "the caller's lag is excused");
        // The replica connects late (its handshake was retransmitted) and is not blamed.
        v.replica_connected(2, t0 + T + Duration::from_millis(100));
        assert_eq!(v.replica_state(2), ReplicaState::Live);
        assert_eq!(v.poll_timeout(), None);
    }

    #[test]
    fn really_slow_replica_is_cut_off_once_the_caller_keeps_up() {
        let t0 = Instant::now();
        let mut v = majority_of_three(t0);
        for r in 0..3 {
            v.replica_connected(r, t0);
        }
        v.push_replica(0, b"answer", t0);
        v.push_replica(1, b"answer", t0);
        let behind = t0 + Duration::from_millis(300);
        v.replica_delayed(2, behind);
        // An earlier report of lag does not shorten the grace.
        v.replica_delayed(2, t0);
        assert_eq!(v.poll_timeout(), Some(behind + T));
        v.handle_timeout(behind + T - Duration::from_millis(1));
        assert!(stragglers(&mut v).is_empty());
        v.handle_timeout(behind + T);
        assert_eq!(
            stragglers(&mut v),
            vec![2],
            "still cut off after a full timeout"
        );
        assert_eq!(v.replica_state(2), ReplicaState::Faulty);
    }

    #[test]
    fn grace_grows_with_a_long_stretch_of_lag_and_starts_over_after_it() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut v = majority_of_three(t0);
        v.replica_connected(0, t0);
        v.replica_connected(1, t0);
        for n in [0, 400, 800] {
            v.replica_delayed(2, ms(n));
        }
        // Behind from 0 to 0.8 s: a timeout after the last lag plus those 0.8 s.
        assert_eq!(v.poll_timeout(), Some(ms(2600)));
        v.handle_timeout(ms(2599));
        assert!(stragglers(&mut v).is_empty());
        // Lag again after that grace ended: a new stretch, which never shortens a deadline.
        v.replica_delayed(2, ms(2700));
        assert_eq!(v.poll_timeout(), Some(ms(3700)));
        v.handle_timeout(ms(3700));
        assert_eq!(stragglers(&mut v), vec![2]);
    }

    /// Replicas 0 and 1 connect at `t0`; the caller falls behind on replica 2's link while it
    /// connects (its SYN-ACK waits in, or is dropped from, the caller's queue), so it connects
    /// only at `t0 + 1.5 s`. The client closes and replicas 0 and 1 send their FIN at `end`,
    /// when the caller falls behind on replica 2's link again.
    fn lagged_handshake_then_fin(t0: Instant, end: Instant) -> Voter {
        let mut v = majority_of_three(t0);
        v.replica_connected(0, t0);
        v.replica_connected(1, t0);
        v.replica_delayed(2, t0 + Duration::from_millis(100));
        v.replica_connected(2, t0 + Duration::from_millis(1500));
        v.client_fin(end);
        v.replica_fin(0, end);
        v.replica_fin(1, end);
        v.replica_delayed(2, end);
        v
    }

    #[test]
    fn fin_lost_in_the_callers_queue_after_a_lagged_handshake_is_awaited_for_a_retransmission() {
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(10);
        let mut v = lagged_handshake_then_fin(t0, end);
        // Its FIN was dropped: it comes again after its 3 s retransmission timeout.
        assert_eq!(v.poll_timeout(), Some(end + super::LAGGED_HANDSHAKE_RTO));
        v.handle_timeout(end + T);
        v.handle_timeout(end + Duration::from_millis(2999));
        assert!(
            stragglers(&mut v).is_empty(),
            "the caller's drop is excused"
        );
        v.replica_fin(2, end + Duration::from_millis(2999));
        assert_eq!(v.replica_state(2), ReplicaState::Finished);
        assert_eq!(v.poll_timeout(), None);
    }

    #[test]
    fn replica_that_never_closes_after_a_lagged_handshake_is_still_cut_off() {
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(10);
        let mut v = lagged_handshake_then_fin(t0, end);
        v.handle_timeout(end + super::LAGGED_HANDSHAKE_RTO - Duration::from_millis(1));
        assert!(stragglers(&mut v).is_empty());
        v.handle_timeout(end + super::LAGGED_HANDSHAKE_RTO);
        assert_eq!(
            stragglers(&mut v),
            vec![2],
            "cut off once the grace is over"
        );
        assert_eq!(v.replica_state(2), ReplicaState::Faulty);
    }

    #[test]
    fn replica_connected_before_the_lag_keeps_the_straggler_timeout() {
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(10);
        let mut v = majority_of_three(t0);
        for r in 0..3 {
            v.replica_connected(r, t0);
        }
        v.client_fin(end);
        v.replica_fin(0, end);
        v.replica_fin(1, end);
        v.replica_delayed(2, end);
        // Its handshake was not delayed: it retransmits within its short timeout.
        assert_eq!(v.poll_timeout(), Some(end + T));
        v.handle_timeout(end + T);
        assert_eq!(stragglers(&mut v), vec![2]);
    }

    #[test]
    fn delay_on_one_link_excuses_only_that_replica() {
        let t0 = Instant::now();
        let mut v = majority_of_three(t0);
        v.replica_connected(0, t0);
        v.replica_delayed(1, t0 + Duration::from_millis(500));
        v.replica_connected(2, t0);
        // Replica 1 is excused until 1.5 s; nobody else is behind.
        assert_eq!(v.poll_timeout(), Some(t0 + Duration::from_millis(1500)));
        v.handle_timeout(t0 + T);
        assert!(stragglers(&mut v).is_empty());
        v.replica_connected(1, t0 + T);
        v.push_replica(0, b"x", t0 + T);
        v.push_replica(1, b"x", t0 + T);
        v.replica_delayed(0, t0 + T);
        // Replica 2 is behind the quorum's byte read at 1 s and is not excused by 0's link.
        v.handle_timeout(t0 + 2 * T);
        assert_eq!(stragglers(&mut v), vec![2]);
    }
}
