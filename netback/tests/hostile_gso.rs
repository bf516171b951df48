//! Hostile GSO frames (issue 15): netback offers `feature-gso-tcpv4`/`-tcpv6`, so a guest may send
//! frames of up to 64 KiB with a GSO extra. The defences of the other frames hold for them (slot
//! limits, page crossing, extra-info checks), a GSO frame must be TCP of its extra's IP version,
//! and on RX a GSO packet takes all its slots or none. Each test names its rule in the table of
//! `netback/README.md`.

mod common;

use common::hostile::{inject, req, setup, tx_gref, Setup};
use netback::testfront::{FrontOptions, TestFront};
use netback::wire::*;

/// An untagged IPv4 TCP frame with `payload` bytes and a valid checksum.
fn tcp_frame(payload: usize, seed: u8) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 20 + payload];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&((40 + payload) as u16).to_be_bytes());
    f[22] = 64;
    f[23] = 6;
    f[26..30].copy_from_slice(&[10, 0, 0, 2]);
    f[30..34].copy_from_slice(&[10, 0, 0, 1]);
    f[34..36].copy_from_slice(&40000u16.to_be_bytes());
    f[36..38].copy_from_slice(&5001u16.to_be_bytes());
    f[46] = 5 << 4;
    f[47] = 0x18;
    for (i, b) in f[54..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(13) ^ seed;
    }
    netback::csum::fill_l4_checksum(&mut f).unwrap();
    f
}

/// The IPv6 form of [`tcp_frame`].
fn tcp6_frame(payload: usize, seed: u8) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 40 + 20 + payload];
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    f[14] = 0x60;
    f[18..20].copy_from_slice(&((20 + payload) as u16).to_be_bytes());
    f[20] = 6;
    f[21] = 64;
    f[22..38].copy_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    f[38..54].copy_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    f[66] = 5 << 4;
    f[67] = 0x18;
    for (i, b) in f[74..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(11) ^ seed;
    }
    netback::csum::fill_l4_checksum(&mut f).unwrap();
    f
}

/// A GSO extra slot of `mss` and `ty`.
fn gso_extra(mss: u16, ty: u8) -> [u32; 3] {
    let w = ExtraInfo::gso(mss, ty).to_words();
    [w[0], w[1], 0]
}

/// Writes `frame` into the hostile frontend's TX pages in slots of `slot` bytes and returns the
/// requests: the first slot, the GSO extra (`mss`, `ty`), then the others.
fn gso_chain(f: &TestFront, frame: &[u8], slot: usize, mss: u16, ty: u8) -> Vec<[u32; 3]> {
    let chunks: Vec<&[u8]> = frame.chunks(slot).collect();
    let n = chunks.len();
    let mut reqs = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        f.rings.as_ref().unwrap().tx_pages[i].0.write(0, c).unwrap();
        let more = if i + 1 < n { NETTXF_MORE_DATA } else { 0 };
        let (flags, size) = if i == 0 {
            (more | NETTXF_EXTRA_INFO, frame.len())
        } else {
            (more, c.len())
        };
        reqs.push(req(tx_gref(f, i), 0, flags, i as u16, size as u16));
        if i == 0 {
            reqs.push(gso_extra(mss, ty));
        }
    }
    reqs
}

/// Pumps until the hostile frontend has `n` TX answers of any kind.
fn answered(s: &mut Setup, n: u64) {
    assert!(s.w.pump_until(&mut [&mut s.gf, &mut s.bf], |_, fs| {
        fs[1].stats.tx_ok + fs[1].stats.tx_errors + fs[1].stats.tx_null >= n
    }));
}

fn bad_vif(s: &mut Setup) -> &mut netback::Vif<xen::sim::SimMapping> {
    s.w.nb.vif_by_handle(s.bad, 0).unwrap()
}

