//! One client connection ([`Connection`]): the client's socket on the external link, one
//! [`ReplicaSide`] per replica, and the [`Voter`] between them.
//!
//! [`Connection::pump`] runs its phases in a fixed order each round: the voter's timers, the
//! replicas' handshakes, client bytes into the voter and the client's end, the exchange with
//! each replica, voted bytes to the client, the voter's events, the client's close, the status
//! counters, the end of the connection, its memory (buffers given back once idle for
//! [`SHRINK_AFTER`], the total accounted to the [`MemoryBudget`]). Once finished, a connection
//! lingers until its sockets are gone ([`Connection::wind_down`]) and is then released.

use std::time::{Duration, Instant};

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::State;

use super::answer::AnswerClock;
use super::connect_deadline::ConnectDeadline;
use super::endpoint::Endpoint;
use super::gate::Gate;
use super::memory::{state_memory, MemoryBudget};
use super::protocol_layer;
use super::replica_side::ReplicaSide;
use super::reply_path::ReplyPath;
use super::sockets::{recv_into_voter, remote_closed, send_from_voter, socket_gone};
use crate::config::Config;
use crate::membership::Membership;
use crate::protocol::sequencer::Sequencer;
use crate::status::{fault_kind_name, StatusBook};
use crate::voter::{NoQuorum, ReplicaState, Role, Voter, VoterConfig, VoterEvent};

/// How long a finished connection may linger (waiting for FIN handshakes) before it is aborted.
const LINGER: Duration = Duration::from_secs(30);

/// How long no byte must move before a connection gives back the memory of its empty buffers
/// (socket and voter); they grow again with the next bytes.
const SHRINK_AFTER: Duration = Duration::from_secs(1);

/// What a connection works on besides its own state: the links its sockets live on (replica
/// `r`'s side on `replicas[r]`), the status book, and the configuration.
pub(super) struct Context<'a> {
    /// The external link, with the client's socket.
    pub external: &'a mut Endpoint,
    /// The replica links, in config order.
    pub replicas: &'a mut [Endpoint],
    /// Where connections, bytes voted and faults are counted.
    pub status: &'a mut StatusBook,
    /// Which replicas vote on new connections; faults and agreement update it.
    pub membership: &'a mut Membership,
    /// The configuration (names, timeouts, buffers).
    pub config: &'a Config,
    /// The voter configuration derived from it.
    pub voter_config: &'a VoterConfig,
    /// The memory the connections take, against `memory_budget_mb`.
    pub budget: &'a mut MemoryBudget,
    /// The sequencer of each service (config order).
    pub sequencers: &'a mut [Sequencer],
}

/// How far the client's input got.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientInput {
    /// No FIN from the client yet.
    Open,
    /// The client's FIN arrived; the bytes before it are still queued.
    FinReceived,
    /// The voter has been told of the client's FIN.
    FinReported,
}

/// The client's connection as the appliance drives it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientState {
    /// Open as far as the voter is concerned.
    Open,
    /// The voter asked to close it; its agreed output is still being sent.
    Closing,
    /// Our FIN is queued.
    Closed,
    /// We reset it (the voter had no agreed output to give).
    Aborted,
    /// It closed without our FIN (the client's RST, also after its own FIN, or a timeout);
    /// the voter has been told.
    Vanished,
}

/// One client connection and its replica connections.
pub(super) struct Connection {
    id: u64,
    /// The membership epoch it opened in: its replicas' roles are those of that epoch.
    epoch: u64,
    service: usize,
    client: SocketHandle,
    client_input: ClientInput,
    client_state: ClientState,
    replicas: Vec<ReplicaSide>,
    /// For each replica side (the voter's index), the index of its replica's link in
    /// [`Context::replicas`]: the config's order changes with a reconfiguration, and a replica
    /// removed since the connection opened has none (its side was detached).
    slots: Vec<Option<usize>>,
    voter: Voter,
    /// The client's input held until the service's sequencer admits it (a service whose
    /// requests are ordered); `None`: straight into the voter.
    gate: Option<Gate>,
    /// The replicas' output through their reply framers (a service with a protocol); `None`:
    /// straight into the voter and out to the client.
    replies: Option<ReplyPath>,
    /// Bytes released to the client already added to the replicas' `bytes voted`.
    released_counted: u64,
    /// `client_timeout_ms` when it opened: idle this long, it is reset; `None`: never.
    idle_timeout: Option<Duration>,
    /// Client bytes in and bytes released to it when last seen to change, and when.
    last_bytes: (u64, u64),
    /// When a byte last moved either way (or when it opened).
    last_active: Instant,
    /// How long the client has waited for the replicas' answer (`replica_timeout_ms`).
    answer: AnswerClock,
    /// The buffers were given back since `last_active` (see [`SHRINK_AFTER`]).
    shrunk: bool,
    /// Bytes accounted to the memory budget for it.
    memory: usize,
    finished_at: Option<Instant>,
}

