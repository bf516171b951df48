//! Handshake and datapath against the Linux-like test netfront over the simulated Xen.

mod common;

use common::World;
use netback::handshake::Phase;
use netback::testfront::{FrontOptions, TestFront};
use netback::wire::ETH_HLEN;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    // Not IPv4/IPv6, so no checksum handling applies.
    f[12] = 0x88;
    f[13] = 0xb5;
    f
}

#[test]
fn linux_style_netfront_connects_with_features_in_xenstore() {
    let mut w = World::new();
    let (g, mut f) = w.add_guest(1500, FrontOptions::default());
    assert!(
        w.pump_until(&mut [&mut f], |_, fs| fs[0].is_up()),
        "frontend never saw Connected"
    );
    let be = format!("/local/domain/{}/backend/vif/{g}/0", w.nv);
    for (k, v) in [
        ("feature-rx-copy", "1"),
        ("feature-rx-flip", "0"),
        ("feature-sg", "1"),
        ("feature-gso-tcpv4", "1"),
        ("feature-gso-tcpv6", "1"),
        ("state", "4"),
    ] {
        assert_eq!(w.dom0.read_string(&format!("{be}/{k}")).unwrap(), v, "{k}");
    }
    let vif = w.nb.vif_mut(&format!("vif{g}.0")).expect("vif exists");
    assert!(vif.is_connected());
    assert_eq!(vif.phase(), Phase::Connected);
}

#[test]
fn connected_is_held_until_hotplug_status_is_connected() {
    let mut w = World::new();
    let g = w.add_guest_raw(1500, true);
    let mut f = TestFront::new(&w.sim, g, 0, FrontOptions::default()).unwrap();
    assert!(w.pump_until(&mut [&mut f], |w, _| w
        .nb
        .vif_by_handle(g, 0)
        .is_some_and(|v| v.is_connected())));
    for _ in 0..50 {
        w.pump(&mut [&mut f]);
    }
    assert_eq!(
        w.backend_state(g),
        "2",
        "Connected must wait for the hotplug script"
    );
    assert!(!f.is_up());
    w.dom0
        .write(
            &format!("/local/domain/{}/backend/vif/{g}/0/hotplug-status", w.nv),
            "connected",
        )
        .unwrap();
    assert!(w.pump_until(&mut [&mut f], |_, fs| fs[0].is_up()));
    assert_eq!(w.backend_state(g), "4");
}

#[test]
fn hotplug_agent_sets_hotplug_status_itself() {
    let mut w = World::new();
    w.nb.set_hotplug_agent(true);
    let g = w.add_guest_raw(1500, true);
    let mut f = TestFront::new(&w.sim, g, 0, FrontOptions::default()).unwrap();
    assert!(w.pump_until(&mut [&mut f], |_, fs| fs[0].is_up()));
    assert_eq!(w.backend_state(g), "4");
    let status = w
        .dom0
        .read_string(&format!(
            "/local/domain/{}/backend/vif/{g}/0/hotplug-status",
            w.nv
        ))
        .unwrap();
    assert_eq!(status, "connected");
}

#[test]
fn frames_of_all_sizes_flow_both_ways() {
    let mut w = World::new();
    // The largest MTU, so that a 65535-byte frame is within it (frames over the MTU are dropped).
    let (g, mut f) = w.add_guest(65535 - ETH_HLEN, FrontOptions::default());
    assert!(w.pump_until(&mut [&mut f], |_, fs| fs[0].is_up()));
    let name = format!("vif{g}.0");
    for (i, len) in [60usize, 1514, 4096, 4097, 9014, 65535]
        .into_iter()
        .enumerate()
    {
        // guest -> backend
        let frame = pattern(len, i as u8);
        assert!(f.send(&frame).unwrap());
        let mut got = None;
        assert!(w.pump_until(&mut [&mut f], |w, _| {
            got = w.nb.vif_mut(&name).unwrap().recv_frame();
            got.is_some()
        }));
        assert_eq!(got.unwrap(), frame, "tx len {len}");
        // backend -> guest
        let frame = pattern(len, 100 + i as u8);
        assert!(w.nb.vif_mut(&name).unwrap().send_frame(frame.clone()));
        let mut got = None;
        assert!(w.pump_until(&mut [&mut f], |_, fs| {
            got = fs[0].recv();
            got.is_some()
        }));
        assert_eq!(got.unwrap(), frame, "rx len {len}");
    }
    assert_eq!(f.stats.tx_errors, 0);
    assert_eq!(f.stats.rx_errors, 0);
    assert!(
        w.pump_until(&mut [&mut f], |_, fs| fs[0].tx_in_flight() == 0),
        "every tx slot answered"
    );
    let s = w.nb.vif_mut(&name).unwrap().stats();
    assert_eq!((s.tx_frames, s.rx_frames), (6, 6));
}

