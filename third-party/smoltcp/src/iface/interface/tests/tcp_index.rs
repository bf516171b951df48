//! The TCP index (feature `socket-tcp-index`): segments of a known connection reach their
//! socket through it, and an entry that no longer names the connection's socket never
//! delivers a segment.

use super::*;
use crate::iface::SocketHandle;
use crate::iface::packet::IpPayload;
use crate::iface::tcp_index::TcpKey;
use crate::socket::tcp;

const LOCAL: Ipv4Address = Ipv4Address::new(192, 168, 1, 1);
const REMOTE: Ipv4Address = Ipv4Address::new(192, 168, 1, 2);
const PORT: u16 = 1234;
const CLIENT_PORT: u16 = 40000;
const CLIENT_ISN: TcpSeqNumber = TcpSeqNumber(1000);

fn listener(sockets: &mut SocketSet<'static>, port: u16) -> SocketHandle {
    let mut socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 1024]),
        tcp::SocketBuffer::new(vec![0; 1024]),
    );
    socket.listen(port).unwrap();
    sockets.add(socket)
}

/// Feeds one segment from the client to the interface and returns the TCP reply, if any.
fn feed(
    iface: &mut Interface,
    sockets: &mut SocketSet<'static>,
    control: TcpControl,
    seq: TcpSeqNumber,
    ack: Option<TcpSeqNumber>,
    payload: &[u8],
) -> Option<TcpRepr<'static>> {
    let repr = TcpRepr {
        src_port: CLIENT_PORT,
        dst_port: PORT,
        control,
        seq_number: seq,
        ack_number: ack,
        window_len: 1024,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None, None, None],
        timestamp: None,
        payload,
    };
    let mut bytes = vec![0u8; repr.buffer_len()];
    repr.emit(
        &mut TcpPacket::new_unchecked(&mut bytes),
        &REMOTE.into(),
        &LOCAL.into(),
        &ChecksumCapabilities::default(),
    );
    let ip = IpRepr::Ipv4(Ipv4Repr {
        src_addr: REMOTE,
        dst_addr: LOCAL,
        next_header: IpProtocol::Tcp,
        payload_len: repr.buffer_len(),
        hop_limit: 64,
    });
    match iface
        .inner
        .process_tcp(sockets, false, ip, &bytes)?
        .payload()
    {
        IpPayload::Tcp(tcp) => Some(TcpRepr {
            payload: &[],
            ..*tcp
        }),
        other => panic!("not a TCP reply: {other:?}"),
    }
}

/// Sends what the sockets queued and returns the sequence number of the SYN-ACK among it.
fn syn_ack_seq(
    iface: &mut Interface,
    sockets: &mut SocketSet<'static>,
    device: &mut crate::tests::TestingDevice,
) -> TcpSeqNumber {
    iface.poll_egress(Instant::ZERO, device, sockets);
    let frames = recv_all(device, Instant::ZERO);
    let [frame] = frames.as_slice() else {
        panic!("one SYN-ACK, got {} frames", frames.len());
    };
    let ip = Ipv4Packet::new_checked(frame.as_slice()).unwrap();
    let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(tcp.syn() && tcp.ack(), "a SYN-ACK");
    tcp.seq_number()
}

/// Listeners on three ports (the middle one is the server) and a completed handshake from the
/// client; returns the server's socket and the next sequence numbers (client's, server's).
fn connected(
    iface: &mut Interface,
    sockets: &mut SocketSet<'static>,
    device: &mut crate::tests::TestingDevice,
) -> (SocketHandle, TcpSeqNumber, TcpSeqNumber) {
    listener(sockets, 1000);
    let server = listener(sockets, PORT);
    listener(sockets, 2000);
    assert_eq!(
        feed(iface, sockets, TcpControl::Syn, CLIENT_ISN, None, &[]),
        None
    );
    assert_eq!(sockets.tcp_index_len(), 1, "the new connection is indexed");
    let server_isn = syn_ack_seq(iface, sockets, device);
    let (client_seq, server_seq) = (CLIENT_ISN + 1, server_isn + 1);
    assert_eq!(
        feed(
            iface,
            sockets,
            TcpControl::None,
            client_seq,
            Some(server_seq),
            &[]
        ),
        None
    );
    assert_eq!(
        sockets.get::<tcp::Socket>(server).state(),
        tcp::State::Established
    );
    (server, client_seq, server_seq)
}

#[test]
fn tcp_index_delivers_the_connections_segments() {
    let (mut iface, mut sockets, mut device) = setup(Medium::Ip);
    let (server, client_seq, server_seq) = connected(&mut iface, &mut sockets, &mut device);
    feed(
        &mut iface,
        &mut sockets,
        TcpControl::Psh,
        client_seq,
        Some(server_seq),
        b"hello",
    );
    // The index names the server's socket under the connection's endpoints.
    let key = TcpKey::of_socket(sockets.get::<tcp::Socket>(server)).unwrap();
    assert_eq!(sockets.indexed_tcp(&key), Some(server));
    let socket = sockets.get_mut::<tcp::Socket>(server);
    let mut buf = [0u8; 16];
    assert_eq!(socket.recv_slice(&mut buf), Ok(5));
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(sockets.tcp_index_len(), 1);
}

#[test]
fn tcp_index_forgets_a_removed_socket() {
    let (mut iface, mut sockets, mut device) = setup(Medium::Ip);
    let (server, client_seq, server_seq) = connected(&mut iface, &mut sockets, &mut device);
    sockets.remove(server);
    assert_eq!(sockets.tcp_index_len(), 0);
    // A new listener takes the removed socket's slot (and handle): the old connection's
    // segment must not reach it, but be answered with a reset as without the index.
    let again = listener(&mut sockets, PORT);
    assert_eq!(again, server);
    let reply = feed(
        &mut iface,
        &mut sockets,
        TcpControl::Psh,
        client_seq,
        Some(server_seq),
        b"hello",
    )
    .expect("a reset");
    assert_eq!(reply.control, TcpControl::Rst);
    assert!(sockets.get::<tcp::Socket>(again).is_listening());
}

#[test]
fn tcp_index_drops_the_entry_of_a_socket_that_listens_again() {
    let (mut iface, mut sockets, mut device) = setup(Medium::Ip);
    let (server, client_seq, server_seq) = connected(&mut iface, &mut sockets, &mut device);
    let socket = sockets.get_mut::<tcp::Socket>(server);
    socket.abort();
    socket.listen(PORT).unwrap();
    let reply = feed(
        &mut iface,
        &mut sockets,
        TcpControl::Psh,
        client_seq,
        Some(server_seq),
        b"hello",
    )
    .expect("a reset");
    assert_eq!(reply.control, TcpControl::Rst);
    assert!(sockets.get::<tcp::Socket>(server).is_listening());
    assert_eq!(sockets.tcp_index_len(), 0, "the stale entry is gone");
    // The next handshake on the same endpoints is found by the scan and indexed again.
    feed(
        &mut iface,
        &mut sockets,
        TcpControl::Syn,
        CLIENT_ISN + 5000,
        None,
        &[],
    );
    assert_eq!(sockets.tcp_index_len(), 1);
    syn_ack_seq(&mut iface, &mut sockets, &mut device);
}