impl Connection {
    /// Connection `id` of `service`, accepted on `client`: connects to every replica that is
    /// not excluded, in the role the current membership gives it (kept to the end).
    pub fn open(
        id: u64,
        service: usize,
        client: SocketHandle,
        cx: &mut Context<'_>,
        now: Instant,
    ) -> Connection {
        let config = cx.config;
        let svc = &config.services[service];
        let peer = cx.external.tcp(client).remote_endpoint();
        log::info!(
            "connection {id}: {} from {}",
            svc.name,
            peer.map(|p| p.to_string()).unwrap_or_default()
        );
        let roles = cx.membership.roles();
        let mut voter = Voter::with_roles(cx.voter_config.clone(), &roles, now);
        let deadline = ConnectDeadline::new(now, Duration::from_millis(config.connect_timeout_ms));
        let replicas: Vec<ReplicaSide> = cx
            .replicas
            .iter_mut()
            .zip(&config.replicas)
            .zip(&roles)
            .map(|((ep, rc), role)| {
                if *role == Role::Absent {
                    return ReplicaSide::absent();
                }
                let remote = (rc.replica_address, svc.replica_port);
                ReplicaSide::connect(id, ep, remote, config.tcp_buffer, deadline)
            })
            .collect();
        for (r, side) in replicas.iter().enumerate() {
            if side.never_connected() {
                voter.replica_refused(r, now);
            }
        }
        cx.status.connection_opened(service);
        let memory = state_memory(replicas.len());
        cx.budget.charge(0, memory);
        let gate = protocol_layer::gate(id, svc);
        if gate.is_some() {
            cx.sequencers[service].open(id, replicas.len());
        }
        Connection {
            gate,
            replies: protocol_layer::reply_path(svc, replicas.len()),
            id,
            epoch: cx.membership.epoch(),
            service,
            client,
            client_input: ClientInput::Open,
            client_state: ClientState::Open,
            slots: (0..replicas.len()).map(Some).collect(),
            replicas,
            voter,
            released_counted: 0,
            idle_timeout: (config.client_timeout_ms != 0)
                .then(|| Duration::from_millis(config.client_timeout_ms)),
            last_bytes: (0, 0),
            last_active: now,
            answer: AnswerClock::new(
                (config.replica_timeout_ms != 0)
                    .then(|| Duration::from_millis(config.replica_timeout_ms)),
            ),
            shrunk: false,
            memory,
            finished_at: None,
        }
    }

    /// The connection's id (in the log and the status).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Moves the connection's bytes and events, one phase after the other.
    pub fn pump(&mut self, cx: &mut Context<'_>, now: Instant) {
        for (r, side) in self.replicas.iter_mut().enumerate() {
            if let Some(s) = self.slots[r] {
                side.check_connect(r, s, &mut cx.replicas[s], &mut self.voter, cx.status, now);
            }
        }
        self.client_to_voter(cx, now);
        self.watch_client_end(cx, now);
        for (r, side) in self.replicas.iter_mut().enumerate() {
            if let Some(s) = self.slots[r] {
                let stream = self.replies.as_mut().map(|p| p.stream(r));
                side.exchange(
                    self.id,
                    r,
                    &mut cx.replicas[s],
                    &mut self.voter,
                    stream,
                    now,
                );
            }
        }
        // Deadlines are judged after what this round read from every replica is in: a replica
        // is late only against the others' bytes as they were read, not against the time the
        // appliance took to come round to its link.
        if self.voter.poll_timeout().is_some_and(|t| t <= now) {
            self.voter.handle_timeout(now);
        }
        self.voter_to_client(cx, now);
        self.reset_if_idle(cx, now);
        self.reset_if_unanswered(cx, now);
        self.handle_events(cx);
        if let Some(gate) = &self.gate {
            let seq = &mut cx.sequencers[self.service];
            gate.note_replicas(seq, self.replies.as_mut(), &self.voter);
        }
        self.close_client_when_drained(cx);
        self.count_bytes_voted(cx);
        self.note_finished(cx, now);
        self.shrink_when_idle(cx, now);
        self.account_memory(cx);
    }

