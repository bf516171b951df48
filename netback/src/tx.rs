//! Guest TX: validation of one packet's request chain, as a pure function of the slots.
//!
//! [`take_packet`] consumes the slots of one packet from a [`SlotSource`] (each slot copied out of
//! shared memory exactly once, rule 1), checks every value where it is first read, and returns
//! either a packet to copy, a packet to drop (its slots are still answered), or a [`Violation`]
//! that disables the vif. It never panics, whatever the slots hold; the fuzz target and the
//! proptests in this module feed it arbitrary chains.

use crate::rules::Violation;
use crate::wire::*;

/// Where request slots come from: a ring (through [`crate::ring::TxBackRing`]) or a test slice.
pub trait SlotSource {
    /// Slots published and not yet taken (a snapshot taken once per batch).
    fn remaining(&self) -> u32;
    /// Copies the next slot out of shared memory and advances past it.
    fn take(&mut self) -> [u32; 3];
}

/// Slots from a slice (tests, proptests and the fuzz target).
pub struct SliceSource<'a> {
    slots: &'a [[u32; 3]],
    next: usize,
}

impl<'a> SliceSource<'a> {
    /// A source yielding `slots` in order.
    pub fn new(slots: &'a [[u32; 3]]) -> Self {
        SliceSource { slots, next: 0 }
    }

    /// Slots taken so far.
    pub fn taken(&self) -> usize {
        self.next
    }
}

impl SlotSource for SliceSource<'_> {
    fn remaining(&self) -> u32 {
        (self.slots.len() - self.next) as u32
    }
    fn take(&mut self) -> [u32; 3] {
        let s = self.slots[self.next];
        self.next += 1;
        s
    }
}

/// One guest buffer of a packet: `len` bytes at `offset` of grant `gref` (within one page).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frag {
    /// Grant reference.
    pub gref: u32,
    /// Offset in the page.
    pub offset: u16,
    /// Bytes (`offset + len <= 4096`, checked).
    pub len: u16,
}

/// How one consumed slot must be answered (rule 7: every slot once, extras with NULL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotAnswer {
    /// A data slot: answer with the packet's status and this id.
    Data {
        /// The request's id.
        id: u16,
    },
    /// An extra-info slot: answer `NETIF_RSP_NULL`.
    Extra,
}

impl SlotAnswer {
    /// The response word for this slot given the packet's status.
    pub fn response(self, status: i16) -> TxResponse {
        match self {
            SlotAnswer::Data { id } => TxResponse { id, status },
            SlotAnswer::Extra => TxResponse {
                id: 0,
                status: NETIF_RSP_NULL,
            },
        }
    }
}

/// A valid packet: its buffers in order and how to answer its slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxPacket {
    /// The buffers, first slot first; their lengths sum to `len`.
    pub frags: Vec<Frag>,
    /// Total length (the first slot's `size`).
    pub len: usize,
    /// The first slot's `NETTXF_*` flags.
    pub flags: u16,
    /// The GSO extra, if the frontend sent one.
    pub gso: Option<ExtraInfo>,
    /// Answers for all consumed slots, in ring order.
    pub answers: Vec<SlotAnswer>,
}

/// Why a well-formed but unusable packet is dropped (answered with `NETIF_RSP_ERROR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    /// Rule 3: more than [`NR_SLOTS_MIN`] data slots (but fewer than fatal).
    #[error("rule 3: {0} slots, more than 18")]
    TooManySlots(usize),
    /// Rule 4: the first slot holds less than an Ethernet header.
    #[error("rule 4: first slot holds {0} bytes, less than an Ethernet header")]
    FirstSlotTooSmall(usize),
    /// The frame is longer than the vif's MTU with its Ethernet and VLAN headers and carries no
    /// GSO extra. Checked by the vif, which knows the MTU.
    #[error("frame of {len} bytes exceeds the MTU ({max} bytes with headers) without a GSO extra")]
    OverMtu {
        /// The frame's length.
        len: usize,
        /// The longest frame the vif's MTU allows.
        max: usize,
    },
    /// Rule 6: a GSO extra on a frame that is not TCP over the IP version of its GSO type (Linux
    /// drops it when `skb_checksum_setup` fails). Checked by the vif, after the copy.
    #[error("rule 6: GSO type {0} on a frame that is not TCP of that IP version")]
    GsoMismatch(u8),
    /// Rule 4: a slot is bigger than what remains of the packet's announced size.
    #[error("rule 4: slot of {size} bytes exceeds the {remaining} bytes left of the packet")]
    SlotTooBig {
        /// The slot's size.
        size: usize,
        /// Bytes left of the first slot's total.
        remaining: usize,
    },
}

