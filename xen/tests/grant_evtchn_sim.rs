//! Simulated grant tables and event channels, used through the same traits as the devices.

use std::os::fd::AsFd;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use xen::sim::{SimXen, SIM_GRANT_ENTRIES};
use xen::{
    CopySegment, Error, EventChannel, GrantMapping, GrantStatus, GrantTable, GuestBuf, Port,
    UnmapNotify, COPY_BATCH_MAX, PAGE_SIZE,
};

fn readable(fd: impl AsFd, ms: u16) -> bool {
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::from(ms)).unwrap() == 1
}

fn pending<E: EventChannel>(e: &mut E) -> Vec<Port> {
    let mut v = Vec::new();
    e.pending(&mut v).unwrap();
    v
}

#[test]
fn grant_copy_both_ways_and_error_statuses() {
    let sim = SimXen::new().unwrap();
    let backend = sim.create_domain().unwrap();
    let guest = sim.create_domain().unwrap();
    let third = sim.create_domain().unwrap();
    let page = sim.alloc_page(guest).unwrap();
    page.write(100, b"from the guest").unwrap();
    let ro = sim.grant_access(guest, &page, backend, true).unwrap();
    let rw_page = sim.alloc_page(guest).unwrap();
    let rw = sim.grant_access(guest, &rw_page, backend, false).unwrap();
    let elsewhere = sim.grant_access(guest, &page, third, false).unwrap();
    let gt = sim.grant_table(backend).unwrap();

    let mut got = [0u8; 14];
    let mut spill = [0u8; 8];
    let mut unused = [0u8; 4];
    let mut bad = [0u8; 4];
    let mut nodom = [0u8; 4];
    let mut other = [0u8; 4];
    let buf = |gref, offset| GuestBuf {
        domid: guest,
        gref,
        offset,
    };
    let mut segs = vec![
        CopySegment::FromGuest {
            src: buf(ro, 100),
            dst: &mut got,
        },
        CopySegment::ToGuest {
            src: b"to the guest",
            dst: buf(rw, 0),
        },
        CopySegment::ToGuest {
            src: b"nope",
            dst: buf(ro, 0),
        },
        CopySegment::FromGuest {
            src: buf(ro, (PAGE_SIZE - 4) as u16),
            dst: &mut spill,
        },
        CopySegment::FromGuest {
            src: buf(ro + 100, 0),
            dst: &mut unused,
        },
        CopySegment::FromGuest {
            src: buf(SIM_GRANT_ENTRIES + 5, 0),
            dst: &mut bad,
        },
        CopySegment::FromGuest {
            src: GuestBuf {
                domid: 999,
                gref: ro,
                offset: 0,
            },
            dst: &mut nodom,
        },
        CopySegment::FromGuest {
            src: buf(elsewhere, 0),
            dst: &mut other,
        },
    ];
    let mut status = vec![GrantStatus::Eagain; 99];
    gt.copy(&mut segs, &mut status).unwrap();
    drop(segs);
    use GrantStatus::*;
    assert_eq!(
        status,
        [
            Okay,
            Okay,
            GeneralError,
            BadCopyArg,
            GeneralError,
            BadGntref,
            BadDomain,
            GeneralError
        ],
        "readonly write, unused entry and another domain's grant are Xen's general error"
    );
    assert_eq!(&got, b"from the guest");
    let mut back = [0u8; 12];
    rw_page.read(0, &mut back).unwrap();
    assert_eq!(&back, b"to the guest");
    let mut untouched = [0u8; 4];
    page.read(0, &mut untouched).unwrap();
    assert_eq!(untouched, [0; 4], "the read-only page was not written");
    assert_eq!(gt.copy_calls(), 1);
}

