//! Two simulated guests with smoltcp on both ends exchange a 100 MB TCP stream through netback
//! (the driver domain bridges their vifs); the receiver's digest must match the sender's.

mod common;

use std::time::{Duration, Instant};

use common::World;
use netback::testfront::{FrontOptions, TestFront};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant as SInstant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address};

const TOTAL: usize = 100 * 1000 * 1000;
const MTU: usize = 9000;

struct Guest {
    front: TestFront,
    iface: Interface,
    sockets: SocketSet<'static>,
    tcp: SocketHandle,
}

fn guest(w: &mut World, ip: u8, opts: FrontOptions, start: Instant) -> Guest {
    let (_, mut front) = w.add_guest(MTU, opts);
    let mac = EthernetAddress([0x02, 0, 0, 0, 0, ip]);
    let mut iface = Interface::new(
        Config::new(HardwareAddress::Ethernet(mac)),
        &mut front,
        now(start),
    );
    iface.update_ip_addrs(|a| {
        a.push(IpCidr::new(IpAddress::v4(10, 0, 0, ip), 24))
            .unwrap()
    });
    let mut sock = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 256 * 1024]),
        tcp::SocketBuffer::new(vec![0; 256 * 1024]),
    );
    sock.set_ack_delay(None);
    let mut sockets = SocketSet::new(vec![]);
    let tcp = sockets.add(sock);
    Guest {
        front,
        iface,
        sockets,
        tcp,
    }
}

fn now(start: Instant) -> SInstant {
    SInstant::from_micros(start.elapsed().as_micros() as i64)
}

/// FNV-1a, 64 bit.
fn fnv(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

#[test]
fn tcp_100mb_between_two_guests_through_netback() {
    let start = Instant::now();
    let mut w = World::new();
    // The sender offloads checksums (csum_blank); netback fills them in.
    let mut a = guest(
        &mut w,
        1,
        FrontOptions {
            csum_blank: true,
            sg: true,
            ..Default::default()
        },
        start,
    );
    let mut b = guest(&mut w, 2, FrontOptions::default(), start);
    assert!(w.pump_until(&mut [&mut a.front, &mut b.front], |_, fs| fs
        .iter()
        .all(|f| f.is_up())));
    let names: Vec<String> = w.nb.vifs().map(|v| v.name().to_string()).collect();
    assert_eq!(names.len(), 2);

    b.sockets
        .get_mut::<tcp::Socket>(b.tcp)
        .listen(5001)
        .unwrap();
    a.sockets
        .get_mut::<tcp::Socket>(a.tcp)
        .connect(
            a.iface.context(),
            (Ipv4Address::new(10, 0, 0, 2), 5001),
            40000,
        )
        .unwrap();

    let data: Vec<u8> = {
        let mut x = 0x9e3779b97f4a7c15u64;
        (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    let (mut sent, mut received) = (0usize, 0usize);
    let (mut h_sent, mut h_recv) = (0xcbf29ce484222325u64, 0xcbf29ce484222325u64);
    let deadline = start + Duration::from_secs(120);
    while received < TOTAL {
        assert!(
            Instant::now() < deadline,
            "transfer stalled at {received} bytes"
        );
        let t = now(start);
        a.iface.poll(t, &mut a.front, &mut a.sockets);
        let s = a.sockets.get_mut::<tcp::Socket>(a.tcp);
        while sent < TOTAL && s.can_send() {
            let off = sent % data.len();
            let end = (off + (TOTAL - sent)).min(data.len());
            let n = s.send_slice(&data[off..end]).unwrap();
            if n == 0 {
                break;
            }
            h_sent = fnv(h_sent, &data[off..off + n]);
            sent += n;
        }
        a.iface.poll(t, &mut a.front, &mut a.sockets);
        // The driver domain: rings in, bridge, rings out.
        w.nb.handle_xenstore_events(w.now).unwrap();
        w.nb.handle_evtchn(w.now).unwrap();
        for (from, to) in [(&names[0], &names[1]), (&names[1], &names[0])] {
            while let Some(f) = w.nb.vif_mut(from).unwrap().recv_frame() {
                w.nb.vif_mut(to).unwrap().send_frame(f);
            }
        }
        w.nb.flush(w.now).unwrap();
        a.front.poll(&w.sim).unwrap();
        b.front.poll(&w.sim).unwrap();
        b.iface.poll(t, &mut b.front, &mut b.sockets);
        let s = b.sockets.get_mut::<tcp::Socket>(b.tcp);
        while s.can_recv() {
            let n = s
                .recv(|buf| {
                    h_recv = fnv(h_recv, buf);
                    (buf.len(), buf.len())
                })
                .unwrap();
            if n == 0 {
                break;
            }
            received += n;
        }
        b.iface.poll(t, &mut b.front, &mut b.sockets);
    }
    assert_eq!(received, TOTAL);
    assert_eq!(h_recv, h_sent, "stream digest mismatch");
    let stats: Vec<_> = w.nb.vifs().map(|v| v.stats()).collect();
    assert!(
        stats.iter().all(|s| s.tx_errors == 0 && s.rx_dropped == 0),
        "{stats:?}"
    );
    let secs = start.elapsed().as_secs_f64();
    println!(
        "100 MB in {secs:.2} s = {:.2} Gbit/s; vif stats {stats:?}",
        TOTAL as f64 * 8.0 / secs / 1e9
    );
}
