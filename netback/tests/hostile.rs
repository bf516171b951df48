//! The ten defences against a malicious frontend (shared/reference/netback.md), each exercised by
//! a hostile frontend in the simulator. A fatal violation disables only the offending vif (its
//! backend goes to Closing, logged with the rule); the other vif keeps working; nothing panics.

mod common;

use common::hostile::{frame, inject, req, setup, tx_gref};
use common::World;
use netback::testfront::FrontOptions;
use netback::tx::{take_packet, SlotSource, TxOutcome};
use netback::wire::*;

/// A slot source standing for shared memory that the guest rewrites after every read.
struct Rewriting {
    slots: Vec<[u32; 3]>,
    reads: Vec<usize>,
    next: usize,
}

impl SlotSource for Rewriting {
    fn remaining(&self) -> u32 {
        (self.slots.len() - self.next) as u32
    }
    fn take(&mut self) -> [u32; 3] {
        let v = self.slots[self.next];
        self.reads[self.next] += 1;
        self.next += 1;
        // The guest races: every slot already read now claims a page-crossing, oversized buffer
        // (a double fetch would see it).
        for s in &mut self.slots[..self.next] {
            *s = req(s[0], 4000, NETTXF_MORE_DATA, 0, 0xffff);
        }
        v
    }
}

/// Rule 1 (XSA-155): each request is copied out of shared memory once and only the copy is
/// validated and used; a guest rewriting the ring after the read changes nothing.
#[test]
fn rule1_xsa155_each_request_is_read_once() {
    let slots = vec![
        req(1, 0, NETTXF_MORE_DATA, 1, 3000),
        req(2, 0, NETTXF_MORE_DATA, 2, 1000),
        req(3, 100, 0, 3, 1000),
    ];
    let mut src = Rewriting {
        reads: vec![0; slots.len()],
        slots,
        next: 0,
    };
    let TxOutcome::Packet(p) = take_packet(&mut src) else {
        panic!("packet expected")
    };
    assert_eq!(src.reads, vec![1, 1, 1], "every slot read exactly once");
    assert_eq!(p.len, 3000);
    assert_eq!(
        p.frags
            .iter()
            .map(|f| (f.gref, f.offset, f.len))
            .collect::<Vec<_>>(),
        vec![(1, 0, 1000), (2, 0, 1000), (3, 100, 1000)]
    );
}

/// Rule 2 (XSA-39): a frontend publishing more requests than the ring holds is disabled.
#[test]
fn rule2_xsa39_impossible_req_prod_disables_vif() {
    let mut s = setup();
    let r = s.bf.rings.as_mut().unwrap();
    let prod = r.tx.req_prod_pvt();
    r.tx.set_shared_req_prod(prod.wrapping_add(300));
    s.bf.notify().unwrap();
    s.assert_disabled(2);
}

/// Rule 3: 19 slots are dropped (answered with errors), a chain of 20 or more is fatal.
#[test]
fn rule3_too_many_slots_drop_then_fatal() {
    let mut s = setup();
    let g = tx_gref(&s.bf, 0);
    let chain = |n: usize| -> Vec<[u32; 3]> {
        (0..n)
            .map(|i| {
                let flags = if i + 1 < n { NETTXF_MORE_DATA } else { 0 };
                let size = if i == 0 { 100 + n as u16 - 1 } else { 1 };
                req(g, 0, flags, i as u16, size)
            })
            .collect()
    };
    inject(&mut s.bf, &chain(19));
    let bad = s.bad;
    assert!(s
        .w
        .pump_until(&mut [&mut s.gf, &mut s.bf], |_, fs| fs[1].stats.tx_errors
            == 19));
    s.assert_not_disabled();
    assert_eq!(s.w.nb.vif_by_handle(bad, 0).unwrap().pending_to_stack(), 0);
    inject(&mut s.bf, &chain(25));
    s.assert_disabled(3);
}

