//! The voter: sans-IO byte-stream voting for one client connection and N replica streams.
//!
//! No sockets and no clock inside: the caller passes bytes, connection events and the current
//! time in, and takes out the bytes to send (to each replica, to the client), the next deadline and
//! events (faults, how to end the client connection). Shaped like quinn-proto's `Connection`.
//!
//! API CONTRACT (fixed; the implementation behind it is free):
//! - input: `push_client` accepts client bytes up to `client_window()` (backpressure: the caller
//!   stops reading the client socket when the window is 0); every live replica gets every byte in
//!   order through `replica_input` / `replica_input_sent`.
//! - output: `push_replica` accepts a replica's bytes up to `replica_window(r)`; released bytes come
//!   out of `client_output` / `client_output_sent`; a byte is released once a quorum of replicas
//!   produced it identically, whatever the TCP segmentation of each replica.
//! - events: `poll_event` drains `VoterEvent`s (faults to report; `NoQuorum` to report without
//!   blaming anyone; `CloseClient` / `ResetClient` telling the caller how to end the client side;
//!   `CloseReplica` / `ResetReplica` telling it to cut a replica off).
//! - membership: `Voter::with_roles` gives each replica its [`Role`] for the whole connection
//!   (Member votes, Observer is only compared, Absent is not connected); `Voter::new` makes every
//!   replica a Member.
//!
//! Choices behind the contract (all per connection, N configured replicas, quorum q =
//! floor(N/2)+1 counted among Members only), each described in the file that implements it:
//! - Who may decide, and the bar that never drops below the configured group's (`membership`).
//! - Memory: one shared client input buffer (each replica has a sent offset into it: `input`), one
//!   buffer per replica for its output not yet voted past (`replica`), and one released buffer
//!   (`release`). Each is bounded by `buffer_limit`: the client window is `buffer_limit` minus the
//!   largest backlog of a live replica, a replica's window is `buffer_limit` minus its unvoted
//!   bytes, and bytes are released only while the released buffer has room.
//! - Voting compares byte ranges with slice equality (memcmp) in chunks (`bytes`), from the
//!   released offset on, and never further than the q-th longest replica output (`policy`). Bytes
//!   of a replica behind the released offset are checked in place against the released bytes,
//!   without being buffered (`intake`).
//! - Copies: each byte a quorum agrees on is copied once, into the voter (`release`). Buffers are
//!   rings, allocated once and reused for the whole connection (no compaction copies).
//! - Policies: Majority, Unanimous, PrimaryBackup (`policy`).
//! - Connection events, FINs, resets and the client's end (`endings`).
//! - Stragglers (`straggler`).
//! - Every fault is reported at most once per replica; a faulty replica gets `ResetReplica`, its
//!   input stops and its output is no longer voted (`steps`). A replica that finished in agreement
//!   gets `CloseReplica` once its input (up to the client's FIN) has been sent too (`endings`).
//! - After each input, every decision is brought up to date by a fixed sequence of steps, repeated
//!   a bounded number of times (`settle`); the [`Voter`] and its entry points are in `connection`.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use domain_nv::voter::{FaultKind, Policy, Voter, VoterConfig, VoterEvent};
//!
//! let config = VoterConfig {
//!     policy: Policy::Majority,
//!     straggler_timeout: Duration::from_secs(1),
//!     buffer_limit: 1 << 16,
//! };
//! let now = Instant::now();
//! let mut voter = Voter::new(config, 3, now);
//! for r in 0..3 {
//!     voter.replica_connected(r, now);
//! }
//! // Replica 2 corrupts the byte at offset 3.
//! voter.push_replica(0, b"hello", now);
//! voter.push_replica(2, b"helxo", now);
//! voter.push_replica(1, b"hello", now);
//! assert_eq!(voter.client_output(), b"hello");
//! let fault = std::iter::from_fn(|| voter.poll_event()).find_map(|e| match e {
//!     VoterEvent::Fault(f) => Some(f),
//!     _ => None,
//! });
//! let fault = fault.expect("a fault is reported");
//! assert_eq!((fault.replica, fault.kind), (2, FaultKind::ValueMismatch { offset: 3 }));
//! ```

mod bytes;
mod connection;
mod endings;
mod input;
mod intake;
mod membership;
mod policy;
mod release;
mod replica;
mod settle;
mod steps;
mod straggler;

use std::time::{Duration, Instant};

pub use connection::Voter;
pub use membership::Role;

/// Index of a replica within one voter (0..n), in config order.
pub type ReplicaId = usize;