    /// Client bytes into the voter (through the gate, if the service orders requests).
    fn client_to_voter(&mut self, cx: &mut Context<'_>, now: Instant) {
        let s = cx.external.tcp(self.client);
        match &mut self.gate {
            None => recv_into_voter(
                s,
                &mut self.voter,
                |v| v.client_window(),
                |v, b| v.push_client(b, now),
            ),
            Some(gate) => {
                let seq = &mut cx.sequencers[self.service];
                gate.pump(s, seq, self.replies.as_mut(), &mut self.voter, now);
            }
        }
    }

    /// True if the service's sequencer admitted this connection's waiting request since it was
    /// last pumped.
    pub fn newly_admitted(&self, sequencers: &[Sequencer]) -> bool {
        self.gate
            .as_ref()
            .is_some_and(|g| g.newly_admitted(&sequencers[self.service]))
    }

    /// Tells the voter of the client's FIN (once the bytes before it are taken) or of its
    /// disappearance.
    fn watch_client_end(&mut self, cx: &mut Context<'_>, now: Instant) {
        let c = cx.external.tcp(self.client);
        let cstate = c.state();
        if remote_closed(cstate) && self.client_input == ClientInput::Open {
            self.client_input = ClientInput::FinReceived;
        }
        let held = self.gate.as_ref().is_some_and(|g| !g.drained());
        if self.client_input == ClientInput::FinReceived && c.recv_queue() == 0 && !held {
            self.client_input = ClientInput::FinReported;
            log::debug!(
                "connection {}: client FIN after {} bytes in, {} released",
                self.id,
                self.voter.stats().client_bytes_in,
                self.voter.stats().bytes_released
            );
            self.voter.client_fin(now);
        }
        // A client socket that closes without our FIN (RST, also after the client's own FIN, or
        // a timeout) is gone: nothing more can reach it, so every replica is reset at once.
        if cstate == State::Closed
            && matches!(self.client_state, ClientState::Open | ClientState::Closing)
        {
            self.client_state = ClientState::Vanished;
            log::debug!(
                "connection {}: client reset after {} bytes in, {} released",
                self.id,
                self.voter.stats().client_bytes_in,
                self.voter.stats().bytes_released
            );
            self.voter.client_reset(now);
        }
    }

    /// The replica whose link is `slot` in [`Context::replicas`]: its side of this connection
    /// ends (see [`ReplicaSide::link_lost`]).
    pub fn replica_link_lost(&self, slot: usize, cx: &mut Context<'_>) {
        if let Some(r) = self.side_of(slot) {
            self.replicas[r].link_lost(&mut cx.replicas[slot]);
        }
    }

    /// domain-nv fell behind reading link `slot` at `now`: its replica's lateness is not
    /// judged until a full straggler timeout later (see `Voter::replica_delayed`), nor its
    /// handshake given up before a full connect timeout later plus its age (see
    /// [`ConnectDeadline`]).
    pub fn replica_link_delayed(&mut self, slot: usize, cx: &Context<'_>, now: Instant) {
        if let Some(r) = self.side_of(slot) {
            self.voter.replica_delayed(r, now);
            let connect_timeout = Duration::from_millis(cx.config.connect_timeout_ms);
            self.replicas[r].link_delayed(now, connect_timeout);
        }
    }

    /// The replica side (voter index) on link `slot`, if this connection has one.
    fn side_of(&self, slot: usize) -> Option<usize> {
        self.slots.iter().position(|s| *s == Some(slot))
    }

