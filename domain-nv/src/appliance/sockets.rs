//! smoltcp sockets as the appliance uses them: how a TCP or UDP one is made, how bytes move
//! between a TCP socket and a [`Voter`], and what its state says about the peer.

use std::time::Duration;

use smoltcp::socket::tcp::{self, CongestionControl, State};
use smoltcp::socket::udp;

use crate::voter::Voter;

/// smoltcp idle timeout for every socket (a peer that vanishes silently).
const SOCKET_TIMEOUT: Duration = Duration::from_secs(120);

/// Lower bound of the retransmission timeout, Linux's (smoltcp's default is RFC 6298's 1 s): a
/// lost retransmission stalls a connection for this long, not a second or more.
const RTO_MIN: Duration = Duration::from_millis(200);

/// How long an ACK may wait to ride on data going the other way (smoltcp's default, a quarter
/// of Linux's 40 ms minimum): far longer than the answer to a request takes on this path (the
/// quorum's answer to the client, the client's next request to a replica: well under a
/// millisecond to a few), and the most a peer waiting for an ACK the quick-ACK rule does not
/// cover (a Nagle sender on a connection taking turns) can stall; a Linux peer's RTO floor
/// (200 ms) is far above it.
pub const ACK_DELAY: Duration = Duration::from_millis(10);

/// Quick ACKs for a young connection (Linux's `TCP_MAX_QUICKACKS`): its first segments, and
/// a segment a sender under Nagle waits on, are ACKed at once (smoltcp patch 7).
const QUICK_ACKS: u8 = 16;

/// A TCP socket whose buffers start empty and grow on demand up to `buffer` bytes each way
/// (the window it advertises, and its scale, are those of a `buffer`-byte buffer;
/// `tcp::Socket::shrink_buffers` gives the memory back), delayed ACK ([`ACK_DELAY`]) with
/// Linux's quick-ACK rule, no Nagle, CUBIC, a 200 ms RTO floor and the idle timeout.
pub(super) fn new_socket(buffer: usize) -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(Vec::new()),
        tcp::SocketBuffer::new(Vec::new()),
    );
    s.set_buffer_growth(buffer, buffer);
    s.set_ack_delay(Some(smoltcp::time::Duration::from_micros(
        ACK_DELAY.as_micros() as u64,
    )));
    s.set_quick_ack(QUICK_ACKS);
    s.set_nagle_enabled(false);
    s.set_congestion_control(CongestionControl::Cubic);
    s.set_rto_min(smoltcp::time::Duration::from_micros(
        RTO_MIN.as_micros() as u64
    ));
    s.set_timeout(Some(smoltcp::time::Duration::from_micros(
        SOCKET_TIMEOUT.as_micros() as u64,
    )));
    s
}

/// A UDP socket with room for `packets` datagrams of `bytes` in all, each way.
pub(super) fn new_udp_socket(packets: usize, bytes: usize) -> udp::Socket<'static> {
    let buffer =
        || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; packets], vec![0; bytes]);
    udp::Socket::new(buffer(), buffer())
}

/// Moves bytes from a socket's receive buffer into the voter while `window` allows.
pub(super) fn recv_into_voter(
    s: &mut tcp::Socket<'static>,
    voter: &mut Voter,
    window: impl Fn(&Voter) -> usize,
    push: impl Fn(&mut Voter, &[u8]) -> usize,
) {
    while window(voter) > 0 && s.can_recv() {
        let w = window(voter);
        match s.recv(|buf| {
            let n = push(voter, &buf[..buf.len().min(w)]);
            (n, n)
        }) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}

/// Moves the voter's bytes for a socket (`data`) into its send buffer; `sent` acknowledges them.
pub(super) fn send_from_voter(
    s: &mut tcp::Socket<'static>,
    voter: &mut Voter,
    data: impl Fn(&Voter) -> &[u8],
    sent: impl Fn(&mut Voter, usize),
) {
    loop {
        let out = data(voter);
        if out.is_empty() || !s.can_send() {
            break;
        }
        match s.send_slice(out) {
            Ok(n) if n > 0 => sent(voter, n),
            _ => break,
        }
    }
}

/// True in the states where the peer's FIN has arrived.
pub(super) fn remote_closed(state: State) -> bool {
    matches!(
        state,
        State::CloseWait | State::LastAck | State::Closing | State::TimeWait
    )
}

/// A socket that is gone: closed and, after an abort, its reset sent.
pub(super) fn socket_gone(s: &tcp::Socket<'static>) -> bool {
    s.state() == State::TimeWait || (s.state() == State::Closed && s.remote_endpoint().is_none())
}
