//! One vif's datapath: its rings, TX (guest to backend) and RX (backend to guest) processing with
//! batched grant copies, and the smoltcp [`Device`](smoltcp::phy::Device) that the appliance
//! puts an `Interface` on.
//!
//! Every rule violation found on the rings ends here, in `Vif::disable`, which logs the rule
//! and lets [`crate::backend::Netback`] take the vif to Closing.
//!
//! One file per concern, as in Linux's xen-netback: this one holds [`Vif`], its counters and its
//! lifecycle (attach, disconnect, disable); `guest_tx` takes the guest's packets off the TX ring,
//! `guest_rx` fills the guest's RX buffers, `device` is the smoltcp `Device`, `stats` its counters.

mod device;
mod guest_rx;
mod guest_tx;
mod stats;

pub use device::{capabilities, VifRxToken, VifTxToken};
pub(crate) use guest_rx::RxBatch;
pub(crate) use guest_tx::TxBatch;
pub use stats::{StatsLine, VifStats};

use std::collections::VecDeque;
use std::time::Instant;

use xen::{DomId, Port};

use crate::credit::Credit;
use crate::guestlog::GuestErrorLog;
use crate::handshake::Handshake;
use crate::offload::{for_guest, ForGuest, GuestOffload};
use crate::ring::{RxBackRing, SharedPage, TxBackRing};
use crate::rules::Violation;
use crate::rx::RxQueue;
use crate::throttle::EventThrottle;
use crate::tx::TxPacket;
use crate::wire::*;

/// Packets (TX) or frames (RX) handled per vif per wakeup (rule 9, XSA-332).
pub const BUDGET: usize = 64;

/// Frames received from the guest and not yet taken by the stack; further frames are answered
/// and dropped (counted in [`VifStats::tx_dropped`]), as Linux's stack drops what its backlog
/// cannot take, so a vif nobody drains cannot keep the backend busy.
pub const TO_STACK_MAX: usize = 256;

/// Bytes of the frames waiting for the stack: with GSO a frame may be 64 KiB, so the frame bound
/// alone would let an undrained vif hold 16 MiB; beyond this, frames are dropped the same way.
/// One budget of 64 GSO frames (4 MiB) still fits.
pub const TO_STACK_BYTES: usize = 4 << 20;

/// Frames from the guest waiting for the stack, bounded by [`TO_STACK_MAX`] and
/// [`TO_STACK_BYTES`].
#[derive(Default)]
struct StackQueue {
    frames: VecDeque<Vec<u8>>,
    bytes: usize,
}

impl StackQueue {
    /// Queues a frame; false (dropping it) if the queue is full, in frames or bytes.
    fn push(&mut self, frame: Vec<u8>) -> bool {
        if self.frames.len() >= TO_STACK_MAX || self.bytes + frame.len() > TO_STACK_BYTES {
            return false;
        }
        self.bytes += frame.len();
        self.frames.push_back(frame);
        true
    }

    /// The oldest frame.
    fn pop(&mut self) -> Option<Vec<u8>> {
        let f = self.frames.pop_front()?;
        self.bytes -= f.len();
        Some(f)
    }

    /// Frames queued.
    fn len(&self) -> usize {
        self.frames.len()
    }
}

/// The rings and event channel of a connected vif.
pub struct Rings<M> {
    /// TX ring (guest sends).
    pub tx: TxBackRing<M>,
    /// RX ring (guest receives).
    pub rx: RxBackRing<M>,
    /// Our local event-channel port.
    pub port: Port,
}

/// The first half of a vif's ring work: done already, or a batch waiting for the round's grant
/// copy (its segments added with `push_segments`, its statuses given to `complete_*`).
pub(crate) enum Step<B> {
    /// Nothing to copy: the work's outcome.
    Done(Work),
    /// A batch to copy, then complete.
    Copy(B),
}

/// Which of `packets` packets copied well, from the statuses of their segments (`owner[i]` is
/// the packet of segment `i`; `None`: the call failed, or answered for fewer segments).
/// `failed` is told of each failed segment.
pub(crate) fn packet_results(
    owner: &[usize],
    packets: usize,
    status: Option<&[xen::GrantStatus]>,
    mut failed: impl FnMut(&xen::GrantStatus),
) -> Vec<bool> {
    match status {
        Some(status) if status.len() == owner.len() => {
            let mut ok = vec![true; packets];
            for (st, &k) in status.iter().zip(owner) {
                if !st.is_ok() {
                    failed(st);
                    ok[k] = false;
                }
            }
            ok
        }
        _ => vec![false; packets],
    }
}

