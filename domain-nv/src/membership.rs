//! The membership book ([`Membership`]): which replicas vote on new client connections.
//!
//! Each replica is a [`Standing::Member`] (votes), [`Standing::Joining`] (on probation: gets
//! input and is compared with the quorum, counts toward no quorum) or [`Standing::Excluded`]
//! (found faulty: gets no connection at all). Every change increments the epoch; a client
//! connection takes the roles of the epoch it opens in and keeps them to its end.
//!
//! | event | Member | Joining | Excluded |
//! |---|---|---|---|
//! | its output differs from the quorum's (`value-mismatch`, `flood`) | Excluded | Excluded | - |
//! | it may have restarted (`refused`, `reset`, `early-close`, `straggler`, link down) | Joining | Joining, probation starts over | - |
//! | it agreed to the end of a connection opened since it joined, and probation is complete | - | Member | - |
//!
//! At the appliance's start every replica is a Member (the group starts together); a replica
//! new in a changed config (replaced) starts Joining; an Excluded replica comes back only as a
//! new instance (a config change that replaces it).

use crate::config::Probation;
use crate::voter::{FaultKind, Role};

/// Agreement a joining replica has shown so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The epoch in which it (re)joined: only connections opened since then count.
    pub since: u64,
    /// Client connections on which it agreed to the end.
    pub connections: u64,
    /// Output bytes on which it agreed.
    pub bytes: u64,
}

/// Where a replica stands in the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Votes.
    Member,
    /// On probation: compared with the quorum, not voting.
    Joining(Progress),
    /// Found faulty: no connections until it is replaced.
    Excluded,
}

/// True if `kind` shows the replica's output wrong (it is excluded); otherwise it was absent and
/// may have restarted (it goes on probation).
fn shows_wrong_output(kind: &FaultKind) -> bool {
    match kind {
        // Its output differs from what the quorum produced: it is wrong.
        FaultKind::ValueMismatch { .. } | FaultKind::Flood | FaultKind::ProtocolError { .. } => {
            true
        }
        // Absence, not a wrong answer: it may have restarted (and lost its state).
        FaultKind::Refused
        | FaultKind::Reset
        | FaultKind::EarlyClose { .. }
        | FaultKind::Straggler => false,
    }
}

/// The membership of every configured replica, with its epoch.
#[derive(Debug, Clone)]
pub struct Membership {
    standings: Vec<Standing>,
    epoch: u64,
    probation: Probation,
}

impl Membership {
    /// `replicas` replicas, all Members (the group starts together), at epoch 0.
    pub fn new(replicas: usize, probation: Probation) -> Membership {
        Membership {
            standings: vec![Standing::Member; replicas],
            epoch: 0,
            probation,
        }
    }

    /// The current epoch (incremented on every change).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Replica `r`'s standing.
    pub fn standing(&self, r: usize) -> Standing {
        self.standings[r]
    }

    /// The roles a client connection opened now takes: Members vote, Joining replicas observe,
    /// Excluded replicas are absent.
    pub fn roles(&self) -> Vec<Role> {
        self.standings
            .iter()
            .map(|s| match s {
                Standing::Member => Role::Member,
                Standing::Joining(_) => Role::Observer,
                Standing::Excluded => Role::Absent,
            })
            .collect()
    }

    /// Sets replica `r`'s standing; true if it changed (the epoch moved).
    fn set(&mut self, r: usize, standing: Standing) -> bool {
        if self.standings[r] == standing {
            return false;
        }
        self.epoch += 1;
        self.standings[r] = standing;
        true
    }

    /// Replica `r` starts (or starts over) its probation; an Excluded replica stays excluded.
    /// True if its standing changed.
    pub fn rejoin(&mut self, r: usize) -> bool {
        if self.standings[r] == Standing::Excluded {
            return false;
        }
        let progress = Progress {
            since: self.epoch + 1,
            connections: 0,
            bytes: 0,
        };
        self.set(r, Standing::Joining(progress))
    }

    /// Replica `r` was reported with `kind`: excluded if its output was wrong, on probation
    /// again if it may have restarted. True if its standing changed.
    pub fn fault(&mut self, r: usize, kind: &FaultKind) -> bool {
        if shows_wrong_output(kind) {
            self.set(r, Standing::Excluded)
        } else {
            self.rejoin(r)
        }
    }

