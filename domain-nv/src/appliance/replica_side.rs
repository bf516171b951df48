//! The appliance's side of one replica's connection for one client connection
//! ([`ReplicaSide`]): its socket, where the connection is ([`ReplicaPhase`]) and how far each
//! direction got. It moves bytes between its socket and the connection's voter, and tells the
//! voter how the replica's connection went (connected, refused, FIN, reset).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use smoltcp::socket::tcp::State;

use super::connect_deadline::ConnectDeadline;
use super::endpoint::{Endpoint, OutgoingSocket};
use super::reply_path::ReplyStream;
use super::sockets::{recv_into_voter, remote_closed, send_from_voter, socket_gone};
use crate::status::StatusBook;
use crate::voter::{ReplicaState, Voter};

/// Where a replica connection is.
#[derive(Clone, Copy)]
enum ReplicaPhase {
    /// Handshake in progress; given up at `deadline`.
    Connecting {
        /// The connect deadline.
        deadline: ConnectDeadline,
    },
    /// Ended before the handshake completed: no socket, refused, timed out, or reset by the
    /// voter.
    NeverConnected,
    /// Established: bytes flow both ways.
    Connected {
        /// Whether the replica's FIN arrived.
        from_replica: FromReplica,
    },
    /// Ended after it was established: the replica's FIN or reset, or reset by the voter. The
    /// voter has been told.
    Ended,
}

/// The replica's direction (its output) of an established connection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FromReplica {
    /// No FIN from the replica yet.
    Open,
    /// The replica's FIN arrived; the voter is told once the bytes before it are taken.
    FinReceived,
}

/// Our direction towards the replica (the client's input).
#[derive(Clone, Copy, PartialEq, Eq)]
enum ToReplica {
    /// Input may still follow.
    Open,
    /// Our FIN is queued: the input is over.
    FinSent,
}

/// The appliance side of one replica's connection for one client connection.
pub(super) struct ReplicaSide {
    socket: Option<OutgoingSocket>,
    phase: ReplicaPhase,
    to_replica: ToReplica,
}

impl ReplicaSide {
    /// Starts connecting to `remote` over `ep` (buffers of `buffer` bytes, given up at
    /// `deadline`); without a socket (no free port, smoltcp refused) the side starts as
    /// [`ReplicaSide::never_connected`], and the caller tells the voter.
    pub fn connect(
        conn_id: u64,
        ep: &mut Endpoint,
        remote: (Ipv4Addr, u16),
        buffer: usize,
        deadline: ConnectDeadline,
    ) -> ReplicaSide {
        let socket = match ep.connect(remote, buffer) {
            Ok(socket) => socket,
            Err(e) => {
                log::warn!("connection {conn_id}: replica {}: connect: {e:?}", ep.name);
                None
            }
        };
        let phase = match socket {
            Some(_) => ReplicaPhase::Connecting { deadline },
            None => ReplicaPhase::NeverConnected,
        };
        ReplicaSide {
            socket,
            phase,
            to_replica: ToReplica::Open,
        }
    }

    /// No connection at all: the replica is excluded from this client connection.
    pub fn absent() -> ReplicaSide {
        ReplicaSide {
            socket: None,
            phase: ReplicaPhase::NeverConnected,
            to_replica: ToReplica::Open,
        }
    }

    /// True if the connection ended before it was established.
    pub fn never_connected(&self) -> bool {
        matches!(self.phase, ReplicaPhase::NeverConnected)
    }

    /// The connect deadline while the handshake is in progress.
    pub fn connect_deadline(&self) -> Option<Instant> {
        match self.phase {
            ReplicaPhase::Connecting { deadline } => Some(deadline.at()),
            _ => None,
        }
    }

    /// domain-nv fell behind reading the replica's link at `now`: a handshake in progress gets
    /// `connect_timeout` from now plus its age (its SYN-ACK may wait in, or have been dropped
    /// from, the appliance's own queue, and both ends' retries back off: [`ConnectDeadline`]).
    pub fn link_delayed(&mut self, now: Instant, connect_timeout: Duration) {
        if let ReplicaPhase::Connecting { deadline } = &mut self.phase {
            deadline.lagged(now, connect_timeout);
        }
    }

