//! Links: where an interface's Ethernet frames come from. Outside Xen a link is a TAP device
//! (possibly in another network namespace) or a NIC through `AF_PACKET`; on Xen it is a netback
//! vif. Each is a smoltcp [`Device`] with a bounded amount of work per poll and no panics: an I/O
//! error marks the link down and is counted.
//!
//! A TAP or raw link with offload (the default) carries a virtio-net header before each frame
//! ([`crate::vnet`]): the host hands over TCP segments of up to 64 KiB with partial checksums
//! (GRO'd ones, on a raw link), and smoltcp sends segments of up to 64 KiB that the host splits
//! into MTU-sized ones (or the NIC does, with TSO; or the host delivers them whole to its local
//! socket), so one syscall moves up to 64 KiB instead of one MTU.

use std::io;
use std::num::{NonZeroU16, NonZeroUsize};
use std::os::fd::{AsFd, BorrowedFd};

use smoltcp::phy::{self, Checksum, Device, DeviceCapabilities, Medium, PacketMeta};
use smoltcp::time::Instant;
use xen::hostnet::{in_netns, set_link_up, PacketSocket, Tap};

use crate::config::LinkConfig;
use crate::vnet::{self, VnetHeader, VNET_HDR_LEN};

/// Largest Ethernet frame (without FCS) for the standard 1500-byte MTU.
pub const MAX_FRAME: usize = 1514;
/// Ethernet header length.
const ETH_HEADER: usize = 14;
/// Largest IP packet (the IPv4 total length and IPv6 payload length fields are 16 bits).
const MAX_IP_PACKET: usize = 65535;
/// Room for one 802.1Q tag in received frames.
const VLAN_TAG: usize = 4;
/// Frames taken from one link per poll by default, so that a flooding peer cannot starve the
/// others.
pub const RX_BUDGET: usize = 256;

/// Brings the NIC up (the NV domain's init has nobody else to do it) and opens it raw, with
/// offload if asked and the kernel agrees, else plain.
fn open_raw(interface: &str, offload: bool) -> io::Result<PacketSocket> {
    set_link_up(interface)
        .map_err(|e| io::Error::new(e.kind(), format!("bringing {interface} up: {e}")))?;
    with_offload_or_plain(
        &format!("raw link {interface}"),
        offload,
        || PacketSocket::open_with_offload(interface),
        || PacketSocket::open(interface),
    )
}

/// Attaches to a TAP device, with offload if asked and the kernel agrees, else plain.
fn open_tap(name: &str, offload: bool) -> io::Result<Tap> {
    with_offload_or_plain(
        &format!("TAP {name}"),
        offload,
        || Tap::open_with_offload(name),
        || Tap::open(name),
    )
}

/// Opens `what` with checksum and segmentation offload if `offload` and the kernel agrees
/// (saying so in the log), else with plain frames (warning if offload was refused).
fn with_offload_or_plain<T>(
    what: &str,
    offload: bool,
    open_with_offload: impl FnOnce() -> io::Result<T>,
    open_plain: impl FnOnce() -> io::Result<T>,
) -> io::Result<T> {
    if offload {
        match open_with_offload() {
            Ok(io) => {
                log::info!("{what}: checksum and segmentation offload on");
                return Ok(io);
            }
            Err(e) => log::warn!("{what}: offload refused ({e}); using plain frames"),
        }
    }
    open_plain()
}

/// The frame source and sink behind a link.
#[derive(Debug)]
enum FrameIo {
    Tap(Tap),
    Packet(PacketSocket),
}

impl FrameIo {
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            FrameIo::Tap(t) => t.recv(buf),
            FrameIo::Packet(p) => p.recv(buf),
        }
    }
    fn send(&self, frame: &[u8]) -> io::Result<usize> {
        match self {
            FrameIo::Tap(t) => t.send(frame),
            FrameIo::Packet(p) => p.send(frame),
        }
    }
    /// True if every frame is preceded by a virtio-net header.
    fn has_vnet_header(&self) -> bool {
        match self {
            FrameIo::Tap(t) => t.has_vnet_header(),
            FrameIo::Packet(p) => p.has_vnet_header(),
        }
    }
}

/// Counters of one link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames received.
    pub rx_frames: u64,
    /// Frames sent.
    pub tx_frames: u64,
    /// Bytes of the frames received (Ethernet header on, virtio-net header off).
    pub rx_bytes: u64,
    /// Bytes of the frames sent (Ethernet header on, virtio-net header off).
    pub tx_bytes: u64,
    /// Receive or send errors (other than "would block").
    pub errors: u64,
    /// Received frames dropped as malformed (a short or unsupported virtio-net header, or a
    /// frame the kernel could not give one).
    pub rx_malformed: u64,
    /// Received frames larger than one MTU-sized frame (segments the host or NIC coalesced).
    pub rx_large: u64,
    /// Sent frames marked for segmentation (the host or NIC cuts them into MTU-sized ones).
    pub tx_gso: u64,
    /// Frames dropped because the host's send queue was full (TCP retransmits them).
    pub tx_dropped: u64,
}

