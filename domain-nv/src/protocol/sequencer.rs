//! The [`Sequencer`] of one service: admits each connection's requests to the voter so that
//! every replica processes requests that conflict in the same order (sans-IO: no sockets, no
//! clock; the appliance tells it of requests, replies and cut-off replicas).
//!
//! The rule: a request of connection `c` is admitted once
//! - every earlier request of `c` is admitted (a connection's requests stay in stream order and
//!   never wait for each other), and
//! - no request of another connection that arrived before it and [`conflicts`] with it is still
//!   waiting or unanswered. A request is answered once every replica of its connection that is
//!   still taking part (not cut off) has completed its reply.
//!
//! Once a conflicting request was answered by every replica, every replica has processed it, so
//! every replica processes the waiting one after it. Waiting requests block conflicting later
//! arrivals too: conflicting requests are served first-come-first-served, and a stream of reads
//! cannot starve a write.
//!
//! Bounded state: per connection at most [`MAX_IN_FLIGHT`] requests submitted and unanswered,
//! of which at most one waits (the appliance submits a connection's next request only once the
//! previous one is admitted).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, RandomState};

use super::Access;

mod ahead;

use ahead::{Ahead, Footprint, MulHasher};

/// Most requests of one connection admitted and not yet answered by every replica (pipelining
/// beyond this waits for replies).
pub const MAX_IN_FLIGHT: usize = 1024;

/// Whether two requests of different connections must be processed in the same order by every
/// replica: [`Access::Nothing`] conflicts with nothing, [`Access::All`] with every other request
/// that touches state, two reads never, and a write with a read or write that shares a key.
pub fn conflicts(a: &Access, b: &Access) -> bool {
    use Access::{All, Nothing, Read, Write};
    match (a, b) {
        (Nothing, _) | (_, Nothing) => false,
        (All, _) | (_, All) => true,
        (Read(_), Read(_)) => false,
        (Read(x) | Write(x), Write(y)) | (Write(x), Read(y)) => x.iter().any(|k| y.contains(k)),
    }
}

/// Why a request could not be submitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The connection was never opened or is closed.
    #[error("unknown connection")]
    UnknownConnection,
    /// The connection's previous request still waits, or [`MAX_IN_FLIGHT`] of its requests are
    /// unanswered: submit again once [`Sequencer::can_submit`] says so.
    #[error("the connection's previous request is not admitted yet, or too many are in flight")]
    Busy,
}

/// One submitted request, admitted or waiting, until it is answered.
#[derive(Debug)]
struct Entry {
    /// Its connection.
    conn: u64,
    /// Its index among the connection's requests (0 = first).
    index: u64,
    /// What it touches.
    access: Footprint,
    /// Whether it was admitted.
    admitted: bool,
}

/// One open connection's standing.
#[derive(Debug)]
struct Conn {
    /// Replies completed per replica of the connection; `None` once the replica was cut off.
    replies: Vec<Option<u64>>,
    /// Requests submitted.
    submitted: u64,
    /// Requests admitted (the first `admitted` of those submitted).
    admitted: u64,
    /// Its requests in the queue (submitted and not yet answered).
    queued: usize,
}

impl Conn {
    /// The requests below this index are answered: every replica still taking part completed
    /// that many replies (replies come in request order), and they were admitted.
    fn answered_below(&self) -> u64 {
        let fewest = self.replies.iter().flatten().copied().min();
        fewest.unwrap_or(u64::MAX).min(self.admitted)
    }
}

/// The open connections by id.
/// (The appliance numbers its connections itself, no peer picks an id: one multiplication
/// hashes them well enough, and they are looked up several times a round.)
type Conns = HashMap<u64, Conn, BuildHasherDefault<MulHasher>>;

/// Orders the requests of one service's connections (see the module documentation).
#[derive(Debug, Default)]
pub struct Sequencer {
    /// Submitted requests not yet answered, in the order they were submitted.
    queue: VecDeque<Entry>,
    /// The open connections.
    conns: Conns,
    /// Requests in `queue` not yet admitted.
    waiting: usize,
    /// Keys the fingerprints of requests' keys (random per sequencer).
    fingerprints: RandomState,
}

impl Sequencer {
    /// A sequencer with no connection.
    pub fn new() -> Sequencer {
        Sequencer::default()
    }

    /// Connection `conn` opened with `replicas` replica sides (indices `0..replicas`).
    pub fn open(&mut self, conn: u64, replicas: usize) {
        self.conns.insert(
            conn,
            Conn {
                replies: vec![Some(0); replicas],
                submitted: 0,
                admitted: 0,
                queued: 0,
            },
        );
    }

