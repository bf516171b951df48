//! GSO both ways over the simulated Xen: a smoltcp stack on the vif (as domain-nv runs) and one
//! on the Linux-like test netfront exchange 4 MiB each way over one TCP connection. With
//! `feature-gso-tcpv4` written by the frontend, segments of up to 64 KiB cross the rings whole
//! (one multi-slot packet with a GSO extra, partial checksum); without it, netback cuts the
//! stack's segments into MTU-sized frames and the guest only ever sees frames within its MTU.

mod common;

use std::time::{Duration, Instant};

use common::World;
use netback::testfront::{FrontOptions, FrontStats};
use netback::VifStats;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant as SInstant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address};

const EACH_WAY: usize = 4 << 20;
const MTU: usize = 1500;

/// One smoltcp stack with one TCP socket.
struct Stack {
    iface: Interface,
    sockets: SocketSet<'static>,
    tcp: SocketHandle,
    sent: usize,
    received: usize,
    h_sent: u64,
    h_recv: u64,
}

impl Stack {
    fn new(iface: Interface, ip: u8) -> Stack {
        let mut iface = iface;
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::v4(10, 0, 0, ip), 24))
                .unwrap()
        });
        let sock = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 256 * 1024]),
            tcp::SocketBuffer::new(vec![0; 256 * 1024]),
        );
        let mut sockets = SocketSet::new(vec![]);
        let tcp = sockets.add(sock);
        Stack {
            iface,
            sockets,
            tcp,
            sent: 0,
            received: 0,
            h_sent: FNV0,
            h_recv: FNV0,
        }
    }

    /// Sends what the socket takes and receives what it has.
    fn exchange(&mut self, data: &[u8]) {
        let s = self.sockets.get_mut::<tcp::Socket>(self.tcp);
        while self.sent < EACH_WAY && s.can_send() {
            let off = self.sent % data.len();
            let end = (off + (EACH_WAY - self.sent)).min(data.len());
            let n = s.send_slice(&data[off..end]).unwrap();
            if n == 0 {
                break;
            }
            self.h_sent = fnv(self.h_sent, &data[off..off + n]);
            self.sent += n;
        }
        while s.can_recv() {
            let mut h = self.h_recv;
            let n = s
                .recv(|buf| {
                    h = fnv(h, buf);
                    (buf.len(), buf.len())
                })
                .unwrap();
            self.h_recv = h;
            if n == 0 {
                break;
            }
            self.received += n;
        }
    }
}

const FNV0: u64 = 0xcbf29ce484222325;

fn fnv(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

fn now(start: Instant) -> SInstant {
    SInstant::from_micros(start.elapsed().as_micros() as i64)
}

/// Runs the exchange with a frontend that does (or does not) ask for GSO; returns the vif's and
/// the frontend's counters and the largest frame the guest received.
fn exchange(gso: bool) -> (VifStats, FrontStats, usize) {
    let start = Instant::now();
    let mut w = World::new();
    let opts = FrontOptions {
        csum_blank: true,
        gso,
        ..Default::default()
    };
    let (g, mut front) = w.add_guest(MTU, opts);
    assert!(w.pump_until(&mut [&mut front], |_, fs| fs[0].is_up()));
    let name = format!("vif{g}.0");
    let guest_iface = Interface::new(
        Config::new(HardwareAddress::Ethernet(EthernetAddress([
            2, 0, 0, 0, 0, 2,
        ]))),
        &mut front,
        now(start),
    );
    let vif = w.nb.vif_mut(&name).unwrap();
    let nv_iface = Interface::new(
        Config::new(HardwareAddress::Ethernet(EthernetAddress([
            2, 0, 0, 0, 0, 1,
        ]))),
        vif,
        now(start),
    );
    let mut guest = Stack::new(guest_iface, 2);
    let mut nv = Stack::new(nv_iface, 1);
    nv.sockets
        .get_mut::<tcp::Socket>(nv.tcp)
        .listen(5001)
        .unwrap();
    guest
        .sockets
        .get_mut::<tcp::Socket>(guest.tcp)
        .connect(
            guest.iface.context(),
            (Ipv4Address::new(10, 0, 0, 1), 5001),
            40000,
        )
        .unwrap();
    let data: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let deadline = start + Duration::from_secs(60);
    while guest.received < EACH_WAY || nv.received < EACH_WAY {
        assert!(
            Instant::now() < deadline,
            "stalled: guest got {} nv got {}",
            guest.received,
            nv.received
        );
        let t = now(start);
        guest.iface.poll(t, &mut front, &mut guest.sockets);
        guest.exchange(&data);
        guest.iface.poll(t, &mut front, &mut guest.sockets);
        w.nb.handle_evtchn(w.now).unwrap();
        let vif = w.nb.vif_mut(&name).unwrap();
        nv.iface.poll(t, vif, &mut nv.sockets);
        nv.exchange(&data);
        nv.iface.poll(t, vif, &mut nv.sockets);
        w.nb.flush(w.now).unwrap();
        front.poll(&w.sim).unwrap();
    }
    assert_eq!(guest.h_recv, nv.h_sent, "guest received what nv sent");
    assert_eq!(nv.h_recv, guest.h_sent, "nv received what the guest sent");
    let stats = w.nb.vif_mut(&name).unwrap().stats();
    eprintln!("gso {gso}: {}", netback::vif::StatsLine(&stats));
    (stats, front.stats, front.stats.rx_largest as usize)
}

#[test]
fn gso_segments_cross_whole_both_ways_when_negotiated() {
    let (vif, front, largest) = exchange(true);
    assert!(
        vif.tx_gso_frames > 0,
        "the guest sent no GSO frames: {vif:?}"
    );
    assert!(vif.rx_gso_frames > 0, "no GSO frames to the guest: {vif:?}");
    assert_eq!(front.rx_gso, vif.rx_gso_frames);
    assert!(largest > 14 + MTU, "largest frame to the guest {largest}");
    assert_eq!(vif.rx_segmented, 0);
    assert_eq!((vif.tx_errors, vif.rx_dropped, front.rx_errors), (0, 0, 0));
    // 4 MiB in 64 KiB segments: far fewer frames than MTU-sized ones.
    assert!(
        vif.rx_frames < (EACH_WAY / 1448) as u64 / 4,
        "{} frames to the guest",
        vif.rx_frames
    );
    assert!(vif.tx_frames < (EACH_WAY / 1448) as u64 / 4);
}

#[test]
fn without_gso_the_guest_gets_frames_within_its_mtu() {
    let (vif, front, largest) = exchange(false);
    assert_eq!(
        (vif.tx_gso_frames, vif.rx_gso_frames, front.rx_gso),
        (0, 0, 0)
    );
    assert!(vif.rx_segmented > 0, "the stack's segments were not cut");
    assert!(largest <= 14 + MTU, "a frame of {largest} bytes");
    assert!(front.rx_csum_blank > 0, "partial checksums within the MTU");
    assert_eq!((vif.tx_errors, vif.rx_dropped, front.rx_errors), (0, 0, 0));
}