/// Rule 3: a GSO frame's slot limits count its data slots, not its extra: 18 data slots are
/// taken (the frame reaches the stack whole), 19 are answered with errors, 20 are fatal.
#[test]
fn rule3_gso_frame_slot_limits_count_data_slots_only() {
    let mut s = setup();
    let f18 = tcp_frame(18 * 1000 - 54, 1);
    let reqs = gso_chain(&s.bf, &f18, 1000, 1448, XEN_NETIF_GSO_TYPE_TCPV4);
    assert_eq!(reqs.len(), 19);
    inject(&mut s.bf, &reqs);
    answered(&mut s, 19);
    assert_eq!(
        (s.bf.stats.tx_ok, s.bf.stats.tx_null, s.bf.stats.tx_errors),
        (18, 1, 0)
    );
    assert_eq!(bad_vif(&mut s).recv_frame().as_deref(), Some(&f18[..]));
    assert_eq!(bad_vif(&mut s).stats().tx_gso_frames, 1);

    let f19 = tcp_frame(19 * 1000 - 54, 2);
    let reqs = gso_chain(&s.bf, &f19, 1000, 1448, XEN_NETIF_GSO_TYPE_TCPV4);
    inject(&mut s.bf, &reqs);
    answered(&mut s, 39);
    assert_eq!(
        (s.bf.stats.tx_ok, s.bf.stats.tx_null, s.bf.stats.tx_errors),
        (18, 2, 19)
    );
    assert_eq!(bad_vif(&mut s).recv_frame(), None);
    assert_eq!(bad_vif(&mut s).stats().tx_drop_chain, 1);
    s.assert_not_disabled();

    let f20 = tcp_frame(20 * 1000 - 54, 3);
    let reqs = gso_chain(&s.bf, &f20, 1000, 1448, XEN_NETIF_GSO_TYPE_TCPV4);
    inject(&mut s.bf, &reqs);
    s.assert_disabled(3);
}

/// Rule 4 (XSA-448): a slot of a GSO frame that crosses its page is fatal, as in any frame.
#[test]
fn rule4_xsa448_gso_frame_slot_crossing_a_page_is_fatal() {
    let mut s = setup();
    let f = tcp_frame(8000, 4);
    let mut reqs = gso_chain(&s.bf, &f, 4000, 1448, XEN_NETIF_GSO_TYPE_TCPV4);
    // The second data slot (after the first and the extra) starts at 200: 200 + 4000 > 4096.
    reqs[2] = req(tx_gref(&s.bf, 1), 200, NETTXF_MORE_DATA, 1, 4000);
    inject(&mut s.bf, &reqs);
    s.assert_disabled(4);
}

/// Rule 6: a GSO extra with size 0 is fatal on a large frame as on any other.
#[test]
fn rule6_gso_extra_of_size_zero_is_fatal() {
    let mut s = setup();
    let f = tcp_frame(6000, 5);
    let reqs = gso_chain(&s.bf, &f, 4096, 0, XEN_NETIF_GSO_TYPE_TCPV4);
    inject(&mut s.bf, &reqs);
    s.assert_disabled(6);
}

/// Rule 22: a frame over the MTU must be TCP of its GSO extra's IP version; an IPv4 TCP frame
/// with a TCPV6 extra and a frame that is not TCP at all are answered with errors, counted and
/// not passed on; the vif stays up and good GSO frames (IPv4, then IPv6) pass afterwards.
#[test]
fn rule22_gso_frame_must_be_tcp_of_its_type() {
    let mut s = setup();
    let v4 = tcp_frame(6000, 6);
    let reqs = gso_chain(&s.bf, &v4, 4096, 1448, XEN_NETIF_GSO_TYPE_TCPV6);
    inject(&mut s.bf, &reqs);
    answered(&mut s, 3);
    let mut not_tcp = v4.clone();
    not_tcp[23] = 17;
    let reqs = gso_chain(&s.bf, &not_tcp, 4096, 1448, XEN_NETIF_GSO_TYPE_TCPV4);
    inject(&mut s.bf, &reqs);
    answered(&mut s, 6);
    assert_eq!(
        (s.bf.stats.tx_ok, s.bf.stats.tx_null, s.bf.stats.tx_errors),
        (0, 2, 4)
    );
    assert_eq!(bad_vif(&mut s).recv_frame(), None);
    assert_eq!(bad_vif(&mut s).stats().tx_drop_gso, 2);
    s.assert_not_disabled();
    let reqs = gso_chain(&s.bf, &v4, 4096, 1448, XEN_NETIF_GSO_TYPE_TCPV4);
    inject(&mut s.bf, &reqs);
    answered(&mut s, 9);
    assert_eq!(bad_vif(&mut s).recv_frame().as_deref(), Some(&v4[..]));
    let v6 = tcp6_frame(20_000, 9);
    let reqs = gso_chain(&s.bf, &v6, 4096, 1428, XEN_NETIF_GSO_TYPE_TCPV6);
    inject(&mut s.bf, &reqs);
    answered(&mut s, 9 + reqs.len() as u64);
    assert_eq!(bad_vif(&mut s).recv_frame().as_deref(), Some(&v6[..]));
    assert_eq!(bad_vif(&mut s).stats().tx_gso_frames, 2);
}

