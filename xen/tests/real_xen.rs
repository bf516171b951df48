//! Smoke tests against a real Xen dom0 (the QEMU lab). Ignored elsewhere:
//! `cargo test -p xen --release --test real_xen -- --ignored` inside dom0.

use std::os::fd::AsFd;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use xen::evtchn::Evtchn;
use xen::xenstore::{WatchEvent, Xenstore};
use xen::EventChannel;

fn readable(fd: impl AsFd, ms: u16) -> bool {
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::from(ms)).unwrap() == 1
}

#[test]
#[ignore = "needs a Xen dom0 (run with --ignored in the lab)"]
fn evtchn_loopback_in_dom0() {
    let mut a = Evtchn::open().unwrap();
    let mut b = Evtchn::open().unwrap();
    let aport = a.alloc_unbound(0).unwrap();
    let bport = b.bind_interdomain(0, aport).unwrap();
    // Xen leaves the new port pending; collect and re-enable it.
    assert!(readable(&b, 5000));
    let mut got = Vec::new();
    b.pending(&mut got).unwrap();
    assert_eq!(got, [bport]);
    b.unmask(bport).unwrap();
    a.notify(aport).unwrap();
    assert!(readable(&b, 5000));
    got.clear();
    b.pending(&mut got).unwrap();
    assert_eq!(got, [bport]);
    b.unbind(bport).unwrap();
}

#[test]
#[ignore = "needs a Xen dom0 (run with --ignored in the lab)"]
fn xenstore_in_dom0() {
    let xs = Xenstore::open().unwrap();
    let path = format!("/tool/xen-crate-test-{}", std::process::id());
    xs.watch(&path, "t").unwrap();
    let first = xs.wait_watch_event(Duration::from_secs(5)).unwrap();
    assert_eq!(
        first,
        Some(WatchEvent {
            path: path.clone(),
            token: "t".into()
        })
    );
    xs.write(&format!("{path}/k"), "v").unwrap();
    assert_eq!(xs.read(&format!("{path}/k")).unwrap(), b"v");
    let ev = xs
        .wait_watch_event(Duration::from_secs(5))
        .unwrap()
        .unwrap();
    assert_eq!(ev.path, format!("{path}/k"));
    xs.transaction(|tx| tx.write(&format!("{path}/t"), "1"))
        .unwrap();
    xs.rm(&path).unwrap();
    xs.unwatch(&path, "t").unwrap();
    assert!(xs.try_read(&path).unwrap().is_none());
}
