//! The xenstore client against the simulated xenstored.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use xen::sim::SimXen;
use xen::xenstore::{Access, Perm, WatchEvent, Xenstore};
use xen::{Error, XsErrno};

const WAIT: Duration = Duration::from_secs(5);

fn ev(path: &str, token: &str) -> WatchEvent {
    WatchEvent {
        path: path.into(),
        token: token.into(),
    }
}

fn next(xs: &Xenstore) -> WatchEvent {
    xs.wait_watch_event(WAIT)
        .unwrap()
        .expect("a watch event within the bound")
}

fn readable(fd: impl AsFd, ms: u16) -> bool {
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::from(ms)).unwrap() == 1
}

#[test]
fn read_write_directory_rm() {
    let sim = SimXen::new().unwrap();
    let xs = sim.connect_xenstore(0).unwrap();
    xs.write("/test/a/b", "hello").unwrap();
    assert_eq!(xs.read("/test/a/b").unwrap(), b"hello");
    assert_eq!(xs.read_string("/test/a/b").unwrap(), "hello");
    assert_eq!(
        xs.read("/test/a").unwrap(),
        b"",
        "intermediate nodes are created empty"
    );
    xs.write("/test/a/c", [0u8, 1, 2]).unwrap();
    xs.mkdir("/test/a/d").unwrap();
    xs.mkdir("/test/a/d").unwrap();
    assert_eq!(xs.directory("/test/a").unwrap(), ["b", "c", "d"]);
    assert_eq!(xs.read("/test/a/c").unwrap(), [0, 1, 2]);
    let err = xs.read("/test/nope").unwrap_err();
    assert!(err.is_enoent(), "{err}");
    assert!(matches!(err, Error::Xenstore(XsErrno::Enoent)));
    assert_eq!(xs.try_read("/test/nope").unwrap(), None);
    assert_eq!(
        xs.try_read("/test/a/b").unwrap().as_deref(),
        Some(&b"hello"[..])
    );
    xs.rm("/test/a").unwrap();
    assert!(xs.read("/test/a/b").unwrap_err().is_enoent());
    assert_eq!(xs.directory("/test").unwrap(), Vec::<String>::new());
    xs.rm("/test/gone").unwrap(); // parent exists: fine, like xenstored
    assert!(xs.rm("/nothere/gone").unwrap_err().is_enoent());
    assert_eq!(
        xs.read("/test/a//b").unwrap_err().xenstore_errno(),
        Some(XsErrno::Einval)
    );
    assert_eq!(xs.get_domain_path(7).unwrap(), "/local/domain/7");
    assert_eq!(xs.read_string("/local/domain/0/name").unwrap(), "Domain-0");
}

#[test]
fn permissions_per_domain() {
    let sim = SimXen::new().unwrap();
    let guest = sim.create_domain().unwrap();
    let other = sim.create_domain().unwrap();
    let dom0 = sim.connect_xenstore(0).unwrap();
    let g = sim.connect_xenstore(guest).unwrap();
    let o = sim.connect_xenstore(other).unwrap();

    dom0.write("/secret", "s").unwrap();
    assert_eq!(
        dom0.get_perms("/secret").unwrap(),
        [Perm::new(0, Access::None)]
    );
    assert_eq!(
        g.read("/secret").unwrap_err().xenstore_errno(),
        Some(XsErrno::Eacces)
    );
    assert_eq!(
        g.write("/secret", "x").unwrap_err().xenstore_errno(),
        Some(XsErrno::Eacces)
    );
    assert_eq!(
        g.write("/secret/child", "x").unwrap_err().xenstore_errno(),
        Some(XsErrno::Eacces)
    );
    assert_eq!(
        g.directory("/").unwrap_err().xenstore_errno(),
        Some(XsErrno::Eacces)
    );

    dom0.set_perms(
        "/secret",
        &[Perm::new(0, Access::None), Perm::new(guest, Access::Read)],
    )
    .unwrap();
    assert_eq!(g.read("/secret").unwrap(), b"s");
    assert_eq!(
        g.write("/secret", "x").unwrap_err().xenstore_errno(),
        Some(XsErrno::Eacces)
    );
    assert_eq!(
        o.read("/secret").unwrap_err().xenstore_errno(),
        Some(XsErrno::Eacces)
    );
    assert_eq!(
        g.get_perms("/secret").unwrap()[1],
        "r1".parse::<Perm>().unwrap()
    );
    assert_eq!(
        g.set_perms("/secret", &[Perm::new(guest, Access::Both)])
            .unwrap_err()
            .xenstore_errno(),
        Some(XsErrno::Eacces),
        "only the owner or dom0 sets permissions"
    );

    // The guest's home: readable, not writable, except `data`; relative paths resolve there.
    let home = g.get_domain_path(guest).unwrap();
    assert_eq!(
        g.read_string(&format!("{home}/domid")).unwrap(),
        guest.to_string()
    );
    assert_eq!(g.read_string("domid").unwrap(), guest.to_string());
    assert_eq!(
        g.write("device/x", "1").unwrap_err().xenstore_errno(),
        Some(XsErrno::Eacces)
    );
    g.write("data/x", "1").unwrap();
    assert_eq!(dom0.read_string(&format!("{home}/data/x")).unwrap(), "1");
    assert_eq!(
        dom0.get_perms(&format!("{home}/data/x")).unwrap()[0].domid,
        guest,
        "creator owns"
    );
    assert_eq!(
        o.read(&format!("{home}/data/x"))
            .unwrap_err()
            .xenstore_errno(),
        Some(XsErrno::Eacces)
    );
}

