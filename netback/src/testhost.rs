//! The simulated host for tests and benchmarks: a [`SimHost`] whose driver domain runs
//! [`Netback`], and guests whose vif 0 it serves, each with a [`TestFront`].
//!
//! [`NetbackHost`] is the whole setup for netback's own tests; [`start_netback`] and
//! [`add_vif_guest`] are its parts, for a test that hands the backend to something else (the
//! domain-nv appliance). Failures of the setup panic, naming the step: these are test helpers.

use std::time::{Duration, Instant};

use xen::sim::{SimEventChannel, SimGrantTable, SimHost, SimXen};
use xen::xenstore::Xenstore;
use xen::DomId;

use crate::testfront::{toolstack_add_vif, FrontOptions, TestFront};
use crate::Netback;

/// The backend type in the simulator.
pub type SimNetback = Netback<SimGrantTable, SimEventChannel>;

/// Starts netback in the host's driver domain, with its own xenstore connection.
pub fn start_netback(host: &SimHost) -> xen::Result<SimNetback> {
    Netback::new(
        host.nv_xenstore()?,
        host.sim.grant_table(host.nv)?,
        host.sim.event_channel(host.nv)?,
        host.nv,
    )
}

/// Creates a guest and, as the toolstack, its vif 0 served by the driver domain (MAC
/// `00:16:3e:00:00:<guest id>`); no frontend yet. `hotplug` as in [`toolstack_add_vif`].
pub fn add_vif_guest(host: &SimHost, mtu: usize, hotplug: bool) -> xen::Result<DomId> {
    vif_guest(&host.sim, &host.dom0, host.nv, mtu, hotplug)
}

/// [`add_vif_guest`] on the parts of a host.
fn vif_guest(
    sim: &SimXen,
    dom0: &Xenstore,
    nv: DomId,
    mtu: usize,
    hotplug: bool,
) -> xen::Result<DomId> {
    let g = sim.create_domain()?;
    let mac = [0x00, 0x16, 0x3e, 0, 0, g as u8];
    toolstack_add_vif(dom0, nv, g, 0, mac, mtu, hotplug)?;
    Ok(g)
}

/// A simulated host with a driver domain running netback, driven by hand from one thread.
pub struct NetbackHost {
    /// The simulated Xen.
    pub sim: SimXen,
    /// Dom0's xenstore connection (the toolstack's).
    pub dom0: Xenstore,
    /// The driver domain.
    pub nv: DomId,
    /// Netback, serving the driver domain's vifs.
    pub nb: SimNetback,
    /// The time handed to netback (fixed at creation; tests move it by hand).
    pub now: Instant,
}

impl NetbackHost {
    /// Dom0, the driver domain and netback in it; no guests yet.
    pub fn new() -> NetbackHost {
        let host = SimHost::new().expect("sim host");
        let nb = start_netback(&host).expect("netback");
        let SimHost { sim, dom0, nv } = host;
        NetbackHost {
            sim,
            dom0,
            nv,
            nb,
            now: Instant::now(),
        }
    }

    /// Creates a guest and its vif 0 in xenstore (no frontend yet).
    pub fn add_guest_raw(&mut self, mtu: usize, hotplug: bool) -> DomId {
        vif_guest(&self.sim, &self.dom0, self.nv, mtu, hotplug).expect("guest and its vif")
    }

    /// Creates a guest with vif 0 and its test netfront.
    pub fn add_guest(&mut self, mtu: usize, opts: FrontOptions) -> (DomId, TestFront) {
        let g = self.add_guest_raw(mtu, false);
        let f = TestFront::new(&self.sim, g, 0, opts).expect("front");
        (g, f)
    }

    /// One round of the driver domain's main loop and of every frontend.
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
        mut cond: impl FnMut(&mut NetbackHost, &mut [&mut TestFront]) -> bool,
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

    /// The backend `state` of guest `g`'s vif 0 (empty if there is none).
    pub fn backend_state(&self, g: DomId) -> String {
        self.dom0
            .read_string(&format!(
                "/local/domain/{}/backend/vif/{g}/0/state",
                self.nv
            ))
            .unwrap_or_default()
    }
}

impl Default for NetbackHost {
    fn default() -> Self {
        NetbackHost::new()
    }
}