/// Rule 4 (XSA-448): a first slot shorter than an Ethernet header is dropped; a slot crossing
/// its page is fatal.
#[test]
fn rule4_xsa448_slot_validation() {
    let mut s = setup();
    let g = tx_gref(&s.bf, 0);
    inject(
        &mut s.bf,
        &[req(g, 0, NETTXF_MORE_DATA, 1, 100), req(g, 0, 0, 2, 90)],
    );
    assert!(s
        .w
        .pump_until(&mut [&mut s.gf, &mut s.bf], |_, fs| fs[1].stats.tx_errors
            == 2));
    s.assert_not_disabled();
    inject(&mut s.bf, &[req(g, 4000, 0, 3, 200)]);
    s.assert_disabled(4);
}

/// Rule 5 (XSA-423/432): headers spread over many tiny (and empty) slots are linearised: the
/// stack gets one contiguous frame, and a blank checksum is filled from the linear copy.
#[test]
fn rule5_xsa423_xsa432_headers_split_across_slots_are_linearised() {
    let mut s = setup();
    // An IPv4/UDP frame with a blank checksum.
    let mut f = vec![0u8; 14 + 20 + 8 + 30];
    f[12] = 0x08;
    f[14] = 0x45;
    f[16..18].copy_from_slice(&((20 + 8 + 30) as u16).to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[10, 0, 0, 1]);
    f[30..34].copy_from_slice(&[10, 0, 0, 2]);
    f[34..36].copy_from_slice(&1000u16.to_be_bytes());
    f[36..38].copy_from_slice(&2000u16.to_be_bytes());
    f[38..40].copy_from_slice(&38u16.to_be_bytes());
    for (i, b) in f[42..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let mut expected = f.clone();
    netback::csum::fill_l4_checksum(&mut expected).unwrap();
    assert_ne!(expected[40..42], [0, 0]);
    // Slot layout: 14 B Ethernet header, 20 one-byte slots... is too many; use 10 one-byte
    // slots, an empty slot, then the rest.
    let pages: Vec<u32> = (0..13).map(|i| tx_gref(&s.bf, i)).collect();
    let r = s.bf.rings.as_ref().unwrap();
    let mut pieces: Vec<&[u8]> = vec![&f[..14]];
    for i in 0..10 {
        pieces.push(&f[14 + i..15 + i]);
    }
    pieces.push(&[]);
    pieces.push(&f[24..]);
    let mut reqs = Vec::new();
    for (i, p) in pieces.iter().enumerate() {
        r.tx_pages[i].0.write(8, p).unwrap();
        let last = i + 1 == pieces.len();
        let mut flags = if last { 0 } else { NETTXF_MORE_DATA };
        let size = if i == 0 {
            flags |= NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED;
            f.len()
        } else {
            p.len()
        };
        reqs.push(req(pages[i], 8, flags, i as u16, size as u16));
    }
    inject(&mut s.bf, &reqs);
    let name = format!("vif{}.0", s.bad);
    let mut got = None;
    assert!(s.w.pump_until(&mut [&mut s.gf, &mut s.bf], |w, _| {
        got = w.nb.vif_mut(&name).unwrap().recv_frame();
        got.is_some()
    }));
    assert_eq!(got.unwrap(), expected);
    s.assert_not_disabled();
    s.assert_good_vif_works();
}

/// Rule 6: an extra-info segment of an invalid type is fatal.
#[test]
fn rule6_invalid_extra_info_disables_vif() {
    let mut s = setup();
    let g = tx_gref(&s.bf, 0);
    let e = ExtraInfo {
        ty: 9,
        flags: 0,
        data: [0; 6],
    }
    .to_words();
    inject(
        &mut s.bf,
        &[req(g, 0, NETTXF_EXTRA_INFO, 1, 60), [e[0], e[1], 0]],
    );
    s.assert_disabled(6);
}

/// Rule 7: every slot is answered exactly once (NULL for extra-info slots), whatever ids the
/// frontend uses: responses are indexed by our own slot numbers, not by guest ids.
#[test]
fn rule7_every_slot_answered_once_despite_duplicate_ids() {
    let mut s = setup();
    let g = tx_gref(&s.bf, 0);
    s.bf.rings.as_ref().unwrap().tx_pages[0]
        .0
        .write(0, &frame(200, 1))
        .unwrap();
    let gso = {
        let sz = 1448u16.to_le_bytes();
        let e = ExtraInfo {
            ty: XEN_NETIF_EXTRA_TYPE_GSO,
            flags: 0,
            data: [sz[0], sz[1], XEN_NETIF_GSO_TYPE_TCPV4, 0, 0, 0],
        }
        .to_words();
        [e[0], e[1], 0]
    };
    inject(
        &mut s.bf,
        &[
            req(g, 0, 0, 7, 60),
            req(g, 0, NETTXF_EXTRA_INFO | NETTXF_MORE_DATA, 7, 200),
            gso,
            req(g, 100, 0, 7, 100),
            req(g, 0, 0, 7, 60),
        ],
    );
    assert!(s
        .w
        .pump_until(&mut [&mut s.gf, &mut s.bf], |_, fs| fs[1].stats.tx_ok
            + fs[1].stats.tx_null
            >= 5));
    for _ in 0..20 {
        s.pump();
    }
    assert_eq!(
        (s.bf.stats.tx_ok, s.bf.stats.tx_null, s.bf.stats.tx_errors),
        (4, 1, 0)
    );
    s.assert_not_disabled();
}

/// Rule 8 (XSA-392/424): a guest that stops taking packets gets a bounded RX queue (512 KiB),
/// its frames expire after 10 s, and after 60 s without progress the queue is stalled (carrier
/// off, frames dropped on arrival). The vif is not disabled and the other vif keeps working.
#[test]
fn rule8_xsa392_xsa424_rx_buffering_bounded_for_guest_that_stops_reading() {
    let mut s = setup();
    let name = format!("vif{}.0", s.bad);
    // The hostile guest is never polled again: its 256 posted buffers fill up, the rest queues.
    let mut accepted = 0;
    for i in 0..1000 {
        if s.w
            .nb
            .vif_mut(&name)
            .unwrap()
            .send_frame(frame(1514, i as u8))
        {
            accepted += 1;
        }
        if i % 64 == 0 {
            s.w.nb.flush(s.w.now).unwrap();
        }
    }
    s.w.nb.flush(s.w.now).unwrap();
    let vif = s.w.nb.vif_mut(&name).unwrap();
    assert_eq!(vif.stats().rx_frames, 256, "all posted buffers were filled");
    assert!(vif.pending_to_guest() * 1514 <= netback::rx::RX_QUEUE_BYTES);
    assert!(accepted < 1000 && vif.stats().rx_dropped > 0);
    s.w.now += std::time::Duration::from_secs(11);
    s.w.nb.flush(s.w.now).unwrap();
    assert_eq!(
        s.w.nb.vif_mut(&name).unwrap().pending_to_guest(),
        0,
        "frames expired after 10 s"
    );
    // Traffic keeps coming for another minute: the queue is declared stalled.
    for _ in 0..14 {
        s.w.now += std::time::Duration::from_secs(5);
        s.w.nb.vif_mut(&name).unwrap().send_frame(frame(100, 0));
        s.w.nb.flush(s.w.now).unwrap();
    }
    assert!(
        !s.w.nb.vif_mut(&name).unwrap().send_frame(frame(100, 0)),
        "stalled queue drops on arrival"
    );
    s.assert_not_disabled();
    let good = format!("vif{}.0", s.good);
    s.w.pump(&mut [&mut s.gf]);
    assert!(s.w.nb.vif_mut(&good).unwrap().send_frame(frame(100, 3)));
    let mut got = None;
    assert!(s.w.pump_until(&mut [&mut s.gf], |_, fs| {
        got = fs[0].recv();
        got.is_some()
    }));
    assert_eq!(got.unwrap(), frame(100, 3));
}

/// Rule 9 (XSA-332): work per wakeup is bounded (64 packets per vif), so a frontend flooding its
/// ring cannot starve another vif; the rest is done on later rounds.
#[test]
fn rule9_xsa332_bounded_work_per_wakeup() {
    let mut s = setup();
    let g = tx_gref(&s.bf, 0);
    s.bf.rings.as_ref().unwrap().tx_pages[0]
        .0
        .write(0, &frame(60, 2))
        .unwrap();
    let flood: Vec<[u32; 3]> = (0..200).map(|i| req(g, 0, 0, i, 60)).collect();
    inject(&mut s.bf, &flood);
    assert!(s.gf.send(&frame(60, 1)).unwrap());
    let (bad, good) = (format!("vif{}.0", s.bad), format!("vif{}.0", s.good));
    s.w.nb.handle_evtchn(s.w.now).unwrap();
    assert_eq!(
        s.w.nb.vif_mut(&bad).unwrap().stats().tx_frames,
        64,
        "one budget per wakeup"
    );
    assert!(s.w.nb.has_pending_work());
    assert_eq!(
        s.w.nb.vif_mut(&good).unwrap().stats().tx_frames,
        1,
        "the other vif is served in the same round"
    );
    for _ in 0..3 {
        s.w.nb.handle_evtchn(s.w.now).unwrap();
    }
    assert_eq!(s.w.nb.vif_mut(&bad).unwrap().stats().tx_frames, 200);
    s.assert_not_disabled();
}

/// Rule 10 (XSA-374): every grant-copy status is checked: a slot naming a grant the guest never
/// gave is answered with an error and nothing is delivered; the vif stays up.
#[test]
fn rule10_xsa374_failed_grant_copy_is_an_error_response() {
    let mut s = setup();
    inject(&mut s.bf, &[req(77_777, 0, 0, 1, 60)]);
    assert!(s
        .w
        .pump_until(&mut [&mut s.gf, &mut s.bf], |_, fs| fs[1].stats.tx_errors
            == 1));
    let name = format!("vif{}.0", s.bad);
    assert!(s.w.nb.vif_mut(&name).unwrap().recv_frame().is_none());
    s.assert_not_disabled();
}

/// Rule 10 (XSA-270/90): invalid frontend xenstore input (non-numeric ring ref, a ring ref that
/// was never granted, an event channel not offered to us) disables that vif only.
#[test]
fn rule10_xsa270_xsa90_invalid_xenstore_input_disables_vif() {
    let cases: [(&str, &str, &str); 3] = [
        ("12abc", "8", "1"),
        ("4000000", "8", "1"),
        ("8", "8", "999"),
    ];
    for (tx_ref, rx_ref, evtchn) in cases {
        let mut w = World::new();
        let (good, mut gf) = w.add_guest(1500, FrontOptions::default());
        let bad = w.add_guest_raw(1500, false);
        let xs = w.sim.connect_xenstore(bad).unwrap();
        let fe = format!("/local/domain/{bad}/device/vif/0");
        assert!(w.pump_until(&mut [&mut gf], |w, fs| fs[0].is_up()
            && w.backend_state(bad) == "2"));
        // A real page for the refs that should be valid.
        let page = w.sim.alloc_page(bad).unwrap();
        let gref = w.sim.grant_access(bad, &page, w.nv, false).unwrap();
        let fix = |v: &str| {
            if v == "8" {
                gref.to_string()
            } else {
                v.to_string()
            }
        };
        let mut ev = w.sim.event_channel(bad).unwrap();
        let port = ev.alloc_unbound(w.nv).unwrap();
        let evtchn = if evtchn == "1" {
            port.to_string()
        } else {
            evtchn.to_string()
        };
        xs.transaction(|t| {
            t.write(&format!("{fe}/tx-ring-ref"), fix(tx_ref))?;
            t.write(&format!("{fe}/rx-ring-ref"), fix(rx_ref))?;
            t.write(&format!("{fe}/event-channel"), &evtchn)?;
            t.write(&format!("{fe}/request-rx-copy"), "1")?;
            t.write(&format!("{fe}/feature-rx-notify"), "1")?;
            t.write(&format!("{fe}/state"), "4")
        })
        .unwrap();
        assert!(
            w.pump_until(&mut [&mut gf], |w, _| w
                .nb
                .vif_by_handle(bad, 0)
                .is_some_and(|v| v.disabled().is_some())),
            "case {tx_ref}/{evtchn} not disabled"
        );
        assert_eq!(
            w.nb.vif_by_handle(bad, 0)
                .unwrap()
                .disabled()
                .unwrap()
                .rule(),
            10
        );
        assert_eq!(w.backend_state(bad), "5");
        let name = format!("vif{good}.0");
        assert!(gf.send(&frame(300, 1)).unwrap());
        assert!(w.pump_until(&mut [&mut gf], |w, _| w
            .nb
            .vif_mut(&name)
            .unwrap()
            .recv_frame()
            .is_some()));
    }
}
