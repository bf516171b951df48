//! The [`Voter`] of one client connection and its entry points: bytes, connection events and the
//! current time in; bytes to send, the next deadline and events out.

use std::collections::VecDeque;
use std::time::Instant;

use super::endings::ClientEnd;
use super::input::{AtClientFin, ClientInput};
use super::membership::{Bar, Role};
use super::release::Released;
use super::replica::{Handshake, PendingReset, Replica, Verdict};
use super::straggler::{Delay, StragglerClock};
use super::{FaultKind, Policy, ReplicaId, ReplicaState, VoterConfig, VoterEvent, VoterStats};

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
    /// The settings.
    pub(super) cfg: VoterConfig,
    /// Every replica, in config order.
    pub(super) reps: Vec<Replica>,
    /// floor(N/2)+1: byte quorum (Majority) and connection-event quorum (all policies).
    pub(super) quorum: usize,
    /// How many replicas must be ahead of a replica for it to be "behind" (straggler clock).
    pub(super) lead_quorum: usize,
    /// Fewest voting replicas with which the policy can go on.
    pub(super) needed: usize,
    /// Client bytes not yet sent to every replica.
    pub(super) input: ClientInput,
    /// The released stream.
    pub(super) rel: Released,
    /// How the client side stands.
    pub(super) client_end: ClientEnd,
    /// Output offset of the voted FIN.
    pub(super) fin_at: Option<u64>,
    /// PrimaryBackup: the current primary.
    pub(super) primary: Option<ReplicaId>,
    /// When the lead reached each output offset, connected and sent FIN.
    pub(super) clock: StragglerClock,
    /// `NoQuorum` was reported (at most once per connection).
    pub(super) no_quorum_reported: bool,
    /// Events not yet polled.
    pub(super) events: VecDeque<VoterEvent>,
}

impl Voter {
    /// A voter for `replicas` replica streams, every one a [`Role::Member`]; all start
    /// `Connecting`.
    ///
    /// Panics if `replicas` is 0, if `buffer_limit` is 0, or if a `PrimaryBackup` primary is out of
    /// range (configuration errors). Like every entry point it takes the current time; no decision
    /// depends on it here.
    pub fn new(config: VoterConfig, replicas: usize, now: Instant) -> Voter {
        Voter::with_roles(config, &vec![Role::Member; replicas], now)
    }

    /// A voter for one replica stream per entry of `roles` (config order), each taking part in
    /// its role (see [`Role`]): Members and Observers start `Connecting`, Absent replicas `Gone`.
    /// The quorum stays that of the configured group (`roles.len()` replicas).
    ///
    /// Panics like [`Voter::new`].
    pub fn with_roles(config: VoterConfig, roles: &[Role], _now: Instant) -> Voter {
        let replicas = roles.len();
        assert!(replicas > 0, "a voter needs at least one replica");
        assert!(config.buffer_limit > 0, "buffer_limit must be > 0");
        if let Policy::PrimaryBackup { primary } = config.policy {
            assert!(primary < replicas, "primary {primary} out of range");
        }
        let bar = Bar::for_roles(config.policy, roles);
        Voter {
            reps: roles.iter().map(|&role| Replica::new(role)).collect(),
            quorum: bar.quorum,
            lead_quorum: bar.lead_quorum,
            needed: bar.needed,
            input: ClientInput::default(),
            rel: Released::new(config.buffer_limit),
            client_end: ClientEnd::Open,
            fin_at: None,
            primary: bar.primary,
            clock: StragglerClock::new(config.straggler_timeout),
            no_quorum_reported: false,
            events: VecDeque::new(),
            cfg: config,
        }
    }

    /// Number of replica streams.
    pub fn replicas(&self) -> usize {
        self.reps.len()
    }
    /// How replica `r` takes part in this connection.
    pub fn role(&self, r: ReplicaId) -> Role {
        self.reps[r].role
    }
    /// Output offset up to which replica `r`'s bytes are known to equal the released stream
    /// (for an observer: how much of the quorum's output it matched).
    pub fn agreed_output(&self, r: ReplicaId) -> u64 {
        self.reps[r].checked
    }

