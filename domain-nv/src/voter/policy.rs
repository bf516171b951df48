//! The three voting policies, as functions over a [`Ballot`] (a read-only view of the replicas
//! and the released stream) that return what to do; the voter applies it.
//!
//! - Majority: a byte is released once q replicas agree on it; a replica that differs from the
//!   released stream is `ValueMismatch` at the first differing offset. When no value can reach q
//!   any more at the released offset, or fewer than q replicas are left, the voter reports
//!   `NoQuorum` once (blaming nobody) and resets the client. Only Members count (`membership`).
//! - Unanimous: every live replica must agree (N = 2, or more replicas while at least 2 are left).
//!   Any divergence is fail-stop: the client is reset; if a strict majority of the live replicas
//!   agrees at the differing offset, the others are blamed (`ValueMismatch`, `EarlyClose`,
//!   `Flood`), otherwise (always with 2 replicas: both are suspect) `NoQuorum` is reported. Losing
//!   a replica with only 2 left (crash, refusal, straggler) is fail-stop too: with one replica
//!   nothing can be checked any more.
//! - PrimaryBackup: the primary's bytes are released at once; backups are checked behind it.
//!   A backup that differs is blamed once the other backups have reached that offset: if more
//!   backups agree among themselves against the primary than replicas (primary included) back the
//!   primary, the primary is blamed and the client reset (it already received the primary's
//!   bytes); otherwise the differing backups are blamed. A primary that resets or stalls (straggler
//!   timeout) is replaced by the live backup closest to the released offset, whose bytes beyond
//!   that offset are released: the client stream goes on without a gap.
//!
//! Voting compares from the released offset on and never further than the q-th longest replica
//! output, so each byte is compared a small constant number of times whatever the segmentation.

use super::bytes::{common_prefix, View};
use super::release::Released;
use super::replica::Replica;
use super::{FaultKind, Policy, ReplicaId};

/// What the policies see: the replicas and the released stream.
#[derive(Clone, Copy)]
pub(super) struct Ballot<'a> {
    /// Every replica, in config order.
    pub(super) reps: &'a [Replica],
    /// The released stream.
    pub(super) rel: &'a Released,
}

impl<'a> Ballot<'a> {
    /// The released offset.
    fn released(&self) -> u64 {
        self.rel.offset()
    }
    /// Replica `r`'s output bytes not yet voted past.
    fn unvoted(&self, r: ReplicaId) -> View<'a> {
        self.rel.unvoted(r, self.reps)
    }
    /// The active replicas.
    fn active(&self) -> impl Iterator<Item = ReplicaId> + Clone + 'a {
        let reps = self.reps;
        (0..reps.len()).filter(move |&r| reps[r].active())
    }
    /// The `k`-th largest output offset among the active replicas (`k` >= 1), if there are `k`
    /// of them (no allocation: N is small).
    pub(super) fn kth_largest_prod(&self, k: usize) -> Option<u64> {
        let prods = || self.reps.iter().filter(|r| r.active()).map(|r| r.prod);
        prods()
            .filter(|&p| prods().filter(|&o| o >= p).count() >= k)
            .max()
    }
    /// Replicas that have output at the released offset, ready to vote on it.
    fn at_released(&self) -> Vec<ReplicaId> {
        let o = self.released();
        self.active()
            .filter(|&r| self.reps[r].checked == o && self.reps[r].prod > o)
            .collect()
    }
}

/// Release `len` bytes on which the replicas `agreeing` (all at the released offset, at least
/// one) agree.
#[derive(Debug)]
pub(super) struct Release {
    /// The agreeing replicas.
    pub(super) agreeing: Vec<ReplicaId>,
    /// How many bytes they agree on.
    pub(super) len: usize,
}

/// How far another replica agrees with a candidate at the released offset.
#[derive(Debug)]
struct Agreement {
    replica: ReplicaId,
    len: usize,
}

/// A candidate release: the bytes a quorum agrees on with `candidate`, and how far each other
/// replica at the released offset agrees with it.
#[derive(Debug)]
struct Extent {
    len: usize,
    candidate: ReplicaId,
    agree: Vec<Agreement>,
}

/// What a Majority vote decided.
#[derive(Debug)]
pub(super) enum MajorityVote {
    /// Release bytes.
    Release(Release),
    /// No value can reach a quorum at the released offset any more.
    NoQuorum,
    /// Nothing to decide yet.
    Wait,
}

