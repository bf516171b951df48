//! Compile-time checks of what other crates rely on: thread safety of the handles and the
//! trait implementations of the real devices and the simulator.

use std::os::fd::{AsFd, AsRawFd};
use xen::evtchn::Evtchn;
use xen::gntdev::{Gntdev, GntdevMapping};
use xen::sim::{GuestPage, SimEventChannel, SimGrantTable, SimMapping, SimXen};
use xen::xenstore::Xenstore;

use xen::{EventChannel, GrantTable};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>() {}
fn grant_table<G: GrantTable>() {}
fn event_channel<E: EventChannel>() {}

#[test]
fn handles_are_thread_safe_and_implement_the_traits() {
    send_sync::<Xenstore>();
    send_sync::<SimXen>();
    send_sync::<SimGrantTable>();
    send_sync::<SimMapping>();
    send_sync::<Gntdev>();
    send_sync::<GntdevMapping>();
    send_sync::<GuestPage>();
    send::<SimEventChannel>();
    send::<Evtchn>();
    grant_table::<Gntdev>();
    grant_table::<SimGrantTable>();
    event_channel::<Evtchn>();
    event_channel::<SimEventChannel>();
    // The trait objects other crates may store.
    let sim = SimXen::new().unwrap();
    let mut ec: Box<dyn EventChannel + Send> = Box::new(sim.event_channel(0).unwrap());
    let mut out = Vec::new();
    ec.pending(&mut out).unwrap();
    assert!(out.is_empty());
    assert!(ec.as_fd().as_raw_fd() >= 0);
}
