//! One vif's datapath: its rings, TX (guest to backend) and RX (backend to guest) processing with
//! batched grant copies, and the smoltcp [`Device`](smoltcp::phy::Device) that the appliance
//! puts an `Interface` on.
//!
//! Every rule violation found on the rings ends here, in `Vif::disable`, which logs the rule
//! and lets [`crate::backend::Netback`] take the vif to Closing.
//!
//! One file per concern, as in Linux's xen-netback: this one holds [`Vif`], its counters and its
//! lifecycle (attach, disconnect, disable); `guest_tx` takes the guest's packets off the TX ring,
//! `guest_rx` fills the guest's RX buffers, `device` is the smoltcp `Device`.

mod device;
mod guest_rx;
mod guest_tx;

pub use device::{capabilities, VifRxToken, VifTxToken};
pub(crate) use guest_rx::RxBatch;
pub(crate) use guest_tx::TxBatch;

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

/// The rings and event channel of a connected vif.
pub struct Rings<M> {
    /// TX ring (guest sends).
    pub tx: TxBackRing<M>,
    /// RX ring (guest receives).
    pub rx: RxBackRing<M>,
    /// Our local event-channel port.
    pub port: Port,
}

/// Counters of one vif.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VifStats {
    /// Frames received from the guest and queued for the stack.
    pub tx_frames: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
    /// Guest packets answered with an error (bad chain, copy or checksum failure).
    pub tx_errors: u64,
    /// Frames received from the guest and dropped because the stack's queue was full.
    pub tx_dropped: u64,
    /// Frames delivered into the guest.
    pub rx_frames: u64,
    /// Bytes of those frames.
    pub rx_bytes: u64,
    /// Frames for the guest that were dropped (queue bound, expiry, too big, copy failure).
    pub rx_dropped: u64,
    /// Event-channel notifications from the guest handled.
    pub events: u64,
    /// Grant-copy calls issued.
    pub copy_calls: u64,
    /// Grant-copy segments issued.
    pub copy_segments: u64,
    /// Ring slots of the frames received from the guest (data and extra-info slots).
    pub tx_slots: u64,
    /// Frames received from the guest as GSO segments (with a GSO extra).
    pub tx_gso_frames: u64,
    /// Ring slots filled for the guest (data and extra-info slots).
    pub rx_slots: u64,
    /// Frames delivered to the guest as GSO segments (with a GSO extra).
    pub rx_gso_frames: u64,
    /// Segments from the stack cut into MTU-sized frames here (the frontend has no GSO).
    pub rx_segmented: u64,
    /// Event-channel notifications sent to the guest.
    pub notifies: u64,
    /// Guest packets dropped by rules 3 and 4 (too many slots, bad slot sizes).
    pub tx_drop_chain: u64,
    /// Guest frames over the MTU without a GSO extra.
    pub tx_drop_over_mtu: u64,
    /// Guest GSO frames whose extra does not match the frame (not TCP of that IP version).
    pub tx_drop_gso: u64,
    /// Guest packets whose grant copy failed.
    pub tx_drop_copy: u64,
    /// Guest `csum_blank` frames whose checksum could not be filled in.
    pub tx_drop_csum: u64,
    /// Frames for the guest refused at the queue (full, stalled, expired, too big).
    pub rx_drop_queue: u64,
    /// Frames for the guest whose grant copy failed.
    pub rx_drop_copy: u64,
}

impl VifStats {
    /// Every counter with its kebab-case name (the keys of a vif in domain-nv's status).
    pub fn named(&self) -> [(&'static str, u64); 23] {
        [
            ("tx-frames", self.tx_frames),
            ("tx-bytes", self.tx_bytes),
            ("tx-gso-frames", self.tx_gso_frames),
            ("tx-slots", self.tx_slots),
            ("tx-errors", self.tx_errors),
            ("tx-dropped", self.tx_dropped),
            ("tx-drop-chain", self.tx_drop_chain),
            ("tx-drop-over-mtu", self.tx_drop_over_mtu),
            ("tx-drop-gso", self.tx_drop_gso),
            ("tx-drop-copy", self.tx_drop_copy),
            ("tx-drop-csum", self.tx_drop_csum),
            ("rx-frames", self.rx_frames),
            ("rx-bytes", self.rx_bytes),
            ("rx-gso-frames", self.rx_gso_frames),
            ("rx-segmented", self.rx_segmented),
            ("rx-slots", self.rx_slots),
            ("rx-dropped", self.rx_dropped),
            ("rx-drop-queue", self.rx_drop_queue),
            ("rx-drop-copy", self.rx_drop_copy),
            ("copy-calls", self.copy_calls),
            ("copy-segments", self.copy_segments),
            ("events", self.events),
            ("notifies", self.notifies),
        ]
    }
}

/// A vif's counters as one log line: frames, bytes, GSO frames and slots per frame each way,
/// drops by reason, grant-copy calls with segments per call, notifications each way.
pub struct StatsLine<'a>(pub &'a VifStats);

impl std::fmt::Display for StatsLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0;
        let per = |a: u64, b: u64| a as f64 / b.max(1) as f64;
        write!(
            f,
            "from guest {} frames {} bytes {} gso {:.1} slots/frame, {} errors (chain {} mtu {} gso {} copy {} csum {}) {} dropped; \
             to guest {} frames {} bytes {} gso {} cut {:.1} slots/frame, {} dropped (queue {} copy {}); \
             {} copy calls {:.1} segs/call; events {} in {} out",
            s.tx_frames, s.tx_bytes, s.tx_gso_frames, per(s.tx_slots, s.tx_frames + s.tx_errors + s.tx_dropped),
            s.tx_errors, s.tx_drop_chain, s.tx_drop_over_mtu, s.tx_drop_gso, s.tx_drop_copy, s.tx_drop_csum, s.tx_dropped,
            s.rx_frames, s.rx_bytes, s.rx_gso_frames, s.rx_segmented, per(s.rx_slots, s.rx_frames + s.rx_drop_copy),
            s.rx_dropped, s.rx_drop_queue, s.rx_drop_copy,
            s.copy_calls, per(s.copy_segments, s.copy_calls), s.events, s.notifies
        )
    }
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
    to_stack: VecDeque<Vec<u8>>,
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
            to_stack: VecDeque::new(),
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
        self.to_stack.pop_front()
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
        self.to_stack.clear();
        self.waiting_for_credit = None;
        while self.rx.pop(self.now).is_some() {}
        self.rings.take().map(|r| r.port)
    }
}
