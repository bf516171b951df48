//! The connection limits ([`ConnectionLimits`]): how many client connections are open, in all
//! and per client address, and whether one more may open (`max_connections`,
//! `max_connections_per_client`; 0 is unlimited).

use std::collections::HashMap;

use smoltcp::wire::IpAddress;

/// Which limit refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LimitReached {
    /// `max_connections`: too many connections in all.
    Global,
    /// `max_connections_per_client`: too many from this client address.
    PerClient,
}

/// The open client connections, by connection id and by client address.
pub(super) struct ConnectionLimits {
    /// Most connections in all; 0: unlimited.
    max: usize,
    /// Most connections per client address; 0: unlimited.
    max_per_client: usize,
    /// The client address of each admitted connection, by connection id.
    peers: HashMap<u64, IpAddress>,
    /// Admitted connections per client address (no entry at 0).
    per_client: HashMap<IpAddress, usize>,
}

impl ConnectionLimits {
    /// No connection open yet; `max` and `max_per_client` of 0 are unlimited.
    pub fn new(max: usize, max_per_client: usize) -> ConnectionLimits {
        ConnectionLimits {
            max,
            max_per_client,
            peers: HashMap::new(),
            per_client: HashMap::new(),
        }
    }

    /// Changes the limits (a config change); connections already open stay open even if over.
    pub fn set(&mut self, max: usize, max_per_client: usize) {
        self.max = max;
        self.max_per_client = max_per_client;
    }

    /// Admits connection `id` from `peer` if both limits allow one more, and counts it.
    pub fn admit(&mut self, id: u64, peer: IpAddress) -> Result<(), LimitReached> {
        if self.max != 0 && self.peers.len() >= self.max {
            return Err(LimitReached::Global);
        }
        let n = self.per_client.get(&peer).copied().unwrap_or(0);
        if self.max_per_client != 0 && n >= self.max_per_client {
            return Err(LimitReached::PerClient);
        }
        self.peers.insert(id, peer);
        self.per_client.insert(peer, n + 1);
        Ok(())
    }

    /// Connection `id` is gone: it no longer counts (nothing if it was never admitted).
    pub fn release(&mut self, id: u64) {
        let Some(peer) = self.peers.remove(&id) else {
            return;
        };
        if let Some(n) = self.per_client.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                self.per_client.remove(&peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(last: u8) -> IpAddress {
        IpAddress::v4(10, 0, 0, last)
    }

    #[test]
    fn zero_is_unlimited() {
        let mut l = ConnectionLimits::new(0, 0);
        for id in 0..10_000 {
            assert_eq!(l.admit(id, addr(1)), Ok(()));
        }
    }

    #[test]
    fn per_client_limit_counts_each_address_apart_and_frees_on_release() {
        let mut l = ConnectionLimits::new(0, 4);
        for id in 0..4 {
            assert_eq!(l.admit(id, addr(1)), Ok(()));
        }
        assert_eq!(l.admit(4, addr(1)), Err(LimitReached::PerClient));
        assert_eq!(l.admit(5, addr(2)), Ok(()));
        // A refused connection was never counted: releasing it changes nothing.
        l.release(4);
        assert_eq!(l.admit(6, addr(1)), Err(LimitReached::PerClient));
        l.release(2);
        assert_eq!(l.admit(7, addr(1)), Ok(()));
        assert_eq!(l.admit(8, addr(1)), Err(LimitReached::PerClient));
        for id in [0, 1, 3, 7, 5] {
            l.release(id);
        }
        assert!(l.per_client.is_empty() && l.peers.is_empty());
    }

    #[test]
    fn global_limit_spans_addresses() {
        let mut l = ConnectionLimits::new(3, 2);
        assert_eq!(l.admit(0, addr(1)), Ok(()));
        assert_eq!(l.admit(1, addr(2)), Ok(()));
        assert_eq!(l.admit(2, addr(3)), Ok(()));
        assert_eq!(l.admit(3, addr(4)), Err(LimitReached::Global));
        l.release(1);
        assert_eq!(l.admit(4, addr(4)), Ok(()));
    }

    #[test]
    fn lowering_a_limit_keeps_open_connections_and_refuses_new_ones() {
        let mut l = ConnectionLimits::new(0, 0);
        for id in 0..3 {
            assert_eq!(l.admit(id, addr(1)), Ok(()));
        }
        l.set(0, 2);
        assert_eq!(l.admit(3, addr(1)), Err(LimitReached::PerClient));
        l.release(0);
        assert_eq!(l.admit(4, addr(1)), Err(LimitReached::PerClient));
        l.release(1);
        assert_eq!(l.admit(5, addr(1)), Ok(()));
    }
}
