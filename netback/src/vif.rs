//! One vif's datapath: its rings, TX (guest to backend) and RX (backend to guest) processing with
//! batched grant copies, and the smoltcp [`Device`] that the appliance puts an `Interface` on.
//!
//! Every rule violation found on the rings ends here, in `Vif::disable`, which logs the rule
//! and lets [`crate::backend::Netback`] take the vif to Closing.

use std::collections::VecDeque;
use std::time::Instant;

use smoltcp::phy::{Device, DeviceCapabilities, Medium};
use xen::{CopySegment, DomId, GrantStatus, GrantTable, GuestBuf, Port};

use crate::credit::Credit;
use crate::csum::fill_l4_checksum;
use crate::guestlog::GuestErrorLog;
use crate::handshake::Handshake;
use crate::ring::{RxBackRing, SharedPage, TxBackRing};
use crate::rules::Violation;
use crate::rx::{slots_for, RxQueue};
use crate::throttle::EventThrottle;
use crate::tx::{take_packet, DropReason, SlotAnswer, SlotSource, TxOutcome, TxPacket};
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

/// What becomes of one taken packet's slots.
enum Taken {
    /// Copy the packet out of the guest, then answer its slots.
    Copy(TxPacket),
    /// Only answer the slots: with an error for a dropped packet (and why), or OKAY for a
    /// control request (`None`).
    Answer(Vec<SlotAnswer>, Option<DropReason>),
}

/// Takes slots from a TX ring, at most as many as were published when the batch started.
struct RingSource<'a, M> {
    ring: &'a mut TxBackRing<M>,
    left: u32,
}