/// Majority: the longest extent a quorum of `quorum` agrees on at the released offset, or
/// whether no value can reach a quorum there any more.
pub(super) fn majority(b: &Ballot, quorum: usize) -> MajorityVote {
    let Some(f) = b.kth_largest_prod(quorum) else {
        return MajorityVote::Wait;
    };
    let released = b.released();
    let cap = f.min(released + b.rel.room() as u64);
    if cap > released {
        let cand = b.at_released();
        let max = (cap - released) as usize;
        let mut best: Option<Extent> = None;
        for &c in &cand {
            let out = b.unvoted(c);
            let cs = out.range(0, max.min(out.len()));
            let mut agree: Vec<Agreement> = cand
                .iter()
                .filter(|&&o| o != c)
                .map(|&o| Agreement {
                    replica: o,
                    len: common_prefix(cs, b.unvoted(o)),
                })
                .collect();
            agree.sort_unstable_by_key(|a| std::cmp::Reverse(a.len));
            let len = if quorum == 1 {
                cs.len()
            } else {
                agree.get(quorum - 2).map_or(0, |a| a.len)
            };
            if best.as_ref().is_none_or(|b| len > b.len) {
                best = Some(Extent {
                    len,
                    candidate: c,
                    agree,
                });
                if len == max {
                    break;
                }
            }
        }
        if let Some(ext) = best.filter(|b| b.len > 0) {
            let agreeing = std::iter::once(ext.candidate)
                .chain(
                    ext.agree
                        .iter()
                        .filter(|a| a.len >= ext.len)
                        .map(|a| a.replica),
                )
                .collect();
            return MajorityVote::Release(Release {
                agreeing,
                len: ext.len,
            });
        }
    }
    // Nothing released: can any value still reach a quorum at `released`?
    if b.rel.room() == 0 {
        return MajorityVote::Wait;
    }
    let mut values: Vec<(Option<u8>, usize)> = Vec::new();
    let mut pending = 0;
    for r in b.active() {
        let rep = &b.reps[r];
        let v = if rep.checked == released && rep.prod > released {
            b.unvoted(r).get(0)
        } else if rep.fin == Some(released) {
            None
        } else {
            if rep.fin.is_none() {
                pending += 1;
            }
            continue;
        };
        match values.iter_mut().find(|x| x.0 == v) {
            Some(x) => x.1 += 1,
            None => values.push((v, 1)),
        }
    }
    let top = values.iter().map(|x| x.1).max().unwrap_or(0);
    if top + pending < quorum {
        MajorityVote::NoQuorum
    } else {
        MajorityVote::Wait
    }
}

/// What a Unanimous vote decided.
#[derive(Debug)]
pub(super) enum UnanimousVote {
    /// Release bytes every live replica agrees on (if any), then look for a FIN against bytes.
    Agree(Option<Release>),
    /// The live replicas differ at this output offset.
    Diverge(u64),
}

/// Unanimous: how far every active replica agrees, within what each produced and the room.
pub(super) fn unanimous(b: &Ballot) -> UnanimousVote {
    let live: Vec<ReplicaId> = b.active().collect();
    let Some(&c) = live.first() else {
        return UnanimousVote::Agree(None);
    };
    let o = b.released();
    let f = live.iter().map(|&r| b.reps[r].prod).min().unwrap_or(o);
    let cap = f.min(o + b.rel.room() as u64);
    if cap <= o {
        return UnanimousVote::Agree(None);
    }
    let max = (cap - o) as usize;
    let cs = b.unvoted(c).range(0, max);
    let ext = live
        .iter()
        .map(|&r| common_prefix(cs, b.unvoted(r).range(0, max)))
        .min()
        .unwrap_or(0);
    if ext < max {
        UnanimousVote::Diverge(o + ext as u64)
    } else {
        UnanimousVote::Agree(Some(Release {
            agreeing: live,
            len: max,
        }))
    }
}

/// Unanimous: a live replica sent FIN at the released offset while another has bytes there.
pub(super) fn fin_against_bytes(b: &Ballot) -> bool {
    let o = b.released();
    b.active().any(|r| b.reps[r].fin == Some(o)) && b.active().any(|r| b.reps[r].prod > o)
}

/// A replica to blame for a divergence.
#[derive(Debug)]
pub(super) struct Blame {
    /// The replica.
    pub(super) replica: ReplicaId,
    /// What it did.
    pub(super) kind: FaultKind,
}

/// Unanimous: the live replicas differ at `o`. If a strict majority of them agrees there, the
/// others (each with what it did); `None` if no majority agrees (`NoQuorum`).
pub(super) fn divergence(b: &Ballot, o: u64) -> Option<Vec<Blame>> {
    let live: Vec<ReplicaId> = b.active().collect();
    // Some(None): FIN at `o`; None: nothing there yet.
    let value = |r: ReplicaId| -> Option<Option<u8>> {
        let rep = &b.reps[r];
        if rep.prod > o {
            Some(b.unvoted(r).get((o - rep.checked) as usize))
        } else if rep.fin == Some(o) {
            Some(None)
        } else {
            None
        }
    };
    let vals: Vec<(ReplicaId, Option<Option<u8>>)> = live.iter().map(|&r| (r, value(r))).collect();
    let m = vals.iter().find_map(|(_, v)| {
        let v = (*v)?;
        let n = vals.iter().filter(|x| x.1 == Some(v)).count();
        (2 * n > live.len()).then_some(v)
    })?;
    let blames = vals
        .into_iter()
        .filter_map(|(r, v)| {
            let v = v.filter(|&v| v != m)?;
            let kind = match (v, m) {
                (None, _) => FaultKind::EarlyClose { offset: o },
                (Some(_), None) => FaultKind::Flood,
                (Some(_), Some(_)) => FaultKind::ValueMismatch { offset: o },
            };
            Some(Blame { replica: r, kind })
        })
        .collect();
    Some(blames)
}

