//! Guest RX: the bounded queue of frames waiting for the guest's buffers (rule 8, XSA-392/424).
//!
//! A guest that posts no RX requests must not make the backend buffer without limit: the queue
//! holds at most [`RX_QUEUE_BYTES`] in at most [`RX_QUEUE_FRAMES`] frames, frames older than
//! [`RX_EXPIRY`] are dropped, and a queue that made no progress for [`RX_STALL`] is declared
//! stalled (carrier off: frames are dropped on arrival) until the guest posts buffers again or
//! reconnects. Time is a parameter.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::offload::RxMeta;
use crate::wire::PAGE_SIZE;

/// Most bytes queued for one vif.
pub const RX_QUEUE_BYTES: usize = 512 * 1024;
/// Most frames queued for one vif (so that zero-length frames cost something too).
pub const RX_QUEUE_FRAMES: usize = 1024;
/// Age after which a queued frame is dropped.
pub const RX_EXPIRY: Duration = Duration::from_secs(10);
/// Time without progress after which the queue is declared stalled.
pub const RX_STALL: Duration = Duration::from_secs(60);

/// RX slots (guest pages) a frame of `len` bytes needs.
pub fn slots_for(len: usize) -> u32 {
    len.div_ceil(PAGE_SIZE).max(1) as u32
}

/// RX slots a frame of `len` bytes announced with `meta` needs: its pages, and one more for a
/// GSO extra-info segment (Linux `xenvif_rx_ring_slots_available`).
pub fn slots_with_meta(len: usize, meta: &RxMeta) -> u32 {
    slots_for(len) + u32::from(meta.gso.is_some())
}

/// Frames waiting for guest RX buffers.
#[derive(Debug)]
pub struct RxQueue {
    frames: VecDeque<(Instant, Vec<u8>, RxMeta)>,
    bytes: usize,
    last_progress: Instant,
    stalled: bool,
    dropped: u64,
}

impl RxQueue {
    /// An empty queue; `now` starts the stall clock.
    pub fn new(now: Instant) -> Self {
        RxQueue {
            frames: VecDeque::new(),
            bytes: 0,
            last_progress: now,
            stalled: false,
            dropped: 0,
        }
    }

    /// Queues a frame; returns false (dropping it) if the queue is full or stalled.
    pub fn push(&mut self, frame: Vec<u8>, now: Instant) -> bool {
        self.push_with(frame, RxMeta::default(), now)
    }

    /// Queues a frame to be announced with `meta` (checksum flags, GSO); as [`RxQueue::push`].
    pub fn push_with(&mut self, frame: Vec<u8>, meta: RxMeta, now: Instant) -> bool {
        if self.stalled
            || self.frames.len() >= RX_QUEUE_FRAMES
            || self.bytes + frame.len() > RX_QUEUE_BYTES
        {
            self.dropped += 1;
            return false;
        }
        if self.frames.is_empty() {
            // The stall clock runs only while something waits.
            self.last_progress = now;
        }
        self.bytes += frame.len();
        self.frames.push_back((now, frame, meta));
        true
    }

    /// The oldest frame, if any.
    pub fn front(&self) -> Option<&[u8]> {
        self.frames.front().map(|(_, f, _)| f.as_slice())
    }

    /// How the oldest frame is to be announced (default if there is none).
    pub fn front_meta(&self) -> RxMeta {
        self.frames.front().map(|(_, _, m)| *m).unwrap_or_default()
    }

    /// Removes the oldest frame (it was delivered or refused) and records progress.
    pub fn pop(&mut self, now: Instant) -> Option<Vec<u8>> {
        let (_, f, _) = self.frames.pop_front()?;
        self.bytes -= f.len();
        self.last_progress = now;
        Some(f)
    }

    /// Empties the queue and ends a stall (the frontend reconnected); the drop count stays.
    pub fn reset(&mut self, now: Instant) {
        self.frames.clear();
        self.bytes = 0;
        self.stalled = false;
        self.last_progress = now;
    }

    /// The guest posted buffers: end a stall.
    pub fn note_buffers(&mut self, now: Instant) {
        if self.stalled {
            log::info!("rx queue: guest posted buffers again, carrier on");
        }
        self.stalled = false;
        self.last_progress = now;
    }

