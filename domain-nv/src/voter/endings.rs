//! How streams end: connection outcomes, FINs, resets, early closes, floods, and the client's end.
//!
//! - Connection events are voted like bytes, with quorum q: a refusal is blamed (`Refused`) once q
//!   replicas connected; q refusals reset the client, blaming nobody. A reset is masked while it is
//!   a minority and blamed (`Reset`) once the leading quorum has produced more output than the reset
//!   replica had, a FIN was voted, or the straggler timeout passed; q resets reset the client,
//!   blaming nobody. A reset before any output of a replica whose handshake the caller fell
//!   behind on is never blamed (its kernel may have dropped its end of the handshake while the
//!   caller lagged); it still counts towards q resets. Nor is a reset of a replica whose whole
//!   output agreed and ended at the voted FIN (a server closing with unread input resets).
//!   A FIN is voted at an output offset (q replicas under Majority, all under
//!   Unanimous, the primary under PrimaryBackup) once every byte before it is released:
//!   `CloseClient`. A replica that closed before the released offset is `EarlyClose`; one with
//!   output beyond the voted FIN is `Flood`.
//! - The client's end: once the client has reset (or vanished), every replica connection is
//!   reset at once and nothing more is voted or blamed: no byte can reach the client any more.
//!   Once a replica has been given all client input and the client's FIN, the service may end its
//!   output anywhere (nginx aborts a response in progress on the half-close, at a moment that
//!   differs between replicas): an early FIN, a reset or no quorum at the end is then not blamed
//!   (the replica leaves the vote), nor is output beyond the quorum's FIN, unless the quorum had
//!   already ended there (all released) when the client's FIN came while a replica was beyond
//!   it (that replica floods); bytes that differ from the released stream are still blamed
//!   (`ValueMismatch`), and the client still only gets agreed bytes.
//! - A replica that finished in agreement gets `CloseReplica` once its input (up to the client's
//!   FIN) has been sent too.

use std::time::Instant;

use super::policy;
use super::replica::{Handshake, Verdict};
use super::{FaultKind, NoQuorum, Policy, Position, ReplicaId, ReplicaState, Voter, VoterEvent};

/// How the client side of the connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientEnd {
    /// Stream still open.
    Open,
    /// A quorum closed: `CloseClient` emitted, stream complete.
    Closing,
    /// Client reset (by it or by us).
    Reset,
}

impl Voter {
    /// Refusals: a quorum of them resets the client; a minority is blamed once a quorum connected.
    pub(super) fn check_connections(&mut self, now: Instant) {
        let count = |h: Handshake| {
            let members = self.reps.iter().filter(|r| r.is_member());
            members.filter(|r| r.handshake == h).count()
        };
        let (refused, connected) = (count(Handshake::Refused), count(Handshake::Connected));
        if refused + connected >= self.lead_quorum {
            self.clock.lead_connected(now);
        }
        if refused >= self.quorum {
            self.reset_client(false, now);
        } else if connected >= self.quorum {
            for r in 0..self.reps.len() {
                if self.reps[r].handshake == Handshake::Refused {
                    self.fault(r, FaultKind::Refused, now);
                }
            }
        }
    }

