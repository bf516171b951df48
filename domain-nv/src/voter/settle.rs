//! The order in which decisions are brought up to date after each input.

use std::time::Instant;

use super::endings::ClientEnd;
use super::release::ReleaseMark;
use super::straggler::Lead;
use super::Voter;

/// What a sweep can change that another sweep may build on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Standing {
    /// Replicas still voting plus those not set aside as suspects: drops whenever a replica is
    /// set aside or leaves the vote, never rises.
    in_vote: usize,
    /// Bytes released, room freed.
    released: ReleaseMark,
}

impl Voter {
    /// Bring every decision up to date after an input: judge connection outcomes, then sweep
    /// (see `sweep`) until a sweep changes neither who is in the vote nor the released stream.
    ///
    /// Why this ends after a few sweeps: the next sweep can only decide something new if this
    /// one
    /// - removed a replica from the vote (its bytes, its end and its lag no longer count, which
    ///   may let bytes be released, a FIN be voted, a primary be replaced or `NoQuorum` be
    ///   found); each replica can only be set aside once and leave once, so this happens at most
    ///   2N times;
    /// - or moved the released stream without removing anyone. The first such sweep may have
    ///   voted with less room than its own lagging check then freed (the trim at its end); the
    ///   next one votes with all the room there is, since every replica in the vote has then been
    ///   checked up to the released offset; a third finds nothing left to release, only what the
    ///   new offset decides (a FIN, or `NoQuorum`, which removes every replica: a removal).
    ///
    /// So at most 3 sweeps follow each removal, plus 3 at the start: `max_sweeps`. (Random
    /// scenarios need at most 4 sweeps; most inputs need one.)
    pub(super) fn settle(&mut self, now: Instant) {
        if self.client_end == ClientEnd::Reset {
            return;
        }
        // Connection outcomes change only at the entry points: judged once.
        self.check_connections(now);
        let max_sweeps = 3 * (2 * self.reps.len() + 1);
        for sweep in 1..=max_sweeps {
            let before = self.standing();
            self.sweep(now);
            if self.standing() == before {
                break;
            }
            debug_assert!(sweep < max_sweeps, "settle did not settle");
        }
        if self.client_end == ClientEnd::Reset {
            return;
        }
        self.track_lead(now);
        self.close_done_replicas();
    }

    /// What a sweep can change that another sweep may build on.
    fn standing(&self) -> Standing {
        let in_vote = self
            .reps
            .iter()
            .map(|r| usize::from(r.voting()) + usize::from(r.active()))
            .sum();
        Standing {
            in_vote,
            released: self.rel.mark(),
        }
    }

    /// One pass over every decision, each step using what the steps before it decided.
    fn sweep(&mut self, now: Instant) {
        if self.client_end == ClientEnd::Reset {
            return;
        }
        self.rel.trim(&self.reps);
        // A primary that left at an entry point is replaced before the vote.
        self.failover();
        // Replicas behind the released offset catch up before the vote counts them.
        self.check_lagging(now);
        self.vote(now);
        // Replicas behind are checked against what the vote released.
        self.check_lagging(now);
        // Backups' divergences are judged once the others have been checked that far.
        self.resolve_suspects(now);
        // A FIN is voted at the released offset; ends before it or output past it are judged.
        self.check_fins(now);
        // Resets are judged once the others went on, or a FIN was voted.
        self.check_resets(now);
        // A primary that left in this sweep is replaced.
        self.failover();
        self.check_enough_left(now);
        self.rel.trim(&self.reps);
    }

    /// The policy cannot go on with fewer voting replicas than it needs: `NoQuorum`.
    fn check_enough_left(&mut self, now: Instant) {
        let voting = self.reps.iter().filter(|r| r.active()).count();
        if self.client_end == ClientEnd::Open && voting < self.needed {
            self.reset_client(true, now);
        }
    }

    /// Straggler clock: remember when the lead reached each output offset and FIN.
    fn track_lead(&mut self, now: Instant) {
        let active = || self.reps.iter().filter(|r| r.active());
        let lead = Lead {
            output: self.ballot().kth_largest_prod(self.lead_quorum),
            // Observers too: they are cut off when they fall behind.
            slowest: self
                .reps
                .iter()
                .filter(|r| r.compared())
                .map(|r| r.prod)
                .min(),
            fin: active().filter(|r| r.fin.is_some()).count() >= self.lead_quorum,
        };
        self.clock.track(lead, now);
    }
}