    /// Drops expired frames and detects a stall; returns the number of frames dropped.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut n = 0;
        while let Some((t, _, _)) = self.frames.front() {
            if now.saturating_duration_since(*t) < RX_EXPIRY {
                break;
            }
            let (_, f, _) = self.frames.pop_front().expect("front exists");
            self.bytes -= f.len();
            n += 1;
        }
        if !self.stalled
            && !self.frames.is_empty()
            && now.saturating_duration_since(self.last_progress) >= RX_STALL
        {
            log::warn!(
                "rule 8 (XSA-392/424): rx queue stalled for {:?}, carrier off",
                RX_STALL
            );
            self.stalled = true;
        }
        if self.stalled {
            n += self.frames.len();
            self.frames.clear();
            self.bytes = 0;
        }
        self.dropped += n as u64;
        n
    }

    /// Bytes queued.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Frames queued.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True if nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Whether the queue is stalled (carrier off).
    pub fn stalled(&self) -> bool {
        self.stalled
    }

    /// Frames dropped so far (full, expired or stalled).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_per_frame() {
        assert_eq!(slots_for(0), 1);
        assert_eq!(slots_for(60), 1);
        assert_eq!(slots_for(4096), 1);
        assert_eq!(slots_for(4097), 2);
        assert_eq!(slots_for(65535), 16);
    }

    /// Issue 16, defect 5: the bound counts frames as well as bytes; 200,000 zero-length
    /// frames do not all queue.
    #[test]
    fn rx_queue_bounds_frames_as_well_as_bytes() {
        let t0 = Instant::now();
        let mut q = RxQueue::new(t0);
        let accepted = (0..200_000).filter(|_| q.push(Vec::new(), t0)).count();
        assert_eq!(accepted, RX_QUEUE_FRAMES);
        assert_eq!(q.len(), RX_QUEUE_FRAMES);
        assert_eq!(q.dropped(), (200_000 - RX_QUEUE_FRAMES) as u64);
    }

    /// Issue 16, defect 1: a reset (the frontend reconnected) empties the queue and ends a
    /// stall, keeping the drop count.
    #[test]
    fn reset_ends_a_stall_and_keeps_the_count() {
        let t0 = Instant::now();
        let mut q = RxQueue::new(t0);
        let mut t = t0;
        while !q.stalled() {
            q.push(vec![0; 100], t);
            q.expire(t);
            t += Duration::from_secs(5);
        }
        let dropped = q.dropped();
        q.reset(t);
        assert!(!q.stalled() && q.is_empty());
        assert_eq!(q.dropped(), dropped);
        assert!(q.push(vec![0; 100], t));
    }

    /// Rule 8 (XSA-392/424): a guest that never posts RX buffers gets a bounded queue, expiry
    /// after 10 s and a stall (carrier off) after 60 s; posting buffers ends the stall.
    #[test]
    fn rule8_xsa392_xsa424_rx_buffering_is_bounded_expired_and_stall_detected() {
        let t0 = Instant::now();
        let mut q = RxQueue::new(t0);
        let mut accepted = 0;
        for _ in 0..1000 {
            if q.push(vec![0; 1514], t0) {
                accepted += 1;
            }
        }
        assert_eq!(accepted, RX_QUEUE_BYTES / 1514);
        assert!(q.bytes() <= RX_QUEUE_BYTES);
        assert_eq!(q.dropped(), 1000 - accepted as u64);
        assert_eq!(q.expire(t0 + Duration::from_secs(9)), 0);
        assert_eq!(q.expire(t0 + Duration::from_secs(10)), accepted);
        assert!(q.is_empty() && q.bytes() == 0);
        // Frames keep arriving, the guest never takes any: stall after 60 s.
        let mut t = t0 + Duration::from_secs(10);
        while t < t0 + Duration::from_secs(75) {
            q.push(vec![0; 100], t);
            q.expire(t);
            t += Duration::from_secs(5);
        }
        assert!(q.stalled());
        assert!(!q.push(vec![0; 100], t));
        q.note_buffers(t);
        assert!(!q.stalled());
        assert!(q.push(vec![0; 100], t));
        assert_eq!(q.pop(t).map(|f| f.len()), Some(100));
    }
}