/// How replica outputs are combined into the client stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// N >= 3: a byte is released once floor(N/2)+1 replicas produced it identically.
    Majority,
    /// N = 2 (or more): every live replica must agree; any divergence resets the client (fail-stop).
    Unanimous,
    /// The primary's bytes are released at once; backups are compared behind it. If the primary
    /// crashes or stalls, the stream continues from a backup at the same offset.
    PrimaryBackup {
        /// The replica whose output is released first.
        primary: ReplicaId,
    },
}

/// Settings of one voter (one client connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterConfig {
    /// The voting policy.
    pub policy: Policy,
    /// A replica that has not produced bytes (or a connection event) that a quorum already
    /// produced within this time is marked a straggler and cut off from the connection.
    pub straggler_timeout: Duration,
    /// Per-replica bound on buffered bytes, both directions (unsent client input, unvoted output).
    pub buffer_limit: usize,
}

/// Why a replica was reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// Its bytes differ from what the quorum produced at this stream offset.
    ValueMismatch {
        /// Offset in the replica output stream of the first differing byte.
        offset: u64,
    },
    /// It refused the connection (RST to SYN / connect failure) while a quorum accepted.
    Refused,
    /// It closed (FIN) before a quorum did, at this output offset.
    EarlyClose {
        /// Output offset at which it closed.
        offset: u64,
    },
    /// It reset the connection while a quorum did not.
    Reset,
    /// It fell behind the quorum for longer than the straggler timeout.
    Straggler,
    /// It produced more bytes than the quorum (output beyond a quorum's FIN, or flooding past the
    /// buffer bound while the others stay behind).
    Flood,
    /// Its output does not frame as the service's protocol (see `crate::protocol`): reported by
    /// the caller through [`Voter::replica_protocol_error`].
    ProtocolError {
        /// Output offset where framing failed.
        offset: u64,
        /// What was wrong there.
        reason: &'static str,
    },
}

/// A fault report for one replica on this connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The replica at fault.
    pub replica: ReplicaId,
    /// What it did.
    pub kind: FaultKind,
    /// When the voter noticed.
    pub at: Instant,
}

/// Where one replica stood on a connection when it found no quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The replica.
    pub replica: ReplicaId,
    /// How it took part in the connection.
    pub role: Role,
    /// Where it stood.
    pub state: ReplicaState,
    /// Output bytes received from it.
    pub output: u64,
    /// Output offset up to which its bytes equal the released stream.
    pub agreed: u64,
    /// Output offset of its FIN, if it sent one.
    pub fin: Option<u64>,
}

/// The replicas of a connection disagree and no quorum can be formed any more: the client is
/// reset. Nobody is blamed: nothing shows which replica was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoQuorum {
    /// When the voter noticed.
    pub at: Instant,
    /// Bytes released to the client before.
    pub released: u64,
    /// Every replica's position, in config order.
    pub positions: Vec<Position>,
}

/// Something the caller must act on or report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoterEvent {
    /// Report this fault (status, logs, xenstore).
    Fault(Fault),
    /// Report that no quorum could be formed (at most once per connection; blames nobody).
    NoQuorum(NoQuorum),
    /// Close this replica's connection gracefully (it was cut off or the connection is done).
    CloseReplica(ReplicaId),
    /// Abort this replica's connection (RST).
    ResetReplica(ReplicaId),
    /// All voted output has been released and a quorum closed: send FIN to the client once
    /// `client_output` is empty.
    CloseClient,
    /// Abort the client connection (RST): fail-stop, or a quorum reset/refused.
    ResetClient,
}

/// Where a replica stands on this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaState {
    /// Connecting to the replica.
    Connecting,
    /// Connected and in agreement so far.
    Live,
    /// Closed its output (FIN) in agreement with the quorum.
    Finished,
    /// Cut off from this connection after a fault.
    Faulty,
    /// Gone (crash/reset) without being the minority.
    Gone,
}

/// Counters of one voter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VoterStats {
    /// Client bytes accepted (input direction).
    pub client_bytes_in: u64,
    /// Bytes released to the client (voted output).
    pub bytes_released: u64,
}

/// The voter the unit tests of this module's parts start from.
#[cfg(test)]
pub(crate) mod test_voter {
    use std::time::{Duration, Instant};

    use super::{Policy, Voter, VoterConfig};

    /// The straggler timeout of [`majority_of_three`].
    pub const STRAGGLER_TIMEOUT: Duration = Duration::from_secs(1);

    /// A voter of 3 replicas under Majority with a 4 KiB buffer and a [`STRAGGLER_TIMEOUT`].
    pub fn majority_of_three(now: Instant) -> Voter {
        let config = VoterConfig {
            policy: Policy::Majority,
            straggler_timeout: STRAGGLER_TIMEOUT,
            buffer_limit: 1 << 12,
        };
        Voter::new(config, 3, now)
    }
}