    /// A config change removed the replica on link `slot` (still in [`Context::replicas`]):
    /// its socket is reset and freed now, and the voter told as a reset (or a refusal while
    /// connecting), so the connection goes on with the others. The voter's fault for it is
    /// charged to no one (see [`Connection::handle_events`]).
    pub fn detach(&mut self, slot: usize, cx: &mut Context<'_>, now: Instant) {
        let Some(r) = self.side_of(slot) else {
            return;
        };
        self.slots[r] = None;
        let side = std::mem::replace(&mut self.replicas[r], ReplicaSide::absent());
        side.abort(&mut cx.replicas[slot]);
        side.release(slot, &mut cx.replicas[slot], cx.status);
        self.voter.replica_refused(r, now);
        self.voter.replica_reset(r, now);
        log::info!(
            "connection {}: replica {} removed from the config: dropped",
            self.id,
            cx.config.replicas[slot].name
        );
    }

    /// After a reconfiguration: `new_slot[s]` is where the link at old index `s` now is.
    pub fn remap(&mut self, new_slot: &[Option<usize>]) {
        for s in &mut self.slots {
            *s = s.and_then(|old| new_slot[old]);
        }
    }

    /// Agreed output to the client (masked fields restored, if the service has a protocol;
    /// those that differed between replicas are counted).
    fn voter_to_client(&mut self, cx: &mut Context<'_>, now: Instant) {
        let s = cx.external.tcp(self.client);
        match &mut self.replies {
            None => send_from_voter(
                s,
                &mut self.voter,
                |v| v.client_output(),
                |v, n| v.client_output_sent(n, now),
            ),
            Some(path) => {
                let differed = path.send(s, &mut self.voter, now);
                cx.status.masked(self.service, differed);
            }
        }
    }

    /// Notes when bytes last moved either way; once none moved for the idle timeout
    /// (`client_timeout_ms`), resets the client and tells the voter, which resets the replicas
    /// and blames no one; counted as `timed_out`.
    fn reset_if_idle(&mut self, cx: &mut Context<'_>, now: Instant) {
        let stats = self.voter.stats();
        let bytes = (stats.client_bytes_in, stats.bytes_released);
        if bytes != self.last_bytes {
            self.last_bytes = bytes;
            self.last_active = now;
            self.shrunk = false;
            return;
        }
        let Some(idle) = self.idle_timeout else {
            return;
        };
        let open = matches!(self.client_state, ClientState::Open | ClientState::Closing);
        if !open || self.finished_at.is_some() || now < self.last_active + idle {
            return;
        }
        log::warn!(
            "connection {}: idle for {} ms: client connection reset",
            self.id,
            idle.as_millis()
        );
        cx.external.tcp(self.client).abort();
        self.client_state = ClientState::Aborted;
        self.voter.client_reset(now);
        cx.status.timed_out(self.service);
    }

    /// Resets the connection (client and replicas, nobody blamed; counted as `timed_out`) once
    /// the client has waited `replica_timeout_ms` for an answer no quorum gave (see
    /// [`AnswerClock`]).
    fn reset_if_unanswered(&mut self, cx: &mut Context<'_>, now: Instant) {
        let stats = self.voter.stats();
        self.answer
            .observe(stats.client_bytes_in, stats.bytes_released, now);
        let open = matches!(self.client_state, ClientState::Open | ClientState::Closing);
        if !open || self.finished_at.is_some() || !self.answer.expired(now) {
            return;
        }
        log::warn!(
            "connection {}: no answer from a quorum of replicas within {} ms: reset",
            self.id,
            cx.config.replica_timeout_ms
        );
        cx.external.tcp(self.client).abort();
        self.client_state = ClientState::Aborted;
        self.voter.client_reset(now);
        cx.status.timed_out(self.service);
    }

    /// Once no byte moved for [`SHRINK_AFTER`], gives back the memory of every empty buffer:
    /// the client's socket, the replicas' sockets and the voter's (once per idle spell).
    fn shrink_when_idle(&mut self, cx: &mut Context<'_>, now: Instant) {
        if self.shrunk || now < self.last_active + SHRINK_AFTER {
            return;
        }
        self.shrunk = true;
        cx.external.tcp(self.client).shrink_buffers();
        for (r, side) in self.replicas.iter().enumerate() {
            if let Some(s) = self.slots[r] {
                side.shrink_buffers(&mut cx.replicas[s]);
            }
        }
        self.voter.shrink_buffers();
    }