/// PrimaryBackup: how many of primary `p`'s unvoted bytes can be released now.
pub(super) fn primary_release(b: &Ballot, p: ReplicaId) -> usize {
    let rep = &b.reps[p];
    let unvoted = b.unvoted(p).len();
    if rep.active() && rep.checked == b.released() && unvoted > 0 {
        unvoted.min(b.rel.room())
    } else {
        0
    }
}

/// PrimaryBackup: who is blamed for the earliest backup divergence.
#[derive(Debug)]
pub(super) enum SuspectVerdict {
    /// The backups agree with each other against the primary at `offset`.
    Primary {
        /// The offset of the divergence.
        offset: u64,
    },
    /// These backups differ from the primary at `offset`.
    Backups {
        /// The offset of the divergence.
        offset: u64,
        /// The backups that differ there.
        backups: Vec<ReplicaId>,
    },
}

/// PrimaryBackup: judge the earliest backup divergence once every other backup has reached it.
pub(super) fn judge_suspects(b: &Ballot, p: ReplicaId) -> Option<SuspectVerdict> {
    let reps = b.reps;
    let o = reps
        .iter()
        .filter(|r| r.voting())
        .filter_map(|r| r.suspect.map(|s| s.offset))
        .min()?;
    let backups = || (0..reps.len()).filter(move |&r| r != p);
    let waiting = backups().any(|r| {
        let rep = &reps[r];
        rep.active() && rep.checked <= o && rep.fin.is_none()
    });
    if waiting {
        return None;
    }
    let primary_votes = 1 + backups()
        .filter(|&r| reps[r].active() && reps[r].checked > o)
        .count();
    let suspects: Vec<(ReplicaId, u8)> = backups()
        .filter(|&r| reps[r].voting())
        .filter_map(|r| match reps[r].suspect {
            Some(s) if s.offset == o => Some((r, s.byte)),
            _ => None,
        })
        .collect();
    let top = suspects
        .iter()
        .map(|s| suspects.iter().filter(|x| x.1 == s.1).count())
        .max()
        .unwrap_or(0);
    Some(if top > primary_votes {
        SuspectVerdict::Primary { offset: o }
    } else {
        SuspectVerdict::Backups {
            offset: o,
            backups: suspects.into_iter().map(|s| s.0).collect(),
        }
    })
}

/// PrimaryBackup: the replica to replace primary `p` once it is no longer active (the active
/// replica closest to the released offset, the lowest index among equals).
pub(super) fn failover(b: &Ballot, p: ReplicaId) -> Option<ReplicaId> {
    if b.reps[p].active() {
        return None;
    }
    b.active()
        .max_by_key(|&r| (b.reps[r].checked, std::cmp::Reverse(r)))
}

/// A FIN is voted at the released offset: `quorum` replicas there under Majority, all active ones
/// under Unanimous, the primary `primary` and a backup (if any is left) under PrimaryBackup.
pub(super) fn fin_decided(
    b: &Ballot,
    policy: Policy,
    quorum: usize,
    primary: Option<ReplicaId>,
) -> bool {
    let o = b.released();
    let agreed = |rep: &Replica| rep.active() && rep.fin == Some(o) && rep.checked == o;
    match policy {
        Policy::Majority => b.reps.iter().filter(|r| agreed(r)).count() >= quorum,
        Policy::Unanimous => {
            b.reps.iter().any(|r| r.active()) && b.reps.iter().filter(|r| r.active()).all(agreed)
        }
        // The primary's FIN needs a live backup's confirmation (if any backup is left): a crashed
        // primary's kernel closes its socket with an ordinary FIN.
        Policy::PrimaryBackup { .. } => primary.is_some_and(|p| {
            let mut backups = b.active().filter(|&r| r != p);
            agreed(&b.reps[p])
                && (backups.clone().next().is_none() || backups.any(|r| agreed(&b.reps[r])))
        }),
    }
}

/// PrimaryBackup: primary `p` sent FIN at the released offset while a backup went on past it.
pub(super) fn primary_closed_early(b: &Ballot, p: ReplicaId) -> bool {
    let o = b.released();
    let rep = &b.reps[p];
    rep.active()
        && rep.fin == Some(o)
        && rep.checked == o
        && b.active().any(|r| r != p && b.reps[r].prod > o)
}

/// Two agreeing replicas make a quorum (Majority with quorum 2, Unanimous with two replicas
/// left): a second replica's bytes can confirm a leader's in place.
pub(super) fn pair_decides(b: &Ballot, policy: Policy, quorum: usize) -> bool {
    match policy {
        Policy::Majority => quorum == 2,
        Policy::Unanimous => b.active().count() == 2,
        Policy::PrimaryBackup { .. } => false,
    }
}