    // ---- client -> replicas ----

    /// How many more client bytes can be accepted now (0 = stop reading the client).
    pub fn client_window(&self) -> usize {
        if self.input.fin().is_some() || self.client_end == ClientEnd::Reset {
            return 0;
        }
        let backlog = self
            .reps
            .iter()
            .filter(|r| r.voting())
            .map(|r| (self.input.received() - r.in_sent) as usize)
            .max();
        match backlog {
            Some(b) => self.cfg.buffer_limit.saturating_sub(b),
            None => 0,
        }
    }
    /// Accept client bytes (at most `client_window()`); returns how many were taken. (No
    /// decision depends on `now` here.)
    pub fn push_client(&mut self, data: &[u8], _now: Instant) -> usize {
        let n = data.len().min(self.client_window());
        self.input.push(&data[..n]);
        n
    }
    /// The client sent FIN: forward it to every live replica after its input.
    pub fn client_fin(&mut self, now: Instant) {
        let lead = self
            .reps
            .iter()
            .filter(|r| r.voting())
            .map(|r| r.prod)
            .max()
            .unwrap_or(0);
        self.input.close(AtClientFin {
            released: self.rel.offset(),
            lead,
        });
        self.settle(now);
    }
    /// The client reset or vanished: every replica connection is to be reset. (No decision
    /// depends on `now` here.)
    pub fn client_reset(&mut self, _now: Instant) {
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
        if !rep.takes_input() {
            return &[];
        }
        self.input.pending(rep.in_sent)
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
        self.input.fin().is_some() && rep.takes_input() && rep.in_sent == self.input.received()
    }

    // ---- replicas -> client ----

