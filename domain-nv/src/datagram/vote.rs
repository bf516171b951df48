//! Deciding one question from the answers in so far: the three policies as pure functions over
//! the answers' canonical forms and the replicas' roles, with the same quorum and membership
//! rules as the byte-stream voter (`crate::voter`): q = floor(N/2)+1 Members of the N
//! configured; Observers (joining) are compared, never counted; Absent (excluded) replicas get
//! no question.

use crate::voter::{Policy, ReplicaId, Role};

/// What the answers so far decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    /// Release replica `.0`'s answer (it is in the agreeing group).
    Release(ReplicaId),
    /// No answer can be released for this question (blames nobody by itself).
    NoQuorum,
    /// Not decided yet.
    Wait,
}

/// The answers of one question as the policies see them: `answers[r]` is replica `r`'s
/// canonical answer if it answered.
pub(super) struct Ballot<'a> {
    /// Each replica's role for this question.
    pub roles: &'a [Role],
    /// Each replica's canonical answer, if in.
    pub answers: &'a [Option<&'a [u8]>],
    /// The deadline passed: no more answers will come.
    pub closed: bool,
}

impl Ballot<'_> {
    fn members(&self) -> impl Iterator<Item = ReplicaId> + '_ {
        (0..self.roles.len()).filter(|&r| self.roles[r] == Role::Member)
    }

    /// Members that answered the same as `r`.
    fn agreeing(&self, r: ReplicaId) -> usize {
        let a = self.answers[r];
        self.members()
            .filter(|&m| a.is_some() && self.answers[m] == a)
            .count()
    }

    /// Members yet to answer.
    fn waiting(&self) -> usize {
        self.members()
            .filter(|&m| self.answers[m].is_none())
            .count()
    }

    /// The answering Member with the most Members agreeing (the lowest on a tie), and how many.
    pub(super) fn largest_group(&self) -> Option<(ReplicaId, usize)> {
        self.members()
            .filter(|&m| self.answers[m].is_some())
            .map(|m| (m, self.agreeing(m)))
            .fold(None, |best, (m, c)| match best {
                Some((_, bc)) if bc >= c => best,
                _ => Some((m, c)),
            })
    }

    /// The replica that leads under primary-backup: the primary if a Member, else the lowest
    /// Member.
    pub(super) fn leader(&self, primary: ReplicaId) -> Option<ReplicaId> {
        if self.roles.get(primary) == Some(&Role::Member) {
            Some(primary)
        } else {
            self.members().next()
        }
    }
}

/// What `policy` decides from `b`.
pub(super) fn decide(policy: Policy, b: &Ballot<'_>) -> Decision {
    let n = b.roles.len();
    let quorum = n / 2 + 1;
    match policy {
        Policy::Majority => {
            let best = b.largest_group();
            match best {
                Some((r, c)) if c >= quorum => Decision::Release(r),
                _ if best.map_or(0, |(_, c)| c) + b.waiting() < quorum || b.closed => {
                    Decision::NoQuorum
                }
                _ => Decision::Wait,
            }
        }
        Policy::Unanimous => {
            if b.members().count() < n {
                return Decision::NoQuorum;
            }
            match b.largest_group() {
                Some((r, c)) if c == n => Decision::Release(r),
                Some(_) if b.waiting() == 0 || b.closed => Decision::NoQuorum,
                // Two answers that differ already: no release possible.
                Some((_, c)) if c + b.waiting() < n => Decision::NoQuorum,
                _ if b.closed => Decision::NoQuorum,
                _ => Decision::Wait,
            }
        }
        Policy::PrimaryBackup { primary } => {
            let Some(leader) = b.leader(primary) else {
                return Decision::NoQuorum;
            };
            if b.answers[leader].is_some() {
                return Decision::Release(leader);
            }
            if !b.closed {
                return Decision::Wait;
            }
            // The leader stayed silent: the backups' largest group takes over.
            match b.largest_group() {
                Some((r, _)) => Decision::Release(r),
                None => Decision::NoQuorum,
            }
        }
    }
}

/// After the question is over, the answer every replica is judged against: the released one,
/// except under primary-backup when more Members agree on another answer than on the released
/// one (the primary was wrong), and under unanimous without a release when a strict majority
/// of the replicas agrees. `None`: nobody can be judged.
pub(super) fn truth(
    policy: Policy,
    b: &Ballot<'_>,
    released: Option<ReplicaId>,
) -> Option<ReplicaId> {
    let n = b.roles.len();
    match (policy, released) {
        (Policy::PrimaryBackup { .. }, Some(r)) => match b.largest_group() {
            Some((g, c)) if c > b.agreeing(r) => Some(g),
            _ => Some(r),
        },
        (_, Some(r)) => Some(r),
        (Policy::Unanimous, None) => match b.largest_group() {
            Some((g, c)) if 2 * c > n => Some(g),
            _ => None,
        },
        (_, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Role::*;

    fn ballot<'a>(roles: &'a [Role], answers: &'a [Option<&'a [u8]>], closed: bool) -> Ballot<'a> {
        Ballot {
            roles,
            answers,
            closed,
        }
    }

    #[test]
    fn majority_releases_at_quorum_and_gives_up_when_it_cannot_be_reached() {
        let m = [Member; 3];
        let a: &[u8] = b"a";
        let b: &[u8] = b"b";
        assert_eq!(
            decide(Policy::Majority, &ballot(&m, &[Some(a), None, None], false)),
            Decision::Wait
        );
        assert_eq!(
            decide(
                Policy::Majority,
                &ballot(&m, &[Some(b), Some(a), Some(a)], false)
            ),
            Decision::Release(1)
        );
        assert_eq!(
            decide(
                Policy::Majority,
                &ballot(&m, &[Some(b), Some(a), None], true)
            ),
            Decision::NoQuorum
        );
        // An observer's agreement does not count.
        let roles = [Member, Observer, Member];
        assert_eq!(
            decide(
                Policy::Majority,
                &ballot(&roles, &[Some(a), Some(a), Some(b)], false)
            ),
            Decision::NoQuorum
        );
    }

    #[test]
    fn unanimous_needs_everyone_and_primary_backup_follows_the_leader() {
        let a: &[u8] = b"a";
        let b: &[u8] = b"b";
        let m = [Member; 2];
        assert_eq!(
            decide(Policy::Unanimous, &ballot(&m, &[Some(a), Some(a)], false)),
            Decision::Release(0)
        );
        assert_eq!(
            decide(Policy::Unanimous, &ballot(&m, &[Some(a), Some(b)], false)),
            Decision::NoQuorum
        );
        assert_eq!(
            decide(
                Policy::Unanimous,
                &ballot(&[Member, Observer], &[None, None], false)
            ),
            Decision::NoQuorum
        );
        let pb = Policy::PrimaryBackup { primary: 1 };
        let m3 = [Member; 3];
        assert_eq!(
            decide(pb, &ballot(&m3, &[Some(a), Some(b), None], false)),
            Decision::Release(1)
        );
        assert_eq!(
            decide(pb, &ballot(&m3, &[Some(a), None, Some(a)], false)),
            Decision::Wait
        );
        assert_eq!(
            decide(pb, &ballot(&m3, &[Some(a), None, Some(a)], true)),
            Decision::Release(0)
        );
        // Two backups agree against the primary: the primary is the one judged wrong.
        let answers = [Some(a), Some(b), Some(a)];
        let all = ballot(&m3, &answers, true);
        assert_eq!(truth(pb, &all, Some(1)), Some(0));
    }
}