    /// Whether connection `conn` may submit its next request now: it is open, its previous
    /// request is admitted and fewer than [`MAX_IN_FLIGHT`] are unanswered.
    pub fn can_submit(&self, conn: u64) -> bool {
        let Some(c) = self.conns.get(&conn) else {
            return false;
        };
        c.submitted == c.admitted && c.queued < MAX_IN_FLIGHT
    }

    /// Submits connection `conn`'s next request; returns its index among the connection's
    /// requests. It is admitted at once if nothing it conflicts with is ahead of it (see
    /// [`Sequencer::admitted`]).
    pub fn submit(&mut self, conn: u64, access: Access) -> Result<u64, SubmitError> {
        if !self.conns.contains_key(&conn) {
            return Err(SubmitError::UnknownConnection);
        }
        if !self.can_submit(conn) {
            return Err(SubmitError::Busy);
        }
        let c = self.conns.get_mut(&conn).expect("checked above");
        let index = c.submitted;
        c.submitted += 1;
        c.queued += 1;
        self.queue.push_back(Entry {
            conn,
            index,
            access: Footprint::of(access, &self.fingerprints),
            admitted: false,
        });
        self.waiting += 1;
        self.settle(vec![conn], true);
        Ok(index)
    }

    /// How many of connection `conn`'s requests are admitted (0 for an unknown connection).
    pub fn admitted(&self, conn: u64) -> u64 {
        self.conns.get(&conn).map_or(0, |c| c.admitted)
    }

    /// Replica `replica` of connection `conn` completed `n` more replies.
    pub fn replied(&mut self, conn: u64, replica: usize, n: usize) {
        if n == 0 {
            return;
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if let Some(Some(done)) = c.replies.get_mut(replica) {
            *done += n as u64;
            self.settle(vec![conn], false);
        }
    }

    /// Replica `replica` of connection `conn` takes no further part (cut off, gone, or its
    /// output ended): its replies are no longer waited for.
    pub fn cut_off(&mut self, conn: u64, replica: usize) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if let Some(slot @ Some(_)) = c.replies.get_mut(replica) {
            *slot = None;
            self.settle(vec![conn], false);
        }
    }

    /// Connection `conn` is over: its requests no longer hold anyone back.
    pub fn close(&mut self, conn: u64) {
        if self.conns.remove(&conn).is_some() {
            let waiting = self.queue.iter().filter(|e| e.conn == conn && !e.admitted);
            self.waiting -= waiting.count();
            self.queue.retain(|e| e.conn != conn);
            self.settle(Vec::new(), true);
        }
    }

    /// Requests submitted and not yet answered, over every connection.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// Drops the answered requests of the connections in `changed`, then, if that freed
    /// anything (or `admit` says a request was submitted or a connection closed), admits every
    /// waiting request that nothing holds back; and again for the connections whose requests
    /// were admitted (one may already be answered: every replica of its connection cut off).
    fn settle(&mut self, mut changed: Vec<u64>, mut admit: bool) {
        loop {
            for conn in changed.drain(..) {
                admit |= self.drop_answered(conn);
            }
            if !admit || self.waiting == 0 {
                return;
            }
            changed = self.admit_waiting();
            admit = false;
            if changed.is_empty() {
                return;
            }
        }
    }

    /// Drops connection `conn`'s answered requests from the queue; true if there were any.
    fn drop_answered(&mut self, conn: u64) -> bool {
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        // Its admitted requests not yet dropped are those from `submitted - queued` on.
        let below = c.answered_below();
        let first_queued = c.submitted - c.queued as u64;
        if below <= first_queued {
            return false;
        }
        self.queue
            .retain(|e| !(e.conn == conn && e.admitted && e.index < below));
        c.queued -= (below - first_queued) as usize;
        true
    }

    /// Admits, in arrival order, each waiting request whose connection's earlier requests are
    /// admitted and that no earlier request of another connection conflicts with; returns the
    /// connections of those admitted. One pass over the queue, with what the requests ahead
    /// touch summed up in [`Ahead`].
    fn admit_waiting(&mut self) -> Vec<u64> {
        let mut ahead = Ahead::default();
        let mut admit = Vec::new();
        for (i, e) in self.queue.iter().enumerate() {
            let next_of_its_connection = self
                .conns
                .get(&e.conn)
                .is_some_and(|c| c.admitted == e.index);
            if !e.admitted && next_of_its_connection && !ahead.holds(e.conn, &e.access) {
                admit.push(i);
            }
            ahead.add(e.conn, &e.access);
        }
        let mut conns = Vec::with_capacity(admit.len());
        for &i in &admit {
            let e = &mut self.queue[i];
            e.admitted = true;
            self.waiting -= 1;
            if let Some(c) = self.conns.get_mut(&e.conn) {
                c.admitted += 1;
            }
            conns.push(e.conn);
        }
        conns
    }
}

#[cfg(test)]
mod tests;