impl LinkStats {
    /// The counters under kebab-case names (as published in the status).
    pub fn named(&self) -> [(&'static str, u64); 9] {
        [
            ("rx-frames", self.rx_frames),
            ("tx-frames", self.tx_frames),
            ("rx-bytes", self.rx_bytes),
            ("tx-bytes", self.tx_bytes),
            ("errors", self.errors),
            ("rx-malformed", self.rx_malformed),
            ("rx-large", self.rx_large),
            ("tx-gso", self.tx_gso),
            ("tx-dropped", self.tx_dropped),
        ]
    }
}

/// A link as a smoltcp device.
#[derive(Debug)]
pub struct LinkDevice {
    io: FrameIo,
    rx_buf: Vec<u8>,
    tx_buf: Vec<u8>,
    /// Largest Ethernet frame of the link's MTU (what smoltcp sends unsegmented).
    max_frame: usize,
    rx_budget: usize,
    budget_per_poll: usize,
    /// Frames taken in one poll round from which the link counts as fallen behind.
    behind_at: usize,
    up: bool,
    stats: LinkStats,
}

impl LinkDevice {
    /// Opens the link described by `config`. `vif` links are served by netback and are opened
    /// elsewhere; asking for one here is an error.
    /// `mtu` is the IP MTU of the link (the host side must have the same: `ip link set mtu`).
    pub fn open(config: &LinkConfig, mtu: usize) -> io::Result<LinkDevice> {
        let io = match config.clone() {
            LinkConfig::Tap { name, netns: None, offload } => FrameIo::Tap(open_tap(&name, offload)?),
            LinkConfig::Tap { name, netns: Some(ns), offload } => FrameIo::Tap(in_netns(&ns, move || open_tap(&name, offload))?),
            LinkConfig::Raw { interface, netns: None, offload } => FrameIo::Packet(open_raw(&interface, offload)?),
            LinkConfig::Raw { interface, netns: Some(ns), offload } => FrameIo::Packet(in_netns(&ns, move || open_raw(&interface, offload))?),
            LinkConfig::Vif { name } => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("vif {name}: vif links need the Xen netback (run domain-nv as a Xen driver domain)"),
                ))
            }
        };
        let max_frame = mtu + ETH_HEADER;
        // With the header, frames up to a whole IP packet (64 KiB: GSO and GRO) both ways.
        let rx_len = if io.has_vnet_header() {
            VNET_HDR_LEN + ETH_HEADER + VLAN_TAG + MAX_IP_PACKET
        } else {
            max_frame
        };
        Ok(LinkDevice {
            io,
            rx_buf: vec![0; rx_len],
            tx_buf: vec![0; rx_len],
            max_frame,
            rx_budget: RX_BUDGET,
            budget_per_poll: RX_BUDGET,
            behind_at: RX_BUDGET,
            up: true,
            stats: LinkStats::default(),
        })
    }

    /// Starts a new poll round: refills the receive budget.
    pub fn begin_poll(&mut self) {
        self.rx_budget = self.budget_per_poll;
    }

    /// Sets how many frames one poll round takes (at least 1); a round that takes them all
    /// counts as fallen behind ([`LinkDevice::fell_behind`]).
    pub fn set_rx_budget(&mut self, frames: usize) {
        self.budget_per_poll = frames.max(1);
        self.behind_at = self.budget_per_poll;
    }

    /// Sets from how many frames taken in one poll round (at least 1, at most the budget) the
    /// link counts as fallen behind: a link read with a budget larger than that still reports
    /// the rounds in which that many frames had waited.
    pub fn set_behind_at(&mut self, frames: usize) {
        self.behind_at = frames.clamp(1, self.budget_per_poll);
    }

    /// True if the last poll round stopped because its budget ran out (more frames may wait).
    pub fn budget_exhausted(&self) -> bool {
        self.rx_budget == 0
    }

    /// True if the last poll round took at least the frames that mean domain-nv fell behind
    /// reading this link (its whole budget unless [`LinkDevice::set_behind_at`] said fewer):
    /// frames waited in the link's queue, and the kernel may have dropped some.
    pub fn fell_behind(&self) -> bool {
        self.budget_per_poll - self.rx_budget >= self.behind_at
    }

    /// True unless the last I/O on the link failed.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// The link's counters.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Marks the link down after the poller reported an error condition on its descriptor.
    pub fn set_down(&mut self) {
        self.up = false;
    }

    fn note_error(&mut self, what: &str, e: &io::Error) {
        if self.up {
            log::warn!("link {}: {what} failed: {e}; link down", self.name());
        }
        self.up = false;
        self.stats.errors += 1;
    }

    fn name(&self) -> &str {
        match &self.io {
            FrameIo::Tap(t) => t.name(),
            FrameIo::Packet(p) => p.name(),
        }
    }
}

impl AsFd for LinkDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.io {
            FrameIo::Tap(t) => t.as_fd(),
            FrameIo::Packet(p) => p.as_fd(),
        }
    }
}

/// A received frame, borrowed from the device's receive buffer.
pub struct LinkRxToken<'a> {
    frame: &'a [u8],
}

impl phy::RxToken for LinkRxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

