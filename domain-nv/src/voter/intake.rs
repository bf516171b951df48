//! Taking a replica's output: what can be decided at once is decided without buffering it.
//!
//! Bytes of a replica behind the released offset are checked in place against the released
//! bytes; a second replica's bytes confirm a leader's buffered ones in place when two make a
//! quorum; the primary's bytes go straight to the released stream; only the rest is buffered.

use std::time::Instant;

use super::bytes::common_prefix;
use super::endings::ClientEnd;
use super::policy;
use super::{ReplicaId, Voter};

impl Voter {
    /// Take `data` (within its window) from replica `r`: check, confirm or release what can be
    /// decided at once, buffer the rest.
    pub(super) fn take_output(&mut self, r: ReplicaId, mut data: &[u8], now: Instant) {
        let released = self.rel.offset();
        // Fast path: bytes of a replica behind the released stream are checked in place.
        if self.unvoted(r).is_empty() && self.reps[r].prod < released {
            let start = self.reps[r].prod;
            let n = data.len().min((released - start) as usize);
            let same = common_prefix(data[..n].into(), self.rel.bytes(start, n));
            let rep = &mut self.reps[r];
            rep.prod += same as u64;
            rep.checked += same as u64;
            if same < n {
                self.mismatch(r, start + same as u64, data[same], now);
                return;
            }
            data = &data[n..];
        }
        // Fast path: a second replica confirms a leader's buffered bytes without being buffered.
        let n = self.confirm_in_place(r, data);
        data = &data[n..];
        // Fast path: the primary's own bytes go straight to the client output.
        if self.primary == Some(r)
            && self.unvoted(r).is_empty()
            && self.reps[r].checked == self.rel.offset()
            && self.client_end == ClientEnd::Open
        {
            let n = self.rel.release_direct(r, data, &mut self.reps);
            data = &data[n..];
        }
        self.rel.append(r, data, &mut self.reps);
    }

    /// When two agreeing replicas make a quorum, compare `data` of replica `r` (which is at the
    /// released offset with nothing buffered) straight against a leader's buffered bytes and
    /// release the agreeing prefix from the leader. Returns how many bytes of `data` were
    /// confirmed; the rest goes through the general vote.
    fn confirm_in_place(&mut self, r: ReplicaId, data: &[u8]) -> usize {
        let released = self.rel.offset();
        if !policy::pair_decides(&self.ballot(), self.cfg.policy, self.quorum)
            || !self.reps[r].is_member()
            || self.client_end != ClientEnd::Open
            || !self.unvoted(r).is_empty()
            || self.reps[r].checked != released
        {
            return 0;
        }
        let leads = |c: ReplicaId| {
            let rc = &self.reps[c];
            c != r && rc.active() && rc.checked == released && !self.unvoted(c).is_empty()
        };
        // The owner first: its bytes are released in place.
        let leader = self
            .rel
            .owner()
            .filter(|&o| leads(o))
            .or_else(|| (0..self.reps.len()).find(|&c| leads(c)));
        let Some(c) = leader else { return 0 };
        let n = data.len().min(self.rel.room());
        let k = common_prefix(data[..n].into(), self.unvoted(c));
        if k > 0 {
            self.rel.release_from(c, k, &mut self.reps);
            let rep = &mut self.reps[r];
            rep.prod += k as u64;
            rep.checked += k as u64;
        }
        k
    }
}
