//! Byte views and rings: the voter's buffers and the comparison it votes with.
//!
//! Voting compares byte ranges with slice equality (memcmp) in chunks, so each byte is compared a
//! small constant number of times whatever the segmentation. Buffers are rings that start without
//! an allocation, grow as bytes are appended and are reused (no compaction copies) until the
//! connection goes idle and gives them back ([`Ring::shrink_if_empty`]); a range of a ring is a
//! [`View`] of at most two contiguous pieces.

use std::collections::VecDeque;

/// Bytes compared per `==` (memcmp) step when looking for the first differing byte.
const CMP_CHUNK: usize = 16 * 1024;

/// Length of the common prefix of two contiguous slices, compared chunk by chunk with slice
/// equality.
fn common_prefix_contiguous(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut i = 0;
    while i < n {
        let end = (i + CMP_CHUNK).min(n);
        if a[i..end] != b[i..end] {
            let pos = a[i..end].iter().zip(&b[i..end]).position(|(x, y)| x != y);
            return i + pos.unwrap_or(end - i);
        }
        i = end;
    }
    n
}

/// Length of the common prefix of `a` and `b`, compared piece by piece with slice equality.
pub(super) fn common_prefix(a: View, b: View) -> usize {
    let n = a.len().min(b.len());
    let (mut a, mut b) = (a.range(0, n), b.range(0, n));
    let mut same = 0;
    while !a.is_empty() {
        let (x, y) = (a.first_piece(), b.first_piece());
        let k = x.len().min(y.len());
        let s = common_prefix_contiguous(&x[..k], &y[..k]);
        same += s;
        if s < k {
            break;
        }
        a = a.range(k, a.len());
        b = b.range(k, b.len());
    }
    same
}

/// A byte range stored in at most two contiguous pieces (a `Ring` that wraps around): `head`
/// then `tail`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct View<'a> {
    head: &'a [u8],
    tail: &'a [u8],
}

impl<'a> View<'a> {
    /// Number of bytes in the range.
    pub(super) fn len(&self) -> usize {
        self.head.len() + self.tail.len()
    }
    /// True if the range holds no byte.
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The byte at index `i`, if any.
    pub(super) fn get(&self, i: usize) -> Option<u8> {
        match i.checked_sub(self.head.len()) {
            None => Some(self.head[i]),
            Some(j) => self.tail.get(j).copied(),
        }
    }
    /// Bytes `from..to` of the range. Panics if out of bounds.
    pub(super) fn range(&self, from: usize, to: usize) -> View<'a> {
        assert!(from <= to && to <= self.len(), "view range out of bounds");
        let h = self.head.len();
        View {
            head: &self.head[from.min(h)..to.min(h)],
            tail: &self.tail[from.max(h) - h..to.max(h) - h],
        }
    }
    /// Bytes `from..` of the range. Panics if out of bounds.
    pub(super) fn after(&self, from: usize) -> View<'a> {
        self.range(from, self.len())
    }
    /// The first contiguous piece (empty only if the whole range is empty).
    pub(super) fn first_piece(&self) -> &'a [u8] {
        if self.head.is_empty() {
            self.tail
        } else {
            self.head
        }
    }
}

impl<'a> From<&'a [u8]> for View<'a> {
    fn from(bytes: &'a [u8]) -> View<'a> {
        View {
            head: bytes,
            tail: &[],
        }
    }
}

/// A byte queue in a ring buffer: appended at the back, consumed at the front; written bytes are
/// never moved again except when the ring grows (no compaction copies).
#[derive(Debug, Default)]
pub(super) struct Ring(VecDeque<u8>);