#[test]
fn frames_over_a_page_need_feature_sg() {
    let mut w = World::new();
    let (g, mut f) = w.add_guest(
        1500,
        FrontOptions {
            sg: false,
            ..Default::default()
        },
    );
    assert!(w.pump_until(&mut [&mut f], |_, fs| fs[0].is_up()));
    let vif = w.nb.vif_mut(&format!("vif{g}.0")).unwrap();
    assert!(
        !vif.send_frame(pattern(5000, 1)),
        "no SG: a frame over one page is refused"
    );
    assert!(vif.send_frame(pattern(1514, 1)));
}

#[test]
fn many_frames_are_batched_into_few_copy_calls_and_few_notifications() {
    let mut w = World::new();
    let (g, mut f) = w.add_guest(1500, FrontOptions::default());
    assert!(w.pump_until(&mut [&mut f], |_, fs| fs[0].is_up()));
    let name = format!("vif{g}.0");
    let before = w.nb.vif_mut(&name).unwrap().stats();
    let events_before = f.stats.events;
    for i in 0..128 {
        assert!(f.send(&pattern(1514, i as u8)).unwrap());
    }
    let mut n = 0;
    assert!(w.pump_until(&mut [&mut f], |w, _| {
        while w.nb.vif_mut(&name).unwrap().recv_frame().is_some() {
            n += 1;
        }
        n == 128
    }));
    assert!(w.pump_until(&mut [&mut f], |_, fs| fs[0].tx_in_flight() == 0));
    let s = w.nb.vif_mut(&name).unwrap().stats();
    let calls = s.copy_calls - before.copy_calls;
    let segs = s.copy_segments - before.copy_segments;
    assert_eq!(segs, 128);
    assert!(calls <= 4, "128 one-slot packets took {calls} copy calls");
    // rsp_event suppression: the frontend is notified per batch, not per response.
    let events = f.stats.events - events_before;
    assert!(events <= 4, "{events} events for 128 frames");
}

#[test]
fn teardown_and_reconnect_after_guest_reboot() {
    let mut w = World::new();
    let (g, mut f) = w.add_guest(1500, FrontOptions::default());
    assert!(w.pump_until(&mut [&mut f], |_, fs| fs[0].is_up()));
    f.close().unwrap();
    assert!(
        w.pump_until(&mut [&mut f], |w, _| w.backend_state(g) == "6"),
        "backend did not close"
    );
    assert!(!w.nb.vif_by_handle(g, 0).unwrap().is_connected());
    drop(f);
    // The rebooted guest's netfront probes again.
    let mut f = TestFront::new(&w.sim, g, 0, FrontOptions::default()).unwrap();
    assert!(
        w.pump_until(&mut [&mut f], |_, fs| fs[0].is_up()),
        "no reconnect"
    );
    assert!(f.send(&pattern(100, 9)).unwrap());
    let name = format!("vif{g}.0");
    assert!(w.pump_until(&mut [&mut f], |w, _| w
        .nb
        .vif_mut(&name)
        .unwrap()
        .recv_frame()
        .is_some()));
}

