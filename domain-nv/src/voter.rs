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
//! - events: `poll_event` drains `VoterEvent`s (faults to report; `CloseClient` / `ResetClient`
//!   telling the caller how to end the client side; `CloseReplica` / `ResetReplica` telling it to
//!   cut a replica off).
//!
//! Choices behind the contract (all per connection, N replicas, quorum q = floor(N/2)+1):
//! - Memory: one shared client input buffer (each replica has a sent offset into it), one buffer
//!   per replica for its output not yet voted past, and one released buffer = bytes not yet sent
//!   to the client plus released bytes a lagging replica has not been checked against yet. Each is
//!   bounded by `buffer_limit`: the client window is `buffer_limit` minus the largest backlog of a
//!   live replica, a replica's window is `buffer_limit` minus its unvoted bytes, and bytes are
//!   released only while the released buffer has room (so a lagging replica slows the others by
//!   at most `buffer_limit` bytes until the straggler timeout cuts it off).
//! - Voting compares byte ranges with slice equality (memcmp) in chunks, from the released offset
//!   on, and never further than the q-th longest replica output, so each byte is compared a small
//!   constant number of times whatever the segmentation. Bytes of a replica behind the released
//!   offset are checked in place against the released bytes, without being buffered.
//! - Copies: each byte a quorum agrees on is copied once, into the voter. The first replica to
//!   produce bytes at the released offset (the "owner") has them stored in the released buffer
//!   right after the released bytes, so releasing them only moves an offset; the other replicas'
//!   bytes are compared in place against them as they arrive (a second replica's bytes are only
//!   buffered when they cannot be decided at once). Buffers are rings, allocated once and reused
//!   for the whole connection (no compaction copies); the caller reads client output by reference
//!   (`client_output`).
//! - Majority: a byte is released once q replicas agree on it; a replica that differs from the
//!   released stream is `ValueMismatch` at the first differing offset. When no value can reach q
//!   any more at the released offset, or fewer than q replicas are left, the voter reports
//!   `NoQuorum` once and resets the client.
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
//! - Connection events are voted like bytes, with quorum q: a refusal is blamed (`Refused`) once q
//!   replicas connected; q refusals reset the client, blaming nobody. A reset is masked while it is
//!   a minority and blamed (`Reset`) once the leading quorum has produced more output than the reset
//!   replica had, a FIN was voted, or the straggler timeout passed; q resets reset the client,
//!   blaming nobody. A FIN is voted at an output offset (q replicas under Majority, all under
//!   Unanimous, the primary under PrimaryBackup) once every byte before it is released:
//!   `CloseClient`. A replica that closed before the released offset is `EarlyClose`; one with
//!   output beyond the voted FIN is `Flood`.
//! - Stragglers: the voter records when the leading replicas (q under Majority, the most advanced
//!   one otherwise) first produced each output offset, connected, or sent FIN; a replica that has
//!   not caught up `straggler_timeout` after that is `Straggler`. A replica far ahead only sees its
//!   window drop to 0; it is not blamed for that.
//! - The client's end: once the client has reset (or vanished), every replica connection is
//!   reset at once and nothing more is voted or blamed: no byte can reach the client any more.
//!   Once a replica has been given all client input and the client's FIN, the service may end its
//!   output anywhere (nginx aborts a response in progress on the half-close, at a moment that
//!   differs between replicas): an early FIN, a reset or no quorum at the end is then not blamed
//!   (the replica leaves the vote), nor is output beyond the quorum's FIN, unless the quorum had
//!   already ended there (all released) when the client's FIN came while a replica was beyond
//!   it (that replica floods); bytes that differ from the released stream are still blamed
//!   (`ValueMismatch`), and the client still only gets agreed bytes.
//! - Every fault is reported at most once per replica; a faulty replica gets `ResetReplica`, its
//!   input stops and its output is no longer voted. A replica that finished in agreement gets
//!   `CloseReplica` once its input (up to the client's FIN) has been sent too.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

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
    /// Replicas disagree and no quorum can be formed any more (reported once per connection).
    NoQuorum,
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

/// Something the caller must act on or report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoterEvent {
    /// Report this fault (status, logs, xenstore).
    Fault(Fault),
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

/// Bytes compared per `==` (memcmp) step when looking for the first differing byte.
const CMP_CHUNK: usize = 16 * 1024;

/// Length of the common prefix of two contiguous slices, compared chunk by chunk with slice
/// equality.
fn common_prefix_contiguous(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut i = 0;
    while i < n {
        let end = (i + CMP_CHUNK).min(n);
        if a[i..end] != b[i..end] {
            let pos = a[i..end].iter().zip(&b[i..end]).position(|(x, y)| x != y);
            return i + pos.unwrap_or(end - i);
        }
        i = end;
    }
    n
}

/// Length of the common prefix of `a` and `b`, compared piece by piece with slice equality.
fn common_prefix(a: View, b: View) -> usize {
    let n = a.len().min(b.len());
    let (mut a, mut b) = (a.range(0, n), b.range(0, n));
    let mut same = 0;
    while !a.is_empty() {
        let (x, y) = (a.first_piece(), b.first_piece());
        let k = x.len().min(y.len());
        let s = common_prefix_contiguous(&x[..k], &y[..k]);
        same += s;
        if s < k {
            break;
        }
        a = a.range(k, a.len());
        b = b.range(k, b.len());
    }
    same
}

/// A byte range stored in at most two contiguous pieces (a `Ring` that wraps around): `head`
/// then `tail`.
#[derive(Debug, Clone, Copy, Default)]
struct View<'a> {
    head: &'a [u8],
    tail: &'a [u8],
}

impl<'a> View<'a> {
    fn len(&self) -> usize {
        self.head.len() + self.tail.len()
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The byte at index `i`, if any.
    fn get(&self, i: usize) -> Option<u8> {
        match i.checked_sub(self.head.len()) {
            None => Some(self.head[i]),
            Some(j) => self.tail.get(j).copied(),
        }
    }
    /// Bytes `from..to` of the range. Panics if out of bounds.
    fn range(&self, from: usize, to: usize) -> View<'a> {
        assert!(from <= to && to <= self.len(), "view range out of bounds");
        let h = self.head.len();
        View {
            head: &self.head[from.min(h)..to.min(h)],
            tail: &self.tail[from.max(h) - h..to.max(h) - h],
        }
    }
    /// The first contiguous piece (empty only if the whole range is empty).
    fn first_piece(&self) -> &'a [u8] {
        if self.head.is_empty() {
            self.tail
        } else {
            self.head
        }
    }
}

impl<'a> From<&'a [u8]> for View<'a> {
    fn from(bytes: &'a [u8]) -> View<'a> {
        View {
            head: bytes,
            tail: &[],
        }
    }
}

