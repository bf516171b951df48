//! Guest TX: packets taken off the TX ring (every chain checked by [`crate::tx`]) into a
//! [`TxBatch`], copied out of the guest in the round's one grant copy
//! ([`crate::backend::Netback`] batches all vifs), then answered slot by slot and queued for the
//! stack; TX credit (the toolstack's rate limit) is applied here.

use std::time::Instant;

use xen::{CopySegment, GrantStatus, GuestBuf};

use super::{packet_results, ring_violation, Step, Vif, Work, BUDGET};
use crate::csum::fill_l4_checksum;
use crate::offload::TcpFrame;
use crate::ring::{SharedPage, TxBackRing};
use crate::rules::Violation;
use crate::tx::{take_packet, DropReason, SlotAnswer, SlotSource, TxOutcome, TxPacket};
use crate::wire::*;

/// What becomes of one taken packet's slots.
enum Taken {
    /// Copy the packet out of the guest, then answer its slots.
    Copy(TxPacket),
    /// Only answer the slots: with an error for a dropped packet (and why), or OKAY for a
    /// control request (`None`).
    Answer(Vec<SlotAnswer>, Option<DropReason>),
}

/// Guest TX work taken off one vif's ring, waiting for the round's grant copy.
pub(crate) struct TxBatch {
    domid: xen::DomId,
    outcomes: Vec<Taken>,
    /// One buffer per [`Taken::Copy`], in order.
    bufs: Vec<Vec<u8>>,
    /// The packet (index into `bufs`) of each copy segment, in order.
    owner: Vec<usize>,
    /// The longest frame without a GSO extra.
    max_len: usize,
    budget_hit: bool,
    limited: bool,
    wake_at: Option<Instant>,
}

impl TxBatch {
    /// Appends the batch's copy segments (guest buffers into local ones) to `segs`.
    pub(crate) fn push_segments<'a>(&'a mut self, segs: &mut Vec<CopySegment<'a>>) {
        self.owner.clear();
        let packets = self.outcomes.iter().filter_map(|o| match o {
            Taken::Copy(p) => Some(p),
            Taken::Answer(..) => None,
        });
        for (i, (p, buf)) in packets.zip(self.bufs.iter_mut()).enumerate() {
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
                self.owner.push(i);
            }
        }
    }
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

impl<M: SharedPage> Vif<M> {
    /// Guest TX, first half: takes up to [`BUDGET`] packets off the ring (each chain checked,
    /// credit applied) for the round's grant copy; `Done` if there is nothing to copy or answer.
    pub(crate) fn take_tx(&mut self) -> Result<Step<TxBatch>, Violation> {
        let Some(rings) = self.rings.as_mut() else {
            return Ok(Step::Done(Work::default()));
        };
        let avail = rings.tx.unconsumed_requests().map_err(ring_violation)?;
        let mut src = RingSource {
            ring: &mut rings.tx,
            left: avail,
        };
        // Without a GSO extra no frame may exceed the MTU; a VLAN tag is allowed. A GSO frame
        // may be as long as a packet can be (`MAX_TX_SIZE`, the first slot's 16-bit size).
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
                TxOutcome::Packet(p) if p.len > max_len && p.gso.is_none() => Taken::Answer(
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
            return Ok(Step::Done(Work {
                notify: false,
                more,
                wake_at,
            }));
        }
        let bufs = outcomes
            .iter()
            .filter_map(|o| match o {
                Taken::Copy(p) => Some(vec![0u8; p.len]),
                Taken::Answer(..) => None,
            })
            .collect();
        Ok(Step::Copy(TxBatch {
            domid: self.domid,
            outcomes,
            bufs,
            owner: Vec::new(),
            max_len,
            budget_hit,
            limited,
            wake_at,
        }))
    }

    /// Guest TX, second half: with the copy's `status` for the batch's segments (`None` if the
    /// call failed), answers every slot once, in ring order (rule 7), and queues the frames.
    pub(crate) fn complete_tx(
        &mut self,
        batch: TxBatch,
        status: Option<&[GrantStatus]>,
    ) -> Result<Work, Violation> {
        let TxBatch {
            outcomes,
            bufs,
            owner,
            max_len,
            budget_hit,
            limited,
            wake_at,
            ..
        } = batch;
        let (name, now) = (&self.name, self.now);
        let log = &mut self.guest_log;
        let ok = packet_results(&owner, bufs.len(), status, |st| {
            log.warn(
                now,
                name,
                format_args!("rule 10: tx grant copy failed: {st:?}"),
            )
        });
        let Some(rings) = self.rings.as_mut() else {
            return Ok(Work::default());
        };
        // Answer every slot of every packet, in ring order (rule 7), then hand frames up.
        let mut delivered = bufs.into_iter().zip(ok);
        for o in &outcomes {
            let (answers, status) = match o {
                Taken::Copy(p) => {
                    let (mut frame, copied) = delivered.next().expect("one buffer per packet");
                    let mut good = copied;
                    if !copied {
                        self.stats.tx_drop_copy += 1;
                    }
                    // A GSO extra matters only on a frame over the MTU (one within it needs
                    // no segmentation and is passed on as an ordinary frame, as before GSO).
                    let gso = p.gso.filter(|_| p.len > max_len);
                    if let (true, Some(gso)) = (good, gso) {
                        // The stack takes a GSO frame whole with its partial checksum (TCP
                        // checksums are not verified on a vif); it must be TCP of its type.
                        let ty = gso.gso_type();
                        if TcpFrame::parse(&frame).map(|t| t.gso_type()) != Some(ty) {
                            let reason = DropReason::GsoMismatch(ty);
                            self.guest_log.warn(
                                self.now,
                                &self.name,
                                format_args!("dropping guest packet: {reason}"),
                            );
                            self.stats.tx_drop_gso += 1;
                            good = false;
                        }
                    } else if good && p.flags & NETTXF_CSUM_BLANK != 0 {
                        if let Err(e) = fill_l4_checksum(&mut frame) {
                            self.guest_log.warn(
                                self.now,
                                &self.name,
                                format_args!("csum_blank frame: {e}"),
                            );
                            self.stats.tx_drop_csum += 1;
                            good = false;
                        }
                    }
                    let len = frame.len() as u64;
                    if good && !self.to_stack.push(frame) {
                        self.stats.tx_dropped += 1;
                    } else if good {
                        self.stats.tx_frames += 1;
                        self.stats.tx_bytes += len;
                        self.stats.tx_gso_frames += u64::from(gso.is_some());
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
                    match reason {
                        DropReason::OverMtu { .. } => self.stats.tx_drop_over_mtu += 1,
                        DropReason::GsoMismatch(_) => self.stats.tx_drop_gso += 1,
                        _ => self.stats.tx_drop_chain += 1,
                    }
                    (answers, NETIF_RSP_ERROR)
                }
                Taken::Answer(answers, None) => (answers, NETIF_RSP_OKAY),
            };
            self.stats.tx_slots += answers.len() as u64;
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
}