#[test]
fn copy_batches_larger_than_the_split_size() {
    let sim = SimXen::new().unwrap();
    let backend = sim.create_domain().unwrap();
    let guest = sim.create_domain().unwrap();
    let page = sim.alloc_page(guest).unwrap();
    let pattern: Vec<u8> = (0..PAGE_SIZE).map(|i| (i * 7 % 251) as u8).collect();
    page.write(0, &pattern).unwrap();
    let gref = sim.grant_access(guest, &page, backend, true).unwrap();
    let gt = sim.grant_table(backend).unwrap();

    let n = 3 * COPY_BATCH_MAX + 17;
    let mut bufs = vec![[0u8; 4]; n];
    let mut segs: Vec<CopySegment<'_>> = bufs
        .iter_mut()
        .enumerate()
        .map(|(i, dst)| CopySegment::FromGuest {
            src: GuestBuf {
                domid: guest,
                gref,
                offset: ((i * 4) % PAGE_SIZE) as u16,
            },
            dst,
        })
        .collect();
    let mut status = Vec::new();
    gt.copy(&mut segs, &mut status).unwrap();
    drop(segs);
    assert_eq!(status.len(), n);
    assert!(status.iter().all(|s| s.is_ok()));
    assert_eq!(gt.copy_calls(), 4);
    for (i, b) in bufs.iter().enumerate() {
        let off = (i * 4) % PAGE_SIZE;
        assert_eq!(&b[..], &pattern[off..off + 4], "segment {i}");
    }
    // Empty input: no batch at all.
    gt.copy(&mut [], &mut status).unwrap();
    assert!(status.is_empty());
    assert_eq!(gt.copy_calls(), 4);
}

#[test]
fn map_write_through_mapping_is_visible_to_the_guest() {
    let sim = SimXen::new().unwrap();
    let backend = sim.create_domain().unwrap();
    let guest = sim.create_domain().unwrap();
    let pages: Vec<_> = (0..3).map(|_| sim.alloc_page(guest).unwrap()).collect();
    let refs: Vec<_> = pages
        .iter()
        .map(|p| sim.grant_access(guest, p, backend, false).unwrap())
        .collect();
    pages[1].write(0, b"guest wrote").unwrap();
    let gt = sim.grant_table(backend).unwrap();
    let m = gt.map(guest, &refs, true).unwrap();
    assert_eq!(m.len(), 3 * PAGE_SIZE);
    // SAFETY: the mapping is 3 pages long and alive for the whole block.
    unsafe {
        let base = m.as_ptr();
        assert_eq!(
            std::slice::from_raw_parts(base.add(PAGE_SIZE), 11),
            b"guest wrote"
        );
        std::ptr::copy_nonoverlapping(b"backend".as_ptr(), base.add(2 * PAGE_SIZE + 5), 7);
        *base = 0xAB;
    }
    let mut seen = [0u8; 7];
    pages[2].read(5, &mut seen).unwrap();
    assert_eq!(&seen, b"backend");
    let mut first = [0u8; 1];
    pages[0].read(0, &mut first).unwrap();
    assert_eq!(first, [0xAB]);

    // Revoking while mapped fails like gnttab_end_foreign_access; after unmap it works.
    assert!(matches!(
        sim.end_access(guest, refs[0]),
        Err(Error::Busy(_))
    ));
    drop(m);
    sim.end_access(guest, refs[0]).unwrap();
    assert!(matches!(
        gt.map(guest, &refs, true),
        Err(Error::Grant(GrantStatus::GeneralError))
    ));
    let mut one = [0u8; 1];
    let mut segs = [CopySegment::FromGuest {
        src: GuestBuf {
            domid: guest,
            gref: refs[0],
            offset: 0,
        },
        dst: &mut one,
    }];
    let mut status = Vec::new();
    gt.copy(&mut segs, &mut status).unwrap();
    assert_eq!(
        status,
        [GrantStatus::GeneralError],
        "a revoked grant can no longer be copied"
    );
}