/// A byte queue in a ring buffer: appended at the back, consumed at the front; written bytes are
/// never moved again except when the ring grows (no compaction copies).
#[derive(Debug, Default)]
struct Ring(VecDeque<u8>);

impl Ring {
    fn view(&self) -> View<'_> {
        let (head, tail) = self.0.as_slices();
        View { head, tail }
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn extend(&mut self, bytes: &[u8]) {
        self.0.extend(bytes);
    }
    /// Append the bytes of `view`.
    fn extend_view(&mut self, view: View) {
        self.0.extend(view.head);
        self.0.extend(view.tail);
    }
    /// Drop the first `n` bytes. Panics if `n` exceeds the length.
    fn consume(&mut self, n: usize) {
        self.0.drain(..n);
    }
    /// Keep only the first `n` bytes.
    fn truncate(&mut self, n: usize) {
        self.0.truncate(n);
    }
    fn free(&mut self) {
        *self = Ring::default();
    }
}

/// A candidate release: (bytes agreed by a quorum, candidate replica, its agreement length with
/// each other replica at `released`).
type Extent = (usize, ReplicaId, Vec<(ReplicaId, usize)>);

/// How the client side of the connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientEnd {
    /// Stream still open.
    Open,
    /// A quorum closed: `CloseClient` emitted, stream complete.
    Closing,
    /// Client reset (by it or by us).
    Reset,
}

/// One replica's side of the connection.
#[derive(Debug)]
struct Replica {
    state: ReplicaState,
    /// Client input offset sent to it.
    in_sent: u64,
    /// Its output bytes `[checked, prod)`, not yet voted past (empty for the voter's `owner`,
    /// whose unvoted bytes are stored in `rel` after the released ones).
    out: Ring,
    /// Output offset up to which its bytes are known to equal the released stream.
    checked: u64,
    /// Output bytes received from it.
    prod: u64,
    /// Output offset of its FIN.
    fin: Option<u64>,
    /// It connected.
    connected: bool,
    /// It refused (not yet judged, or judged).
    refused: bool,
    /// It reset at this time with this many output bytes (blame pending until it is a minority).
    reset_at: Option<(Instant, u64)>,
    /// A fault was reported for it.
    reported: bool,
    /// PrimaryBackup: it differs from the released (primary) stream at this offset with this byte;
    /// blame waits for the other backups.
    suspect: Option<(u64, u8)>,
    /// `CloseReplica` was emitted for it.
    closed: bool,
}

impl Replica {
    fn new() -> Replica {
        Replica {
            state: ReplicaState::Connecting,
            in_sent: 0,
            out: Ring::default(),
            checked: 0,
            prod: 0,
            fin: None,
            connected: false,
            refused: false,
            reset_at: None,
            reported: false,
            suspect: None,
            closed: false,
        }
    }
    /// Still part of the connection (gets input, its output is voted).
    fn voting(&self) -> bool {
        matches!(
            self.state,
            ReplicaState::Connecting | ReplicaState::Live | ReplicaState::Finished
        )
    }
    /// Voting and not set aside as a suspect.
    fn active(&self) -> bool {
        self.voting() && self.suspect.is_none()
    }
}

/// Voting state of one client connection with N replicas.
///
/// Memory: one client input buffer shared by all replicas (at most `buffer_limit` bytes behind the
/// slowest live replica), one output buffer per replica (at most `buffer_limit` unvoted bytes), and
/// one released buffer holding the bytes not yet sent to the client plus the released bytes a
/// lagging replica has not yet been checked against (at most `buffer_limit`; release waits for
/// room, so a lagging replica slows the quorum down until the straggler timeout cuts it off),
/// followed by the owner's unvoted bytes (counted as that replica's).
#[derive(Debug)]
pub struct Voter {
    cfg: VoterConfig,
    reps: Vec<Replica>,
    /// floor(N/2)+1: byte quorum (Majority) and connection-event quorum (all policies).
    quorum: usize,
    /// How many replicas must be ahead of a replica for it to be "behind" (straggler clock).
    lead_quorum: usize,
    /// Fewest voting replicas with which the policy can go on.
    needed: usize,
    input: Ring,
    /// Client stream offset of `input`'s first byte.
    in_base: u64,
    client_in: u64,
    client_fin: bool,
    /// Released offset and the most output of a replica when the client's FIN came.
    at_client_fin: (u64, u64),
    /// Released bytes `[rel_base, released)`, followed by the owner's unvoted bytes
    /// `[released, prod of owner)` if there is an owner; the client has been sent up to
    /// `client_sent`.
    rel: Ring,
    /// The replica (at `released`, nothing in its own buffer) whose unvoted output is stored in
    /// `rel` right after the released bytes, so that releasing its bytes copies nothing.
    owner: Option<ReplicaId>,
    rel_base: u64,
    released: u64,
    client_sent: u64,
    client_end: ClientEnd,
    /// Output offset of the voted FIN.
    fin_at: Option<u64>,
    /// PrimaryBackup: the current primary.
    primary: Option<ReplicaId>,
    /// (offset, time): the lead quorum first produced bytes up to `offset` at `time`.
    milestones: VecDeque<(u64, Instant)>,
    frontier: u64,
    /// When the lead quorum had a connection outcome (connected or refused).
    conn_lead_at: Option<Instant>,
    /// When the lead quorum had sent FIN.
    fin_lead_at: Option<Instant>,
    no_quorum_reported: bool,
    events: VecDeque<VoterEvent>,
    /// Latest time passed in (for decisions triggered by calls without a time).
    last_now: Instant,
}

impl Voter {
    /// A voter for `replicas` replica streams; all start `Connecting`.
    ///
    /// Panics if `replicas` is 0, if `buffer_limit` is 0, or if a `PrimaryBackup` primary is out of
    /// range (configuration errors).
    pub fn new(config: VoterConfig, replicas: usize, now: Instant) -> Voter {
        assert!(replicas > 0, "a voter needs at least one replica");
        assert!(config.buffer_limit > 0, "buffer_limit must be > 0");
        let quorum = replicas / 2 + 1;
        let (lead_quorum, needed, primary) = match config.policy {
            Policy::Majority => (quorum, quorum, None),
            Policy::Unanimous => (1, replicas.min(2), None),
            Policy::PrimaryBackup { primary } => {
                assert!(primary < replicas, "primary {primary} out of range");
                (1, 1, Some(primary))
            }
        };
        Voter {
            cfg: config,
            reps: (0..replicas).map(|_| Replica::new()).collect(),
            quorum,
            lead_quorum,
            needed,
            input: Ring::default(),
            in_base: 0,
            client_in: 0,
            client_fin: false,
            at_client_fin: (0, 0),
            rel: Ring::default(),
            owner: None,
            rel_base: 0,
            released: 0,
            client_sent: 0,
            client_end: ClientEnd::Open,
            fin_at: None,
            primary,
            milestones: VecDeque::new(),
            frontier: 0,
            conn_lead_at: None,
            fin_lead_at: None,
            no_quorum_reported: false,
            events: VecDeque::new(),
            last_now: now,
        }
    }