#[test]
fn watch_fires_on_registration_and_on_changes_below() {
    let sim = SimXen::new().unwrap();
    let xs = sim.connect_xenstore(0).unwrap();
    let writer = sim.connect_xenstore(0).unwrap();
    xs.write("/w/sub/leaf", "0").unwrap();
    xs.watch("/w/sub", "t1").unwrap();
    xs.watch("/w/sub/leaf", "t2").unwrap();
    let mut first = vec![next(&xs), next(&xs)];
    first.sort_by(|a, b| a.token.cmp(&b.token));
    assert_eq!(first, [ev("/w/sub", "t1"), ev("/w/sub/leaf", "t2")]);
    assert_eq!(xs.try_next_watch_event().unwrap(), None);
    assert!(!readable(&xs, 0), "fd not readable with an empty queue");

    writer.write("/w/sub/leaf/deeper", "x").unwrap();
    let mut got = vec![next(&xs), next(&xs)];
    got.sort_by(|a, b| a.token.cmp(&b.token));
    assert_eq!(
        got,
        [
            ev("/w/sub/leaf/deeper", "t1"),
            ev("/w/sub/leaf/deeper", "t2")
        ]
    );

    writer.write("/w/other", "x").unwrap(); // a sibling: no event
    writer.write("/w/sub", "y").unwrap(); // the watched node itself: t1 only
    assert_eq!(next(&xs), ev("/w/sub", "t1"));

    // Removing the parent fires the watch below it with the watched path.
    writer.rm("/w").unwrap();
    let mut got = vec![next(&xs), next(&xs)];
    got.sort_by(|a, b| a.token.cmp(&b.token));
    assert_eq!(got, [ev("/w/sub", "t1"), ev("/w/sub/leaf", "t2")]);

    xs.unwatch("/w/sub", "t1").unwrap();
    assert_eq!(
        xs.unwatch("/w/sub", "t1").unwrap_err().xenstore_errno(),
        Some(XsErrno::Enoent)
    );
    writer.write("/w/sub/leaf", "z").unwrap();
    assert_eq!(next(&xs), ev("/w/sub/leaf", "t2"));
    assert_eq!(
        xs.wait_watch_event(Duration::from_millis(50)).unwrap(),
        None
    );
}

#[test]
fn watch_events_are_pollable_and_respect_permissions() {
    let sim = SimXen::new().unwrap();
    let guest = sim.create_domain().unwrap();
    let dom0 = sim.connect_xenstore(0).unwrap();
    let g = sim.connect_xenstore(guest).unwrap();
    g.watch("/hidden", "h").unwrap();
    assert_eq!(next(&g), ev("/hidden", "h"));
    g.watch("data", "rel").unwrap();
    assert_eq!(
        next(&g),
        ev("data", "rel"),
        "relative watch reported as given"
    );
    dom0.write("/hidden/x", "1").unwrap(); // dom0-only node: the guest sees nothing
    dom0.write(&format!("/local/domain/{guest}/data/k"), "v")
        .unwrap();
    assert!(readable(&g, 5000), "fd readable once an event is queued");
    assert_eq!(g.try_next_watch_event().unwrap(), Some(ev("data/k", "rel")));
    assert_eq!(g.try_next_watch_event().unwrap(), None);
    assert!(!readable(&g, 0));
}

#[test]
fn watch_events_during_a_request_are_queued() {
    let sim = SimXen::new().unwrap();
    let xs = sim.connect_xenstore(0).unwrap();
    let writer = sim.connect_xenstore(0).unwrap();
    xs.watch("/q", "tok").unwrap();
    assert_eq!(next(&xs), ev("/q", "tok"));
    for i in 0..20 {
        writer.write(&format!("/q/{i}"), "x").unwrap();
    }
    // xenstored queued the 20 events on our connection before answering this request, so
    // they came in while it was in flight; none may be lost.
    assert_eq!(xs.read("/q/19").unwrap(), b"x");
    for i in 0..20 {
        assert_eq!(
            xs.try_next_watch_event().unwrap(),
            Some(ev(&format!("/q/{i}"), "tok"))
        );
    }
    assert_eq!(xs.try_next_watch_event().unwrap(), None);
}

