//! What the requests ahead in the sequencer's queue touch, summed up in one pass ([`Ahead`]),
//! so that whether a waiting request may go is one lookup per key, not a comparison with every
//! request ahead.
//!
//! Keys are compared by their [`Footprint`]: each key's 64-bit fingerprint, hashed once when the
//! request is submitted with SipHash under a random key of the sequencer's own. Two different
//! keys with the same fingerprint (a chance of 2^-64 per pair, which no client can aim for
//! without the random key) are taken for one key: a request then waits when it need not, never
//! the other way round, so the order of conflicting requests is kept exactly.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

use super::super::Access;

/// Hashes a `u64` that is already well spread, or chosen by the appliance rather than by a peer
/// (connection ids, key fingerprints), with one multiplication instead of SipHash.
#[derive(Debug, Default)]
pub(super) struct MulHasher(u64);

impl Hasher for MulHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // 2^64 / golden ratio (Fibonacci hashing): consecutive ids spread over the whole range
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A request's [`Access`] with each key replaced by its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Footprint {
    /// [`Access::Nothing`].
    Nothing,
    /// [`Access::All`].
    All,
    /// [`Access::Read`] of these key fingerprints.
    Read(Vec<u64>),
    /// [`Access::Write`] of these key fingerprints.
    Write(Vec<u64>),
}

impl Footprint {
    /// The footprint of `access`, its keys fingerprinted under `keys`.
    pub(super) fn of(access: Access, keys: &RandomState) -> Footprint {
        let prints = |list: Vec<Vec<u8>>| list.iter().map(|k| keys.hash_one(k)).collect();
        match access {
            Access::Nothing => Footprint::Nothing,
            Access::All => Footprint::All,
            Access::Read(list) => Footprint::Read(prints(list)),
            Access::Write(list) => Footprint::Write(prints(list)),
        }
    }
}

/// Which connections a key (or all keys) was touched by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owners {
    /// By this connection only.
    One(u64),
    /// By more than one.
    Many,
}

impl Owners {
    /// Also touched by `conn`.
    fn with(this: Option<Owners>, conn: u64) -> Owners {
        match this {
            None => Owners::One(conn),
            Some(Owners::One(c)) if c == conn => Owners::One(c),
            Some(_) => Owners::Many,
        }
    }

    /// True if touched by a connection other than `conn`.
    fn other_than(this: Option<Owners>, conn: u64) -> bool {
        this.is_some_and(|o| o != Owners::One(conn))
    }
}

/// Key fingerprint to the connections that touched the key.
type KeyOwners = HashMap<u64, Owners, BuildHasherDefault<MulHasher>>;

/// What the requests ahead in the queue touch, by which connections: [`Ahead::holds`] says
/// whether one of another connection conflicts with a request (`sequencer::conflicts`), without
/// comparing pairs.
#[derive(Debug, Default)]
pub(super) struct Ahead {
    /// Requests that touch state (anything but [`Footprint::Nothing`]).
    touching: Option<Owners>,
    /// [`Footprint::All`] requests.
    all: Option<Owners>,
    /// Keys written.
    writes: KeyOwners,
    /// Keys read.
    reads: KeyOwners,
}

impl Ahead {
    /// True if a request ahead, of a connection other than `conn`, conflicts with `access`.
    pub(super) fn holds(&self, conn: u64, access: &Footprint) -> bool {
        let other = |o: Option<&Owners>| Owners::other_than(o.copied(), conn);
        match access {
            Footprint::Nothing => false,
            Footprint::All => Owners::other_than(self.touching, conn),
            Footprint::Read(keys) => {
                Owners::other_than(self.all, conn) || keys.iter().any(|k| other(self.writes.get(k)))
            }
            Footprint::Write(keys) => {
                Owners::other_than(self.all, conn)
                    || keys
                        .iter()
                        .any(|k| other(self.writes.get(k)) || other(self.reads.get(k)))
            }
        }
    }

    /// Adds a request of `conn` to what is ahead.
    pub(super) fn add(&mut self, conn: u64, access: &Footprint) {
        let mark = |map: &mut KeyOwners, keys: &[u64]| {
            for &k in keys {
                let o = map.entry(k).or_insert(Owners::One(conn));
                *o = Owners::with(Some(*o), conn);
            }
        };
        match access {
            Footprint::Nothing => return,
            Footprint::All => self.all = Some(Owners::with(self.all, conn)),
            Footprint::Read(keys) => mark(&mut self.reads, keys),
            Footprint::Write(keys) => mark(&mut self.writes, keys),
        }
        self.touching = Some(Owners::with(self.touching, conn));
    }
}