    /// While connecting: notices the end of the handshake (established, refused, timed out) and
    /// tells the voter (replica `r`) and the status book (replica `slot`, on link `ep`).
    pub fn check_connect(
        &mut self,
        r: usize,
        slot: usize,
        ep: &mut Endpoint,
        voter: &mut Voter,
        status: &mut StatusBook,
        now: Instant,
    ) {
        let (ReplicaPhase::Connecting { deadline }, Some(socket)) = (self.phase, self.socket)
        else {
            return;
        };
        let s = ep.tcp(socket.handle);
        match s.state() {
            State::SynSent | State::SynReceived if now >= deadline.at() => {
                s.abort();
                self.phase = ReplicaPhase::NeverConnected;
                voter.replica_refused(r, now);
            }
            State::SynSent | State::SynReceived => {}
            State::Closed => {
                self.phase = ReplicaPhase::NeverConnected;
                voter.replica_refused(r, now);
            }
            _ => {
                self.phase = ReplicaPhase::Connected {
                    from_replica: FromReplica::Open,
                };
                status.replica_connected(slot);
                voter.replica_connected(r, now);
            }
        }
    }

    /// While established: client input to the replica, then its output to the voter (through
    /// `stream`, its reply framer, if the service has a protocol), and its end (FIN or reset)
    /// to the voter. After its output ended in agreement: the client input that came later
    /// (see [`ReplicaSide::input_after_output`]).
    pub fn exchange(
        &mut self,
        conn_id: u64,
        r: usize,
        ep: &mut Endpoint,
        voter: &mut Voter,
        stream: Option<&mut ReplyStream>,
        now: Instant,
    ) {
        let Some(socket) = self.socket else { return };
        match self.phase {
            ReplicaPhase::Connected { .. } => {
                self.send_input(r, ep, voter, socket);
                self.receive_output(conn_id, r, ep, voter, stream, now);
            }
            ReplicaPhase::Ended => self.input_after_output(conn_id, r, ep, voter, socket, now),
            ReplicaPhase::Connecting { .. } | ReplicaPhase::NeverConnected => {}
        }
    }

    /// Replica `r`'s output ended (its FIN) in agreement, and the client sent more input (e.g.
    /// an HTTP client that reuses a connection the server closes after its reply without
    /// saying `Connection: close`, or a request the sequencer admitted after that FIN): the
    /// input still goes to the replica while its socket takes it. Once the socket is closed
    /// with input left for it (the replica reset its connection: a server that closed with a
    /// request unread), the input can never arrive: the voter is told of the reset, which
    /// blames no one after a complete, agreed output, so the connection can end.
    fn input_after_output(
        &mut self,
        conn_id: u64,
        r: usize,
        ep: &mut Endpoint,
        voter: &mut Voter,
        socket: OutgoingSocket,
        now: Instant,
    ) {
        if voter.replica_state(r) != ReplicaState::Finished {
            return;
        }
        self.send_input(r, ep, voter, socket);
        if ep.tcp(socket.handle).state() == State::Closed && !voter.replica_input(r).is_empty() {
            log::debug!(
                "connection {conn_id}: replica {r} reset after its FIN, {} input bytes undelivered",
                voter.replica_input(r).len()
            );
            voter.replica_reset(r, now);
        }
    }

    /// Sends the voter's input for replica `r`, then its FIN once the input is over.
    fn send_input(
        &mut self,
        r: usize,
        ep: &mut Endpoint,
        voter: &mut Voter,
        socket: OutgoingSocket,
    ) {
        let s = ep.tcp(socket.handle);
        send_from_voter(
            s,
            voter,
            |v| v.replica_input(r),
            |v, n| v.replica_input_sent(r, n),
        );
        // The client's FIN goes on only once the replica has acknowledged all input, so that
        // every replica sees the last request before the end of input (a service may answer
        // differently, e.g. `Connection: close`, when both arrive together).
        if voter.replica_input_fin(r) && self.to_replica == ToReplica::Open && s.send_queue() == 0 {
            self.to_replica = ToReplica::FinSent;
            s.close();
        }
    }

    /// Takes replica `r`'s output into the voter (through `stream` if there is one) and tells
    /// it how the replica's output ended.
    fn receive_output(
        &mut self,
        conn_id: u64,
        r: usize,
        ep: &mut Endpoint,
        voter: &mut Voter,
        mut stream: Option<&mut ReplyStream>,
        now: Instant,
    ) {
        let (ReplicaPhase::Connected { from_replica }, Some(socket)) =
            (&mut self.phase, self.socket)
        else {
            return;
        };
        let s = ep.tcp(socket.handle);
        match stream.as_deref_mut() {
            None => recv_into_voter(
                s,
                voter,
                |v| v.replica_window(r),
                |v, b| v.push_replica(r, b, now),
            ),
            Some(stream) => recv_through_framer(conn_id, r, s, stream, voter, now),
        }
        let framed_all = stream.is_none_or(|st| !st.has_pending());
        let state = s.state();
        if remote_closed(state) {
            *from_replica = FromReplica::FinReceived;
        }
        if *from_replica == FromReplica::FinReceived && s.recv_queue() == 0 && framed_all {
            self.phase = ReplicaPhase::Ended;
            log::debug!(
                "connection {conn_id}: replica {r} FIN ({} released)",
                voter.stats().bytes_released
            );
            voter.replica_fin(r, now);
        } else if state == State::Closed && *from_replica == FromReplica::Open {
            self.phase = ReplicaPhase::Ended;
            log::debug!(
                "connection {conn_id}: replica {r} reset ({} released)",
                voter.stats().bytes_released
            );
            voter.replica_reset(r, now);
        }
    }