#[test]
fn transaction_conflict_gives_eagain_and_abort_discards() {
    let sim = SimXen::new().unwrap();
    let a = sim.connect_xenstore(0).unwrap();
    let b = sim.connect_xenstore(0).unwrap();
    a.write("/c", "0").unwrap();
    let tx = a.transaction_start().unwrap();
    assert_eq!(tx.read("/c").unwrap(), b"0");
    b.write("/c", "5").unwrap();
    tx.write("/c", "1").unwrap();
    assert_eq!(
        tx.read("/c").unwrap(),
        b"1",
        "a transaction sees its own writes"
    );
    assert_eq!(b.read("/c").unwrap(), b"5", "others do not");
    assert_eq!(
        tx.commit().unwrap_err().xenstore_errno(),
        Some(XsErrno::Eagain)
    );
    assert_eq!(a.read("/c").unwrap(), b"5");

    let tx = a.transaction_start().unwrap();
    tx.write("/c/new", "1").unwrap();
    tx.abort().unwrap();
    assert!(a.read("/c/new").unwrap_err().is_enoent());

    // Untouched nodes changing do not conflict.
    let tx = a.transaction_start().unwrap();
    tx.write("/c", "6").unwrap();
    b.write("/elsewhere", "x").unwrap();
    tx.commit().unwrap();
    assert_eq!(b.read("/c").unwrap(), b"6");
}

#[test]
fn concurrent_transactions_increment_exactly() {
    const N: u32 = 40;
    let sim = Arc::new(SimXen::new().unwrap());
    sim.connect_xenstore(0)
        .unwrap()
        .write("/counter", "0")
        .unwrap();
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let sim = sim.clone();
            std::thread::spawn(move || {
                let xs = sim.connect_xenstore(0).unwrap();
                let mut attempts = 0u32;
                for _ in 0..N {
                    xs.transaction(|tx| {
                        attempts += 1;
                        let v: u32 = tx.read_string("/counter")?.parse().unwrap();
                        tx.write("/counter", (v + 1).to_string())
                    })
                    .unwrap();
                }
                attempts
            })
        })
        .collect();
    let attempts: u32 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let xs = sim.connect_xenstore(0).unwrap();
    assert_eq!(xs.read_string("/counter").unwrap(), (2 * N).to_string());
    assert!(attempts >= 2 * N);
}

#[test]
fn transaction_closure_retries_on_conflict() {
    let sim = SimXen::new().unwrap();
    let a = sim.connect_xenstore(0).unwrap();
    let b = sim.connect_xenstore(0).unwrap();
    a.write("/r", "0").unwrap();
    let mut runs = 0;
    let out = a
        .transaction(|tx| {
            runs += 1;
            let v = tx.read_string("/r")?;
            if runs == 1 {
                b.write("/r", "10").unwrap(); // force a conflict on the first attempt
            }
            tx.write("/r", format!("{v}+"))?;
            Ok(v)
        })
        .unwrap();
    assert_eq!(runs, 2);
    assert_eq!(out, "10");
    assert_eq!(a.read_string("/r").unwrap(), "10+");
    // An error from the closure aborts and is returned as is.
    let err = a.transaction(|tx| tx.read("/missing")).unwrap_err();
    assert!(err.is_enoent());
}

#[test]
fn two_clients_at_once_from_many_threads() {
    let sim = Arc::new(SimXen::new().unwrap());
    let shared = Arc::new(sim.connect_xenstore(0).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (sim, shared) = (sim.clone(), shared.clone());
            std::thread::spawn(move || {
                let own = sim.connect_xenstore(0).unwrap();
                for i in 0..25 {
                    own.write(&format!("/many/{t}/{i}"), format!("{t}-{i}"))
                        .unwrap();
                    assert_eq!(
                        shared.read_string(&format!("/many/{t}/{i}")).unwrap(),
                        format!("{t}-{i}")
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(shared.directory("/many").unwrap().len(), 4);
    assert_eq!(shared.directory("/many/3").unwrap().len(), 25);
}

#[test]
fn special_watch_sees_new_domains() {
    let sim = SimXen::new().unwrap();
    let xs = sim.connect_xenstore(0).unwrap();
    xs.watch("@introduceDomain", "intro").unwrap();
    assert_eq!(next(&xs), ev("@introduceDomain", "intro"));
    let d = sim.create_domain().unwrap();
    assert_eq!(next(&xs), ev("@introduceDomain", "intro"));
    assert!(sim.domains().contains(&d));
    assert!(sim.connect_xenstore(999).is_err());
}