/// Permission to send one frame through the device.
pub struct LinkTxToken<'a> {
    io: &'a FrameIo,
    buf: &'a mut Vec<u8>,
    up: &'a mut bool,
    stats: &'a mut LinkStats,
    meta: PacketMeta,
}

impl<'a> LinkTxToken<'a> {
    fn new(
        io: &'a FrameIo,
        buf: &'a mut Vec<u8>,
        up: &'a mut bool,
        stats: &'a mut LinkStats,
    ) -> LinkTxToken<'a> {
        LinkTxToken {
            io,
            buf,
            up,
            stats,
            meta: PacketMeta::default(),
        }
    }
}

impl phy::TxToken for LinkTxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let header = if self.io.has_vnet_header() {
            VNET_HDR_LEN
        } else {
            0
        };
        let total = header + len;
        if self.buf.len() < total {
            self.buf.resize(total, 0);
        }
        let r = f(&mut self.buf[header..total]);
        let mut gso = false;
        if header > 0 {
            let hdr = vnet::prepare_tx(
                &mut self.buf[header..total],
                self.meta.segmentation_offload_size.map(NonZeroU16::get),
            );
            gso = hdr.gso_type != vnet::GSO_NONE;
            self.buf[..header].copy_from_slice(&hdr.emit());
        }
        match self.io.send(&self.buf[..total]) {
            Ok(_) => {
                self.stats.tx_frames += 1;
                self.stats.tx_bytes += len as u64;
                self.stats.tx_gso += u64::from(gso);
                *self.up = true;
            }
            // A full queue drops the frame like a busy NIC; TCP retransmits.
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.raw_os_error() == Some(libc::ENOBUFS) =>
            {
                self.stats.tx_dropped += 1;
            }
            Err(e) => {
                if *self.up {
                    log::warn!("link send failed: {e}; link down");
                }
                *self.up = false;
                self.stats.errors += 1;
            }
        }
        r
    }

    fn set_meta(&mut self, meta: PacketMeta) {
        self.meta = meta;
    }
}

impl Device for LinkDevice {
    type RxToken<'a> = LinkRxToken<'a>;
    type TxToken<'a> = LinkTxToken<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(LinkRxToken<'_>, LinkTxToken<'_>)> {
        loop {
            if self.rx_budget == 0 {
                return None;
            }
            match self.io.recv(&mut self.rx_buf) {
                Ok(n) => {
                    self.rx_budget -= 1;
                    self.up = true;
                    let start = if self.io.has_vnet_header() {
                        // The header's offload fields need no action: partial checksums are
                        // not verified on this link and a 64 KiB segment is taken whole.
                        if let Err(e) = VnetHeader::parse(&self.rx_buf[..n]) {
                            log::debug!("link {}: frame dropped: {e}", self.name());
                            self.stats.rx_malformed += 1;
                            continue;
                        }
                        VNET_HDR_LEN
                    } else {
                        0
                    };
                    self.stats.rx_frames += 1;
                    self.stats.rx_bytes += (n - start) as u64;
                    self.stats.rx_large += u64::from(n - start > self.max_frame);
                    let rx = LinkRxToken {
                        frame: &self.rx_buf[start..n],
                    };
                    let tx =
                        LinkTxToken::new(&self.io, &mut self.tx_buf, &mut self.up, &mut self.stats);
                    return Some((rx, tx));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                // The kernel consumed a frame it could not describe in a virtio-net header.
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    self.rx_budget -= 1;
                    log::debug!("link {}: frame dropped: {e}", self.name());
                    self.stats.rx_malformed += 1;
                    continue;
                }
                Err(e) => {
                    self.note_error("receive", &e);
                    return None;
                }
            }
        }
    }

    fn transmit(&mut self, _now: Instant) -> Option<LinkTxToken<'_>> {
        Some(LinkTxToken::new(
            &self.io,
            &mut self.tx_buf,
            &mut self.up,
            &mut self.stats,
        ))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.max_frame;
        if self.io.has_vnet_header() {
            // Received TCP checksums may be partial (NEEDS_CSUM) and are not verified (the
            // frames never left this host's memory, or the NIC checked them); sent ones are left
            // to the host (`vnet::prepare_tx`). smoltcp emits IPv4 TCP segments of up to 64 KiB and says
            // where to split them; it cannot do so for IPv6 (it drops IPv6 packets above the
            // MTU), so IPv6 stays MTU-sized.
            caps.checksum.tcp = Checksum::None;
            caps.checksum.udp = Checksum::Tx;
            caps.segmentation.tcpv4 = NonZeroUsize::new(ETH_HEADER + MAX_IP_PACKET);
        } else if matches!(self.io, FrameIo::Packet(_)) {
            // Frames a host sends with checksum offload reach AF_PACKET with partial TCP/UDP
            // checksums (TP_STATUS_CSUMNOTREADY: veth, a Xen netfront fed by dom0). Those are
            // not verified on receive; the Ethernet FCS covered the wire. Sent frames carry
            // full checksums.
            caps.checksum.tcp = Checksum::Tx;
            caps.checksum.udp = Checksum::Tx;
        }
        caps
    }
}