    /// Number of replica streams.
    pub fn replicas(&self) -> usize {
        self.reps.len()
    }

    // ---- client -> replicas ----

    /// How many more client bytes can be accepted now (0 = stop reading the client).
    pub fn client_window(&self) -> usize {
        if self.client_fin || self.client_end == ClientEnd::Reset {
            return 0;
        }
        let backlog = self
            .reps
            .iter()
            .filter(|r| r.voting())
            .map(|r| (self.client_in - r.in_sent) as usize)
            .max();
        match backlog {
            Some(b) => self.cfg.buffer_limit.saturating_sub(b),
            None => 0,
        }
    }
    /// Accept client bytes (at most `client_window()`); returns how many were taken.
    pub fn push_client(&mut self, data: &[u8], now: Instant) -> usize {
        self.last_now = self.last_now.max(now);
        let n = data.len().min(self.client_window());
        self.input.extend(&data[..n]);
        self.client_in += n as u64;
        n
    }
    /// The client sent FIN: forward it to every live replica after its input.
    pub fn client_fin(&mut self, now: Instant) {
        if !self.client_fin {
            let lead = self
                .reps
                .iter()
                .filter(|r| r.voting())
                .map(|r| r.prod)
                .max()
                .unwrap_or(0);
            self.at_client_fin = (self.released, lead);
        }
        self.client_fin = true;
        self.settle(now);
    }
    /// The client reset or vanished: every replica connection is to be reset.
    pub fn client_reset(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
        if self.client_end == ClientEnd::Reset {
            return;
        }
        self.client_end = ClientEnd::Reset;
        self.reset_all_voting();
    }
    /// The next client bytes not yet sent to replica `r` (a contiguous slice; may be a prefix of
    /// what is pending). Empty for a replica that is not live.
    pub fn replica_input(&self, r: ReplicaId) -> &[u8] {
        let rep = &self.reps[r];
        if !matches!(rep.state, ReplicaState::Live | ReplicaState::Finished) {
            return &[];
        }
        let view = self.input.view();
        view.range((rep.in_sent - self.in_base) as usize, view.len())
            .first_piece()
    }
    /// `n` bytes of `replica_input(r)` were written to replica `r`'s socket.
    ///
    /// Panics if `n` exceeds `replica_input(r).len()`.
    pub fn replica_input_sent(&mut self, r: ReplicaId, n: usize) {
        assert!(
            n <= self.replica_input(r).len(),
            "replica_input_sent past replica_input"
        );
        self.reps[r].in_sent += n as u64;
        self.trim_input();
        self.close_done_replicas();
    }
    /// True once replica `r` has been sent all client input and the client sent FIN: the caller
    /// closes the sending side of replica `r`'s socket.
    pub fn replica_input_fin(&self, r: ReplicaId) -> bool {
        let rep = &self.reps[r];
        self.client_fin
            && matches!(rep.state, ReplicaState::Live | ReplicaState::Finished)
            && rep.in_sent == self.client_in
    }

    // ---- replicas -> client ----

    /// The replica's connection is established.
    pub fn replica_connected(&mut self, r: ReplicaId, now: Instant) {
        let rep = &mut self.reps[r];
        if rep.state == ReplicaState::Connecting {
            rep.state = ReplicaState::Live;
            rep.connected = true;
            self.settle(now);
        }
    }
    /// The replica refused the connection (or connect failed).
    ///
    /// Blamed (`Refused`) once a quorum has connected; if a quorum refuses, the client is reset
    /// and nobody is blamed.
    pub fn replica_refused(&mut self, r: ReplicaId, now: Instant) {
        let rep = &mut self.reps[r];
        if rep.state == ReplicaState::Connecting {
            rep.state = ReplicaState::Gone;
            rep.refused = true;
            self.drop_out(r);
            self.settle(now);
        }
    }
    /// How many more output bytes of replica `r` can be accepted now (0 = stop reading it).
    pub fn replica_window(&self, r: ReplicaId) -> usize {
        let rep = &self.reps[r];
        if !rep.active() || rep.fin.is_some() || self.client_end == ClientEnd::Reset {
            return 0;
        }
        self.cfg.buffer_limit.saturating_sub(self.unvoted(r).len())
    }
    /// Accept replica output bytes (at most `replica_window(r)`); returns how many were taken.
    pub fn push_replica(&mut self, r: ReplicaId, data: &[u8], now: Instant) -> usize {
        let take = data.len().min(self.replica_window(r));
        if take == 0 {
            return 0;
        }
        let mut data = &data[..take];
        // Fast path: bytes of a replica behind the released stream are checked in place.
        if self.unvoted(r).is_empty() && self.reps[r].prod < self.released {
            let start = self.reps[r].prod;
            let n = data.len().min((self.released - start) as usize);
            let from = (start - self.rel_base) as usize;
            let same = common_prefix(data[..n].into(), self.rel.view().range(from, from + n));
            if same < n {
                self.reps[r].prod += same as u64;
                self.reps[r].checked += same as u64;
                self.mismatch(r, start + same as u64, data[same], now);
                self.settle(now);
                return take;
            }
            let rep = &mut self.reps[r];
            rep.prod += n as u64;
            rep.checked += n as u64;
            data = &data[n..];
        }
        // Fast path: a second replica confirms a leader's buffered bytes without being buffered.
        let n = self.confirm_in_place(r, data);
        data = &data[n..];
        // Fast path: the primary's own bytes go straight to the client output.
        if self.primary == Some(r)
            && self.unvoted(r).is_empty()
            && self.reps[r].checked == self.released
            && self.client_end == ClientEnd::Open
        {
            let n = data.len().min(self.release_room());
            if self.owner != Some(r) {
                self.evict_owner();
            }
            self.rel.extend(&data[..n]);
            self.released += n as u64;
            let rep = &mut self.reps[r];
            rep.prod += n as u64;
            rep.checked += n as u64;
            data = &data[n..];
        }
        self.append_out(r, data);
        self.settle(now);
        take
    }
    /// The replica closed its output (FIN).
    pub fn replica_fin(&mut self, r: ReplicaId, now: Instant) {
        let rep = &mut self.reps[r];
        if rep.voting() && rep.fin.is_none() && rep.state != ReplicaState::Connecting {
            rep.fin = Some(rep.prod);
            self.settle(now);
        }
    }
    /// The replica reset the connection (RST, or its link/process died).
    ///
    /// Masked while it is a minority: it is blamed (`Reset`) once a lead quorum has produced more
    /// output than it had, a FIN was voted, or the straggler timeout passed without a quorum of
    /// resets; a quorum of resets resets the client and nobody is blamed. Never blamed once the
    /// replica had all client input and the client's FIN (a service may abort on the half-close).
    pub fn replica_reset(&mut self, r: ReplicaId, now: Instant) {
        let half_closed = self.half_closed(r);
        let rep = &mut self.reps[r];
        if !rep.voting() {
            return;
        }
        if rep.state == ReplicaState::Finished || half_closed {
            // Its stream was complete and agreed, or it had the client's FIN (a service may
            // abort on the half-close): a reset now only ends its connection.
            rep.state = ReplicaState::Gone;
        } else {
            rep.state = ReplicaState::Gone;
            rep.reset_at = Some((now, rep.prod));
        }
        rep.suspect = None;
        self.drop_out(r);
        self.settle(now);
    }
    /// Voted bytes ready for the client (a contiguous slice; may be a prefix of what is ready).
    pub fn client_output(&self) -> &[u8] {
        if self.client_end == ClientEnd::Reset {
            return &[];
        }
        let from = (self.client_sent - self.rel_base) as usize;
        let to = (self.released - self.rel_base) as usize;
        self.rel.view().range(from, to).first_piece()
    }
    /// `n` bytes of `client_output()` were written to the client socket.
    ///
    /// Panics if `n` exceeds `client_output().len()`.
    pub fn client_output_sent(&mut self, n: usize) {
        assert!(
            n <= self.client_output().len(),
            "client_output_sent past client_output"
        );
        self.client_sent += n as u64;
        self.trim_released();
        // Room freed: release what is waiting.
        self.settle(self.last_now);
    }

