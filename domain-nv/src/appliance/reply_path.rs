//! The [`ReplyPath`] of one client connection of a service with a protocol: each replica's
//! output goes through its own `ReplyFramer` ([`ReplyStream`]), whose comparison bytes the voter
//! votes on, and the released bytes go to the client with their masked fields replaced by one
//! agreeing replica's real bytes.
//!
//! - Comparison bytes the voter cannot take yet wait in the stream (at most the framer's own
//!   bound beyond the voter's window): the replica's socket is read only once they are taken.
//! - Each replica's `Masked` records are kept until the client has been sent past them (bounded
//!   by the unreleased and unsent bytes the voter holds).
//! - The bytes released to the client are one replica's real bytes: the *source*, a Member that
//!   agreed with the released stream up to the end of what is sent, kept as long as it
//!   qualifies. A released range without a masked field of the source goes out as the voter
//!   holds it (no copy).
//! - A masked field whose real bytes differ between agreeing replicas is counted (per
//!   service), blamed on no one.

use std::collections::VecDeque;
use std::time::Instant;

use smoltcp::socket::tcp;

use crate::protocol::{Masked, ReplyError, ReplyFramer, ReplyOutput, ReplyRule};
use crate::voter::{ReplicaState, Role, Voter};

/// One replica's output on one connection, between its socket and the voter.
pub(super) struct ReplyStream {
    /// Frames and masks the replica's replies.
    framer: Box<dyn ReplyFramer>,
    /// Where the framer appends its output (reused).
    out: ReplyOutput,
    /// Comparison bytes not yet taken by the voter.
    pending: Vec<u8>,
    /// Real bytes of masked fields not yet sent to the client past, in stream order.
    masks: VecDeque<Masked>,
    /// Replies completed since [`ReplyStream::take_replies`].
    replies: usize,
}

impl ReplyStream {
    /// A stream framed by `framer`.
    fn new(framer: Box<dyn ReplyFramer>) -> ReplyStream {
        ReplyStream {
            framer,
            out: ReplyOutput::default(),
            pending: Vec::new(),
            masks: VecDeque::new(),
            replies: 0,
        }
    }

    /// True if comparison bytes wait for the voter (the replica's socket is not read then).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Takes the replica's next output bytes through the framer.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), ReplyError> {
        let result = self.framer.feed(bytes, &mut self.out);
        self.pending.extend_from_slice(&self.out.compare);
        self.masks.extend(self.out.masked.drain(..));
        self.replies += self.out.replies_done;
        self.out.compare.clear();
        self.out.replies_done = 0;
        result
    }

    /// Moves waiting comparison bytes into the voter as replica `r`'s output, as far as its
    /// window allows.
    pub fn flush(&mut self, r: usize, voter: &mut Voter, now: Instant) {
        if self.pending.is_empty() {
            return;
        }
        let n = voter.push_replica(r, &self.pending, now);
        self.pending.drain(..n);
    }

    /// Replies completed since last asked.
    pub fn take_replies(&mut self) -> usize {
        std::mem::take(&mut self.replies)
    }

    /// Forgets the masked fields that end at or before `sent`.
    fn trim(&mut self, sent: u64) {
        while self
            .masks
            .front()
            .is_some_and(|m| m.at + m.real.len() as u64 <= sent)
        {
            self.masks.pop_front();
        }
    }

    /// True if a masked field overlaps `[from, to)`.
    fn masked_in(&self, from: u64, to: u64) -> bool {
        self.masks
            .iter()
            .any(|m| m.at < to && m.at + m.real.len() as u64 > from)
    }
}

/// The reply side of one connection: one [`ReplyStream`] per replica side, and what has been
/// sent to the client.
pub(super) struct ReplyPath {
    /// Per replica side (the voter's index).
    streams: Vec<ReplyStream>,
    /// Released bytes sent to the client.
    sent: u64,
    /// Masked fields starting before this offset have been compared across replicas.
    counted_to: u64,
    /// The replica whose real bytes the client gets.
    source: Option<usize>,
    /// The client's bytes with masked fields replaced (reused).
    scratch: Vec<u8>,
}

impl ReplyPath {
    /// A reply path with one stream per framer, in replica-side order.
    pub fn new(framers: Vec<Box<dyn ReplyFramer>>) -> ReplyPath {
        ReplyPath {
            streams: framers.into_iter().map(ReplyStream::new).collect(),
            sent: 0,
            counted_to: 0,
            source: None,
            scratch: Vec::new(),
        }
    }