/// What a round of ring processing asks of the caller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Work {
    /// The guest must be notified on the vif's event channel.
    pub notify: bool,
    /// Work remains (the budget ran out): poll again without blocking.
    pub more: bool,
    /// The vif is rate-limited: poll it again at this time (its credit returns).
    pub wake_at: Option<Instant>,
}

/// One virtual interface: guest `domid`'s device `handle`.
pub struct Vif<M> {
    pub(crate) name: String,
    pub(crate) domid: DomId,
    pub(crate) handle: u32,
    pub(crate) backend_path: String,
    pub(crate) frontend_path: Option<String>,
    pub(crate) handshake: Handshake,
    pub(crate) rings: Option<Rings<M>>,
    pub(crate) sg: bool,
    pub(crate) mtu: usize,
    /// What the frontend accepts on its RX ring (partial checksums, GSO).
    pub(crate) offload: GuestOffload,
    pub(crate) disabled: Option<Violation>,
    to_stack: StackQueue,
    rx: RxQueue,
    guest_log: GuestErrorLog,
    credit: Credit,
    pub(crate) throttle: EventThrottle,
    /// The rings had something for us (requests, or buffers ending a stall) since the last
    /// notification was handled, whoever handled it (event, busy poll or flush).
    progressed: bool,
    /// A packet taken from the ring that waits for TX credit; it goes before any other.
    waiting_for_credit: Option<TxPacket>,
    now: Instant,
    stats: VifStats,
}

fn ring_violation(e: crate::ring::RingError) -> Violation {
    match e {
        crate::ring::RingError::Overflow { prod, cons, .. } => Violation::RingIndex { prod, cons },
        crate::ring::RingError::BadPage => Violation::GrantOp {
            op: "map ring",
            reason: e.to_string(),
        },
    }
}

impl<M: SharedPage> Vif<M> {
    /// A vif not yet connected.
    pub(crate) fn new(domid: DomId, handle: u32, backend_path: String, now: Instant) -> Self {
        Vif {
            name: format!("vif{domid}.{handle}"),
            domid,
            handle,
            backend_path,
            frontend_path: None,
            handshake: Handshake::new(),
            rings: None,
            sg: false,
            mtu: 1500,
            offload: GuestOffload::default(),
            disabled: None,
            to_stack: StackQueue::default(),
            rx: RxQueue::new(now),
            guest_log: GuestErrorLog::new(),
            credit: Credit::unlimited(now),
            throttle: EventThrottle::new(),
            progressed: false,
            waiting_for_credit: None,
            now,
            stats: VifStats::default(),
        }
    }

    /// The interface name: the toolstack's `vifname`, else `vif<domid>.<handle>` as in Linux.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renames the vif (from the backend's `vifname` key).
    pub(crate) fn set_name(&mut self, name: String) {
        self.name = name;
    }

    /// The frontend's domain.
    pub fn domid(&self) -> DomId {
        self.domid
    }

    /// The device handle (the `N` of `vif/<domid>/N`).
    pub fn handle(&self) -> u32 {
        self.handle
    }

    /// Whether the rings are connected.
    pub fn is_connected(&self) -> bool {
        self.rings.is_some()
    }

    /// The violation that disabled this vif, if any.
    pub fn disabled(&self) -> Option<&Violation> {
        self.disabled.as_ref()
    }

    /// The handshake phase.
    pub fn phase(&self) -> crate::handshake::Phase {
        self.handshake.phase()
    }

    /// Counters.
    pub fn stats(&self) -> VifStats {
        let mut s = self.stats;
        s.rx_dropped += self.rx.dropped();
        s.rx_drop_queue += self.rx.dropped();
        s
    }

    /// What the frontend accepts on its RX ring (from its keys at connect).
    pub fn offload(&self) -> GuestOffload {
        self.offload
    }

    /// The guest's MTU (from the frontend's `mtu` key, default 1500).
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// Frames from the guest waiting for the stack.
    pub fn pending_to_stack(&self) -> usize {
        self.to_stack.len()
    }

