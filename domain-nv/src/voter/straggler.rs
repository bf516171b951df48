//! The straggler clock.
//!
//! The voter records when the leading replicas (q under Majority, the most advanced one
//! otherwise) first produced each output offset, connected, or sent FIN; a replica that has not
//! caught up `straggler_timeout` after that is `Straggler`. A replica far ahead only sees its
//! window drop to 0; it is not blamed for that.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::replica::Replica;
use super::ReplicaState;

/// The lead first produced output up to `offset` at time `at`.
#[derive(Debug, Clone, Copy)]
struct Milestone {
    offset: u64,
    at: Instant,
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
        if rep.state == ReplicaState::Connecting {
            return self.connected_at.map(|at| at + t);
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
        data.into_iter().chain(fin).min()
    }
}