    /// Tells every replica's framer the rule of the next request's reply (before the request
    /// can reach any replica).
    pub fn expect(&mut self, rule: ReplyRule) {
        for s in &mut self.streams {
            s.framer.expect(rule);
        }
    }

    /// Replica side `r`'s stream.
    pub fn stream(&mut self, r: usize) -> &mut ReplyStream {
        &mut self.streams[r]
    }

    /// Sends the voter's released bytes to the client, masked fields replaced by the source's
    /// real bytes; returns how many masked fields differed between agreeing replicas.
    pub fn send(&mut self, s: &mut tcp::Socket<'static>, voter: &mut Voter, now: Instant) -> u64 {
        let mut differed = 0;
        loop {
            let out = voter.client_output();
            if out.is_empty() || !s.can_send() {
                break;
            }
            let room = s.send_capacity() - s.send_queue();
            let take = out.len().min(room);
            let (from, to) = (self.sent, self.sent + take as u64);
            let source = self.choose_source(voter, to);
            let sent = match source.filter(|&r| self.streams[r].masked_in(from, to)) {
                None => s.send_slice(&out[..take]),
                Some(r) => {
                    self.scratch.clear();
                    self.scratch.extend_from_slice(&out[..take]);
                    overlay(&self.streams[r].masks, from, &mut self.scratch);
                    differed += self.count_differences(r, voter, to);
                    s.send_slice(&self.scratch)
                }
            };
            match sent {
                Ok(n) if n > 0 => {
                    voter.client_output_sent(n, now);
                    self.sent += n as u64;
                    for st in &mut self.streams {
                        st.trim(self.sent);
                    }
                }
                _ => break,
            }
        }
        differed
    }

    /// The replica whose real bytes go out up to released offset `to`: the current source if it
    /// still agrees that far, else a live Member that does, else any replica that does.
    fn choose_source(&mut self, voter: &Voter, to: u64) -> Option<usize> {
        let agrees = |r: usize| voter.agreed_output(r) >= to;
        let serving = |r: usize| {
            agrees(r)
                && voter.role(r) == Role::Member
                && matches!(
                    voter.replica_state(r),
                    ReplicaState::Live | ReplicaState::Finished
                )
        };
        let n = self.streams.len();
        self.source = self
            .source
            .filter(|&r| agrees(r))
            .or_else(|| (0..n).find(|&r| serving(r)))
            .or_else(|| (0..n).find(|&r| agrees(r)));
        self.source
    }

    /// Compares, for each masked field of `source` starting in `[counted_to, to)`, its real
    /// bytes with those of every other replica that agreed that far and has a field at the same
    /// place; returns how many differed.
    fn count_differences(&mut self, source: usize, voter: &Voter, to: u64) -> u64 {
        let from = self.counted_to.max(self.sent);
        self.counted_to = self.counted_to.max(to);
        let mut differed = 0;
        for m in self.streams[source]
            .masks
            .iter()
            .filter(|m| m.at >= from && m.at < to)
        {
            let differs = (0..self.streams.len())
                .filter(|&r| r != source && voter.agreed_output(r) >= m.at + m.real.len() as u64)
                .filter_map(|r| self.streams[r].masks.iter().find(|o| o.at == m.at))
                .any(|o| o.real != m.real);
            differed += u64::from(differs);
        }
        differed
    }
}

/// Replaces the bytes of `buf` (released stream from offset `from`) that lie in a masked field
/// with the field's real bytes.
fn overlay(masks: &VecDeque<Masked>, from: u64, buf: &mut [u8]) {
    let to = from + buf.len() as u64;
    for m in masks {
        let end = m.at + m.real.len() as u64;
        if end <= from || m.at >= to {
            continue;
        }
        let lo = m.at.max(from);
        let hi = end.min(to);
        let dst = &mut buf[(lo - from) as usize..(hi - from) as usize];
        let src = &m.real[(lo - m.at) as usize..(hi - m.at) as usize];
        dst.copy_from_slice(src);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_replaces_only_the_masked_bytes_in_range() {
        let masks: VecDeque<Masked> = [
            Masked {
                at: 2,
                real: b"ab".to_vec(),
            },
            Masked {
                at: 8,
                real: b"cdef".to_vec(),
            },
        ]
        .into();
        let mut buf = *b"xxxxxxxx";
        overlay(&masks, 3, &mut buf);
        assert_eq!(&buf, b"bxxxxcde", "fields cut at both ends of the range");
    }
}
