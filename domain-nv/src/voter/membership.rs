//! The membership rule: which replicas of a connection may decide, and how many must agree.
//!
//! Each replica takes part in a connection in one [`Role`], fixed when the connection opens
//! (the appliance derives the roles from its membership book: a Member votes, a Joining replica
//! observes, an Excluded one is absent):
//! - `Member`: gets input, its output is voted.
//! - `Observer`: gets input, its output is compared against the released stream only. It never
//!   counts toward a quorum, never leads (no primary, no owner of the released bytes, no lead for
//!   the straggler clock), and its end never decides the connection's (no `NoQuorum`, no FIN, no
//!   quorum of resets or refusals). A difference is reported like any other (`ValueMismatch`,
//!   `Flood`, ...).
//! - `Absent`: no connection at all; counted as a replica that is not there.
//!
//! The bar never drops below that of the configured group ([`Bar::for_roles`]), so no set of
//! replicas smaller than the configured quorum, or one that includes an observer, can decide:
//! - Majority: q = floor(N/2)+1 Members must agree, N the configured count (Observers and Absent
//!   replicas included). N = 3 with one replica out: the other two must agree, else fail-stop.
//! - Unanimous: every configured replica must be a Member and agree; a group with a replica out
//!   serves no connection (fail-stop at once, `NoQuorum`).
//! - PrimaryBackup: the configured primary leads if it is a Member, else the lowest Member;
//!   only Members back it up or take over. Without any Member the connection fails at once.

use super::{Policy, ReplicaId};

/// How a replica takes part in one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Gets input, its output is voted.
    Member,
    /// Gets input, its output is compared against the released stream; never decides.
    Observer,
    /// Not connected at all.
    Absent,
}

/// The voting bar of one connection, from the policy and the replicas' roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Bar {
    /// floor(N/2)+1 with N the configured count: byte quorum (Majority) and connection-event
    /// quorum (all policies), counted among Members only.
    pub(super) quorum: usize,
    /// How many Members must be ahead of a replica for it to be "behind" (straggler clock).
    pub(super) lead_quorum: usize,
    /// Fewest voting Members with which the policy can go on (more than there are Members:
    /// the connection fails at once).
    pub(super) needed: usize,
    /// PrimaryBackup: the replica that leads.
    pub(super) primary: Option<ReplicaId>,
}

impl Bar {
    /// The bar for `policy` with replicas in `roles` (configured order).
    pub(super) fn for_roles(policy: Policy, roles: &[Role]) -> Bar {
        let n = roles.len();
        let quorum = n / 2 + 1;
        let members: Vec<ReplicaId> = (0..n).filter(|&r| roles[r] == Role::Member).collect();
        // More than the Members: nothing can be decided.
        let impossible = n + 1;
        match policy {
            Policy::Majority => Bar {
                quorum,
                lead_quorum: quorum,
                needed: quorum,
                primary: None,
            },
            Policy::Unanimous => Bar {
                quorum,
                lead_quorum: 1,
                needed: if members.len() == n {
                    n.min(2)
                } else {
                    impossible
                },
                primary: None,
            },
            Policy::PrimaryBackup { primary } => {
                let leader = if roles[primary] == Role::Member {
                    Some(primary)
                } else {
                    members.first().copied()
                };
                Bar {
                    quorum,
                    lead_quorum: 1,
                    needed: if leader.is_some() { 1 } else { impossible },
                    primary: Some(leader.unwrap_or(primary)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Role::*;

    #[test]
    fn majority_keeps_the_configured_quorum() {
        let b = Bar::for_roles(Policy::Majority, &[Absent, Member, Member]);
        assert_eq!((b.quorum, b.needed), (2, 2));
        let b = Bar::for_roles(
            Policy::Majority,
            &[Observer, Observer, Member, Member, Member],
        );
        assert_eq!((b.quorum, b.needed), (3, 3));
    }

    #[test]
    fn unanimous_needs_every_replica_a_member() {
        assert_eq!(
            Bar::for_roles(Policy::Unanimous, &[Member, Member]).needed,
            2
        );
        assert_eq!(
            Bar::for_roles(Policy::Unanimous, &[Member, Observer]).needed,
            3
        );
    }

    #[test]
    fn primary_backup_leads_with_the_lowest_member_if_the_primary_is_out() {
        let pb = Policy::PrimaryBackup { primary: 0 };
        assert_eq!(Bar::for_roles(pb, &[Member, Member]).primary, Some(0));
        assert_eq!(
            Bar::for_roles(pb, &[Absent, Observer, Member]).primary,
            Some(2)
        );
        assert_eq!(Bar::for_roles(pb, &[Observer, Absent]).needed, 3);
    }
}
