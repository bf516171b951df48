//! The steps `settle` runs: checking replica output against the released stream, applying the
//! policy's decisions, and cutting replicas off.
//!
//! Every fault is reported at most once per replica; a faulty replica gets `ResetReplica`, its
//! input stops and its output is no longer voted.

use std::time::Instant;

use super::bytes::{common_prefix, View};
use super::endings::ClientEnd;
use super::policy::{self, Ballot, MajorityVote, Release, SuspectVerdict, UnanimousVote};
use super::replica::{Suspect, Verdict};
use super::{Fault, FaultKind, Policy, ReplicaId, ReplicaState, Voter, VoterEvent};

impl Voter {
    /// What the policies see.
    pub(super) fn ballot(&self) -> Ballot<'_> {
        Ballot {
            reps: &self.reps,
            rel: &self.rel,
        }
    }

    /// Replica `r`'s output bytes `[checked, prod)` not yet voted past.
    pub(super) fn unvoted(&self, r: ReplicaId) -> View<'_> {
        self.rel.unvoted(r, &self.reps)
    }

    /// Forget replica `r`'s unvoted output (it left the vote).
    pub(super) fn drop_out(&mut self, r: ReplicaId) {
        self.rel.drop_owned(r);
        self.reps[r].out.free();
    }

    /// Drop the client input every voting replica was sent.
    pub(super) fn trim_input(&mut self) {
        let min = self
            .reps
            .iter()
            .filter(|r| r.voting())
            .map(|r| r.in_sent)
            .min()
            .unwrap_or(self.input.received());
        self.input.trim(min);
    }

    /// Report a fault of replica `r` (without cutting it off).
    pub(super) fn push_fault(&mut self, r: ReplicaId, kind: FaultKind, now: Instant) {
        self.reps[r].verdict = Verdict::Reported;
        self.events.push_back(VoterEvent::Fault(Fault {
            replica: r,
            kind,
            at: now,
        }));
    }

    /// Report `r` (once) and cut it off.
    pub(super) fn fault(&mut self, r: ReplicaId, kind: FaultKind, now: Instant) {
        if self.reps[r].reported() {
            return;
        }
        self.push_fault(r, kind, now);
        self.leave(r, ReplicaState::Faulty, true);
    }

    /// Replica `r` leaves the vote without blame (its end differs after the client's FIN);
    /// `abort`: its connection is reset too (it is still sending).
    pub(super) fn excuse(&mut self, r: ReplicaId, abort: bool) {
        self.leave(r, ReplicaState::Gone, abort);
    }

    /// Replica `r` leaves the vote as `state`; `abort`: reset its connection if it was voting.
    fn leave(&mut self, r: ReplicaId, state: ReplicaState, abort: bool) {
        let rep = &mut self.reps[r];
        let was_voting = rep.voting();
        rep.state = state;
        rep.suspect = None;
        self.drop_out(r);
        if abort && was_voting {
            self.events.push_back(VoterEvent::ResetReplica(r));
        }
        self.trim_input();
    }

    /// Replica `r` has `byte` at output `offset` where the released stream differs.
    pub(super) fn mismatch(&mut self, r: ReplicaId, offset: u64, byte: u8, now: Instant) {
        // An observer is compared against the released stream only: no benefit of the doubt.
        let backup = matches!(self.cfg.policy, Policy::PrimaryBackup { .. })
            && self.primary != Some(r)
            && self.reps[r].is_member();
        if backup {
            self.reps[r].suspect = Some(Suspect { offset, byte });
            self.drop_out(r);
        } else {
            self.fault(r, FaultKind::ValueMismatch { offset }, now);
        }
    }

    /// Check every active replica's buffered bytes below the released offset against the released
    /// stream.
    pub(super) fn check_lagging(&mut self, now: Instant) {
        let released = self.rel.offset();
        for r in 0..self.reps.len() {
            let rep = &self.reps[r];
            if !rep.compared() || rep.checked >= rep.prod.min(released) {
                continue;
            }
            // Not the owner: the owner is at the released offset.
            let n = (rep.prod.min(released) - rep.checked) as usize;
            let out = rep.out.view();
            let same = common_prefix(out.range(0, n), self.rel.bytes(rep.checked, n));
            let byte = out.get(same);
            let offset = rep.checked + same as u64;
            let rep = &mut self.reps[r];
            rep.out.consume(same);
            rep.checked += same as u64;
            if same < n {
                self.mismatch(r, offset, byte.unwrap_or_default(), now);
            }
        }
    }

    /// Release bytes the replicas of `release` agree on: from the owner in place if it is one of
    /// them, else from the first; the others drop theirs.
    fn release_agreed(&mut self, release: &Release) {
        let (agreeing, n) = (&release.agreeing, release.len);
        let source = self
            .rel
            .owner()
            .filter(|o| agreeing.contains(o))
            .unwrap_or(agreeing[0]);
        self.rel.release_from(source, n, &mut self.reps);
        for &r in agreeing.iter().filter(|&&r| r != source) {
            let rep = &mut self.reps[r];
            rep.out.consume(n);
            rep.checked += n as u64;
        }
    }

    /// Vote under the policy and apply the decision.
    pub(super) fn vote(&mut self, now: Instant) {
        if self.client_end != ClientEnd::Open {
            return;
        }
        match self.cfg.policy {
            Policy::Majority => match policy::majority(&self.ballot(), self.quorum) {
                MajorityVote::Release(release) => self.release_agreed(&release),
                MajorityVote::NoQuorum => self.reset_client(true, now),
                MajorityVote::Wait => {}
            },
            Policy::Unanimous => {
                match policy::unanimous(&self.ballot()) {
                    UnanimousVote::Diverge(o) => return self.unanimous_divergence(o, now),
                    UnanimousVote::Agree(Some(release)) => self.release_agreed(&release),
                    UnanimousVote::Agree(None) => {}
                }
                // FIN against bytes at the same offset.
                if policy::fin_against_bytes(&self.ballot()) {
                    self.unanimous_divergence(self.rel.offset(), now);
                }
            }
            Policy::PrimaryBackup { .. } => {
                let Some(p) = self.primary else { return };
                let n = policy::primary_release(&self.ballot(), p);
                if n > 0 {
                    self.rel.release_from(p, n, &mut self.reps);
                }
            }
        }
    }

    /// Unanimous policy saw replicas differ at `o`: blame a minority if a strict majority of the
    /// live replicas agrees there, else report `NoQuorum`; the client is reset either way.
    fn unanimous_divergence(&mut self, o: u64, now: Instant) {
        let Some(blames) = policy::divergence(&self.ballot(), o) else {
            return self.reset_client(true, now);
        };
        for blame in blames {
            // After the half-close, ends may differ (output beyond the others' FIN only where
            // they were still producing output when the client's FIN came); bytes may not.
            let excused = match blame.kind {
                FaultKind::EarlyClose { .. } => self.half_closed(blame.replica),
                FaultKind::Flood => self.cut_short_after_client_fin(o),
                _ => false,
            };
            if !excused {
                self.fault(blame.replica, blame.kind, now);
            }
        }
        self.reset_client(false, now);
    }

    /// PrimaryBackup: judge the earliest backup divergence once every other backup has reached it.
    pub(super) fn resolve_suspects(&mut self, now: Instant) {
        let Some(p) = self.primary else { return };
        match policy::judge_suspects(&self.ballot(), p) {
            // The backups agree with each other against the primary: the client already got the
            // primary's bytes, so the connection cannot be repaired.
            Some(SuspectVerdict::Primary { offset }) => {
                self.fault(p, FaultKind::ValueMismatch { offset }, now);
                self.reset_client(false, now);
            }
            Some(SuspectVerdict::Backups { offset, backups }) => {
                for b in backups {
                    self.fault(b, FaultKind::ValueMismatch { offset }, now);
                }
            }
            None => {}
        }
    }

    /// PrimaryBackup: replace a primary that is no longer active by the active replica closest to
    /// the released offset.
    pub(super) fn failover(&mut self) {
        let Some(p) = self.primary else { return };
        if let Some(next) = policy::failover(&self.ballot(), p) {
            self.primary = Some(next);
        }
    }
}