#[test]
fn online_zero_takes_the_vif_down_and_removes_it() {
    let mut w = World::new();
    let (g, mut f) = w.add_guest(1500, FrontOptions::default());
    assert!(w.pump_until(&mut [&mut f], |_, fs| fs[0].is_up()));
    w.dom0
        .write(
            &format!("/local/domain/{}/backend/vif/{g}/0/online", w.nv),
            "0",
        )
        .unwrap();
    assert!(
        w.pump_until(&mut [&mut f], |w, _| w.nb.vif_by_handle(g, 0).is_none()),
        "vif not removed"
    );
    assert_eq!(w.backend_state(g), "6");
    // The frontend learns the state from a xenstore watch event, which arrives a little later.
    assert!(
        w.pump_until(&mut [&mut f], |_, fs| fs[0].backend_state()
            == Some(netback::wire::XenbusState::Closed)),
        "the frontend did not see the backend Closed: {:?}",
        f.backend_state()
    );
}

#[test]
fn hotplug_agent_removes_an_offline_backend_directory() {
    let mut w = World::new();
    w.nb.set_hotplug_agent(true);
    let (g, mut f) = w.add_guest(1500, FrontOptions::default());
    assert!(w.pump_until(&mut [&mut f], |_, fs| fs[0].is_up()));
    let be = format!("/local/domain/{}/backend/vif/{g}/0", w.nv);
    w.dom0.write(&format!("{be}/online"), "0").unwrap();
    assert!(
        w.pump_until(&mut [&mut f], |w, _| w.nb.vif_by_handle(g, 0).is_none()),
        "vif not removed"
    );
    for _ in 0..50 {
        w.pump(&mut [&mut f]);
    }
    assert!(
        w.dom0.try_read(&be).unwrap().is_none(),
        "backend directory left behind"
    );
    assert!(
        w.nb.vif_by_handle(g, 0).is_none(),
        "removed vif found again"
    );
}

/// The driver domain's netback restarts (e.g. domain-nv is upgraded): the new instance finds the
/// connected frontends (which, like Linux netfront, ignore the backend's InitWait while they are
/// Connected), re-attaches their rings at the current indices and rebinds their event channels.
#[test]
fn restarted_backend_recovers_connected_frontends() {
    let mut w = World::new();
    let (g, mut f) = w.add_guest(1500, FrontOptions::default());
    assert!(w.pump_until(&mut [&mut f], |_, fs| fs[0].is_up()));
    let name = format!("vif{g}.0");
    assert!(f.send(&pattern(200, 1)).unwrap());
    assert!(w.pump_until(&mut [&mut f], |w, _| w
        .nb
        .vif_mut(&name)
        .unwrap()
        .recv_frame()
        .is_some()));
    w.nb = netback::Netback::new(
        w.sim.connect_xenstore(w.nv).unwrap(),
        w.sim.grant_table(w.nv).unwrap(),
        w.sim.event_channel(w.nv).unwrap(),
        w.nv,
    )
    .unwrap();
    assert!(
        w.pump_until(&mut [&mut f], |w, _| w
            .nb
            .vif_mut(&name)
            .is_some_and(|v| v.phase() == Phase::Connected)),
        "new backend did not reconnect"
    );
    assert!(f.send(&pattern(300, 2)).unwrap());
    let mut got = None;
    assert!(w.pump_until(&mut [&mut f], |w, _| {
        got = w.nb.vif_mut(&name).unwrap().recv_frame();
        got.is_some()
    }));
    assert_eq!(got.unwrap(), pattern(300, 2));
    assert!(w.nb.vif_mut(&name).unwrap().send_frame(pattern(400, 3)));
    let mut got = None;
    assert!(w.pump_until(&mut [&mut f], |_, fs| {
        got = fs[0].recv();
        got.is_some()
    }));
    assert_eq!(got.unwrap(), pattern(400, 3));
}

#[test]
fn toolstack_vifname_names_the_vif() {
    let mut w = World::new();
    let g = w.add_guest_raw(1500, false);
    w.dom0
        .write(
            &format!("/local/domain/{}/backend/vif/{g}/0/vifname", w.nv),
            "r1",
        )
        .unwrap();
    let mut f = TestFront::new(&w.sim, g, 0, FrontOptions::default()).unwrap();
    assert!(
        w.pump_until(&mut [&mut f], |_, fs| fs[0].is_up()),
        "never connected"
    );
    assert!(w.nb.vif_mut("r1").is_some_and(|v| v.is_connected()));
    assert!(w.nb.vif_mut(&format!("vif{g}.0")).is_none());
}