    /// A config change applied in place: `kept[i]` is the index in the old config of the new
    /// config's replica `i` (`None`: new). A kept replica keeps its standing, a new one joins on
    /// probation, a removed one is forgotten; the new `probation` applies from now on. The
    /// epoch moves if the replicas changed.
    pub fn reconfigure(&mut self, kept: &[Option<usize>], probation: Probation) {
        let changed = kept.len() != self.standings.len()
            || kept.iter().enumerate().any(|(i, o)| *o != Some(i));
        self.probation = probation;
        if !changed {
            return;
        }
        let since = self.epoch + 1;
        let joining = Standing::Joining(Progress {
            since,
            connections: 0,
            bytes: 0,
        });
        self.standings = kept
            .iter()
            .map(|o| o.map_or(joining, |o| self.standings[o]))
            .collect();
        self.epoch = since;
    }

    /// A connection opened at `epoch` ended with joining replica `r` in agreement over `bytes`
    /// output bytes; true if that completed its probation (it is a Member now). Connections
    /// opened before it (re)joined do not count.
    pub fn agreed(&mut self, r: usize, epoch: u64, bytes: u64) -> bool {
        let Standing::Joining(mut p) = self.standings[r] else {
            return false;
        };
        if epoch < p.since {
            return false;
        }
        p.connections += 1;
        p.bytes += bytes;
        if p.connections >= self.probation.connections && p.bytes >= self.probation.bytes {
            self.set(r, Standing::Member)
        } else {
            // Progress is no change of membership: the epoch stays.
            self.standings[r] = Standing::Joining(p);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probation(connections: u64, bytes: u64) -> Probation {
        Probation { connections, bytes }
    }

    #[test]
    fn a_wrong_answer_excludes_and_an_absence_puts_on_probation() {
        let mut m = Membership::new(3, probation(2, 10));
        assert_eq!(m.roles(), vec![Role::Member; 3]);
        assert!(m.fault(0, &FaultKind::ValueMismatch { offset: 3 }));
        assert!(m.fault(1, &FaultKind::Reset));
        assert_eq!(m.epoch(), 2);
        assert_eq!(m.roles(), vec![Role::Absent, Role::Observer, Role::Member]);
        // Excluded stays excluded whatever happens to it.
        assert!(!m.rejoin(0));
        assert!(!m.fault(0, &FaultKind::Refused));
        assert_eq!(m.standing(0), Standing::Excluded);
        // A joining replica that differs is excluded.
        assert!(m.fault(1, &FaultKind::Flood));
        assert_eq!(m.standing(1), Standing::Excluded);
    }

    #[test]
    fn probation_needs_connections_and_bytes_opened_since_joining() {
        let mut m = Membership::new(3, probation(2, 10));
        let before = m.epoch();
        m.rejoin(2);
        assert!(!m.agreed(2, before, 100), "opened before it joined");
        let e = m.epoch();
        assert!(!m.agreed(2, e, 4));
        assert!(!m.agreed(2, e, 4), "2 connections, 8 bytes: not yet");
        assert_eq!(m.epoch(), e, "progress is no change");
        assert!(m.agreed(2, e, 2));
        assert_eq!(m.standing(2), Standing::Member);
        assert_eq!(m.epoch(), e + 1);
        assert!(!m.agreed(2, e + 1, 2), "a Member makes no progress");
    }

    #[test]
    fn an_in_place_change_keeps_standings_and_lets_new_names_join() {
        let mut m = Membership::new(3, probation(1, 0));
        m.fault(0, &FaultKind::Flood);
        let e = m.epoch();
        // r0 (excluded) and r2 kept, r1 removed, one new replica.
        m.reconfigure(&[Some(0), Some(2), None], probation(1, 0));
        assert_eq!(m.epoch(), e + 1);
        assert_eq!(m.roles(), vec![Role::Absent, Role::Member, Role::Observer]);
        assert!(
            m.agreed(2, m.epoch(), 0),
            "probation counts from the change"
        );
        let e = m.epoch();
        m.reconfigure(&[Some(0), Some(1), Some(2)], probation(5, 0));
        assert_eq!(m.epoch(), e, "the same replicas: no change of membership");
    }

    #[test]
    fn starting_over_forgets_progress() {
        let mut m = Membership::new(3, probation(2, 0));
        m.rejoin(1);
        let e = m.epoch();
        m.agreed(1, e, 0);
        assert!(m.fault(1, &FaultKind::Straggler), "probation starts over");
        assert!(!m.agreed(1, e, 0), "a connection from before the restart");
        let e = m.epoch();
        assert!(!m.agreed(1, e, 0));
        assert!(m.agreed(1, e, 0));
    }
}
