//! The [`Gate`] of one client connection of a service that orders its requests: client bytes
//! go through the connection's `RequestFramer` and are held until the service's `Sequencer`
//! admits the request they belong to; only then do they go to the voter (and on to every
//! replica). Each admitted request's `ReplyRule` is told to the replicas' reply framers before
//! its first byte can reach a replica.
//!
//! Bytes before a request's beginning (between requests) go with that request. The held bytes
//! are bounded ([`HELD_LIMIT`]): past it, the client's socket is not read (backpressure).

use std::collections::VecDeque;
use std::time::Instant;

use smoltcp::socket::tcp;

use super::reply_path::ReplyPath;
use crate::protocol::sequencer::Sequencer;
use crate::protocol::{ReplyRule, RequestEvent, RequestFramer};
use crate::voter::{ReplicaState, Voter};

/// Most client bytes held back from the voter (read from the socket, not yet admitted or not
/// yet taken by the voter). Above every request framer's bound for finding a request's
/// beginning (64 KiB for an HTTP head or a redis command's classification), so a framer always
/// gets to see enough of a waiting request to report it.
pub(super) const HELD_LIMIT: usize = 256 * 1024;

/// Client input between the client's socket and the voter of one connection.
pub(super) struct Gate {
    /// The connection's key in the sequencer.
    conn: u64,
    /// Frames the client's stream into requests.
    framer: Box<dyn RequestFramer>,
    /// Client bytes read and not yet taken by the voter.
    held: VecDeque<u8>,
    /// Client-stream offset of `held`'s first byte (the bytes the voter took).
    pushed: u64,
    /// The framer's events not yet acted on, in stream order.
    events: VecDeque<RequestEvent>,
    /// Where the framer appends events (reused).
    found: Vec<RequestEvent>,
    /// The request submitted to the sequencer and not yet admitted: its index and reply rule.
    waiting: Option<(u64, ReplyRule)>,
    /// How far the client's bytes may go to the voter; `None`: as far as they come (an
    /// admitted request has not ended).
    open_to: Option<u64>,
}

impl Gate {
    /// The gate of connection `conn` (its key in the sequencer), framing with `framer`.
    pub fn new(conn: u64, framer: Box<dyn RequestFramer>) -> Gate {
        Gate {
            conn,
            framer,
            held: VecDeque::new(),
            pushed: 0,
            events: VecDeque::new(),
            found: Vec::new(),
            waiting: None,
            open_to: Some(0),
        }
    }

    /// Reads the client's socket (up to the held bound), submits and admits requests as the
    /// sequencer allows (telling `replies` each admitted request's rule), and moves admitted
    /// bytes into the voter.
    pub fn pump(
        &mut self,
        s: &mut tcp::Socket<'static>,
        seq: &mut Sequencer,
        replies: Option<&mut ReplyPath>,
        voter: &mut Voter,
        now: Instant,
    ) {
        self.read(s);
        self.admit(seq, replies);
        self.push(voter, now);
    }

    /// True once every byte read from the client went to the voter (its FIN may follow).
    pub fn drained(&self) -> bool {
        self.held.is_empty()
    }

    /// True if the sequencer admitted the waiting request since the gate last looked (the
    /// connection needs a round).
    pub fn newly_admitted(&self, seq: &Sequencer) -> bool {
        self.waiting
            .is_some_and(|(index, _)| seq.admitted(self.conn) > index)
    }

    /// Tells the sequencer what the connection's replicas did: replies they completed (counted
    /// by `replies`' framers) and which take no further part (cut off, gone, or their output
    /// ended).
    pub fn note_replicas(
        &self,
        seq: &mut Sequencer,
        mut replies: Option<&mut ReplyPath>,
        voter: &Voter,
    ) {
        for r in 0..voter.replicas() {
            if let Some(path) = replies.as_deref_mut() {
                seq.replied(self.conn, r, path.stream(r).take_replies());
            }
            if matches!(
                voter.replica_state(r),
                ReplicaState::Faulty | ReplicaState::Gone | ReplicaState::Finished
            ) {
                seq.cut_off(self.conn, r);
            }
        }
    }

    /// Client bytes into `held` and through the framer, while the bound allows.
    fn read(&mut self, s: &mut tcp::Socket<'static>) {
        while self.held.len() < HELD_LIMIT && s.can_recv() {
            let room = HELD_LIMIT - self.held.len();
            let (framer, held, found) = (&mut self.framer, &mut self.held, &mut self.found);
            let taken = s.recv(|buf| {
                let n = buf.len().min(room);
                framer.feed(&buf[..n], found);
                held.extend(&buf[..n]);
                (n, n)
            });
            self.events.extend(self.found.drain(..));
            if !matches!(taken, Ok(n) if n > 0) {
                break;
            }
        }
    }

    /// Acts on the framer's events in order: a request's beginning is submitted to the
    /// sequencer and, once admitted, opens the gate (its rule told to `replies` first); its end
    /// closes the gate at its last byte.
    fn admit(&mut self, seq: &mut Sequencer, mut replies: Option<&mut ReplyPath>) {
        loop {
            if let Some((index, rule)) = self.waiting {
                if seq.admitted(self.conn) <= index {
                    return;
                }
                if let Some(r) = replies.as_deref_mut() {
                    r.expect(rule);
                }
                self.waiting = None;
                self.open_to = None;
            }
            match self.events.front() {
                None => return,
                Some(RequestEvent::Begin { access, reply, .. }) => {
                    if !seq.can_submit(self.conn) {
                        return;
                    }
                    let rule = *reply;
                    match seq.submit(self.conn, access.clone()) {
                        Ok(index) => self.waiting = Some((index, rule)),
                        Err(e) => {
                            log::warn!("connection {}: sequencer: {e}", self.conn);
                            return;
                        }
                    }
                }
                Some(RequestEvent::End { at }) => self.open_to = Some(*at),
            }
            self.events.pop_front();
        }
    }

    /// Held bytes the gate lets through into the voter, while its window allows.
    fn push(&mut self, voter: &mut Voter, now: Instant) {
        loop {
            let open = match self.open_to {
                None => self.held.len(),
                Some(to) => (to.saturating_sub(self.pushed) as usize).min(self.held.len()),
            };
            let n = open.min(voter.client_window());
            if n == 0 {
                return;
            }
            let (front, _) = self.held.as_slices();
            let taken = voter.push_client(&front[..n.min(front.len())], now);
            if taken == 0 {
                return;
            }
            self.held.drain(..taken);
            self.pushed += taken as u64;
        }
    }
}