    /// The replica's connection is established.
    pub fn replica_connected(&mut self, r: ReplicaId, now: Instant) {
        let rep = &mut self.reps[r];
        if rep.state == ReplicaState::Connecting {
            rep.state = ReplicaState::Live;
            rep.handshake = Handshake::Connected;
            // Lag reported on this connection so far fell in its handshake.
            rep.lagged_handshake = rep.delayed.is_some();
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
            rep.handshake = Handshake::Refused;
            self.drop_out(r);
            self.settle(now);
        }
    }
    /// How many more output bytes of replica `r` can be accepted now (0 = stop reading it).
    pub fn replica_window(&self, r: ReplicaId) -> usize {
        let rep = &self.reps[r];
        if !rep.compared() || rep.fin.is_some() || self.client_end == ClientEnd::Reset {
            return 0;
        }
        self.cfg.buffer_limit.saturating_sub(self.unvoted(r).len())
    }
    /// Accept replica output bytes (at most `replica_window(r)`); returns how many were taken.
    pub fn push_replica(&mut self, r: ReplicaId, data: &[u8], now: Instant) -> usize {
        let take = data.len().min(self.replica_window(r));
        if take > 0 {
            self.take_output(r, &data[..take], now);
            self.settle(now);
        }
        take
    }
    /// The replica's output does not frame as the service's protocol at output `offset`: it is
    /// reported ([`FaultKind::ProtocolError`]) and cut off, like a value mismatch.
    pub fn replica_protocol_error(
        &mut self,
        r: ReplicaId,
        offset: u64,
        reason: &'static str,
        now: Instant,
    ) {
        if !self.reps[r].voting() {
            return;
        }
        self.fault(r, FaultKind::ProtocolError { offset, reason }, now);
        self.settle(now);
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
    /// replica had all client input and the client's FIN (a service may abort on the half-close),
    /// nor if it had produced no output and the caller fell behind on its link during its
    /// handshake ([`Voter::replica_delayed`] before [`Voter::replica_connected`]): the caller
    /// then read the replica's SYN-ACK late, and meanwhile the replica's kernel may have given
    /// up its end of the handshake (a request that ran out of SYN-ACK retries, a SYN cookie
    /// in place of a request) and answers the caller's ACK with an RST; a reset is then the
    /// caller's lag, not the replica's fault. It still counts towards a quorum of resets.
    pub fn replica_reset(&mut self, r: ReplicaId, now: Instant) {
        let half_closed = self.half_closed(r);
        let rep = &mut self.reps[r];
        if !rep.voting() {
            return;
        }
        // Its stream was complete and agreed, or it had the client's FIN (a service may abort on
        // the half-close): a reset then only ends its connection.
        if rep.state != ReplicaState::Finished && !half_closed {
            rep.verdict = if rep.lagged_handshake && rep.prod == 0 {
                Verdict::ResetExcused
            } else {
                Verdict::ResetPending(PendingReset {
                    at: now,
                    output: rep.prod,
                })
            };
        }
        rep.state = ReplicaState::Gone;
        rep.suspect = None;
        self.drop_out(r);
        self.settle(now);
    }
    /// The caller fell behind reading replica `r`'s link at `now` (a receive round that stopped
    /// at its budget with frames left waiting, or frames its own queue dropped): that is the
    /// caller's lag, not the replica's, so `r` is not judged a straggler before `now +
    /// straggler_timeout`, plus as long again as the caller had been behind without a break
    /// (the replica's retransmissions back off while its frames are dropped, and its
    /// retransmission timeout grows with the round trips the caller's lag stretched); if the
    /// caller had fallen behind on `r`'s link while `r` was connecting, at least 3 s instead of
    /// `straggler_timeout` (its retransmission timeout after a disturbed handshake). A
    /// pending reset is judged as before.
    pub fn replica_delayed(&mut self, r: ReplicaId, now: Instant) {
        let t = self.cfg.straggler_timeout;
        let rep = &mut self.reps[r];
        rep.delayed = Some(match rep.delayed {
            Some(d) => d.extended(now, t),
            None => Delay::new(now),
        });
    }
    /// Voted bytes ready for the client (a contiguous slice; may be a prefix of what is ready).
    pub fn client_output(&self) -> &[u8] {
        if self.client_end == ClientEnd::Reset {
            return &[];
        }
        self.rel.client_output()
    }
    /// `n` bytes of `client_output()` were written to the client socket at `now`.
    ///
    /// Panics if `n` exceeds `client_output().len()`.
    pub fn client_output_sent(&mut self, n: usize, now: Instant) {
        assert!(
            n <= self.client_output().len(),
            "client_output_sent past client_output"
        );
        self.rel.client_output_sent(n);
        self.rel.trim(&self.reps);
        // Room freed: release what is waiting.
        self.settle(now);
    }

    // ---- time, events, state ----

    /// The next instant at which `handle_timeout` must be called, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.client_end == ClientEnd::Reset {
            return None;
        }
        self.reps
            .iter()
            .filter_map(|r| self.clock.deadline(r))
            .min()
    }
    /// Advance time: straggler deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.client_end == ClientEnd::Reset {
            return;
        }
        for r in 0..self.reps.len() {
            if self.clock.deadline(&self.reps[r]).is_some_and(|d| d <= now) {
                let kind = if self.reps[r].pending_reset().is_some() {
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
            ClientEnd::Closing => self.rel.all_sent(),
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
            client_bytes_in: self.input.received(),
            bytes_released: self.rel.offset(),
        }
    }
    /// Bytes held in memory right now (input buffer, unvoted replica output, released buffer);
    /// at most `(N + 2) * buffer_limit`.
    pub fn buffered_bytes(&self) -> usize {
        self.input.len() + self.rel.len() + self.reps.iter().map(|r| r.out.len()).sum::<usize>()
    }
    /// Bytes allocated for the buffers (at least [`Voter::buffered_bytes`]): buffers start
    /// without memory and grow as bytes arrive.
    pub fn buffer_memory(&self) -> usize {
        let outputs: usize = self.reps.iter().map(|r| r.out.allocated()).sum();
        self.input.allocated() + self.rel.allocated() + outputs
    }
    /// Gives back the memory of every buffer that holds nothing (for a connection gone idle);
    /// they grow again when bytes arrive.
    pub fn shrink_buffers(&mut self) {
        self.input.shrink_if_empty();
        self.rel.shrink_if_empty();
        for r in &mut self.reps {
            r.out.shrink_if_empty();
        }
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
}