    /// Frames waiting for guest RX buffers.
    pub fn pending_to_guest(&self) -> usize {
        self.rx.len()
    }

    /// Takes the next frame the guest sent (for owners that do not use smoltcp).
    pub fn recv_frame(&mut self) -> Option<Vec<u8>> {
        self.to_stack.pop()
    }

    /// Queues a frame for the guest (delivered by the next [`crate::backend::Netback::flush`]);
    /// false if it was dropped (not connected, queue full or stalled, or too big).
    pub fn send_frame(&mut self, frame: Vec<u8>) -> bool {
        if self.rings.is_none() || frame.len() > self.max_frame() {
            self.stats.rx_dropped += 1;
            self.stats.rx_drop_queue += 1;
            return false;
        }
        self.rx.push(frame, self.now)
    }

    /// Queues a frame the stack sent, whose TCP checksum is left to the vif and which may be a
    /// TCP segment larger than the MTU with `gso_size` payload bytes per segment: the guest gets
    /// it with a partial checksum, whole with a GSO extra, or cut into MTU-sized frames, as its
    /// frontend negotiated ([`crate::offload`]). False if (a part of) it was dropped.
    pub fn send_from_stack(&mut self, frame: Vec<u8>, gso_size: Option<u16>) -> bool {
        if self.rings.is_none() {
            self.stats.rx_dropped += 1;
            self.stats.rx_drop_queue += 1;
            return false;
        }
        let max_frame = self.mtu + ETH_HLEN;
        match for_guest(frame, gso_size, &self.offload, max_frame) {
            ForGuest::One(frame, meta) => {
                if frame.len() > self.max_frame() {
                    self.stats.rx_dropped += 1;
                    self.stats.rx_drop_queue += 1;
                    return false;
                }
                self.rx.push_with(frame, meta, self.now)
            }
            ForGuest::Segmented(frames) => {
                self.stats.rx_segmented += 1;
                let mut all = true;
                for f in frames {
                    all &= self.rx.push(f, self.now);
                }
                all
            }
        }
    }

    fn max_frame(&self) -> usize {
        if self.sg {
            MAX_TX_SIZE
        } else {
            PAGE_SIZE
        }
    }

    /// Counts an event-channel notification from the guest.
    pub(crate) fn count_event(&mut self) {
        self.stats.events += 1;
    }

    /// Counts a grant-copy call this vif's work took part in, with its segments.
    pub(crate) fn count_copy(&mut self, segments: usize) {
        self.stats.copy_calls += 1;
        self.stats.copy_segments += segments as u64;
    }

    /// Counts an event-channel notification sent to the guest.
    pub(crate) fn count_notify(&mut self) {
        self.stats.notifies += 1;
    }

    /// Whether the rings had something for us since the last call: a notification handled
    /// after none was not spurious (see [`crate::throttle`]).
    pub(crate) fn take_progress(&mut self) -> bool {
        std::mem::take(&mut self.progressed)
    }

    /// Records the time for queueing decisions made without a time parameter (smoltcp tokens).
    pub(crate) fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    /// Logs a violation and records it; the caller takes the vif down.
    pub(crate) fn disable(&mut self, v: Violation) {
        log::error!(
            "{}: disabling rogue frontend (dom{}): {v}",
            self.name,
            self.domid
        );
        self.disabled = Some(v);
    }

    /// Takes the rings of a (re)connected frontend and its TX credit; the RX queue starts
    /// afresh (a stall of the previous connection does not carry over).
    pub(crate) fn attach(
        &mut self,
        rings: Rings<M>,
        sg: bool,
        mtu: usize,
        offload: GuestOffload,
        credit: Credit,
        now: Instant,
    ) {
        self.sg = sg;
        self.mtu = mtu;
        self.offload = offload;
        self.credit = credit;
        self.throttle = EventThrottle::new();
        self.now = now;
        self.rings = Some(rings);
        self.disabled = None;
        self.rx.reset(now);
    }

    /// Drops the rings (unmapping them) and the queues; returns the event-channel port to unbind.
    pub(crate) fn disconnect(&mut self) -> Option<Port> {
        self.to_stack = StackQueue::default();
        self.waiting_for_credit = None;
        while self.rx.pop(self.now).is_some() {}
        self.rings.take().map(|r| r.port)
    }
}