/// Rule 22: a GSO frame is handed up whole with the partial checksum the guest left
/// (`csum_blank`): the stack does not verify TCP checksums on a vif, nothing is recomputed.
#[test]
fn rule22_gso_frame_passes_whole_with_its_partial_checksum() {
    let mut s = setup();
    let mut f = tcp_frame(30_000, 7);
    f[50..52].copy_from_slice(&[0xab, 0xcd]);
    let mut reqs = gso_chain(&s.bf, &f, 4096, 1448, XEN_NETIF_GSO_TYPE_TCPV4);
    let mut first = TxRequest::from_words(reqs[0]);
    first.flags |= NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED;
    reqs[0] = first.to_words();
    inject(&mut s.bf, &reqs);
    answered(&mut s, reqs.len() as u64);
    assert_eq!(s.bf.stats.tx_errors, 0);
    assert_eq!(bad_vif(&mut s).recv_frame().as_deref(), Some(&f[..]));
}

/// Rule 23: towards the guest a GSO packet takes all its slots (pages and extra) or none: with
/// 6 requests left on a guest's RX ring a 60 KB segment (15 pages and the extra) waits, and
/// arrives whole once the guest posts buffers again.
#[test]
fn rule23_rx_gso_packet_waits_for_all_its_slots() {
    let mut w = common::World::new();
    let opts = FrontOptions {
        gso: true,
        ..Default::default()
    };
    let (g, mut front) = w.add_guest(1500, opts);
    assert!(w.pump_until(&mut [&mut front], |_, fs| fs[0].is_up()));
    let name = format!("vif{g}.0");
    let vif = w.nb.vif_mut(&name).unwrap();
    assert!(vif.offload().gso_v4);
    let small = common::hostile::frame(100, 1);
    for _ in 0..250 {
        assert!(vif.send_frame(small.clone()));
    }
    let big = tcp_frame(60_000, 8);
    assert_ne!(big[50..52], [0, 0], "a full checksum to start with");
    assert!(vif.send_from_stack(big.clone(), Some(1448)));
    // The guest does not poll: its 256 buffers are all it has.
    for _ in 0..10 {
        w.nb.flush(w.now).unwrap();
    }
    let vif = w.nb.vif_mut(&name).unwrap();
    assert_eq!(vif.stats().rx_frames, 250);
    assert_eq!(vif.pending_to_guest(), 1, "the GSO packet waits");
    assert_eq!(vif.stats().rx_slots, 250);
    let mut got = Vec::new();
    assert!(w.pump_until(&mut [&mut front], |_, fs| {
        while let Some(f) = fs[0].recv() {
            got.push(f);
        }
        got.len() == 251
    }));
    assert_eq!(front.stats.rx_errors, 0, "no partial packet");
    assert_eq!(front.stats.rx_gso, 1);
    assert_eq!(front.rx_gso_sizes(), vec![1448]);
    let mut partial = big.clone();
    let t = netback::offload::TcpFrame::parse(&partial).unwrap();
    t.write_partial_csum(&mut partial);
    assert_eq!(got[250], partial, "whole, with a partial checksum");
    let st = w.nb.vif_mut(&name).unwrap().stats();
    assert_eq!((st.rx_gso_frames, st.rx_slots), (1, 250 + 15 + 1));
}

/// Rule 12: the queue towards the stack is bounded in bytes too (`TO_STACK_BYTES`, 4 MiB): a
/// guest sending 64 KiB GSO frames to a vif nobody drains gets them answered OKAY and dropped
/// beyond 64 of them, not 256 (16 MiB).
#[test]
fn rule12_gso_frames_to_an_undrained_vif_are_bounded_in_bytes() {
    let mut s = setup();
    let f = tcp_frame(65_000 - 54, 10);
    let reqs = gso_chain(&s.bf, &f, 4096, 1448, XEN_NETIF_GSO_TYPE_TCPV4);
    for i in 0..80u64 {
        inject(&mut s.bf, &reqs);
        answered(&mut s, (i + 1) * reqs.len() as u64);
    }
    assert_eq!(s.bf.stats.tx_errors, 0, "every frame answered OKAY");
    let fits = netback::vif::TO_STACK_BYTES / f.len();
    assert_eq!(fits, 64);
    let vif = bad_vif(&mut s);
    assert_eq!(vif.pending_to_stack(), fits);
    assert_eq!(vif.stats().tx_dropped, 80 - fits as u64);
    assert!(!s.w.nb.has_pending_work(), "the backend would spin");
    s.assert_not_disabled();
}