#[test]
fn readonly_grants_map_only_readonly() {
    let sim = SimXen::new().unwrap();
    let backend = sim.create_domain().unwrap();
    let guest = sim.create_domain().unwrap();
    let page = sim.alloc_page(guest).unwrap();
    page.write(0, b"ro").unwrap();
    let gref = sim.grant_access(guest, &page, backend, true).unwrap();
    let gt = sim.grant_table(backend).unwrap();
    assert!(matches!(
        gt.map(guest, &[gref], true),
        Err(Error::Grant(GrantStatus::GeneralError))
    ));
    let m = gt.map(guest, &[gref], false).unwrap();
    // SAFETY: one readable page, alive for the block.
    assert_eq!(unsafe { std::slice::from_raw_parts(m.as_ptr(), 2) }, b"ro");
    assert!(m
        .set_unmap_notify(UnmapNotify {
            clear_byte: Some(0),
            send_event: None
        })
        .is_err());
    // Another domain cannot map a grant meant for the backend.
    let intruder = sim.create_domain().unwrap();
    let other = sim.grant_table(intruder).unwrap();
    assert!(matches!(
        other.map(guest, &[gref], false),
        Err(Error::Grant(GrantStatus::GeneralError))
    ));
    assert!(matches!(
        gt.map(guest, &[], false),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn event_channel_notify_poll_pending_unmask() {
    let sim = SimXen::new().unwrap();
    let backend = sim.create_domain().unwrap();
    let guest = sim.create_domain().unwrap();
    let mut fe = sim.event_channel(guest).unwrap();
    let mut be = sim.event_channel(backend).unwrap();
    let gport = fe.alloc_unbound(backend).unwrap();
    assert!(
        be.bind_interdomain(guest, gport + 1).is_err(),
        "only the allocated port binds"
    );
    let bport = be.bind_interdomain(guest, gport).unwrap();
    assert!(
        be.bind_interdomain(guest, gport).is_err(),
        "a port binds once"
    );

    // Like Xen, the fresh port starts pending.
    assert!(readable(&be, 5000));
    assert_eq!(pending(&mut be), [bport]);
    assert!(!readable(&be, 0), "drained: no longer readable");
    be.unmask(bport).unwrap();

    fe.notify(gport).unwrap();
    assert!(readable(&be, 5000), "notify makes the backend fd readable");
    assert_eq!(pending(&mut be), [bport]);
    // Masked until unmasked: a second event is held, then delivered on unmask, once.
    fe.notify(gport).unwrap();
    fe.notify(gport).unwrap();
    assert!(!readable(&be, 0));
    assert!(pending(&mut be).is_empty());
    be.unmask(bport).unwrap();
    assert!(readable(&be, 5000));
    assert_eq!(pending(&mut be), [bport]);
    be.unmask(bport).unwrap();
    assert!(pending(&mut be).is_empty());

    // And the other direction.
    be.notify(bport).unwrap();
    assert!(readable(&fe, 5000));
    assert_eq!(pending(&mut fe), [gport]);

    // Ports belong to their handle; after unbind they are gone.
    assert!(fe.notify(bport + 100).is_err());
    be.unbind(bport).unwrap();
    assert!(be.notify(bport).is_err());
    assert!(be.unmask(bport).is_err());
    fe.notify(gport).unwrap(); // the guest's port is unbound again: the event goes nowhere
    assert!(!readable(&be, 0));
    let again = be.bind_interdomain(guest, gport).unwrap();
    assert_eq!(pending(&mut be), [again]);
}

#[test]
fn unmap_notify_clears_byte_and_sends_event() {
    let sim = SimXen::new().unwrap();
    let backend = sim.create_domain().unwrap();
    let guest = sim.create_domain().unwrap();
    let page = sim.alloc_page(guest).unwrap();
    page.write(10, &[0xFF]).unwrap();
    let gref = sim.grant_access(guest, &page, backend, false).unwrap();
    let mut fe = sim.event_channel(guest).unwrap();
    let mut be = sim.event_channel(backend).unwrap();
    let gport = fe.alloc_unbound(backend).unwrap();
    let bport = be.bind_interdomain(guest, gport).unwrap();
    let gt = sim.grant_table(backend).unwrap();
    let m = gt.map(guest, &[gref], true).unwrap();
    m.set_unmap_notify(UnmapNotify {
        clear_byte: Some(10),
        send_event: Some(bport),
    })
    .unwrap();
    assert!(m
        .set_unmap_notify(UnmapNotify {
            clear_byte: Some(PAGE_SIZE),
            send_event: None
        })
        .is_err());
    assert!(pending(&mut fe).is_empty());
    drop(m);
    let mut b = [1u8];
    page.read(10, &mut b).unwrap();
    assert_eq!(b, [0], "byte cleared on unmap");
    assert!(readable(&fe, 5000));
    assert_eq!(pending(&mut fe), [gport]);
}

#[test]
fn destroying_a_domain_releases_everything() {
    use std::time::Duration;
    use xen::xenstore::WatchEvent;
    let sim = SimXen::new().unwrap();
    let backend = sim.create_domain().unwrap();
    let guest = sim.create_domain().unwrap();
    let page = sim.alloc_page(guest).unwrap();
    page.write(0, b"alive").unwrap();
    let gref = sim.grant_access(guest, &page, backend, false).unwrap();
    let gt = sim.grant_table(backend).unwrap();
    let mapping = gt.map(guest, &[gref], true).unwrap();
    let mut fe = sim.event_channel(guest).unwrap();
    let mut be = sim.event_channel(backend).unwrap();
    let gport = fe.alloc_unbound(backend).unwrap();
    let bport = be.bind_interdomain(guest, gport).unwrap();
    assert_eq!(pending(&mut be), [bport]);
    be.unmask(bport).unwrap();

    let dom0 = sim.connect_xenstore(0).unwrap();
    let home = format!("/local/domain/{guest}");
    dom0.watch(&home, "home").unwrap();
    dom0.watch("@releaseDomain", "rel").unwrap();
    let guest_xs = sim.connect_xenstore(guest).unwrap();
    let wait = Duration::from_secs(5);
    let mut initial = [
        dom0.wait_watch_event(wait).unwrap().unwrap(),
        dom0.wait_watch_event(wait).unwrap().unwrap(),
    ];
    initial.sort_by(|a, b| a.token.cmp(&b.token));
    assert_eq!(initial[0].token, "home");

    sim.destroy_domain(guest).unwrap();
    assert!(!sim.domains().contains(&guest));
    let ev = |path: &str, token: &str| WatchEvent {
        path: path.into(),
        token: token.into(),
    };
    assert_eq!(
        dom0.wait_watch_event(wait).unwrap(),
        Some(ev(&home, "home"))
    );
    assert_eq!(
        dom0.wait_watch_event(wait).unwrap(),
        Some(ev("@releaseDomain", "rel"))
    );
    assert!(dom0.read(&home).unwrap_err().is_enoent());
    assert!(
        guest_xs.read("domid").is_err(),
        "the dead domain's connection is closed"
    );
    assert!(sim.connect_xenstore(guest).is_err());

    // Grants: no new access, but the existing mapping stays valid until unmapped.
    let mut buf = [0u8; 5];
    let mut segs = [CopySegment::FromGuest {
        src: GuestBuf {
            domid: guest,
            gref,
            offset: 0,
        },
        dst: &mut buf,
    }];
    let mut status = Vec::new();
    gt.copy(&mut segs, &mut status).unwrap();
    assert_eq!(status, [GrantStatus::BadDomain]);
    assert!(matches!(
        gt.map(guest, &[gref], false),
        Err(Error::Grant(GrantStatus::BadDomain))
    ));
    // SAFETY: the one-page mapping is alive and at least 5 bytes long.
    let alive = unsafe { std::slice::from_raw_parts(mapping.as_ptr(), 5) };
    assert_eq!(alive, b"alive");
    drop(mapping);

    // Event channels: the backend's port is unbound now; events go nowhere; rebinding fails.
    be.notify(bport).unwrap();
    assert!(pending(&mut fe).is_empty());
    assert!(be.bind_interdomain(guest, gport).is_err());
    assert!(sim.destroy_domain(guest).is_err());
    assert!(sim.destroy_domain(0).is_err());
}