    // ---- time, events, state ----

    /// The next instant at which `handle_timeout` must be called, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.client_end == ClientEnd::Reset {
            return None;
        }
        (0..self.reps.len()).filter_map(|r| self.deadline(r)).min()
    }
    /// Advance time: straggler deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.client_end == ClientEnd::Reset {
            return;
        }
        for r in 0..self.reps.len() {
            if self.deadline(r).is_some_and(|d| d <= now) {
                let kind = if self.reps[r].reset_at.is_some() {
                    FaultKind::Reset
                } else {
                    FaultKind::Straggler
                };
                self.fault(r, kind, now);
            }
        }
        self.settle(now);
    }
    /// The next event for the caller, if any.
    pub fn poll_event(&mut self) -> Option<VoterEvent> {
        self.events.pop_front()
    }
    /// Where replica `r` stands.
    pub fn replica_state(&self, r: ReplicaId) -> ReplicaState {
        self.reps[r].state
    }
    /// True when the connection is over on every side (nothing left to send, every side closed
    /// or reset): the caller can drop the voter.
    pub fn is_finished(&self) -> bool {
        let client_done = match self.client_end {
            ClientEnd::Open => false,
            ClientEnd::Closing => self.client_sent == self.released,
            ClientEnd::Reset => true,
        };
        client_done
            && self.events.is_empty()
            && self
                .reps
                .iter()
                .enumerate()
                .all(|(r, rep)| match rep.state {
                    ReplicaState::Faulty | ReplicaState::Gone => true,
                    ReplicaState::Finished => self.replica_input_fin(r),
                    ReplicaState::Connecting | ReplicaState::Live => false,
                })
    }
    /// Counters.
    pub fn stats(&self) -> VoterStats {
        VoterStats {
            client_bytes_in: self.client_in,
            bytes_released: self.released,
        }
    }
    /// Bytes held in memory right now (input buffer, unvoted replica output, released buffer);
    /// at most `(N + 2) * buffer_limit`.
    pub fn buffered_bytes(&self) -> usize {
        self.input.len() + self.rel.len() + self.reps.iter().map(|r| r.out.len()).sum::<usize>()
    }
    /// Unvoted output bytes held for replica `r` (at most `buffer_limit`).
    pub fn replica_unvoted(&self, r: ReplicaId) -> usize {
        self.unvoted(r).len()
    }
    /// Client bytes held for replicas that have not been sent them yet (at most `buffer_limit`).
    pub fn input_buffered(&self) -> usize {
        self.input.len()
    }
    /// The current primary under `PrimaryBackup` (changes on failover), `None` otherwise.
    pub fn primary(&self) -> Option<ReplicaId> {
        self.primary
    }

    // ---- internals ----

    /// Replica `r`'s output bytes `[checked, prod)` not yet voted past.
    fn unvoted(&self, r: ReplicaId) -> View<'_> {
        if self.owner == Some(r) {
            let rel = self.rel.view();
            rel.range((self.released - self.rel_base) as usize, rel.len())
        } else {
            self.reps[r].out.view()
        }
    }

    /// Forget replica `r`'s unvoted output (it left the vote).
    fn drop_out(&mut self, r: ReplicaId) {
        if self.owner == Some(r) {
            self.rel.truncate((self.released - self.rel_base) as usize);
            self.owner = None;
        }
        self.reps[r].out.free();
    }

    /// Move the owner's unvoted bytes from `rel` to its own buffer, so that `rel` can take
    /// released bytes from elsewhere (rare: the owner is preferred whenever it agrees).
    fn evict_owner(&mut self) {
        if let Some(o) = self.owner.take() {
            let from = (self.released - self.rel_base) as usize;
            let rel = self.rel.view();
            self.reps[o].out.extend_view(rel.range(from, rel.len()));
            self.rel.truncate(from);
        }
    }

    /// Buffer `data` as replica `r`'s next unvoted output. A replica at `released` with nothing
    /// buffered becomes the owner (its bytes go into `rel`, to be released in place) unless
    /// another owner still has unvoted bytes there.
    fn append_out(&mut self, r: ReplicaId, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let owner_tail_empty = self
            .owner
            .is_none_or(|o| self.reps[o].prod == self.released);
        let rep = &self.reps[r];
        if self.owner != Some(r)
            && rep.out.is_empty()
            && rep.checked == self.released
            && owner_tail_empty
        {
            self.owner = Some(r);
        }
        if self.owner == Some(r) {
            self.rel.extend(data);
        } else {
            self.reps[r].out.extend(data);
        }
        self.reps[r].prod += data.len() as u64;
    }

    fn release_room(&self) -> usize {
        let used = (self.released - self.rel_base) as usize;
        self.cfg.buffer_limit.saturating_sub(used)
    }

    fn trim_input(&mut self) {
        let min = self
            .reps
            .iter()
            .filter(|r| r.voting())
            .map(|r| r.in_sent)
            .min()
            .unwrap_or(self.client_in);
        if min > self.in_base {
            self.input.consume((min - self.in_base) as usize);
            self.in_base = min;
        }
    }

    fn trim_released(&mut self) {
        let min = self
            .reps
            .iter()
            .filter(|r| r.active())
            .map(|r| r.checked.min(self.released))
            .min()
            .unwrap_or(self.released)
            .min(self.client_sent);
        if min > self.rel_base {
            self.rel.consume((min - self.rel_base) as usize);
            self.rel_base = min;
        }
    }

    fn push_fault(&mut self, r: ReplicaId, kind: FaultKind, now: Instant) {
        self.reps[r].reported = true;
        self.events.push_back(VoterEvent::Fault(Fault {
            replica: r,
            kind,
            at: now,
        }));
    }

    /// Report `r` (once) and cut it off.
    fn fault(&mut self, r: ReplicaId, kind: FaultKind, now: Instant) {
        if self.reps[r].reported {
            return;
        }
        self.push_fault(r, kind, now);
        let rep = &mut self.reps[r];
        let was_voting = rep.voting();
        rep.state = ReplicaState::Faulty;
        rep.suspect = None;
        self.drop_out(r);
        if was_voting {
            self.events.push_back(VoterEvent::ResetReplica(r));
        }
        self.trim_input();
    }

    /// Replica `r` had all client input and the client's FIN: from there a service may end its
    /// output anywhere (nginx aborts a response in progress when it sees the half-close), so
    /// where and how its stream ends is no evidence of a fault. Its bytes are still voted.
    fn half_closed(&self, r: ReplicaId) -> bool {
        self.client_fin && self.reps[r].in_sent == self.client_in
    }

    /// Others ending their output at `end` while a replica goes on may be the service cutting a
    /// response short on the client's FIN, unless they had ended there before it (the released
    /// stream was at `end` when the FIN came) while a replica was already beyond it (it floods).
    fn cut_short_after_client_fin(&self, end: u64) -> bool {
        let (released, lead) = self.at_client_fin;
        self.client_fin && (end > released || lead <= end)
    }

    /// Replica `r` leaves the vote without blame (its end differs after the client's FIN);
    /// `abort`: its connection is reset too (it is still sending).
    fn excuse(&mut self, r: ReplicaId, abort: bool) {
        let rep = &mut self.reps[r];
        let was_voting = rep.voting();
        rep.state = ReplicaState::Gone;
        rep.suspect = None;
        self.drop_out(r);
        if abort && was_voting {
            self.events.push_back(VoterEvent::ResetReplica(r));
        }
        self.trim_input();
    }

    fn reset_all_voting(&mut self) {
        for r in 0..self.reps.len() {
            if self.reps[r].voting() {
                self.reps[r].state = ReplicaState::Gone;
                self.drop_out(r);
                self.events.push_back(VoterEvent::ResetReplica(r));
            }
        }
        self.input.free();
        self.in_base = self.client_in;
        self.rel.free();
        self.rel_base = self.released;
        self.client_sent = self.released;
    }

    /// Abort the client: fail-stop (`no_quorum`: report `NoQuorum` once) or a quorum reset/refused.
    fn reset_client(&mut self, no_quorum: bool, now: Instant) {
        if self.client_end != ClientEnd::Open {
            return;
        }
        // After the client's FIN, replicas ending differently is the service reacting to the
        // half-close (see `check_fins`), not a fault: the client is reset, nobody is blamed.
        if no_quorum && !self.no_quorum_reported && !self.client_fin {
            self.no_quorum_reported = true;
            let blame = (0..self.reps.len())
                .find(|&r| self.reps[r].voting() && !self.reps[r].reported)
                .or_else(|| (0..self.reps.len()).find(|&r| !self.reps[r].reported));
            if let Some(r) = blame {
                self.push_fault(r, FaultKind::NoQuorum, now);
            }
        }
        self.client_end = ClientEnd::Reset;
        self.events.push_back(VoterEvent::ResetClient);
        self.reset_all_voting();
    }

    /// Replica `r` has `byte` at output `offset` where the released stream differs.
    fn mismatch(&mut self, r: ReplicaId, offset: u64, byte: u8, now: Instant) {
        let backup =
            matches!(self.cfg.policy, Policy::PrimaryBackup { .. }) && self.primary != Some(r);
        if backup {
            self.reps[r].suspect = Some((offset, byte));
            self.drop_out(r);
        } else {
            self.fault(r, FaultKind::ValueMismatch { offset }, now);
        }
    }

    /// Check every active replica's buffered bytes below `released` against the released stream.
    fn check_lagging(&mut self, now: Instant) {
        for r in 0..self.reps.len() {
            let rep = &self.reps[r];
            if !rep.active() || rep.checked >= rep.prod.min(self.released) {
                continue;
            }
            // Not the owner: the owner is at `released`.
            let n = (rep.prod.min(self.released) - rep.checked) as usize;
            let from = (rep.checked - self.rel_base) as usize;
            let out = rep.out.view();
            let same = common_prefix(out.range(0, n), self.rel.view().range(from, from + n));
            let byte = out.get(same);
            let offset = rep.checked + same as u64;
            let rep = &mut self.reps[r];
            rep.out.consume(same);
            rep.checked += same as u64;
            if same < n {
                self.mismatch(r, offset, byte.unwrap_or_default(), now);
            }
        }
    }

    /// Release `n` unvoted bytes of replica `c` (it is at `released`): in place if it is the
    /// owner, else copied from its buffer.
    fn release_from(&mut self, c: ReplicaId, n: usize) {
        if self.owner != Some(c) {
            self.evict_owner();
            let rep = &mut self.reps[c];
            self.rel.extend_view(rep.out.view().range(0, n));
            rep.out.consume(n);
        }
        self.reps[c].checked += n as u64;
        self.released += n as u64;
    }

    /// Release `n` bytes on which the replicas `agreeing` (all at `released`, at least one) agree:
    /// from the owner in place if it is one of them, else from the first; the others drop theirs.
    fn release_agreed(&mut self, agreeing: &[ReplicaId], n: usize) {
        let source = self
            .owner
            .filter(|o| agreeing.contains(o))
            .unwrap_or(agreeing[0]);
        self.release_from(source, n);
        for &r in agreeing.iter().filter(|&&r| r != source) {
            let rep = &mut self.reps[r];
            rep.out.consume(n);
            rep.checked += n as u64;
        }
    }

    /// When two agreeing replicas make a quorum (Majority with quorum 2, Unanimous with two
    /// replicas left), compare `data` of replica `r` (which is at `released` with nothing buffered)
    /// straight against a leader's buffered bytes and release the agreeing prefix from the leader.
    /// Returns how many bytes of `data` were confirmed; the rest goes through the general vote.
    fn confirm_in_place(&mut self, r: ReplicaId, data: &[u8]) -> usize {
        let pair = match self.cfg.policy {
            Policy::Majority => self.quorum == 2,
            Policy::Unanimous => self.reps.iter().filter(|x| x.active()).count() == 2,
            Policy::PrimaryBackup { .. } => false,
        };
        if !pair
            || self.client_end != ClientEnd::Open
            || !self.unvoted(r).is_empty()
            || self.reps[r].checked != self.released
        {
            return 0;
        }
        let leads = |c: ReplicaId| {
            let rc = &self.reps[c];
            c != r && rc.active() && rc.checked == self.released && !self.unvoted(c).is_empty()
        };
        // The owner first: its bytes are released in place.
        let leader = self
            .owner
            .filter(|&o| leads(o))
            .or_else(|| (0..self.reps.len()).find(|&c| leads(c)));
        let Some(c) = leader else { return 0 };
        let n = data.len().min(self.release_room());
        let k = common_prefix(data[..n].into(), self.unvoted(c));
        if k > 0 {
            self.release_from(c, k);
            let rep = &mut self.reps[r];
            rep.prod += k as u64;
            rep.checked += k as u64;
        }
        k
    }

    /// The `k`-th largest output offset among the active replicas (`k` >= 1), if there are `k`
    /// of them (no allocation: N is small).
    fn kth_largest_prod(&self, k: usize) -> Option<u64> {
        let prods = || self.reps.iter().filter(|r| r.active()).map(|r| r.prod);
        prods()
            .filter(|&p| prods().filter(|&o| o >= p).count() >= k)
            .max()
    }

    /// Replicas that have output at `released`, ready to vote on it.
    fn at_released(&self) -> Vec<ReplicaId> {
        (0..self.reps.len())
            .filter(|&r| {
                let rep = &self.reps[r];
                rep.active() && rep.checked == self.released && rep.prod > self.released
            })
            .collect()
    }

    fn vote_majority(&mut self, now: Instant) {
        let Some(f) = self.kth_largest_prod(self.quorum) else {
            return;
        };
        let cap = f.min(self.released + self.release_room() as u64);
        if cap > self.released {
            let cand = self.at_released();
            let max = (cap - self.released) as usize;
            let mut best: Option<Extent> = None;
            for &c in &cand {
                let out = self.unvoted(c);
                let cs = out.range(0, max.min(out.len()));
                let mut agree: Vec<(ReplicaId, usize)> = cand
                    .iter()
                    .filter(|&&o| o != c)
                    .map(|&o| (o, common_prefix(cs, self.unvoted(o))))
                    .collect();
                agree.sort_unstable_by_key(|a| std::cmp::Reverse(a.1));
                let ext = if self.quorum == 1 {
                    cs.len()
                } else {
                    agree.get(self.quorum - 2).map_or(0, |a| a.1)
                };
                if best.as_ref().is_none_or(|b| ext > b.0) {
                    let done = ext == max;
                    best = Some((ext, c, agree));
                    if done {
                        break;
                    }
                }
            }
            if let Some((ext, c, agree)) = best.filter(|b| b.0 > 0) {
                let agreeing: Vec<ReplicaId> = std::iter::once(c)
                    .chain(agree.iter().filter(|a| a.1 >= ext).map(|a| a.0))
                    .collect();
                self.release_agreed(&agreeing, ext);
                return;
            }
        }
        // Nothing released: can any value still reach a quorum at `released`?
        if self.client_end != ClientEnd::Open || self.release_room() == 0 {
            return;
        }
        let o = self.released;
        let mut values: Vec<(Option<u8>, usize)> = Vec::new();
        let mut pending = 0;
        for (r, rep) in self.reps.iter().enumerate().filter(|(_, r)| r.active()) {
            let v = if rep.checked == o && rep.prod > o {
                self.unvoted(r).get(0)
            } else if rep.fin == Some(o) {
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
        if top + pending < self.quorum {
            self.reset_client(true, now);
        }
    }

    fn vote_unanimous(&mut self, now: Instant) {
        let live: Vec<ReplicaId> = (0..self.reps.len())
            .filter(|&r| self.reps[r].active())
            .collect();
        let Some(&c) = live.first() else { return };
        let o = self.released;
        // Divergence in bytes, within what every replica has produced (and what can be released).
        let f = live.iter().map(|&r| self.reps[r].prod).min().unwrap_or(o);
        let cap = f.min(o + self.release_room() as u64);
        if cap > o {
            let max = (cap - o) as usize;
            let cs = self.unvoted(c).range(0, max);
            let ext = live
                .iter()
                .map(|&r| common_prefix(cs, self.unvoted(r).range(0, max)))
                .min()
                .unwrap_or(0);
            if ext < max {
                self.unanimous_divergence(o + ext as u64, now);
                return;
            }
            self.release_agreed(&live, max);
        }
        // FIN against bytes at the same offset.
        let o = self.released;
        let fin_here = live.iter().any(|&r| self.reps[r].fin == Some(o));
        let bytes_here = live.iter().any(|&r| self.reps[r].prod > o);
        if fin_here && bytes_here {
            self.unanimous_divergence(o, now);
        }
    }

    /// Unanimous policy saw replicas differ at `o`: blame a minority if a strict majority of the
    /// live replicas agrees there, else report `NoQuorum`; the client is reset either way.
    fn unanimous_divergence(&mut self, o: u64, now: Instant) {
        let live: Vec<ReplicaId> = (0..self.reps.len())
            .filter(|&r| self.reps[r].active())
            .collect();
        let value = |r: ReplicaId| -> Option<Option<u8>> {
            let rep = &self.reps[r];
            if rep.prod > o {
                Some(self.unvoted(r).get((o - rep.checked) as usize))
            } else if rep.fin == Some(o) {
                Some(None)
            } else {
                None
            }
        };
        let vals: Vec<(ReplicaId, Option<Option<u8>>)> =
            live.iter().map(|&r| (r, value(r))).collect();
        let majority = vals.iter().find_map(|(_, v)| {
            let v = (*v)?;
            let n = vals.iter().filter(|x| x.1 == Some(v)).count();
            (2 * n > live.len()).then_some(v)
        });
        if let Some(m) = majority {
            for (r, v) in vals {
                let Some(v) = v else { continue };
                if v == m {
                    continue;
                }
                let kind = match (v, m) {
                    (None, _) => FaultKind::EarlyClose { offset: o },
                    (Some(_), None) => FaultKind::Flood,
                    (Some(_), Some(_)) => FaultKind::ValueMismatch { offset: o },
                };
                // After the half-close, ends may differ (output beyond the others' FIN only where
                // they were still producing output when the client's FIN came); bytes may not.
                let excused = match kind {
                    FaultKind::EarlyClose { .. } => self.half_closed(r),
                    FaultKind::Flood => self.cut_short_after_client_fin(o),
                    _ => false,
                };
                if !excused {
                    self.fault(r, kind, now);
                }
            }
            self.reset_client(false, now);
        } else {
            self.reset_client(true, now);
        }
    }

    fn vote_primary(&mut self) {
        let Some(p) = self.primary else { return };
        let rep = &self.reps[p];
        let unvoted = self.unvoted(p).len();
        if rep.active() && rep.checked == self.released && unvoted > 0 {
            let n = unvoted.min(self.release_room());
            if n > 0 {
                self.release_from(p, n);
            }
        }
    }

    /// PrimaryBackup: judge the earliest backup divergence once every other backup has reached it.
    fn resolve_suspects(&mut self, now: Instant) {
        let Some(o) = self
            .reps
            .iter()
            .filter(|r| r.voting())
            .filter_map(|r| r.suspect.map(|s| s.0))
            .min()
        else {
            return;
        };
        let Some(p) = self.primary else { return };
        let backups = || (0..self.reps.len()).filter(move |&b| b != p);
        let waiting = backups().any(|b| {
            let rep = &self.reps[b];
            rep.active() && rep.checked <= o && rep.fin.is_none()
        });
        if waiting {
            return;
        }
        let primary_votes = 1 + backups()
            .filter(|&b| self.reps[b].active() && self.reps[b].checked > o)
            .count();
        let suspects: Vec<(ReplicaId, u8)> = backups()
            .filter(|&b| self.reps[b].voting())
            .filter_map(|b| match self.reps[b].suspect {
                Some((so, byte)) if so == o => Some((b, byte)),
                _ => None,
            })
            .collect();
        let top = suspects
            .iter()
            .map(|s| suspects.iter().filter(|x| x.1 == s.1).count())
            .max()
            .unwrap_or(0);
        if top > primary_votes {
            // The backups agree with each other against the primary: the client already got the
            // primary's bytes, so the connection cannot be repaired.
            self.fault(p, FaultKind::ValueMismatch { offset: o }, now);
            self.reset_client(false, now);
        } else {
            for (b, _) in suspects {
                self.fault(b, FaultKind::ValueMismatch { offset: o }, now);
            }
        }
    }

    /// PrimaryBackup: replace a primary that is no longer active by the active replica closest to
    /// the released offset.
    fn failover(&mut self) {
        let Some(p) = self.primary else { return };
        if self.reps[p].active() {
            return;
        }
        let next = (0..self.reps.len())
            .filter(|&r| self.reps[r].active())
            .max_by_key(|&r| (self.reps[r].checked, std::cmp::Reverse(r)));
        if let Some(n) = next {
            self.primary = Some(n);
        }
    }

    fn decide_fin(&mut self) {
        self.fin_at = Some(self.released);
        self.client_end = ClientEnd::Closing;
        self.events.push_back(VoterEvent::CloseClient);
    }

    /// FIN voting, early closes, floods past the voted FIN.
    fn check_fins(&mut self, now: Instant) {
        let o = self.released;
        if self.fin_at.is_none() && self.client_end == ClientEnd::Open {
            let agreed = |rep: &Replica| rep.active() && rep.fin == Some(o) && rep.checked == o;
            let decided = match self.cfg.policy {
                Policy::Majority => self.reps.iter().filter(|r| agreed(r)).count() >= self.quorum,
                Policy::Unanimous => {
                    self.reps.iter().any(|r| r.active())
                        && self.reps.iter().filter(|r| r.active()).all(agreed)
                }
                // The primary's FIN needs a live backup's confirmation (if any backup is left):
                // a crashed primary's kernel closes its socket with an ordinary FIN.
                Policy::PrimaryBackup { .. } => self.primary.is_some_and(|p| {
                    let mut backups = self
                        .reps
                        .iter()
                        .enumerate()
                        .filter(|&(r, rep)| r != p && rep.active());
                    agreed(&self.reps[p])
                        && (backups.clone().next().is_none() || backups.any(|(_, b)| agreed(b)))
                }),
            };
            if decided {
                self.decide_fin();
            } else if let (Policy::PrimaryBackup { .. }, Some(p)) = (self.cfg.policy, self.primary)
            {
                // A backup went on past the primary's FIN: the primary closed early; fail over.
                let primary_fin = self.reps[p].active()
                    && self.reps[p].fin == Some(o)
                    && self.reps[p].checked == o;
                if primary_fin
                    && self
                        .reps
                        .iter()
                        .enumerate()
                        .any(|(r, b)| r != p && b.active() && b.prod > o)
                {
                    if self.half_closed(p) {
                        self.excuse(p, true);
                    } else {
                        self.fault(p, FaultKind::EarlyClose { offset: o }, now);
                    }
                    self.failover();
                    // Its FIN no longer leads: backups are not late for a FIN nobody else sent.
                    self.fin_lead_at = None;
                }
            }
        }
        for r in 0..self.reps.len() {
            let rep = &self.reps[r];
            if !rep.active() {
                continue;
            }
            if let Some(f) = rep.fin.filter(|&f| f < o) {
                if self.half_closed(r) {
                    self.excuse(r, false);
                } else {
                    self.fault(r, FaultKind::EarlyClose { offset: f }, now);
                }
            } else if let Some(end) = self.fin_at {
                if rep.prod > end {
                    if self.cut_short_after_client_fin(end) {
                        self.excuse(r, true);
                    } else {
                        self.fault(r, FaultKind::Flood, now);
                    }
                } else if rep.fin == Some(end)
                    && rep.checked == end
                    && rep.state != ReplicaState::Finished
                {
                    self.reps[r].state = ReplicaState::Finished;
                }
            }
        }
    }

    /// Resets: a quorum of them resets the client; a minority is blamed once the others went on.
    fn check_resets(&mut self, now: Instant) {
        let unjudged = |rep: &Replica| rep.reset_at.is_some() && !rep.reported;
        if self.fin_at.is_none() && self.reps.iter().filter(|r| unjudged(r)).count() >= self.quorum
        {
            self.reset_client(false, now);
            return;
        }
        for r in 0..self.reps.len() {
            let Some((_, at)) = self.reps[r].reset_at.filter(|_| !self.reps[r].reported) else {
                continue;
            };
            let ahead = self
                .reps
                .iter()
                .filter(|o| o.active() && o.prod > at)
                .count();
            if self.fin_at.is_some() || ahead >= self.lead_quorum {
                self.fault(r, FaultKind::Reset, now);
            }
        }
    }

    fn check_connections(&mut self, now: Instant) {
        let refused = self.reps.iter().filter(|r| r.refused).count();
        let connected = self.reps.iter().filter(|r| r.connected).count();
        if self.conn_lead_at.is_none() && refused + connected >= self.lead_quorum {
            self.conn_lead_at = Some(now);
        }
        if refused >= self.quorum {
            self.reset_client(false, now);
        } else if connected >= self.quorum {
            for r in 0..self.reps.len() {
                if self.reps[r].refused {
                    self.fault(r, FaultKind::Refused, now);
                }
            }
        }
    }

    fn vote(&mut self, now: Instant) {
        if self.client_end != ClientEnd::Open {
            return;
        }
        match self.cfg.policy {
            Policy::Majority => self.vote_majority(now),
            Policy::Unanimous => self.vote_unanimous(now),
            Policy::PrimaryBackup { .. } => self.vote_primary(),
        }
    }

    /// Bring every decision up to date after an input.
    fn settle(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
        loop {
            if self.client_end == ClientEnd::Reset {
                return;
            }
            self.trim_released();
            let before = self.signature();
            self.check_connections(now);
            self.failover();
            self.check_lagging(now);
            self.vote(now);
            self.check_lagging(now);
            self.resolve_suspects(now);
            self.check_fins(now);
            self.check_resets(now);
            self.failover();
            let voting = self.reps.iter().filter(|r| r.active()).count();
            if self.client_end == ClientEnd::Open && voting < self.needed {
                self.reset_client(true, now);
            }
            self.trim_released();
            if before == self.signature() {
                break;
            }
        }
        self.track_lead(now);
        self.close_done_replicas();
    }

    /// What `settle` iterates on until it stops changing.
    fn signature(&self) -> [u64; 6] {
        let suspects = self.reps.iter().filter(|r| r.suspect.is_some()).count();
        let active = self.reps.iter().filter(|r| r.active()).count();
        [
            self.released,
            self.rel_base,
            self.events.len() as u64,
            self.client_end as u64,
            self.primary.map_or(u64::MAX, |p| p as u64),
            (suspects * self.reps.len() + active) as u64,
        ]
    }

    /// Straggler clock: remember when the lead quorum reached each output offset and FIN.
    fn track_lead(&mut self, now: Instant) {
        if let Some(f) = self.kth_largest_prod(self.lead_quorum) {
            if f < self.frontier {
                // A replica that led was cut off: the others were never behind its bytes. Forget
                // them; the current lead offset counts from now (a later deadline, never earlier).
                while self.milestones.back().is_some_and(|m| m.0 > f) {
                    self.milestones.pop_back();
                }
                let last = self.milestones.back().map_or(0, |m| m.0);
                self.frontier = last;
            }
            if f > self.frontier {
                self.frontier = f;
                match self.milestones.back_mut() {
                    Some(last) if last.1 == now => last.0 = f,
                    _ => self.milestones.push_back((f, now)),
                }
            }
        }
        if let Some(min) = self
            .reps
            .iter()
            .filter(|r| r.active())
            .map(|r| r.prod)
            .min()
        {
            while self.milestones.front().is_some_and(|m| m.0 <= min) {
                self.milestones.pop_front();
            }
        }
        let fins = self
            .reps
            .iter()
            .filter(|r| r.active() && r.fin.is_some())
            .count();
        if self.fin_lead_at.is_none() && fins >= self.lead_quorum {
            self.fin_lead_at = Some(now);
        }
    }

    /// When replica `r` is cut off unless it catches up (or, after a reset, is blamed).
    fn deadline(&self, r: ReplicaId) -> Option<Instant> {
        let rep = &self.reps[r];
        let t = self.cfg.straggler_timeout;
        if rep.reported {
            return None;
        }
        if let Some((at, _)) = rep.reset_at {
            return Some(at + t);
        }
        if !rep.active() || rep.state == ReplicaState::Finished || rep.fin.is_some() {
            return None;
        }
        if rep.state == ReplicaState::Connecting {
            return self.conn_lead_at.map(|at| at + t);
        }
        let data = (rep.prod < self.frontier)
            .then(|| {
                self.milestones
                    .iter()
                    .find(|m| m.0 > rep.prod)
                    .map(|m| m.1 + t)
            })
            .flatten();
        let fin = self.fin_lead_at.map(|at| at + t);
        data.into_iter().chain(fin).min()
    }

    /// `CloseReplica` for replicas whose output is voted complete and whose input is all sent.
    fn close_done_replicas(&mut self) {
        for r in 0..self.reps.len() {
            if self.reps[r].state == ReplicaState::Finished
                && !self.reps[r].closed
                && self.replica_input_fin(r)
            {
                self.reps[r].closed = true;
                self.events.push_back(VoterEvent::CloseReplica(r));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `bytes` as a two-piece view split at `at`.
    fn split(bytes: &[u8], at: usize) -> View<'_> {
        View {
            head: &bytes[..at],
            tail: &bytes[at..],
        }
    }

    #[test]
    fn common_prefix_across_pieces() {
        let a: Vec<u8> = (0..100).collect();
        let mut b = a.clone();
        b[70] = 0xff;
        for sa in [0, 1, 50, 70, 71, 100] {
            for sb in [0, 33, 69, 70, 100] {
                assert_eq!(
                    common_prefix(split(&a, sa), split(&b, sb)),
                    70,
                    "split {sa}/{sb}"
                );
                assert_eq!(
                    common_prefix(split(&a, sa), split(&a, sb)),
                    100,
                    "split {sa}/{sb}"
                );
                assert_eq!(
                    common_prefix(split(&a[..40], sa.min(40)), split(&b, sb)),
                    40,
                    "split {sa}/{sb}"
                );
            }
        }
    }

    #[test]
    fn view_range_and_get_across_pieces() {
        let a: Vec<u8> = (0..10).collect();
        let v = split(&a, 4);
        let r = v.range(2, 7);
        assert_eq!((r.head, r.tail), (&a[2..4], &a[4..7]));
        assert_eq!((r.get(0), r.get(3), r.get(5)), (Some(2), Some(5), None));
        assert_eq!(v.range(5, 9).first_piece(), &a[5..9]);
        assert!(v.range(4, 4).is_empty());
    }

    #[test]
    fn ring_keeps_order_across_wraparound() {
        let mut ring = Ring(VecDeque::with_capacity(8));
        let cap = ring.0.capacity();
        ring.extend(&vec![0; cap]);
        ring.consume(cap - 2);
        let more: Vec<u8> = (1..=5).collect();
        ring.extend(&more);
        let v = ring.view();
        assert!(!v.tail.is_empty(), "the appended bytes wrap around");
        let mut want = vec![0, 0];
        want.extend(&more);
        assert_eq!([v.head, v.tail].concat(), want);
        assert_eq!(common_prefix(v, want.as_slice().into()), want.len());
        ring.truncate(3);
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.view().get(2), Some(1));
    }
}
