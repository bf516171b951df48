//! An index of TCP sockets by their endpoints, so that an incoming segment finds its socket
//! without asking every socket in the set whether it takes it (feature `socket-tcp-index`).
//!
//! The index is a hint, never the authority: every socket it names is checked again (the
//! socket must still be a connected TCP socket that `accepts` the segment) before it gets the
//! segment, and an entry that fails the check is dropped; the caller then scans the set as
//! without the index. Listening sockets are never indexed (they are found by the scan), and
//! segments a listening socket could take (those without ACK and RST: a SYN) always go through
//! the scan, so a listener keeps the segments it would take without the index.

use std::collections::HashMap;

use super::socket_set::SocketHandle;
use crate::socket::tcp;
use crate::wire::{IpEndpoint, IpRepr, TcpControl, TcpRepr};

/// The four endpoints of a TCP connection, seen from this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TcpKey {
    local: IpEndpoint,
    remote: IpEndpoint,
}

impl TcpKey {
    /// The endpoints of an incoming segment: its destination is local, its source remote.
    pub(crate) fn of_segment(ip_repr: &IpRepr, tcp_repr: &TcpRepr) -> TcpKey {
        TcpKey {
            local: IpEndpoint::new(ip_repr.dst_addr(), tcp_repr.dst_port),
            remote: IpEndpoint::new(ip_repr.src_addr(), tcp_repr.src_port),
        }
    }

    /// The endpoints of a socket, if it is connected (or connecting).
    pub(crate) fn of_socket(socket: &tcp::Socket) -> Option<TcpKey> {
        Some(TcpKey {
            local: socket.local_endpoint()?,
            remote: socket.remote_endpoint()?,
        })
    }
}

/// Whether the index may answer for `tcp_repr`: only a segment that no listening socket
/// takes (one with ACK or RST), so that the index never takes a segment from a listener.
pub(crate) fn may_use_index(tcp_repr: &TcpRepr) -> bool {
    tcp_repr.ack_number.is_some() || tcp_repr.control == TcpControl::Rst
}

/// Whether `socket` may stay in the index under `key`: it is connected (not listening, not
/// closed) and its endpoints are `key`.
pub(crate) fn still_indexed(socket: &tcp::Socket, key: &TcpKey) -> bool {
    !matches!(socket.state(), tcp::State::Listen | tcp::State::Closed)
        && TcpKey::of_socket(socket).as_ref() == Some(key)
}

/// Socket handles by the endpoints of their connection, at most one entry per socket.
#[derive(Debug, Default)]
pub(crate) struct TcpIndex {
    by_key: HashMap<TcpKey, SocketHandle>,
}

impl TcpIndex {
    /// The socket last indexed under `key`, if any (to be checked by the caller).
    pub(crate) fn get(&self, key: &TcpKey) -> Option<SocketHandle> {
        self.by_key.get(key).copied()
    }

    /// Indexes `handle` under `key`; `previous` is the key the socket was indexed under
    /// before (if any), whose entry goes if it still names this socket.
    pub(crate) fn insert(&mut self, key: TcpKey, handle: SocketHandle, previous: Option<TcpKey>) {
        if let Some(old) = previous
            && old != key
        {
            self.remove(&old, handle);
        }
        self.by_key.insert(key, handle);
    }

    /// Drops the entry under `key` if it names `handle`.
    pub(crate) fn remove(&mut self, key: &TcpKey, handle: SocketHandle) {
        if self.by_key.get(key) == Some(&handle) {
            self.by_key.remove(key);
        }
    }

    /// Number of entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }
}
