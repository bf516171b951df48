//! The released stream: bytes a quorum agreed on, waiting to be sent to the client and to be
//! checked against lagging replicas.
//!
//! Memory: one released buffer = bytes not yet sent to the client plus released bytes a lagging
//! replica has not been checked against yet, bounded by `buffer_limit`: bytes are released only
//! while it has room (so a lagging replica slows the others by at most `buffer_limit` bytes until
//! the straggler timeout cuts it off).
//!
//! Copies: each byte a quorum agrees on is copied once, into the voter. The first replica to
//! produce bytes at the released offset (the "owner") has them stored in the released buffer
//! right after the released bytes, so releasing them only moves an offset; the other replicas'
//! bytes are compared in place against them as they arrive (a second replica's bytes are only
//! buffered when they cannot be decided at once). The caller reads client output by reference
//! (`client_output`).

use super::bytes::{Ring, View};
use super::replica::Replica;
use super::ReplicaId;

/// Where the released stream stands: its released offset and the offset of its first byte held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ReleaseMark {
    offset: u64,
    base: u64,
}

/// Released bytes `[base, offset)`, followed by the owner's unvoted bytes `[offset, prod of
/// owner)` if there is an owner; the client has been sent up to `client_sent`.
#[derive(Debug)]
pub(super) struct Released {
    ring: Ring,
    /// The replica (at `offset`, nothing in its own buffer) whose unvoted output is stored in
    /// `ring` right after the released bytes, so that releasing its bytes copies nothing.
    owner: Option<ReplicaId>,
    /// Stream offset of the first byte of `ring`.
    base: u64,
    /// Released offset: bytes before it were agreed on.
    offset: u64,
    /// Stream offset up to which the client has been sent bytes.
    client_sent: u64,
    /// Most released bytes held (`buffer_limit`).
    limit: usize,
}