impl<M: SharedPage> SlotSource for RingSource<'_, M> {
    fn remaining(&self) -> u32 {
        self.left
    }
    fn take(&mut self) -> [u32; 3] {
        self.left -= 1;
        self.ring.take_request()
    }
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
        s
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
            return false;
        }
        self.rx.push(frame, self.now)
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
        credit: Credit,
        now: Instant,
    ) {
        self.sg = sg;
        self.mtu = mtu;
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

    /// Guest TX: takes up to [`BUDGET`] packets, copies them in one grant-copy call, answers every
    /// slot once, and queues the frames for the stack.
    pub(crate) fn process_tx<G: GrantTable>(&mut self, gt: &G) -> Result<Work, Violation> {
        let Some(rings) = self.rings.as_mut() else {
            return Ok(Work::default());
        };
        let avail = rings.tx.unconsumed_requests().map_err(ring_violation)?;
        let mut src = RingSource {
            ring: &mut rings.tx,
            left: avail,
        };
        // Without GSO (not negotiated) no frame may exceed the MTU; a VLAN tag is allowed.
        let max_len = self.mtu + ETH_HLEN + VLAN_HLEN;
        let mut outcomes = Vec::new();
        let mut limited = false;
        while outcomes.len() < BUDGET {
            let taken = match self.waiting_for_credit.take() {
                Some(p) => TxOutcome::Packet(p),
                None if src.left > 0 => take_packet(&mut src),
                None => break,
            };
            outcomes.push(match taken {
                TxOutcome::Fatal(v) => return Err(v),
                TxOutcome::Packet(p) if p.len > max_len => Taken::Answer(
                    p.answers,
                    Some(DropReason::OverMtu {
                        len: p.len,
                        max: max_len,
                    }),
                ),
                TxOutcome::Packet(p) if !self.credit.take(p.len as u64, self.now) => {
                    // Linux's credit scheduling: this packet and all behind it wait.
                    self.waiting_for_credit = Some(p);
                    limited = true;
                    break;
                }
                TxOutcome::Packet(p) => Taken::Copy(p),
                TxOutcome::Drop { answers, reason } => Taken::Answer(answers, Some(reason)),
                TxOutcome::Control { answers } => Taken::Answer(answers, None),
            });
        }
        // Requests left (budget spent): poll again without waiting for an event. A rate-limited
        // vif instead waits for its credit.
        let budget_hit = src.left > 0 && !limited;
        self.progressed |= avail > 0 || limited;
        let wake_at = if limited {
            self.credit.refill_at()
        } else {
            None
        };
        if outcomes.is_empty() {
            let more = !limited
                && rings
                    .tx
                    .final_check_for_requests()
                    .map_err(ring_violation)?;
            return Ok(Work {
                notify: false,
                more,
                wake_at,
            });
        }

        // One copy call for the whole batch.
        let packets: Vec<&TxPacket> = outcomes
            .iter()
            .filter_map(|o| match o {
                Taken::Copy(p) => Some(p),
                Taken::Answer(..) => None,
            })
            .collect();
        let mut bufs: Vec<Vec<u8>> = packets.iter().map(|p| vec![0u8; p.len]).collect();
        let mut owner = Vec::new();
        let mut segs = Vec::new();
        for (i, (p, buf)) in packets.iter().zip(bufs.iter_mut()).enumerate() {
            let mut rest: &mut [u8] = buf;
            for f in &p.frags {
                let (dst, tail) = rest.split_at_mut(usize::from(f.len));
                rest = tail;
                segs.push(CopySegment::FromGuest {
                    src: GuestBuf {
                        domid: self.domid,
                        gref: f.gref,
                        offset: f.offset,
                    },
                    dst,
                });
                owner.push(i);
            }
        }
        let mut ok = vec![true; packets.len()];
        if !segs.is_empty() {
            let mut status = Vec::with_capacity(segs.len());
            self.stats.copy_calls += 1;
            self.stats.copy_segments += segs.len() as u64;
            match gt.copy(&mut segs, &mut status) {
                Ok(()) => {
                    for (st, &k) in status.iter().zip(&owner) {
                        if !st.is_ok() {
                            self.guest_log.warn(
                                self.now,
                                &self.name,
                                format_args!("rule 10: tx grant copy failed: {st:?}"),
                            );
                            ok[k] = false;
                        }
                    }
                    if status.len() != segs.len() {
                        ok.iter_mut().for_each(|o| *o = false);
                    }
                }
                Err(e) => {
                    self.guest_log.warn(
                        self.now,
                        &self.name,
                        format_args!("tx grant copy call failed: {e}"),
                    );
                    ok.iter_mut().for_each(|o| *o = false);
                }
            }
        }
        drop(segs);

        // Answer every slot of every packet, in ring order (rule 7), then hand frames up.
        let mut delivered = bufs
            .into_iter()
            .zip(ok)
            .zip(packets.iter().map(|p| p.flags));
        for o in &outcomes {
            let (answers, status) = match o {
                Taken::Copy(p) => {
                    let ((mut frame, copied), flags) =
                        delivered.next().expect("one buffer per packet");
                    let mut good = copied;
                    if good && flags & NETTXF_CSUM_BLANK != 0 {
                        if let Err(e) = fill_l4_checksum(&mut frame) {
                            self.guest_log.warn(
                                self.now,
                                &self.name,
                                format_args!("csum_blank frame: {e}"),
                            );
                            good = false;
                        }
                    }
                    if good && self.to_stack.len() >= TO_STACK_MAX {
                        self.stats.tx_dropped += 1;
                    } else if good {
                        self.stats.tx_frames += 1;
                        self.stats.tx_bytes += frame.len() as u64;
                        self.to_stack.push_back(frame);
                    } else {
                        self.stats.tx_errors += 1;
                    }
                    (
                        &p.answers,
                        if good {
                            NETIF_RSP_OKAY
                        } else {
                            NETIF_RSP_ERROR
                        },
                    )
                }
                Taken::Answer(answers, Some(reason)) => {
                    self.guest_log.warn(
                        self.now,
                        &self.name,
                        format_args!("dropping guest packet: {reason}"),
                    );
                    self.stats.tx_errors += 1;
                    (answers, NETIF_RSP_ERROR)
                }
                Taken::Answer(answers, None) => (answers, NETIF_RSP_OKAY),
            };
            for a in answers {
                let written = rings.tx.put_response([a.response(status).to_word(), 0, 0]);
                debug_assert!(written, "a response for every taken slot");
            }
        }
        let notify = rings.tx.push_responses_and_check_notify();
        let more = budget_hit
            || (!limited
                && rings
                    .tx
                    .final_check_for_requests()
                    .map_err(ring_violation)?);
        Ok(Work {
            notify,
            more,
            wake_at,
        })
    }

    /// Guest RX: fills the guest's posted buffers with queued frames (up to [`BUDGET`] frames,
    /// one grant-copy call), answering each request in its own slot.
    pub(crate) fn process_rx<G: GrantTable>(
        &mut self,
        gt: &G,
        now: Instant,
    ) -> Result<Work, Violation> {
        self.now = now;
        self.rx.expire(now);
        if let Some(line) = self.guest_log.tick(now, &self.name) {
            log::warn!("{line}");
        }
        let Some(rings) = self.rings.as_mut() else {
            return Ok(Work::default());
        };
        // A stall ends once the guest posts a buffer (Linux `xenvif_rx_queue_ready`); while
        // stalled the queue is empty, so only this check notices, and it asks for an event.
        let unstalled =
            self.rx.stalled() && rings.rx.wait_for_requests(1).map_err(ring_violation)?;
        if unstalled {
            self.rx.note_buffers(now);
            self.progressed = true;
        }
        let mut frames: Vec<(Vec<u8>, Vec<RxRequest>)> = Vec::new();
        let mut took_requests = false;
        let mut more = false;
        while let Some(front) = self.rx.front() {
            if frames.len() == BUDGET {
                more = true;
                break;
            }
            let needed = slots_for(front.len());
            if !rings.rx.wait_for_requests(needed).map_err(ring_violation)? {
                break;
            }
            let frame = self.rx.pop(now).expect("front exists");
            let reqs: Vec<RxRequest> = (0..needed)
                .map(|_| RxRequest::from_words(rings.rx.take_request()))
                .collect();
            took_requests = true;
            frames.push((frame, reqs));
        }
        if took_requests {
            self.rx.note_buffers(now);
            self.progressed = true;
        }
        if frames.is_empty() {
            return Ok(Work {
                notify: false,
                more,
                wake_at: None,
            });
        }
        let mut segs = Vec::new();
        let mut owner = Vec::new();
        for (i, (frame, reqs)) in frames.iter().enumerate() {
            for (chunk, req) in frame.chunks(PAGE_SIZE).zip(reqs) {
                segs.push(CopySegment::ToGuest {
                    src: chunk,
                    dst: GuestBuf {
                        domid: self.domid,
                        gref: req.gref,
                        offset: 0,
                    },
                });
                owner.push(i);
            }
        }
        let mut ok = vec![true; frames.len()];
        let mut status: Vec<GrantStatus> = Vec::with_capacity(segs.len());
        self.stats.copy_calls += 1;
        self.stats.copy_segments += segs.len() as u64;
        match gt.copy(&mut segs, &mut status) {
            Ok(()) if status.len() == segs.len() => {
                for (st, &k) in status.iter().zip(&owner) {
                    if !st.is_ok() {
                        self.guest_log.warn(
                            now,
                            &self.name,
                            format_args!("rule 10: rx grant copy failed: {st:?}"),
                        );
                        ok[k] = false;
                    }
                }
            }
            r => {
                self.guest_log.warn(
                    now,
                    &self.name,
                    format_args!("rx grant copy call failed: {r:?}"),
                );
                ok.iter_mut().for_each(|o| *o = false);
            }
        }
        drop(segs);
        for ((frame, reqs), good) in frames.iter().zip(ok) {
            let n = reqs.len();
            for (k, req) in reqs.iter().enumerate() {
                let len = if k + 1 < n {
                    PAGE_SIZE
                } else {
                    frame.len() - (n - 1) * PAGE_SIZE
                };
                let rsp = RxResponse {
                    id: req.id,
                    offset: 0,
                    flags: if k + 1 < n { NETRXF_MORE_DATA } else { 0 },
                    status: if good { len as i16 } else { NETIF_RSP_ERROR },
                };
                let written = rings.rx.put_response(rsp.to_words());
                debug_assert!(written, "a response for every taken slot");
            }
            if good {
                self.stats.rx_frames += 1;
                self.stats.rx_bytes += frame.len() as u64;
            } else {
                self.stats.rx_dropped += 1;
            }
        }
        let notify = rings.rx.push_responses_and_check_notify();
        Ok(Work {
            notify,
            // Frames still waiting for buffers are not "more": req_event asks the guest to notify.
            more,
            wake_at: None,
        })
    }
}

/// smoltcp receive token: one frame the guest sent.
pub struct VifRxToken(Vec<u8>);

impl smoltcp::phy::RxToken for VifRxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

/// smoltcp transmit token: queues one frame for the guest.
pub struct VifTxToken<'a, M>(&'a mut Vif<M>);

impl<M: SharedPage> smoltcp::phy::TxToken for VifTxToken<'_, M> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        self.0.send_frame(frame);
        r
    }
}

impl<M: SharedPage> Device for Vif<M> {
    type RxToken<'a>
        = VifRxToken
    where
        Self: 'a;
    type TxToken<'a>
        = VifTxToken<'a, M>
    where
        Self: 'a;

    fn receive(
        &mut self,
        _t: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let frame = self.to_stack.pop_front()?;
        Some((VifRxToken(frame), VifTxToken(self)))
    }

    fn transmit(&mut self, _t: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        Some(VifTxToken(self))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = (self.mtu + ETH_HLEN).min(self.max_frame());
        caps.max_burst_size = Some(BUDGET);
        caps
    }
}