    /// The voter ended the replica's input: our FIN goes out.
    pub fn close_input(&mut self, ep: &mut Endpoint) {
        if let Some(socket) = self.socket {
            ep.tcp(socket.handle).close();
            self.to_replica = ToReplica::FinSent;
        }
    }

    /// The voter cut the replica off: its connection is reset.
    pub fn reset(&mut self, ep: &mut Endpoint) {
        if let Some(socket) = self.socket {
            ep.tcp(socket.handle).abort();
        }
        self.phase = match self.phase {
            ReplicaPhase::Connecting { .. } | ReplicaPhase::NeverConnected => {
                ReplicaPhase::NeverConnected
            }
            ReplicaPhase::Connected { .. } | ReplicaPhase::Ended => ReplicaPhase::Ended,
        };
    }

    /// Resets the socket if it is still open and `abort` says so (the connection is over for
    /// the client, or the voter cut the replica off); true if there is no socket left to wait
    /// for.
    pub fn wind_down(&self, ep: &mut Endpoint, abort: bool) -> bool {
        let Some(socket) = self.socket else {
            return true;
        };
        let s = ep.tcp(socket.handle);
        // A connection that is over for the client leaves nothing open on replicas.
        if !socket_gone(s) && abort && s.state() != State::Closed {
            s.abort();
        }
        socket_gone(s)
    }

    /// The replica's link is gone (its domain destroyed, its vif disconnected, its device
    /// failed): nothing more can come from it, so its socket is reset now. The next exchange
    /// sees the socket closed and tells the voter as a reset (or, while connecting, a refusal),
    /// instead of the replica holding the stream until the straggler timeout.
    pub fn link_lost(&self, ep: &mut Endpoint) {
        if let (ReplicaPhase::Connecting { .. } | ReplicaPhase::Connected { .. }, Some(socket)) =
            (self.phase, self.socket)
        {
            ep.tcp(socket.handle).abort();
        }
    }

    /// Bytes its socket's buffers take now (0 without a socket).
    pub fn buffer_memory(&self, ep: &mut Endpoint) -> usize {
        self.socket
            .map_or(0, |socket| ep.tcp(socket.handle).buffer_memory())
    }

    /// Gives back the memory of its socket's buffers that hold nothing.
    pub fn shrink_buffers(&self, ep: &mut Endpoint) {
        if let Some(socket) = self.socket {
            ep.tcp(socket.handle).shrink_buffers();
        }
    }

    /// Resets the socket at once (the appliance is shutting down).
    pub fn abort(&self, ep: &mut Endpoint) {
        if let Some(socket) = self.socket {
            ep.tcp(socket.handle).abort();
        }
    }

    /// Frees the socket and its port, and tells the status book that replica `r`'s connection
    /// is over if it was established.
    pub fn release(self, r: usize, ep: &mut Endpoint, status: &mut StatusBook) {
        if let Some(socket) = self.socket {
            ep.remove_outgoing(socket);
        }
        if matches!(
            self.phase,
            ReplicaPhase::Connected { .. } | ReplicaPhase::Ended
        ) {
            status.replica_disconnected(r);
        }
    }
}

/// Moves replica `r`'s output from its socket through its reply framer (`stream`) into the
/// voter, reading only while the voter has taken every comparison byte and has room; a reply
/// stream that does not frame cuts the replica off (a protocol error).
fn recv_through_framer(
    conn_id: u64,
    r: usize,
    s: &mut smoltcp::socket::tcp::Socket<'static>,
    stream: &mut ReplyStream,
    voter: &mut Voter,
    now: Instant,
) {
    stream.flush(r, voter, now);
    while !stream.has_pending() && voter.replica_window(r) > 0 && s.can_recv() {
        let w = voter.replica_window(r);
        let read = s.recv(|buf| {
            let n = buf.len().min(w);
            (n, (n, stream.feed(&buf[..n])))
        });
        match read {
            Ok((n, Ok(()))) if n > 0 => stream.flush(r, voter, now),
            Ok((_, Err(e))) => {
                log::warn!("connection {conn_id}: replica {r}: {e}");
                voter.replica_protocol_error(r, e.offset, e.reason, now);
                return;
            }
            _ => return,
        }
    }
}