/// Issue 15, item 3: one round of `handle_evtchn` serves every notified vif, guest TX and RX,
/// with one grant-copy call (not two per vif), and notifies each guest at most once.
#[test]
fn one_grant_copy_call_serves_every_vif_both_ways() {
    use xen::GrantTable;
    let mut w = World::new();
    let mut fronts: Vec<TestFront> = (0..4)
        .map(|_| w.add_guest(1500, FrontOptions::default()).1)
        .collect();
    let mut refs: Vec<&mut TestFront> = fronts.iter_mut().collect();
    assert!(w.pump_until(&mut refs, |_, fs| fs.iter().all(|f| f.is_up())));
    let names: Vec<String> = w.nb.vifs().map(|v| v.name().to_string()).collect();
    for (i, (f, name)) in fronts.iter_mut().zip(&names).enumerate() {
        assert!(f.send(&pattern(1000, i as u8)).unwrap());
        assert!(w
            .nb
            .vif_mut(name)
            .unwrap()
            .send_frame(pattern(1200, i as u8)));
    }
    let before: Vec<_> = w.nb.vifs().map(|v| v.stats()).collect();
    let calls = w.nb.grant_table().copy_calls();
    let rounds = w.nb.round_stats();
    w.nb.handle_evtchn(w.now).unwrap();
    assert_eq!(w.nb.grant_table().copy_calls(), calls + 1, "one copy call");
    let r = w.nb.round_stats();
    assert_eq!(
        (r.rounds, r.copy_calls, r.copy_segments),
        (
            rounds.rounds + 1,
            rounds.copy_calls + 1,
            rounds.copy_segments + 8
        )
    );
    for ((name, b), i) in names.iter().zip(&before).zip(0u8..) {
        let vif = w.nb.vif_mut(name).unwrap();
        assert_eq!(vif.recv_frame(), Some(pattern(1000, i)));
        let s = vif.stats();
        assert_eq!(
            (s.tx_frames, s.rx_frames),
            (b.tx_frames + 1, b.rx_frames + 1)
        );
        assert_eq!(
            s.copy_calls,
            b.copy_calls + 1,
            "{name} took part in one call"
        );
        assert_eq!(s.copy_segments, b.copy_segments + 2);
        assert!(s.notifies <= b.notifies + 1, "{name} notified at most once");
    }
}

/// Issue 15, item 3: a round notifies each guest once: TX answered in `handle_evtchn` and RX
/// filled in `flush` (each ring asking for an event) make one notification, sent by `flush`.
#[test]
fn a_round_notifies_each_guest_once() {
    let mut w = World::new();
    let (g, mut f) = w.add_guest(1500, FrontOptions::default());
    assert!(w.pump_until(&mut [&mut f], |_, fs| fs[0].is_up()));
    let name = format!("vif{g}.0");
    for _ in 0..5 {
        w.pump(&mut [&mut f]);
    }
    let before = w.nb.vif_mut(&name).unwrap().stats();
    assert!(f.send(&pattern(600, 1)).unwrap());
    w.nb.handle_evtchn(w.now).unwrap();
    assert_eq!(
        w.nb.vif_mut(&name).unwrap().recv_frame(),
        Some(pattern(600, 1))
    );
    assert!(w.nb.has_pending_work(), "a notification is due");
    assert!(w.nb.vif_mut(&name).unwrap().send_frame(pattern(700, 2)));
    w.nb.flush(w.now).unwrap();
    let s = w.nb.vif_mut(&name).unwrap().stats();
    assert_eq!(
        (s.tx_frames, s.rx_frames),
        (before.tx_frames + 1, before.rx_frames + 1)
    );
    assert_eq!(
        s.notifies,
        before.notifies + 1,
        "one notification for the round"
    );
    f.poll(&w.sim).unwrap();
    assert_eq!(f.recv(), Some(pattern(700, 2)));
    assert_eq!(f.tx_in_flight(), 0);
}
