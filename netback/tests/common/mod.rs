//! A simulated host for netback's integration tests: dom0 (toolstack), the NV driver domain
//! running [`Netback`], and guests running the Linux-like test netfront.
#![allow(dead_code)] // each test binary uses a different part of this helper

pub mod hostile;

use std::time::{Duration, Instant};

use netback::testfront::{toolstack_add_vif, FrontOptions, TestFront};
use netback::Netback;
use xen::sim::{SimEventChannel, SimGrantTable, SimXen};
use xen::xenstore::Xenstore;
use xen::DomId;

/// The backend type in the simulator.
pub type SimNetback = Netback<SimGrantTable, SimEventChannel>;

/// A simulated host with a driver domain running netback.
pub struct World {
    pub sim: SimXen,
    pub dom0: Xenstore,
    pub nv: DomId,
    pub nb: SimNetback,
    pub now: Instant,
}

impl World {
    pub fn new() -> World {
        let sim = SimXen::new().expect("sim");
        let dom0 = sim.connect_xenstore(0).expect("dom0 xenstore");
        let nv = sim.create_domain().expect("nv domain");
        let nb = Netback::new(
            sim.connect_xenstore(nv).expect("nv xenstore"),
            sim.grant_table(nv).expect("gnt"),
            sim.event_channel(nv).expect("evtchn"),
            nv,
        )
        .expect("netback");
        World {
            sim,
            dom0,
            nv,
            nb,
            now: Instant::now(),
        }
    }

    /// Creates a guest and its vif 0 in xenstore (no frontend yet).
    pub fn add_guest_raw(&mut self, mtu: usize, hotplug: bool) -> DomId {
        let g = self.sim.create_domain().expect("guest");
        toolstack_add_vif(
            &self.dom0,
            self.nv,
            g,
            0,
            [0x00, 0x16, 0x3e, 0, 0, g as u8],
            mtu,
            hotplug,
        )
        .expect("toolstack");
        g
    }

    /// Creates a guest with vif 0 and its test netfront.
    pub fn add_guest(&mut self, mtu: usize, opts: FrontOptions) -> (DomId, TestFront) {
        let g = self.add_guest_raw(mtu, false);
        let f = TestFront::new(&self.sim, g, 0, opts).expect("front");
        (g, f)
    }

    /// One round of the NV main loop and of every frontend.
    pub fn pump(&mut self, fronts: &mut [&mut TestFront]) {
        self.nb
            .handle_xenstore_events(self.now)
            .expect("xenstore events");
        self.nb.handle_evtchn(self.now).expect("evtchn");
        self.nb.flush(self.now).expect("flush");
        for f in fronts.iter_mut() {
            f.poll(&self.sim).expect("front poll");
        }
    }

    /// Pumps until `cond` holds; false if it did not within 5 s (xenstore watch events arrive
    /// from another thread, so a few rounds may pass before the next step happens).
    pub fn pump_until(
        &mut self,
        fronts: &mut [&mut TestFront],
        mut cond: impl FnMut(&mut World, &mut [&mut TestFront]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            self.pump(fronts);
            if cond(self, fronts) {
                return true;
            }
            std::thread::yield_now();
        }
        false
    }

    /// The backend `state` of guest `g`'s vif 0.
    pub fn backend_state(&self, g: DomId) -> String {
        self.dom0
            .read_string(&format!(
                "/local/domain/{}/backend/vif/{g}/0/state",
                self.nv
            ))
            .unwrap_or_default()
    }
}