    /// Accounts the connection's memory now (its state and every buffer) to the budget.
    fn account_memory(&mut self, cx: &mut Context<'_>) {
        let mut bytes = state_memory(self.replicas.len())
            + cx.external.tcp(self.client).buffer_memory()
            + self.voter.buffer_memory();
        for (r, side) in self.replicas.iter().enumerate() {
            if let Some(s) = self.slots[r] {
                bytes += side.buffer_memory(&mut cx.replicas[s]);
            }
        }
        cx.budget.charge(self.memory, bytes);
        self.memory = bytes;
    }

    /// Acts on the voter's events: faults to the log and the status book, closes and resets.
    fn handle_events(&mut self, cx: &mut Context<'_>) {
        let config = cx.config;
        let service_name = &config.services[self.service].name;
        while let Some(ev) = self.voter.poll_event() {
            match ev {
                VoterEvent::Fault(f) => {
                    // A replica removed by a config change is blamed for nothing.
                    let Some(slot) = self.slots[f.replica] else {
                        continue;
                    };
                    let name = &config.replicas[slot].name;
                    log::warn!(
                        "connection {}: replica {name} faulty: {} ({:?})",
                        self.id,
                        fault_kind_name(&f.kind),
                        f.kind
                    );
                    cx.status.record_fault(slot, &f.kind, service_name, self.id);
                    if cx.membership.fault(slot, &f.kind) {
                        log::warn!(
                            "replica {name}: {:?} (membership epoch {})",
                            cx.membership.standing(slot),
                            cx.membership.epoch()
                        );
                        cx.status.set_standing(slot, cx.membership.standing(slot));
                    }
                }
                VoterEvent::NoQuorum(nq) => {
                    log::warn!(
                        "connection {}: {service_name}: no quorum, nobody blamed: {}",
                        self.id,
                        positions(config, &self.slots, &nq)
                    );
                    cx.status.no_quorum(self.service);
                }
                VoterEvent::CloseReplica(r) => {
                    if let Some(s) = self.slots[r] {
                        self.replicas[r].close_input(&mut cx.replicas[s]);
                    }
                }
                VoterEvent::ResetReplica(r) => {
                    if let Some(s) = self.slots[r] {
                        self.replicas[r].reset(&mut cx.replicas[s]);
                    }
                }
                VoterEvent::CloseClient => {
                    if self.client_state == ClientState::Open {
                        self.client_state = ClientState::Closing;
                    }
                }
                VoterEvent::ResetClient => {
                    log::warn!(
                        "connection {}: client connection reset (no agreed output)",
                        self.id
                    );
                    cx.external.tcp(self.client).abort();
                    self.client_state = ClientState::Aborted;
                }
            }
        }
    }

    /// Sends the client our FIN once the voter asked for it and its output is all sent.
    fn close_client_when_drained(&mut self, cx: &mut Context<'_>) {
        if self.client_state == ClientState::Closing && self.voter.client_output().is_empty() {
            self.client_state = ClientState::Closed;
            cx.external.tcp(self.client).close();
        }
    }

    /// Adds newly released bytes to the `bytes voted` of each Member in agreement.
    fn count_bytes_voted(&mut self, cx: &mut Context<'_>) {
        let released = self.voter.stats().bytes_released;
        let delta = released - self.released_counted;
        if delta == 0 {
            return;
        }
        self.released_counted = released;
        for (r, slot) in self.slots.iter().enumerate() {
            if let Some(s) = *slot {
                if self.voter.role(r) == Role::Member
                    && matches!(
                        self.voter.replica_state(r),
                        ReplicaState::Live | ReplicaState::Finished
                    )
                {
                    cx.status.add_bytes_voted(s, delta);
                }
            }
        }
    }

    /// Notes when the connection is over for the client (the voter is finished, or we reset the
    /// client): from then on it lingers until its sockets are gone, and its requests hold no
    /// one back.
    fn note_finished(&mut self, cx: &mut Context<'_>, now: Instant) {
        if self.finished_at.is_none()
            && (self.client_state == ClientState::Aborted || self.voter.is_finished())
        {
            self.finished_at = Some(now);
            cx.sequencers[self.service].close(self.id);
        }
    }