    /// FIN voting, early closes, floods past the voted FIN.
    pub(super) fn check_fins(&mut self, now: Instant) {
        let o = self.rel.offset();
        if self.fin_at.is_none() && self.client_end == ClientEnd::Open {
            let ballot = self.ballot();
            if policy::fin_decided(&ballot, self.cfg.policy, self.quorum, self.primary) {
                self.fin_at = Some(o);
                self.client_end = ClientEnd::Closing;
                self.events.push_back(VoterEvent::CloseClient);
            } else if let (Policy::PrimaryBackup { .. }, Some(p)) = (self.cfg.policy, self.primary)
            {
                // A backup went on past the primary's FIN: the primary closed early; fail over.
                if policy::primary_closed_early(&ballot, p) {
                    if self.half_closed(p) {
                        self.excuse(p, true);
                    } else {
                        self.fault(p, FaultKind::EarlyClose { offset: o }, now);
                    }
                    self.failover();
                    // Its FIN no longer leads: backups are not late for a FIN nobody else sent.
                    self.clock.forget_fin();
                }
            }
        }
        for r in 0..self.reps.len() {
            let rep = &self.reps[r];
            if !rep.compared() {
                continue;
            }
            if let Some(f) = rep.fin.filter(|&f| f < o) {
                if self.half_closed(r) {
                    self.excuse(r, false);
                } else {
                    self.fault(r, FaultKind::EarlyClose { offset: f }, now);
                }
            } else if let Some(end) = self.fin_at {
                if rep.prod > end {
                    if self.cut_short_after_client_fin(end) {
                        self.excuse(r, true);
                    } else {
                        self.fault(r, FaultKind::Flood, now);
                    }
                } else if rep.fin == Some(end)
                    && rep.checked == end
                    && rep.state != ReplicaState::Finished
                {
                    self.reps[r].state = ReplicaState::Finished;
                }
            }
        }
    }

    /// Resets: a quorum of them resets the client; a minority is blamed once the others went on.
    pub(super) fn check_resets(&mut self, now: Instant) {
        let unjudged = self
            .reps
            .iter()
            .filter(|r| r.is_member() && r.reset_unjudged())
            .count();
        if self.fin_at.is_none() && unjudged >= self.quorum {
            self.reset_client(false, now);
            return;
        }
        for r in 0..self.reps.len() {
            let Some(reset) = self.reps[r].pending_reset() else {
                continue;
            };
            if self.fin_at == Some(reset.output) && self.reps[r].checked == reset.output {
                // Its whole output agreed and ended where the voted FIN is: it closed with a
                // reset instead of a FIN, as a server does that closes a connection with
                // input it has not read (RFC 2525 2.17, Linux's `tcp_close`): the client's
                // next request, sent once the quorum's answer was out, reached this slower
                // replica before it closed. Not a fault.
                self.reps[r].verdict = Verdict::ResetExcused;
                continue;
            }
            let ahead = self
                .reps
                .iter()
                .filter(|o| o.active() && o.prod > reset.output)
                .count();
            if self.fin_at.is_some() || ahead >= self.lead_quorum {
                self.fault(r, FaultKind::Reset, now);
            }
        }
    }

    /// Replica `r` had all client input and the client's FIN: from there a service may end its
    /// output anywhere (nginx aborts a response in progress when it sees the half-close), so
    /// where and how its stream ends is no evidence of a fault. Its bytes are still voted.
    pub(super) fn half_closed(&self, r: ReplicaId) -> bool {
        self.input.fin().is_some() && self.reps[r].in_sent == self.input.received()
    }

    /// Others ending their output at `end` while a replica goes on may be the service cutting a
    /// response short on the client's FIN, unless they had ended there before it (the released
    /// stream was at `end` when the FIN came) while a replica was already beyond it (it floods).
    pub(super) fn cut_short_after_client_fin(&self, end: u64) -> bool {
        self.input
            .fin()
            .is_some_and(|at| end > at.released || at.lead <= end)
    }

    /// Every voting replica is reset and every buffer freed (the client is gone).
    pub(super) fn reset_all_voting(&mut self) {
        for r in 0..self.reps.len() {
            if self.reps[r].voting() {
                self.reps[r].state = ReplicaState::Gone;
                self.drop_out(r);
                self.events.push_back(VoterEvent::ResetReplica(r));
            }
        }
        self.input.clear();
        self.rel.clear();
    }

