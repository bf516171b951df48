//! The defects a hostile-frontend audit found (issue 16), each exercised over the simulated Xen:
//! an RX stall that never ended, a backend that never slept, one vif's teardown error stopping
//! the others, a frontend closing during InitWait. The rows of the table of defences in
//! `netback/README.md` name the test of each.

mod common;

use std::time::Duration;

use common::hostile::{frame, setup, Setup};
use netback::testfront::{FrontOptions, TestFront};
use netback::vif::TO_STACK_MAX;
use xen::xenstore::{Access, Perm};

/// The hostile guest stops polling: its 256 RX buffers fill, frames keep arriving and expire,
/// and after a minute without progress its RX queue is stalled (frames dropped on arrival).
fn stall_rx(s: &mut Setup) {
    let name = format!("vif{}.0", s.bad);
    for i in 0..1000 {
        s.w.nb
            .vif_mut(&name)
            .unwrap()
            .send_frame(frame(1514, i as u8));
        if i % 64 == 0 {
            s.w.nb.flush(s.w.now).unwrap();
        }
    }
    s.w.nb.flush(s.w.now).unwrap();
    s.w.now += Duration::from_secs(11);
    s.w.nb.flush(s.w.now).unwrap();
    for _ in 0..14 {
        s.w.now += Duration::from_secs(5);
        s.w.nb.vif_mut(&name).unwrap().send_frame(frame(100, 0));
        s.w.nb.flush(s.w.now).unwrap();
    }
    assert!(
        !s.w.nb.vif_mut(&name).unwrap().send_frame(frame(100, 0)),
        "the queue is stalled"
    );
}

/// Pumps until a frame sent to the hostile vif reaches its guest; false if it never does.
fn bad_guest_receives_again(s: &mut Setup) -> bool {
    let name = format!("vif{}.0", s.bad);
    let want = frame(200, 0x77);
    let mut sent = false;
    s.w.pump_until(&mut [&mut s.gf, &mut s.bf], |w, fs| {
        if !sent {
            sent = w.nb.vif_mut(&name).unwrap().send_frame(want.clone());
        }
        while let Some(f) = fs[1].recv() {
            if f == want {
                return true;
            }
        }
        false
    })
}

/// Defect 1 (Linux `xenvif_rx_queue_ready`): a stalled RX queue ends as soon as the guest posts
/// buffers again (a paused guest resumes, a Linux guest brings its interface up).
#[test]
fn rx_stall_ends_when_the_guest_posts_buffers_again() {
    let mut s = setup();
    stall_rx(&mut s);
    assert!(
        bad_guest_receives_again(&mut s),
        "the vif never received again after its guest posted buffers"
    );
    s.assert_not_disabled();
}

/// Defect 1: a stall does not survive the frontend reconnecting (the RX queue starts afresh).
#[test]
fn rx_stall_does_not_survive_a_reconnect() {
    let mut s = setup();
    stall_rx(&mut s);
    s.bf.close().unwrap();
    let bad = s.bad;
    assert!(s
        .w
        .pump_until(&mut [&mut s.gf, &mut s.bf], |w, _| w.backend_state(bad)
            == "6"));
    s.bf = TestFront::new(&s.w.sim, bad, 0, FrontOptions::default()).unwrap();
    assert!(s
        .w
        .pump_until(&mut [&mut s.gf, &mut s.bf], |_, fs| fs[1].is_up()));
    assert!(
        bad_guest_receives_again(&mut s),
        "the reconnected vif never received"
    );
}

/// Defect 2: a vif whose frames nobody takes (a guest attached to the NV domain but not in its
/// config) has frames beyond [`TO_STACK_MAX`] dropped and counted, as Linux's stack drops them;
/// every request is answered and the backend has no pending work (it can sleep).
#[test]
fn undrained_vif_drops_to_a_full_stack_queue_and_lets_the_backend_sleep() {
    let mut s = setup();
    let n = TO_STACK_MAX + 200;
    for i in 0..n {
        let f = frame(60, i as u8);
        assert!(
            s.w.pump_until(&mut [&mut s.gf, &mut s.bf], |_, fs| fs[1].send(&f).unwrap()),
            "frame {i} was never taken from the guest's ring"
        );
    }
    assert!(s
        .w
        .pump_until(&mut [&mut s.gf, &mut s.bf], |_, fs| fs[1].tx_in_flight()
            == 0));
    for _ in 0..3 {
        s.pump();
    }
    assert!(!s.w.nb.has_pending_work(), "the backend would spin");
    assert_eq!(s.bf.stats.tx_ok, n as u64, "every frame answered OKAY");
    let vif = s.w.nb.vif_by_handle(s.bad, 0).unwrap();
    assert_eq!(vif.pending_to_stack(), TO_STACK_MAX);
    assert_eq!(vif.stats().tx_dropped, 200);
    s.assert_not_disabled();
    s.assert_good_vif_works();
}

/// Defect 6: one vif's teardown failing (here dom0 made its backend `state` read-only for us)
/// does not stop the other vifs of the same event round from being served.
#[test]
fn one_vifs_teardown_error_does_not_stop_the_others() {
    let mut s = setup();
    let state = format!("/local/domain/{}/backend/vif/{}/0/state", s.w.nv, s.bad);
    s.w.dom0
        .set_perms(
            &state,
            &[Perm::new(0, Access::None), Perm::new(s.w.nv, Access::Read)],
        )
        .unwrap();
    // In one round: a fatal violation on the hostile vif (rule 2), then a frame from the good one.
    let r = s.bf.rings.as_mut().unwrap();
    let prod = r.tx.req_prod_pvt();
    r.tx.set_shared_req_prod(prod.wrapping_add(300));
    s.bf.notify().unwrap();
    assert!(s.gf.send(&frame(300, 1)).unwrap());
    let r = s.w.nb.handle_evtchn(s.w.now);
    assert!(r.is_ok(), "{r:?}");
    let bad = s.w.nb.vif_by_handle(s.bad, 0).unwrap();
    assert!(bad.disabled().is_some() && !bad.is_connected());
    let good = format!("vif{}.0", s.good);
    assert_eq!(
        s.w.nb.vif_mut(&good).unwrap().recv_frame(),
        Some(frame(300, 1)),
        "the good vif was served in the same round"
    );
}

/// Defect 4: a frontend that goes Closing while the backend waits in InitWait (Linux netfront
/// giving up before connecting) is followed to Closing and Closed, and can start again.
#[test]
fn frontend_closing_during_initwait_is_followed() {
    let mut s = setup();
    let g = s.w.add_guest_raw(1500, false);
    assert!(s.w.pump_until(&mut [], |w, _| w.backend_state(g) == "2"));
    let xs = s.w.sim.connect_xenstore(g).unwrap();
    let fe_state = format!("/local/domain/{g}/device/vif/0/state");
    xs.write(&fe_state, "5").unwrap();
    assert!(
        s.w.pump_until(&mut [], |w, _| w.backend_state(g) == "5"),
        "backend stayed in {}",
        s.w.backend_state(g)
    );
    xs.write(&fe_state, "6").unwrap();
    assert!(s.w.pump_until(&mut [], |w, _| w.backend_state(g) == "6"));
    xs.write(&fe_state, "1").unwrap();
    assert!(s.w.pump_until(&mut [], |w, _| w.backend_state(g) == "2"));
}