/// The result of taking one packet's slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxOutcome {
    /// Copy it and answer `NETIF_RSP_OKAY` (or `ERROR` if a copy fails).
    Packet(TxPacket),
    /// Answer all its slots with `NETIF_RSP_ERROR` (extras `NULL`).
    Drop {
        /// Answers for the consumed slots.
        answers: Vec<SlotAnswer>,
        /// Why.
        reason: DropReason,
    },
    /// A multicast-control request (an `MCAST_ADD` or `MCAST_DEL` extra), as Linux treats it: no
    /// packet; answer `NETIF_RSP_OKAY` (extras `NULL`). Only its first slot and its extras are
    /// taken; a `more_data` flag on it is not followed.
    Control {
        /// Answers for the consumed slots.
        answers: Vec<SlotAnswer>,
    },
    /// Disable the vif; the ring is not answered any further.
    Fatal(Violation),
}

/// Takes and validates the slots of one packet; `src` must have at least one slot remaining.
pub fn take_packet(src: &mut impl SlotSource) -> TxOutcome {
    let first = TxRequest::from_words(src.take());
    let mut answers = vec![SlotAnswer::Data { id: first.id }];
    let mut gso = None;
    let mut control = false;

    // Rule 6: extra-info segments.
    if first.flags & NETTXF_EXTRA_INFO != 0 {
        let mut count = 0u8;
        loop {
            if src.remaining() == 0 {
                return TxOutcome::Fatal(Violation::ExtraMissing);
            }
            let w = src.take();
            answers.push(SlotAnswer::Extra);
            count += 1;
            let extra = ExtraInfo::from_words(w[0], w[1]);
            if extra.ty == XEN_NETIF_EXTRA_TYPE_NONE || extra.ty >= XEN_NETIF_EXTRA_TYPE_MAX {
                return TxOutcome::Fatal(Violation::ExtraType(extra.ty));
            }
            if extra.ty == XEN_NETIF_EXTRA_TYPE_GSO {
                let (size, ty) = (extra.gso_size(), extra.gso_type());
                if size == 0 || !(ty == XEN_NETIF_GSO_TYPE_TCPV4 || ty == XEN_NETIF_GSO_TYPE_TCPV6)
                {
                    return TxOutcome::Fatal(Violation::Gso { size, ty });
                }
                gso = Some(extra);
            }
            control |= matches!(
                extra.ty,
                XEN_NETIF_EXTRA_TYPE_MCAST_ADD | XEN_NETIF_EXTRA_TYPE_MCAST_DEL
            );
            if !extra.more() {
                break;
            }
            if count >= XEN_NETIF_EXTRA_TYPE_MAX - 1 {
                return TxOutcome::Fatal(Violation::ExtraOverrun);
            }
        }
    }

    if control {
        return TxOutcome::Control { answers };
    }

    // Rules 3 and 4: the data slots.
    let mut frags = Vec::new();
    let mut drop = None;
    let mut remaining = usize::from(first.size);
    let mut more = first.flags & NETTXF_MORE_DATA != 0;
    let mut data_slots = 1usize;
    while more {
        data_slots += 1;
        if data_slots >= FATAL_SLOTS {
            return TxOutcome::Fatal(Violation::TooManySlots(data_slots));
        }
        if src.remaining() == 0 {
            return TxOutcome::Fatal(Violation::ChainPastProducer);
        }
        let req = TxRequest::from_words(src.take());
        answers.push(SlotAnswer::Data { id: req.id });
        more = req.flags & NETTXF_MORE_DATA != 0;
        let size = usize::from(req.size);
        if usize::from(req.offset) + size > PAGE_SIZE {
            return TxOutcome::Fatal(Violation::CrossPage {
                offset: req.offset,
                size,
            });
        }
        if drop.is_none() && data_slots > NR_SLOTS_MIN {
            drop = Some(DropReason::TooManySlots(data_slots));
        }
        if drop.is_none() && size > remaining {
            drop = Some(DropReason::SlotTooBig { size, remaining });
        }
        if drop.is_none() {
            remaining -= size;
            if size > 0 {
                frags.push(Frag {
                    gref: req.gref,
                    offset: req.offset,
                    len: req.size,
                });
            }
        }
    }
    if let Some(reason) = drop {
        return TxOutcome::Drop { answers, reason };
    }
    // What is left of the total is the first slot's own data.
    if usize::from(first.offset) + remaining > PAGE_SIZE {
        return TxOutcome::Fatal(Violation::CrossPage {
            offset: first.offset,
            size: remaining,
        });
    }
    if remaining < ETH_HLEN {
        return TxOutcome::Drop {
            answers,
            reason: DropReason::FirstSlotTooSmall(remaining),
        };
    }
    frags.insert(
        0,
        Frag {
            gref: first.gref,
            offset: first.offset,
            len: remaining as u16,
        },
    );
    TxOutcome::Packet(TxPacket {
        frags,
        len: usize::from(first.size),
        flags: first.flags,
        gso,
        answers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn req(gref: u32, offset: u16, flags: u16, id: u16, size: u16) -> [u32; 3] {
        TxRequest {
            gref,
            offset,
            flags,
            id,
            size,
        }
        .to_words()
    }

    fn extra(ty: u8, flags: u8, gso_size: u16, gso_type: u8) -> [u32; 3] {
        let s = gso_size.to_le_bytes();
        let w = ExtraInfo {
            ty,
            flags,
            data: [s[0], s[1], gso_type, 0, 0, 0],
        }
        .to_words();
        [w[0], w[1], 0]
    }

    #[test]
    fn single_slot_packet() {
        let slots = [req(5, 100, NETTXF_CSUM_BLANK, 9, 60)];
        let mut s = SliceSource::new(&slots);
        let TxOutcome::Packet(p) = take_packet(&mut s) else {
            panic!("not a packet")
        };
        assert_eq!(
            p.frags,
            vec![Frag {
                gref: 5,
                offset: 100,
                len: 60
            }]
        );
        assert_eq!(p.len, 60);
        assert_eq!(p.answers, vec![SlotAnswer::Data { id: 9 }]);
        assert_eq!(s.taken(), 1);
    }

    #[test]
    fn multi_slot_packet_with_gso_extra_and_zero_length_frag() {
        let slots = [
            req(1, 0, NETTXF_MORE_DATA | NETTXF_EXTRA_INFO, 1, 3000),
            extra(XEN_NETIF_EXTRA_TYPE_GSO, 0, 1448, XEN_NETIF_GSO_TYPE_TCPV4),
            req(2, 0, NETTXF_MORE_DATA, 2, 0),
            req(3, 96, 0, 3, 2000),
        ];
        let mut s = SliceSource::new(&slots);
        let TxOutcome::Packet(p) = take_packet(&mut s) else {
            panic!("not a packet")
        };
        assert_eq!(
            p.frags,
            vec![
                Frag {
                    gref: 1,
                    offset: 0,
                    len: 1000
                },
                Frag {
                    gref: 3,
                    offset: 96,
                    len: 2000
                }
            ]
        );
        assert_eq!(p.gso.unwrap().gso_size(), 1448);
        assert_eq!(p.answers.len(), 4);
        assert_eq!(p.answers[1], SlotAnswer::Extra);
    }

    /// Rule 3: 19 data slots are dropped but answered; 20 are fatal.
    #[test]
    fn rule3_slot_limits() {
        let chain = |n: usize| -> Vec<[u32; 3]> {
            (0..n)
                .map(|i| {
                    let flags = if i + 1 < n { NETTXF_MORE_DATA } else { 0 };
                    let size = if i == 0 { 100 + n as u16 } else { 1 };
                    req(i as u32, 0, flags, i as u16, size)
                })
                .collect()
        };
        let ok = chain(18);
        assert!(matches!(
            take_packet(&mut SliceSource::new(&ok)),
            TxOutcome::Packet(_)
        ));
        let dropped = chain(19);
        let mut s = SliceSource::new(&dropped);
        match take_packet(&mut s) {
            TxOutcome::Drop { answers, reason } => {
                assert_eq!(answers.len(), 19);
                assert_eq!(reason, DropReason::TooManySlots(19));
            }
            o => panic!("{o:?}"),
        }
        let fatal = chain(25);
        assert_eq!(
            take_packet(&mut SliceSource::new(&fatal)),
            TxOutcome::Fatal(Violation::TooManySlots(20))
        );
        let truncated = &chain(5)[..3];
        assert_eq!(
            take_packet(&mut SliceSource::new(truncated)),
            TxOutcome::Fatal(Violation::ChainPastProducer)
        );
    }

    /// Rule 4 (XSA-448): page crossing is fatal, small first slots and oversize slots are drops.
    #[test]
    fn rule4_slot_checks() {
        let cross = [req(1, 4000, 0, 1, 200)];
        assert!(matches!(
            take_packet(&mut SliceSource::new(&cross)),
            TxOutcome::Fatal(Violation::CrossPage { .. })
        ));
        let cross_frag = [req(1, 0, NETTXF_MORE_DATA, 1, 5000), req(2, 1, 0, 2, 4096)];
        assert!(matches!(
            take_packet(&mut SliceSource::new(&cross_frag)),
            TxOutcome::Fatal(Violation::CrossPage { .. })
        ));
        let small = [req(1, 0, NETTXF_MORE_DATA, 1, 100), req(2, 0, 0, 2, 90)];
        assert!(matches!(
            take_packet(&mut SliceSource::new(&small)),
            TxOutcome::Drop {
                reason: DropReason::FirstSlotTooSmall(10),
                ..
            }
        ));
        let too_big = [req(1, 0, NETTXF_MORE_DATA, 1, 100), req(2, 0, 0, 2, 200)];
        assert!(matches!(
            take_packet(&mut SliceSource::new(&too_big)),
            TxOutcome::Drop {
                reason: DropReason::SlotTooBig {
                    size: 200,
                    remaining: 100
                },
                ..
            }
        ));
    }

    /// A multicast-control extra makes the request a control operation: its first slot and
    /// extras are taken, nothing else, and no packet comes out.
    #[test]
    fn multicast_control_is_not_a_packet() {
        let f = NETTXF_EXTRA_INFO | NETTXF_MORE_DATA;
        for ty in [
            XEN_NETIF_EXTRA_TYPE_MCAST_ADD,
            XEN_NETIF_EXTRA_TYPE_MCAST_DEL,
        ] {
            let slots = [req(1, 0, f, 1, 0), extra(ty, 0, 0, 0), req(1, 0, 0, 2, 60)];
            let mut src = SliceSource::new(&slots);
            assert_eq!(
                take_packet(&mut src),
                TxOutcome::Control {
                    answers: vec![SlotAnswer::Data { id: 1 }, SlotAnswer::Extra]
                }
            );
            assert_eq!(src.taken(), 2);
        }
    }

    /// Rule 6: bad extras are fatal.
    #[test]
    fn rule6_extra_checks() {
        let f = NETTXF_EXTRA_INFO;
        let cases: Vec<(Vec<[u32; 3]>, Violation)> = vec![
            (vec![req(1, 0, f, 1, 60)], Violation::ExtraMissing),
            (
                vec![req(1, 0, f, 1, 60), extra(0, 0, 0, 0)],
                Violation::ExtraType(0),
            ),
            (
                vec![req(1, 0, f, 1, 60), extra(9, 0, 0, 0)],
                Violation::ExtraType(9),
            ),
            (
                vec![req(1, 0, f, 1, 60), extra(1, 0, 0, 1)],
                Violation::Gso { size: 0, ty: 1 },
            ),
            (
                vec![req(1, 0, f, 1, 60), extra(1, 0, 1400, 7)],
                Violation::Gso { size: 1400, ty: 7 },
            ),
            (
                vec![
                    req(1, 0, f, 1, 60),
                    extra(2, 1, 0, 0),
                    extra(2, 1, 0, 0),
                    extra(2, 1, 0, 0),
                    extra(2, 1, 0, 0),
                ],
                Violation::ExtraOverrun,
            ),
        ];
        for (slots, v) in cases {
            assert_eq!(
                take_packet(&mut SliceSource::new(&slots)),
                TxOutcome::Fatal(v)
            );
        }
    }

    proptest! {
        /// Any chain of random slots: no panic, never more slots taken than published, and a
        /// valid packet's buffers stay within their pages and add up to its length.
        #[test]
        fn random_chains_never_panic_and_stay_in_bounds(
            raw in proptest::collection::vec((any::<u32>(), 0u16..4200, any::<u16>(), any::<u16>(), any::<u16>()), 1..40),
        ) {
            let slots: Vec<[u32; 3]> = raw.iter().map(|&(g, o, f, i, s)| req(g, o, f & 0xf, i, s)).collect();
            let mut src = SliceSource::new(&slots);
            while src.remaining() > 0 {
                let before = src.taken();
                match take_packet(&mut src) {
                    TxOutcome::Packet(p) => {
                        prop_assert_eq!(p.answers.len(), src.taken() - before);
                        prop_assert_eq!(p.frags.iter().map(|f| usize::from(f.len)).sum::<usize>(), p.len);
                        for f in &p.frags {
                            prop_assert!(usize::from(f.offset) + usize::from(f.len) <= PAGE_SIZE);
                        }
                        prop_assert!(p.answers.len() < FATAL_SLOTS + 4);
                    }
                    TxOutcome::Drop { answers, .. } | TxOutcome::Control { answers } => {
                        prop_assert_eq!(answers.len(), src.taken() - before)
                    }
                    TxOutcome::Fatal(_) => break,
                }
                prop_assert!(src.taken() <= slots.len());
            }
        }
    }
}