    /// The earliest time the connection needs a round: a voter timer, a connect deadline, the
    /// idle timeout, the replica timeout, giving its buffers back, the end of its linger time.
    pub fn wake_at(&self) -> Option<Instant> {
        let connects = self
            .replicas
            .iter()
            .filter_map(ReplicaSide::connect_deadline);
        let (idle, answer) = match self.finished_at {
            None => (
                self.idle_timeout.map(|d| self.last_active + d),
                self.answer.deadline(),
            ),
            Some(_) => (None, None),
        };
        let shrink = (!self.shrunk).then(|| self.last_active + SHRINK_AFTER);
        self.voter
            .poll_timeout()
            .into_iter()
            .chain(connects)
            .chain(idle)
            .chain(answer)
            .chain(shrink)
            .chain(self.finished_at.map(|t| t + LINGER))
            .min()
    }

    /// Once finished: resets what must not stay open (everything after [`LINGER`] or after a
    /// client reset, replicas the voter cut off). True once every socket is gone.
    pub fn wind_down(&self, cx: &mut Context<'_>, now: Instant) -> bool {
        let Some(done) = self.finished_at else {
            return false;
        };
        let linger_over = now >= done + LINGER;
        let c = cx.external.tcp(self.client);
        if linger_over && !socket_gone(c) {
            c.abort();
        }
        let mut all_gone = socket_gone(c);
        let force = linger_over || self.client_state == ClientState::Aborted;
        for (r, side) in self.replicas.iter().enumerate() {
            let Some(s) = self.slots[r] else { continue };
            let cut = matches!(
                self.voter.replica_state(r),
                ReplicaState::Faulty | ReplicaState::Gone
            );
            all_gone &= side.wind_down(&mut cx.replicas[s], force || cut);
        }
        all_gone
    }

    /// Resets the client and every replica connection at once (the appliance is shutting
    /// down).
    pub fn abort(&self, cx: &mut Context<'_>) {
        cx.external.tcp(self.client).abort();
        for (r, side) in self.replicas.iter().enumerate() {
            if let Some(s) = self.slots[r] {
                side.abort(&mut cx.replicas[s]);
            }
        }
    }

    /// Counts the connection toward the probation of each observer that agreed to its end
    /// (its stream finished with the quorum's).
    fn count_probation(&self, cx: &mut Context<'_>) {
        for (r, slot) in self.slots.iter().enumerate() {
            let Some(s) = *slot else { continue };
            let agreed = self.voter.role(r) == Role::Observer
                && self.voter.replica_state(r) == ReplicaState::Finished;
            let bytes = self.voter.agreed_output(r);
            if agreed && cx.membership.agreed(s, self.epoch, bytes) {
                log::info!(
                    "replica {}: probation passed: Member (membership epoch {})",
                    cx.config.replicas[s].name,
                    cx.membership.epoch()
                );
                cx.status.set_standing(s, cx.membership.standing(s));
            }
        }
    }

    /// Frees the sockets and ports of a connection that is done, counts it closed and toward
    /// its observers' probation.
    pub fn release(self, cx: &mut Context<'_>) {
        self.count_probation(cx);
        cx.sequencers[self.service].close(self.id);
        cx.external.sockets.remove(self.client);
        for (side, slot) in self.replicas.into_iter().zip(&self.slots) {
            if let Some(s) = *slot {
                side.release(s, &mut cx.replicas[s], cx.status);
            }
        }
        cx.status.connection_closed(self.service);
        cx.budget.charge(self.memory, 0);
        log::info!(
            "connection {}: done, {} bytes in, {} bytes voted out",
            self.id,
            self.voter.stats().client_bytes_in,
            self.voter.stats().bytes_released
        );
    }
}

/// Every replica's position when a connection found no quorum, for the log line: name, role,
/// state, output bytes received, bytes agreeing with the released stream, FIN offset.
fn positions(config: &Config, slots: &[Option<usize>], nq: &NoQuorum) -> String {
    let each: Vec<String> = nq
        .positions
        .iter()
        .map(|p| {
            let fin = p.fin.map(|f| format!(" fin@{f}")).unwrap_or_default();
            format!(
                "{} {:?} {:?} out {} agreed {}{fin}",
                slots[p.replica].map_or("(removed)", |s| &config.replicas[s].name),
                p.role,
                p.state,
                p.output,
                p.agreed
            )
        })
        .collect();
    format!("released {}; {}", nq.released, each.join("; "))
}
