//! Guest RX: queued frames matched with the buffers the guest posted on its RX ring into an
//! [`RxBatch`], copied in the round's one grant copy ([`crate::backend::Netback`] batches all
//! vifs), each answered in its own slot (a GSO packet's extra in the slot after its first).

use std::time::Instant;

use xen::{CopySegment, GrantStatus, GuestBuf};

use super::{packet_results, ring_violation, Step, Vif, Work, BUDGET};
use crate::offload::RxMeta;
use crate::ring::SharedPage;
use crate::rules::Violation;
use crate::rx::slots_with_meta;
use crate::wire::*;

/// Guest RX work: frames with the requests they take, waiting for the round's grant copy.
pub(crate) struct RxBatch {
    domid: xen::DomId,
    frames: Vec<(Vec<u8>, RxMeta, Vec<RxRequest>)>,
    /// The frame of each copy segment, in order.
    owner: Vec<usize>,
    /// Frames still wait for the guest (the budget ran out).
    more: bool,
}

impl RxBatch {
    /// Appends the batch's copy segments (frames into guest pages) to `segs`.
    pub(crate) fn push_segments<'a>(&'a mut self, segs: &mut Vec<CopySegment<'a>>) {
        self.owner.clear();
        for (i, (frame, meta, reqs)) in self.frames.iter().enumerate() {
            for (chunk, req) in frame.chunks(PAGE_SIZE).zip(data_requests(reqs, meta)) {
                segs.push(CopySegment::ToGuest {
                    src: chunk,
                    dst: GuestBuf {
                        domid: self.domid,
                        gref: req.gref,
                        offset: 0,
                    },
                });
                self.owner.push(i);
            }
        }
    }
}

impl<M: SharedPage> Vif<M> {
    /// Guest RX, first half: expires old frames and takes, for up to [`BUDGET`] queued frames,
    /// all the requests each needs (never a partial packet); `Done` if none can go.
    pub(crate) fn take_rx(&mut self, now: Instant) -> Result<Step<RxBatch>, Violation> {
        self.now = now;
        self.rx.expire(now);
        if let Some(line) = self.guest_log.tick(now, &self.name) {
            log::warn!("{line}");
        }
        let Some(rings) = self.rings.as_mut() else {
            return Ok(Step::Done(Work::default()));
        };
        // A stall ends once the guest posts a buffer (Linux `xenvif_rx_queue_ready`); while
        // stalled the queue is empty, so only this check notices, and it asks for an event.
        let unstalled =
            self.rx.stalled() && rings.rx.wait_for_requests(1).map_err(ring_violation)?;
        if unstalled {
            self.rx.note_buffers(now);
            self.progressed = true;
        }
        let mut frames: Vec<(Vec<u8>, RxMeta, Vec<RxRequest>)> = Vec::new();
        let mut more = false;
        while let Some(front) = self.rx.front() {
            if frames.len() == BUDGET {
                more = true;
                break;
            }
            let meta = self.rx.front_meta();
            // Never a partial packet: all its slots (pages and GSO extra) or none.
            let needed = slots_with_meta(front.len(), &meta);
            if !rings.rx.wait_for_requests(needed).map_err(ring_violation)? {
                break;
            }
            let frame = self.rx.pop(now).expect("front exists");
            let reqs: Vec<RxRequest> = (0..needed)
                .map(|_| RxRequest::from_words(rings.rx.take_request()))
                .collect();
            frames.push((frame, meta, reqs));
        }
        if frames.is_empty() {
            return Ok(Step::Done(Work {
                notify: false,
                more,
                wake_at: None,
            }));
        }
        self.rx.note_buffers(now);
        self.progressed = true;
        Ok(Step::Copy(RxBatch {
            domid: self.domid,
            frames,
            owner: Vec::new(),
            more,
        }))
    }

    /// Guest RX, second half: with the copy's `status` for the batch's segments (`None` if the
    /// call failed), answers every request taken, in ring order.
    pub(crate) fn complete_rx(
        &mut self,
        batch: RxBatch,
        status: Option<&[GrantStatus]>,
    ) -> Result<Work, Violation> {
        let RxBatch {
            frames,
            owner,
            more,
            ..
        } = batch;
        let (name, now) = (&self.name, self.now);
        let log = &mut self.guest_log;
        let ok = packet_results(&owner, frames.len(), status, |st| {
            log.warn(
                now,
                name,
                format_args!("rule 10: rx grant copy failed: {st:?}"),
            )
        });
        let Some(rings) = self.rings.as_mut() else {
            return Ok(Work::default());
        };
        for ((frame, meta, reqs), good) in frames.iter().zip(ok) {
            // Ring order as in Linux `xenvif_rx_skb`: the first data slot (checksum flags,
            // `extra_info` if a GSO extra follows), the extra, then the other data slots.
            let n = reqs.len() - usize::from(meta.gso.is_some());
            for (k, req) in data_requests(reqs, meta).enumerate() {
                let len = if k + 1 < n {
                    PAGE_SIZE
                } else {
                    frame.len() - (n - 1) * PAGE_SIZE
                };
                let mut flags = if k + 1 < n { NETRXF_MORE_DATA } else { 0 };
                if k == 0 {
                    flags |= meta.flags;
                    if meta.gso.is_some() {
                        flags |= NETRXF_EXTRA_INFO;
                    }
                }
                let rsp = RxResponse {
                    id: req.id,
                    offset: 0,
                    flags,
                    status: if good { len as i16 } else { NETIF_RSP_ERROR },
                };
                let written = rings.rx.put_response(rsp.to_words());
                debug_assert!(written, "a response for every taken slot");
                if let (0, Some(gso)) = (k, meta.gso) {
                    let written = rings.rx.put_response(gso.to_words());
                    debug_assert!(written, "a response for every taken slot");
                }
            }
            self.stats.rx_slots += reqs.len() as u64;
            if good {
                self.stats.rx_frames += 1;
                self.stats.rx_bytes += frame.len() as u64;
                self.stats.rx_gso_frames += u64::from(meta.gso.is_some());
            } else {
                self.stats.rx_dropped += 1;
                self.stats.rx_drop_copy += 1;
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

/// The requests of a packet's data slots, in ring order: all but the second when a GSO extra
/// takes it ([`slots_with_meta`] gave such a packet one request more than its pages).
fn data_requests<'a>(reqs: &'a [RxRequest], meta: &RxMeta) -> impl Iterator<Item = &'a RxRequest> {
    let extra = meta.gso.is_some();
    reqs.iter()
        .enumerate()
        .filter(move |(i, _)| !(extra && *i == 1))
        .map(|(_, r)| r)
}
