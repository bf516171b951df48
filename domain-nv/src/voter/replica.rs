//! One replica's side of a connection: where it stands, what it was sent, what it produced.

use std::time::Instant;

use super::bytes::Ring;
use super::membership::Role;
use super::straggler::Delay;
use super::ReplicaState;

/// How the replica's connection attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Handshake {
    /// No outcome yet.
    Pending,
    /// It connected.
    Connected,
    /// It refused (not yet judged, or judged).
    Refused,
}

/// What the voter holds against a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Nothing.
    Clear,
    /// It reset; blame waits until it is a minority (see `check_resets`).
    ResetPending(PendingReset),
    /// It reset before any output, after a handshake the caller fell behind on: its kernel may
    /// have given up its end of that handshake meanwhile and answered the caller's late ACK
    /// with an RST (see `Voter::replica_reset`). Counts towards a quorum of resets, is never
    /// blamed.
    ResetExcused,
    /// A fault was reported for it (at most one per replica).
    Reported,
}

/// A replica's reset whose blame is pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PendingReset {
    /// When it reset.
    pub(super) at: Instant,
    /// How many output bytes it had produced.
    pub(super) output: u64,
}

/// PrimaryBackup: a backup that differs from the released (primary) stream; blame waits for the
/// other backups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Suspect {
    /// Output offset of its first differing byte.
    pub(super) offset: u64,
    /// Its byte there.
    pub(super) byte: u8,
}

/// One replica's side of the connection.
#[derive(Debug)]
pub(super) struct Replica {
    /// How it takes part in this connection (fixed when the connection opens).
    pub(super) role: Role,
    /// Where it stands.
    pub(super) state: ReplicaState,
    /// Client input offset sent to it.
    pub(super) in_sent: u64,
    /// Its output bytes `[checked, prod)`, not yet voted past (empty for the released stream's
    /// owner, whose unvoted bytes are stored after the released ones).
    pub(super) out: Ring,
    /// Output offset up to which its bytes are known to equal the released stream.
    pub(super) checked: u64,
    /// Output bytes received from it.
    pub(super) prod: u64,
    /// Output offset of its FIN.
    pub(super) fin: Option<u64>,
    /// How its connection attempt ended.
    pub(super) handshake: Handshake,
    /// What the voter holds against it.
    pub(super) verdict: Verdict,
    /// PrimaryBackup: it differs from the primary's stream; set aside until judged.
    pub(super) suspect: Option<Suspect>,
    /// `CloseReplica` was emitted for it.
    pub(super) close_sent: bool,
    /// When the caller fell behind reading this replica's link (its own lag, see
    /// [`super::Voter::replica_delayed`]): no straggler deadline falls before its end.
    pub(super) delayed: Option<Delay>,
    /// The caller fell behind on its link while it was connecting: its retransmission timeout
    /// may be long (see `straggler::LAGGED_HANDSHAKE_RTO`), and so is its grace after a lag.
    pub(super) lagged_handshake: bool,
}

impl Replica {
    /// A replica in `role`: being connected to, or `Gone` from the start if `Absent`.
    pub(super) fn new(role: Role) -> Replica {
        let state = match role {
            Role::Member | Role::Observer => ReplicaState::Connecting,
            Role::Absent => ReplicaState::Gone,
        };
        Replica {
            role,
            state,
            in_sent: 0,
            out: Ring::default(),
            checked: 0,
            prod: 0,
            fin: None,
            handshake: Handshake::Pending,
            verdict: Verdict::Clear,
            suspect: None,
            close_sent: false,
            delayed: None,
            lagged_handshake: false,
        }
    }
    /// Still part of the connection (gets input, its output is voted or compared).
    pub(super) fn voting(&self) -> bool {
        matches!(
            self.state,
            ReplicaState::Connecting | ReplicaState::Live | ReplicaState::Finished
        )
    }
    /// Still part of the connection and not set aside as a suspect: its output is compared
    /// against the released stream (Members and Observers).
    pub(super) fn compared(&self) -> bool {
        self.voting() && self.suspect.is_none()
    }
    /// Compared and a Member: it counts in the vote.
    pub(super) fn active(&self) -> bool {
        self.compared() && self.is_member()
    }
    /// A Member of this connection (its output can decide).
    pub(super) fn is_member(&self) -> bool {
        self.role == Role::Member
    }
    /// Connected and not cut off: it is sent client input.
    pub(super) fn takes_input(&self) -> bool {
        matches!(self.state, ReplicaState::Live | ReplicaState::Finished)
    }
    /// A fault was reported for it.
    pub(super) fn reported(&self) -> bool {
        self.verdict == Verdict::Reported
    }
    /// It reset, and no fault was reported for it: a pending or an excused reset.
    pub(super) fn reset_unjudged(&self) -> bool {
        matches!(
            self.verdict,
            Verdict::ResetPending(_) | Verdict::ResetExcused
        )
    }
    /// Its reset, if it reset and has not been judged yet.
    pub(super) fn pending_reset(&self) -> Option<PendingReset> {
        match self.verdict {
            Verdict::ResetPending(reset) => Some(reset),
            _ => None,
        }
    }
}