impl Ring {
    /// All bytes held, oldest first.
    pub(super) fn view(&self) -> View<'_> {
        let (head, tail) = self.0.as_slices();
        View { head, tail }
    }
    /// Number of bytes held.
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }
    /// True if no byte is held.
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Append `bytes`.
    pub(super) fn extend(&mut self, bytes: &[u8]) {
        self.0.extend(bytes);
    }
    /// Append the bytes of `view`.
    pub(super) fn extend_view(&mut self, view: View) {
        self.0.extend(view.head);
        self.0.extend(view.tail);
    }
    /// Drop the first `n` bytes. Panics if `n` exceeds the length.
    pub(super) fn consume(&mut self, n: usize) {
        self.0.drain(..n);
    }
    /// Keep only the first `n` bytes.
    pub(super) fn truncate(&mut self, n: usize) {
        self.0.truncate(n);
    }
    /// Drop every byte and the allocation.
    pub(super) fn free(&mut self) {
        *self = Ring::default();
    }
    /// Give the allocation back if no byte is held (it grows again on the next append).
    pub(super) fn shrink_if_empty(&mut self) {
        if self.is_empty() {
            self.free();
        }
    }
    /// Bytes allocated (held or not).
    pub(super) fn allocated(&self) -> usize {
        self.0.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `bytes` as a two-piece view split at `at`.
    fn split(bytes: &[u8], at: usize) -> View<'_> {
        View {
            head: &bytes[..at],
            tail: &bytes[at..],
        }
    }

    #[test]
    fn common_prefix_across_pieces() {
        let a: Vec<u8> = (0..100).collect();
        let mut b = a.clone();
        b[70] = 0xff;
        for sa in [0, 1, 50, 70, 71, 100] {
            for sb in [0, 33, 69, 70, 100] {
                assert_eq!(
                    common_prefix(split(&a, sa), split(&b, sb)),
                    70,
                    "split {sa}/{sb}"
                );
                assert_eq!(
                    common_prefix(split(&a, sa), split(&a, sb)),
                    100,
                    "split {sa}/{sb}"
                );
                assert_eq!(
                    common_prefix(split(&a[..40], sa.min(40)), split(&b, sb)),
                    40,
                    "split {sa}/{sb}"
                );
            }
        }
    }

    #[test]
    fn view_range_and_get_across_pieces() {
        let a: Vec<u8> = (0..10).collect();
        let v = split(&a, 4);
        let r = v.range(2, 7);
        assert_eq!((r.head, r.tail), (&a[2..4], &a[4..7]));
        assert_eq!((r.get(0), r.get(3), r.get(5)), (Some(2), Some(5), None));
        assert_eq!(v.range(5, 9).first_piece(), &a[5..9]);
        assert!(v.range(4, 4).is_empty());
    }

    #[test]
    fn ring_keeps_order_across_wraparound() {
        let mut ring = Ring(VecDeque::with_capacity(8));
        let cap = ring.0.capacity();
        ring.extend(&vec![0; cap]);
        ring.consume(cap - 2);
        let more: Vec<u8> = (1..=5).collect();
        ring.extend(&more);
        let v = ring.view();
        assert!(!v.tail.is_empty(), "the appended bytes wrap around");
        let mut want = vec![0, 0];
        want.extend(&more);
        assert_eq!([v.head, v.tail].concat(), want);
        assert_eq!(common_prefix(v, want.as_slice().into()), want.len());
        ring.truncate(3);
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.view().get(2), Some(1));
    }

    #[test]
    fn ring_starts_unallocated_and_gives_memory_back_only_when_empty() {
        let mut ring = Ring::default();
        assert_eq!(ring.allocated(), 0);
        ring.extend(&[7; 5000]);
        assert!(ring.allocated() >= 5000);
        ring.consume(4999);
        ring.shrink_if_empty();
        assert!(ring.allocated() >= 5000, "a held byte keeps the ring");
        assert_eq!(ring.view().get(0), Some(7));
        ring.consume(1);
        ring.shrink_if_empty();
        assert_eq!(ring.allocated(), 0);
        ring.extend(b"again");
        assert_eq!(ring.len(), 5);
    }
}
