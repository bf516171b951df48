//! The client's input, shared by every replica: one buffer, and a sent offset per replica into
//! it. The client window is `buffer_limit` minus the largest backlog of a live replica.

use super::bytes::Ring;

/// Where the client stream stood when the client sent FIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct AtClientFin {
    /// The released offset.
    pub(super) released: u64,
    /// The most output of a voting replica.
    pub(super) lead: u64,
}

/// Client bytes not yet sent to every replica.
#[derive(Debug, Default)]
pub(super) struct ClientInput {
    /// Bytes `[base, received)`.
    ring: Ring,
    /// Client stream offset of `ring`'s first byte.
    base: u64,
    /// Client bytes accepted.
    received: u64,
    /// The client sent FIN (and where the streams stood then).
    fin: Option<AtClientFin>,
}

impl ClientInput {
    /// Client bytes accepted so far.
    pub(super) fn received(&self) -> u64 {
        self.received
    }
    /// Where the streams stood when the client sent FIN, if it did.
    pub(super) fn fin(&self) -> Option<AtClientFin> {
        self.fin
    }
    /// Bytes held.
    pub(super) fn len(&self) -> usize {
        self.ring.len()
    }
    /// Accept `data` from the client.
    pub(super) fn push(&mut self, data: &[u8]) {
        self.ring.extend(data);
        self.received += data.len() as u64;
    }
    /// The client sent FIN; the first call records `at`.
    pub(super) fn close(&mut self, at: AtClientFin) {
        self.fin.get_or_insert(at);
    }
    /// The next bytes for a replica that was sent up to `sent` (a contiguous slice; may be a
    /// prefix of what is pending).
    pub(super) fn pending(&self, sent: u64) -> &[u8] {
        self.ring
            .view()
            .after((sent - self.base) as usize)
            .first_piece()
    }
    /// Drop the bytes before `min` (every voting replica was sent them).
    pub(super) fn trim(&mut self, min: u64) {
        if min > self.base {
            self.ring.consume((min - self.base) as usize);
            self.base = min;
        }
    }
    /// Give the buffer's memory back if it holds nothing.
    pub(super) fn shrink_if_empty(&mut self) {
        self.ring.shrink_if_empty();
    }
    /// Bytes allocated for the buffer.
    pub(super) fn allocated(&self) -> usize {
        self.ring.allocated()
    }
    /// The replicas are gone: drop every byte held.
    pub(super) fn clear(&mut self) {
        self.ring.free();
        self.base = self.received;
    }
}
