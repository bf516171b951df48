//! The datagram voter: sans-IO voting of UDP services, question by question.
//!
//! Each client datagram is a question; the caller sends it to every replica whose role is not
//! `Absent` and feeds their answer datagrams back in. Answers are matched to the oldest pending
//! question of the same client (address and port) that still awaits that replica's answer, and
//! for `protocol: dns` that carries the same query ID and question (`dns`). The answers of a
//! question are voted with the policies and membership rules of the byte-stream voter (`vote`);
//! the agreed answer (one real replica's datagram, as it sent it) goes to the asking client once.
//!
//! - Bounded state (`table`): at most `pending_per_client` questions per client and `pending` in
//!   all; one more drops the client's own oldest, or when all are full the oldest question
//!   already decided (it only waits for late replicas), else the oldest of a client with
//!   several pending, else the oldest of all: a flood from a few ports does not push out the
//!   one question of a quiet client. Each drop is counted in `dropped`.
//! - No amplification: a question yields at most one answer, only to the address that asked.
//! - A question stays until every replica that got it answered, or until its deadline; then each
//!   replica is judged against the agreed answer: a different answer is `ValueMismatch`, a
//!   missing one `Straggler` if the replica answered nothing since the question came (silent:
//!   crashed or hung), `ValueMismatch` if it sent this client an answer that matched no question
//!   meanwhile, pending or ended lately (a corrupted ID or question), and otherwise a lost datagram (`lost`, nobody
//!   blamed: UDP loses datagrams under load, and one lost answer must not cost a healthy
//!   replica its vote). A replica that withholds answers to some questions only is therefore
//!   not blamed for it; the quorum still answers them. Without an agreed answer nobody
//!   is blamed (`NoQuorum`), except under unanimous when a strict majority agrees.
//! - An answer that matches no pending question is dropped and counted (`unsolicited`).
//! - Time is passed in; nothing here reads a clock or a socket (`DatagramVoter` in `voter`).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use domain_nv::config::Protocol;
//! use domain_nv::datagram::{DatagramConfig, DatagramEvent, DatagramVoter};
//! use domain_nv::voter::{FaultKind, Policy, Role};
//!
//! let mut voter = DatagramVoter::new(DatagramConfig {
//!     policy: Policy::Majority,
//!     protocol: Protocol::Bytes,
//!     deadline: Duration::from_millis(500),
//!     pending: 1024,
//!     pending_per_client: 64,
//! });
//! let client = "10.77.0.2:40000".parse().unwrap();
//! let now = Instant::now();
//! voter.question(client, b"ping", &[Role::Member; 3], 0, now).unwrap();
//! // Replica 1 answers wrongly; 0 and 2 agree: their answer goes out once.
//! voter.answer(1, client, b"pang", now);
//! voter.answer(0, client, b"pong", now);
//! voter.answer(2, client, b"pong", now);
//! let out = voter.poll_transmit().unwrap();
//! assert_eq!((out.client, out.payload.as_slice()), (client, &b"pong"[..]));
//! assert!(voter.poll_transmit().is_none());
//! let fault = std::iter::from_fn(|| voter.poll_event()).find_map(|e| match e {
//!     DatagramEvent::Fault { replica, kind, .. } => Some((replica, kind)),
//!     _ => None,
//! });
//! assert_eq!(fault, Some((1, FaultKind::ValueMismatch { offset: 1 })));
//! ```

pub mod dns;
mod table;
mod vote;
mod voter;

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

pub use voter::DatagramVoter;

use crate::config::Protocol;
use crate::voter::{FaultKind, Policy, ReplicaId};

/// A client: its address and port.
pub type Client = SocketAddrV4;

/// Settings of one datagram voter (one UDP service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatagramConfig {
    /// The voting policy.
    pub policy: Policy,
    /// How answers are matched and compared.
    pub protocol: Protocol,
    /// How long a question waits for its answers.
    pub deadline: Duration,
    /// Most questions pending at once.
    pub pending: usize,
    /// Most questions pending at once per client.
    pub pending_per_client: usize,
}

/// A datagram to send to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Who asked.
    pub client: Client,
    /// The agreed answer, as one replica sent it.
    pub payload: Vec<u8>,
}

/// Something the caller must report or act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatagramEvent {
    /// A replica answered wrongly or not at all.
    Fault {
        /// The replica.
        replica: ReplicaId,
        /// What it did.
        kind: FaultKind,
        /// Whose question it was.
        client: Client,
        /// When the voter noticed.
        at: Instant,
    },
    /// A replica's answer agreed with the released one (for probation and `bytes-voted`).
    Agreed {
        /// The replica.
        replica: ReplicaId,
        /// The membership epoch the question came in.
        epoch: u64,
        /// Length of its answer.
        bytes: u64,
    },
    /// No answer could be agreed for a question of `client` (nobody blamed).
    NoQuorum {
        /// Whose question it was.
        client: Client,
    },
}

/// Why a question was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `protocol: dns` and the datagram is not a DNS message.
    Malformed(dns::DnsError),
    /// No vote is possible with the replicas' roles (nobody to ask).
    NoQuorum,
}

/// Counters of one datagram voter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DatagramStats {
    /// Questions taken and sent to the replicas.
    pub questions: u64,
    /// Questions answered with an agreed answer.
    pub answered: u64,
    /// Answered questions on which a replica was wrong or missing (a fault masked).
    pub masked: u64,
    /// Questions dropped from the pending table over a bound (answered already or not: an
    /// answered one still waited for a replica's answer, which is then not judged), or
    /// malformed.
    pub dropped: u64,
    /// Questions the replicas found no agreed answer to.
    pub no_quorum: u64,
    /// Replica answers that matched no pending question.
    pub unsolicited: u64,
    /// Answers missing at a deadline from a replica that answered a later question meanwhile
    /// (a lost datagram: nobody blamed).
    pub lost: u64,
}
