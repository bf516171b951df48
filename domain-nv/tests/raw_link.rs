//! A raw (`AF_PACKET`) link with offload over a real veth pair: smoltcp on one end sends TCP
//! segments far above the MTU and a Linux socket in the peer namespace gets every byte intact.

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use domain_nv::config::LinkConfig;
use domain_nv::link::LinkDevice;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nv_testbed::Lab;
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

/// Bytes smoltcp sends: many 64 KiB segments' worth.
const BYTES: usize = 8 << 20;
const PORT: u16 = 7777;

fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 11)) as u8
}

#[test]
#[ignore = "needs root: netns, veth, AF_PACKET (make ns-test)"]
fn raw_link_with_offload_sends_large_segments_a_linux_socket_reads_intact() {
    let mut lab = Lab::new("nvt-rawgso").unwrap();
    let nv = lab.add_netns_plain("nv").unwrap();
    let peer = lab.add_netns_plain("peer").unwrap();
    lab.add_veth(&nv, "ext0", "", &peer, "v0", "10.78.0.2/24")
        .unwrap();
    let listener = xen::hostnet::in_netns(&peer, || {
        TcpListener::bind((Ipv4Addr::new(10, 78, 0, 2), PORT))
    })
    .unwrap();
    let reader = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut got = Vec::with_capacity(BYTES);
        stream.read_to_end(&mut got).unwrap();
        got
    });

    let link = LinkConfig::Raw {
        interface: "ext0".into(),
        netns: Some(nv.clone()),
        offload: true,
    };
    let mut device = LinkDevice::open(&link, 1500).unwrap();
    let epoch = Instant::now();
    let now = || smoltcp::time::Instant::from_micros(epoch.elapsed().as_micros() as i64);
    let mac = EthernetAddress([0x02, 0, 0, 0x4e, 0x56, 1]);
    let mut iface = Interface::new(
        IfaceConfig::new(HardwareAddress::Ethernet(mac)),
        &mut device,
        now(),
    );
    iface.update_ip_addrs(|a| {
        a.push(IpCidr::new(IpAddress::v4(10, 78, 0, 1), 24))
            .unwrap();
    });
    let mut sockets = SocketSet::new(Vec::new());
    let socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 1 << 16]),
        tcp::SocketBuffer::new(vec![0; 1 << 20]),
    );
    let h = sockets.add(socket);
    sockets
        .get_mut::<tcp::Socket>(h)
        .connect(iface.context(), (IpAddress::v4(10, 78, 0, 2), PORT), 49152)
        .unwrap();

    let mut sent = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "sent {sent} of {BYTES} in 60 s");
        device.begin_poll();
        iface.poll(now(), &mut device, &mut sockets);
        let s = sockets.get_mut::<tcp::Socket>(h);
        if s.can_send() && sent < BYTES {
            sent += s
                .send(|buf| {
                    let n = buf.len().min(BYTES - sent);
                    for (i, b) in buf[..n].iter_mut().enumerate() {
                        *b = pattern(sent + i);
                    }
                    (n, n)
                })
                .unwrap();
            if sent == BYTES {
                s.close();
            }
        }
        // Every byte and the FIN acknowledged (or the connection fully closed).
        if sent == BYTES
            && matches!(
                s.state(),
                tcp::State::FinWait2 | tcp::State::TimeWait | tcp::State::Closed
            )
        {
            break;
        }
        // Until a frame arrives (an ACK opening the window) or smoltcp has a timer due.
        let wait = iface
            .poll_delay(now(), &sockets)
            .map_or(10, |d| d.total_millis().min(10)) as u8;
        let mut fds = [PollFd::new(device.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::from(wait)).unwrap();
    }
    let got = reader.join().unwrap();
    assert_eq!(got.len(), BYTES);
    let first_bad = got.iter().enumerate().position(|(i, &b)| b != pattern(i));
    assert_eq!(first_bad, None, "bytes differ from the pattern");

    let stats = device.stats();
    let mtu_frames = (BYTES / 1460) as u64;
    assert!(
        stats.tx_gso > 0 && stats.tx_frames < mtu_frames / 4,
        "{BYTES} bytes in {} frames ({} marked for segmentation; MTU-sized would be {mtu_frames}): {stats:?}",
        stats.tx_frames,
        stats.tx_gso
    );
    assert_eq!(stats.errors, 0, "{stats:?}");
}