impl Released {
    /// An empty released stream holding at most `limit` released bytes.
    pub(super) fn new(limit: usize) -> Released {
        Released {
            ring: Ring::default(),
            owner: None,
            base: 0,
            offset: 0,
            client_sent: 0,
            limit,
        }
    }
    /// The released offset: every byte before it was agreed on.
    pub(super) fn offset(&self) -> u64 {
        self.offset
    }
    /// Where the released stream stands (changes when bytes are released or room is freed).
    pub(super) fn mark(&self) -> ReleaseMark {
        ReleaseMark {
            offset: self.offset,
            base: self.base,
        }
    }
    /// The replica whose unvoted bytes are stored after the released ones, if any.
    pub(super) fn owner(&self) -> Option<ReplicaId> {
        self.owner
    }
    /// How many more bytes may be released before the client or a lagging replica catches up.
    pub(super) fn room(&self) -> usize {
        let used = (self.offset - self.base) as usize;
        self.limit.saturating_sub(used)
    }
    /// Bytes held (released ones and the owner's unvoted ones).
    pub(super) fn len(&self) -> usize {
        self.ring.len()
    }
    /// Give the buffer's memory back if it holds nothing.
    pub(super) fn shrink_if_empty(&mut self) {
        self.ring.shrink_if_empty();
    }
    /// Bytes allocated for the buffer.
    pub(super) fn allocated(&self) -> usize {
        self.ring.allocated()
    }
    /// Every released byte was sent to the client.
    pub(super) fn all_sent(&self) -> bool {
        self.client_sent == self.offset
    }
    /// Released bytes not yet sent to the client (a contiguous slice; may be a prefix).
    pub(super) fn client_output(&self) -> &[u8] {
        let from = (self.client_sent - self.base) as usize;
        let to = (self.offset - self.base) as usize;
        self.ring.view().range(from, to).first_piece()
    }
    /// `n` bytes of `client_output()` were sent to the client.
    pub(super) fn client_output_sent(&mut self, n: usize) {
        self.client_sent += n as u64;
    }
    /// Released bytes `[from, from + n)` (stream offsets). Panics if they are not held.
    pub(super) fn bytes(&self, from: u64, n: usize) -> View<'_> {
        let from = (from - self.base) as usize;
        self.ring.view().range(from, from + n)
    }
    /// Replica `r`'s output bytes `[checked, prod)` not yet voted past.
    pub(super) fn unvoted<'a>(&'a self, r: ReplicaId, reps: &'a [Replica]) -> View<'a> {
        if self.owner == Some(r) {
            self.ring.view().after((self.offset - self.base) as usize)
        } else {
            reps[r].out.view()
        }
    }
    /// Forget replica `r`'s unvoted bytes if it is the owner (it left the vote).
    pub(super) fn drop_owned(&mut self, r: ReplicaId) {
        if self.owner == Some(r) {
            self.ring.truncate((self.offset - self.base) as usize);
            self.owner = None;
        }
    }
    /// Move the owner's unvoted bytes to its own buffer, so that bytes from elsewhere can be
    /// released (rare: the owner is preferred whenever it agrees).
    pub(super) fn evict_owner(&mut self, reps: &mut [Replica]) {
        if let Some(o) = self.owner.take() {
            let from = (self.offset - self.base) as usize;
            reps[o].out.extend_view(self.ring.view().after(from));
            self.ring.truncate(from);
        }
    }
    /// Buffer `data` as replica `r`'s next unvoted output. A replica at the released offset with
    /// nothing buffered becomes the owner (its bytes go after the released ones, to be released
    /// in place) unless another owner still has unvoted bytes there.
    pub(super) fn append(&mut self, r: ReplicaId, data: &[u8], reps: &mut [Replica]) {
        if data.is_empty() {
            return;
        }
        let owner_tail_empty = self.owner.is_none_or(|o| reps[o].prod == self.offset);
        let rep = &reps[r];
        if self.owner != Some(r)
            && rep.is_member()
            && rep.out.is_empty()
            && rep.checked == self.offset
            && owner_tail_empty
        {
            self.owner = Some(r);
        }
        if self.owner == Some(r) {
            self.ring.extend(data);
        } else {
            reps[r].out.extend(data);
        }
        reps[r].prod += data.len() as u64;
    }
    /// Release `n` unvoted bytes of replica `c` (it is at the released offset): in place if it is
    /// the owner, else copied from its buffer.
    pub(super) fn release_from(&mut self, c: ReplicaId, n: usize, reps: &mut [Replica]) {
        if self.owner != Some(c) {
            self.evict_owner(reps);
            let rep = &mut reps[c];
            self.ring.extend_view(rep.out.view().range(0, n));
            rep.out.consume(n);
        }
        reps[c].checked += n as u64;
        self.offset += n as u64;
    }
    /// Release `data` straight from replica `r` (the primary, at the released offset with nothing
    /// buffered), as far as there is room; returns how many bytes were released.
    pub(super) fn release_direct(
        &mut self,
        r: ReplicaId,
        data: &[u8],
        reps: &mut [Replica],
    ) -> usize {
        let n = data.len().min(self.room());
        if self.owner != Some(r) {
            self.evict_owner(reps);
        }
        self.ring.extend(&data[..n]);
        self.offset += n as u64;
        let rep = &mut reps[r];
        rep.prod += n as u64;
        rep.checked += n as u64;
        n
    }
    /// Drop the released bytes that the client was sent and every active replica was checked
    /// against.
    pub(super) fn trim(&mut self, reps: &[Replica]) {
        let min = reps
            .iter()
            .filter(|r| r.compared())
            .map(|r| r.checked.min(self.offset))
            .min()
            .unwrap_or(self.offset)
            .min(self.client_sent);
        if min > self.base {
            self.ring.consume((min - self.base) as usize);
            self.base = min;
        }
    }
    /// The client is gone: drop every byte held.
    pub(super) fn clear(&mut self) {
        self.ring.free();
        self.owner = None;
        self.base = self.offset;
        self.client_sent = self.offset;
    }
}
