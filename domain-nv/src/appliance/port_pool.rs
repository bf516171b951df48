//! The local ports of the connections one link opens ([`PortPool`]): the ephemeral range,
//! least recently used first.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// First local port used for connections to replicas (the IANA dynamic range, to 65535).
const EPHEMERAL_FIRST: u16 = 49152;
/// Ports in the ephemeral range.
const EPHEMERAL_COUNT: u32 = u16::MAX as u32 - EPHEMERAL_FIRST as u32 + 1;

/// How long a replica may keep a connection in TIME_WAIT after it closed first (Linux's
/// `TCP_TIMEWAIT_LEN`): a SYN from the same port within it meets the old connection.
pub(super) const TIME_WAIT: Duration = Duration::from_secs(60);

/// Where a pool starts handing out ports: a point of the ephemeral range that differs from one
/// process start to the next (`seed`, e.g. the start time and pid), so that a restarted
/// domain-nv does not reuse the ports of the connections its previous instance left open on
/// the replicas (they would take its SYNs for segments of the old connection).
pub(super) fn first_port(seed: u64) -> u16 {
    // SplitMix64's finalizer: neighbouring seeds land far apart.
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    EPHEMERAL_FIRST + (z % u64::from(EPHEMERAL_COUNT)) as u16
}

/// The free local ports of one link, least recently used first: every port not used yet (in
/// order from the pool's first port, wrapping), then the ports given back, in the order they
/// were given back. A port goes out again only after every other free port did, so a replica
/// that closed a connection first (and keeps it in TIME_WAIT) meets that port again only when
/// the link opens more connections within [`TIME_WAIT`] than it has free ports; those reuses
/// are counted ([`PortPool::reused_in_time_wait`]).
#[derive(Debug)]
pub(super) struct PortPool {
    /// The first port never handed out (with `fresh_left` > 0).
    next_fresh: u16,
    /// Ports never handed out yet.
    fresh_left: u32,
    /// Ports given back, with when, the oldest first.
    returned: VecDeque<(u16, Instant)>,
    /// Ports handed out so far.
    taken: u64,
    /// Ports handed out less than [`TIME_WAIT`] after they were given back.
    reused_in_time_wait: u64,
}

impl PortPool {
    /// The whole ephemeral range, handed out from `first` on.
    pub(super) fn new(first: u16) -> PortPool {
        PortPool {
            next_fresh: first.max(EPHEMERAL_FIRST),
            fresh_left: EPHEMERAL_COUNT,
            returned: VecDeque::new(),
            taken: 0,
            reused_in_time_wait: 0,
        }
    }

    /// The least recently used free port at `now` (`None` if every port is in use).
    pub(super) fn take(&mut self, now: Instant) -> Option<u16> {
        let port = if self.fresh_left > 0 {
            let p = self.next_fresh;
            self.next_fresh = if p == u16::MAX {
                EPHEMERAL_FIRST
            } else {
                p + 1
            };
            self.fresh_left -= 1;
            p
        } else {
            let (p, returned_at) = self.returned.pop_front()?;
            if now.saturating_duration_since(returned_at) < TIME_WAIT {
                self.reused_in_time_wait += 1;
            }
            p
        };
        self.taken += 1;
        Some(port)
    }

    /// `port`, from [`PortPool::take`], is free again from `now`.
    pub(super) fn give_back(&mut self, port: u16, now: Instant) {
        self.returned.push_back((port, now));
    }

    /// Ports handed out so far.
    pub(super) fn taken(&self) -> u64 {
        self.taken
    }

    /// Ports handed out less than [`TIME_WAIT`] after they were last given back.
    pub(super) fn reused_in_time_wait(&self) -> u64 {
        self.reused_in_time_wait
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn first_ports_spread_over_the_ephemeral_range() {
        let ports: HashSet<u16> = (0..1000u64).map(first_port).collect();
        assert!(ports.iter().all(|&p| p >= EPHEMERAL_FIRST));
        // Neighbouring seeds (restarts close in time) start apart (1000 of 16384: ~30 collide).
        assert!(ports.len() > 900, "{} distinct", ports.len());
        assert!(ports.iter().any(|&p| p < 50_000) && ports.iter().any(|&p| p > 65_000));
    }

    #[test]
    fn every_port_goes_out_once_from_the_first_one_wrapping() {
        let t = Instant::now();
        let mut pool = PortPool::new(65_534);
        assert_eq!(pool.take(t), Some(65_534));
        assert_eq!(pool.take(t), Some(65_535));
        assert_eq!(pool.take(t), Some(EPHEMERAL_FIRST));
        let mut seen: HashSet<u16> = [65_534, 65_535, EPHEMERAL_FIRST].into();
        while let Some(p) = pool.take(t) {
            assert!(seen.insert(p), "port {p} handed out twice");
        }
        assert_eq!(seen.len() as u32, EPHEMERAL_COUNT);
        assert_eq!(pool.taken(), u64::from(EPHEMERAL_COUNT));
    }

    #[test]
    fn a_port_given_back_waits_behind_every_port_not_used_yet() {
        let t = Instant::now();
        let mut pool = PortPool::new(EPHEMERAL_FIRST);
        let p = pool.take(t).unwrap();
        pool.give_back(p, t);
        for _ in 1..EPHEMERAL_COUNT {
            assert_ne!(pool.take(t), Some(p));
        }
        assert_eq!(pool.take(t), Some(p));
        assert_eq!(pool.take(t), None);
    }

    #[test]
    fn ports_given_back_go_out_again_least_recently_used_first() {
        let t = Instant::now();
        let mut pool = PortPool::new(EPHEMERAL_FIRST);
        let ports: Vec<u16> = (0..EPHEMERAL_COUNT)
            .map(|_| pool.take(t).unwrap())
            .collect();
        // Given back in an order other than the one they went out in.
        let order = [ports[7], ports[3], ports[9]];
        for (i, &p) in order.iter().enumerate() {
            pool.give_back(p, t + Duration::from_secs(i as u64));
        }
        let later = t + TIME_WAIT * 2;
        assert_eq!(pool.take(later), Some(ports[7]));
        // Given back again: it now waits behind the two others.
        pool.give_back(ports[7], later);
        assert_eq!(pool.take(later), Some(ports[3]));
        assert_eq!(pool.take(later), Some(ports[9]));
        assert_eq!(pool.take(later), Some(ports[7]));
        assert_eq!(pool.take(later), None);
    }

    #[test]
    fn only_a_reuse_within_time_wait_is_counted() {
        let t = Instant::now();
        let mut pool = PortPool::new(EPHEMERAL_FIRST);
        let ports: Vec<u16> = (0..EPHEMERAL_COUNT)
            .map(|_| pool.take(t).unwrap())
            .collect();
        assert_eq!(pool.reused_in_time_wait(), 0);
        pool.give_back(ports[0], t);
        pool.give_back(ports[1], t);
        // One at the end of TIME_WAIT (not counted), one just before it (counted).
        assert_eq!(pool.take(t + TIME_WAIT), Some(ports[0]));
        assert_eq!(pool.reused_in_time_wait(), 0);
        pool.give_back(ports[0], t + TIME_WAIT);
        assert_eq!(pool.take(t + TIME_WAIT), Some(ports[1]));
        assert_eq!(pool.reused_in_time_wait(), 0);
        assert_eq!(
            pool.take(t + TIME_WAIT * 2 - Duration::from_millis(1)),
            Some(ports[0])
        );
        assert_eq!(pool.reused_in_time_wait(), 1);
    }
}