    /// Abort the client: fail-stop (`no_quorum`: report [`NoQuorum`] once, with every replica's
    /// position) or a quorum reset/refused.
    pub(super) fn reset_client(&mut self, no_quorum: bool, now: Instant) {
        if self.client_end != ClientEnd::Open {
            return;
        }
        // After the client's FIN, replicas ending differently is the service reacting to the
        // half-close (see `check_fins`), not a fault: the client is reset, nobody is blamed.
        // No single replica is blamed for the lack of a quorum: every position is reported.
        if no_quorum && !self.no_quorum_reported && self.input.fin().is_none() {
            self.no_quorum_reported = true;
            let positions = (0..self.reps.len())
                .map(|r| {
                    let rep = &self.reps[r];
                    Position {
                        replica: r,
                        role: rep.role,
                        state: rep.state,
                        output: rep.prod,
                        agreed: rep.checked,
                        fin: rep.fin,
                    }
                })
                .collect();
            self.events.push_back(VoterEvent::NoQuorum(NoQuorum {
                at: now,
                released: self.rel.offset(),
                positions,
            }));
        }
        self.client_end = ClientEnd::Reset;
        self.events.push_back(VoterEvent::ResetClient);
        self.reset_all_voting();
    }

    /// `CloseReplica` for replicas whose output is voted complete and whose input is all sent.
    pub(super) fn close_done_replicas(&mut self) {
        for r in 0..self.reps.len() {
            if self.reps[r].state == ReplicaState::Finished
                && !self.reps[r].close_sent
                && self.replica_input_fin(r)
            {
                self.reps[r].close_sent = true;
                self.events.push_back(VoterEvent::CloseReplica(r));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::voter::test_voter::{majority_of_three, STRAGGLER_TIMEOUT};

    use crate::voter::{Fault, FaultKind, Voter, VoterEvent};

    const T: Duration = STRAGGLER_TIMEOUT;

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    /// A majority of 3 with a request of the client sent to every replica; the caller fell
    /// behind on replica 2's link while it connected (at 100 ms) if `lagged`. Every replica
    /// connected by 1.5 s.
    fn request_sent(t0: Instant, lagged: bool) -> Voter {
        let mut v = majority_of_three(t0);
        v.replica_connected(0, t0);
        v.replica_connected(1, t0);
        if lagged {
            v.replica_delayed(2, ms(t0, 100));
        }
        v.replica_connected(2, ms(t0, 1500));
        v.push_client(b"GET\r\n", ms(t0, 1500));
        for r in 0..3 {
            let n = v.replica_input(r).len();
            v.replica_input_sent(r, n);
        }
        v
    }

    /// The events until now: the faults and whether the client was reset.
    fn outcome(v: &mut Voter) -> (Vec<Fault>, bool) {
        let mut faults = Vec::new();
        let mut client_reset = false;
        while let Some(e) = v.poll_event() {
            match e {
                VoterEvent::Fault(f) => faults.push(f),
                VoterEvent::ResetClient => client_reset = true,
                _ => {}
            }
        }
        (faults, client_reset)
    }

    /// Replicas 0 and 1 answer and close; the voted stream goes to the client.
    fn others_answer(v: &mut Voter, at: Instant) {
        for r in 0..2 {
            v.push_replica(r, b"+OK\r\n", at);
            v.replica_fin(r, at);
        }
        let n = v.client_output().len();
        assert_eq!(v.client_output(), b"+OK\r\n");
        v.client_output_sent(n, at);
        v.handle_timeout(at + 10 * T);
    }

    #[test]
    fn a_reset_before_any_output_after_a_lagged_handshake_is_not_blamed() {
        let t0 = Instant::now();
        let mut v = request_sent(t0, true);
        // Its kernel had dropped the handshake domain-nv completed late: an RST at 9 s.
        v.replica_reset(2, ms(t0, 9000));
        others_answer(&mut v, ms(t0, 9100));
        assert_eq!(outcome(&mut v), (vec![], false));
    }

    #[test]
    fn a_reset_before_any_output_without_lag_is_still_blamed() {
        let t0 = Instant::now();
        let mut v = request_sent(t0, false);
        v.replica_reset(2, ms(t0, 9000));
        others_answer(&mut v, ms(t0, 9100));
        let (faults, client_reset) = outcome(&mut v);
        assert!(!client_reset);
        assert_eq!(faults.len(), 1, "{faults:?}");
        assert_eq!(faults[0].replica, 2);
        assert_eq!(faults[0].kind, FaultKind::Reset);
    }

    #[test]
    fn a_reset_after_output_is_blamed_even_after_a_lagged_handshake() {
        let t0 = Instant::now();
        let mut v = request_sent(t0, true);
        // It had answered part of the reply: its connection was established on its side.
        v.push_replica(2, b"+O", ms(t0, 8000));
        v.replica_reset(2, ms(t0, 9000));
        others_answer(&mut v, ms(t0, 9100));
        let (faults, _) = outcome(&mut v);
        assert_eq!(faults.len(), 1, "{faults:?}");
        assert_eq!(faults[0].replica, 2);
        assert_eq!(faults[0].kind, FaultKind::Reset);
    }

    #[test]
    fn excused_resets_still_make_a_quorum_of_resets() {
        let t0 = Instant::now();
        let mut v = majority_of_three(t0);
        v.replica_connected(0, t0);
        for r in 1..3 {
            v.replica_delayed(r, ms(t0, 100));
            v.replica_connected(r, ms(t0, 1500));
        }
        v.replica_reset(1, ms(t0, 9000));
        v.replica_reset(2, ms(t0, 9000));
        // Two resets of three: the client is reset, nobody is blamed (no `NoQuorum` either).
        let mut no_quorum = false;
        let mut client_reset = false;
        let mut faults = 0;
        while let Some(e) = v.poll_event() {
            match e {
                VoterEvent::NoQuorum(_) => no_quorum = true,
                VoterEvent::ResetClient => client_reset = true,
                VoterEvent::Fault(_) => faults += 1,
                _ => {}
            }
        }
        assert!(client_reset && !no_quorum && faults == 0);
    }

    /// A majority of 3, every replica connected, the client's request sent to all; r0 and r1
    /// answer `b"ok"` and close (the FIN is voted at 2); the client's next request goes out.
    fn answered_by_two(t0: Instant) -> Voter {
        let mut v = majority_of_three(t0);
        for r in 0..3 {
            v.replica_connected(r, t0);
        }
        v.push_client(b"GET 1\r\n", t0);
        for r in 0..3 {
            let n = v.replica_input(r).len();
            v.replica_input_sent(r, n);
        }
        for r in 0..2 {
            v.push_replica(r, b"ok", ms(t0, 1));
            v.replica_fin(r, ms(t0, 1));
        }
        let n = v.client_output().len();
        assert_eq!(v.client_output(), b"ok");
        v.client_output_sent(n, ms(t0, 2));
        v
    }

    #[test]
    fn a_slower_replica_resetting_at_the_voted_end_is_not_blamed() {
        let t0 = Instant::now();
        let mut v = answered_by_two(t0);
        // r2 answers the same, then resets instead of closing (the client's next request
        // reached it before it closed, unread)
        v.push_replica(2, b"ok", ms(t0, 5));
        v.replica_reset(2, ms(t0, 6));
        v.handle_timeout(ms(t0, 5000));
        let (faults, client_reset) = outcome(&mut v);
        assert!(faults.is_empty(), "{faults:?}");
        assert!(!client_reset);
    }

    #[test]
    fn a_replica_resetting_short_of_the_voted_end_is_still_blamed() {
        let t0 = Instant::now();
        let mut v = answered_by_two(t0);
        v.push_replica(2, b"o", ms(t0, 5));
        v.replica_reset(2, ms(t0, 6));
        v.handle_timeout(ms(t0, 5000));
        let (faults, _) = outcome(&mut v);
        assert_eq!(faults.len(), 1, "{faults:?}");
        assert_eq!(faults[0].replica, 2);
        assert!(matches!(faults[0].kind, FaultKind::Reset), "{faults:?}");
    }
}
