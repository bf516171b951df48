//! One link with its smoltcp interface and sockets ([`Endpoint`]): where its frames come from (a
//! link this process opened, or a netback vif looked up at each poll), its address and route,
//! and the ephemeral ports of the connections it opens.

use std::net::Ipv4Addr;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Instant;

use netback::Netback;
use smoltcp::iface::{Config as IfaceConfig, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities};
use smoltcp::socket::tcp::{self, ConnectError};
use smoltcp::socket::udp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};
use xen::{EventChannel, GrantTable};

use super::port_pool::{first_port, PortPool, TIME_WAIT};
use super::sockets::{new_socket, new_udp_socket};
use crate::config::{Ipv4Cidr, LinkConfig, ReplicaConfig};
use crate::link::LinkDevice;

/// A seed that differs between process starts: the wall clock in nanoseconds and the pid.
fn start_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ u64::from(std::process::id()) << 40
}

/// How long ARP waits for an answer before it asks again (smoltcp's default: 1 s). A link's
/// first request is often lost (the peer of a TAP that just came up is not ready for it yet),
/// and every connection waits for the retry: the first clients after a start would wait a
/// second. On a point-to-point link one request per 100 ms at most costs nothing.
const ARP_RETRY: smoltcp::time::Duration = smoltcp::time::Duration::from_millis(100);

/// Frames taken from a replica's TAP or raw link per poll round (a TAP's queue holds 1,000 by
/// default), instead of [`crate::link::RX_BUDGET`]: with thousands of connections a round takes
/// long enough that the replicas' frames (answers, SYN-ACKs, ACKs) overflow the queue between
/// two rounds of 256, and every frame the kernel drops there costs the replica a
/// retransmission timeout that doubles at each loss (the 10,000-connection soak: about 220,000
/// frames dropped per replica TAP, 87,000 retransmission timeouts per replica, replies later
/// than 30 s). Each replica link still takes at most this many per round, so a flooding
/// replica cannot starve the others. A round that took [`crate::link::RX_BUDGET`] frames or
/// more still counts as domain-nv falling behind on the link ([`Endpoint::fell_behind`]): the
/// queue may have overflowed before the round came.
const REPLICA_RX_BUDGET: usize = 1024;

/// The smoltcp instant `now` is, counted from `epoch`.
pub(super) fn smol_now(epoch: Instant, now: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(now.saturating_duration_since(epoch).as_micros() as i64)
}

/// Where an endpoint's frames come from.
enum Frames {
    /// A link this process opened (TAP, `AF_PACKET`).
    Link(LinkDevice),
    /// A netback vif, found by name at each poll (it comes and goes with its guest).
    Vif(String),
}

/// A token that never exists ([`VifShape`] has no frames).
enum NoToken {}

impl smoltcp::phy::RxToken for NoToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, _f: F) -> R {
        match self {}
    }
}

impl smoltcp::phy::TxToken for NoToken {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, _len: usize, _f: F) -> R {
        match self {}
    }
}

/// Stands in for a vif when its interface is created: a vif's capabilities, no frames. A
/// netback vif has a 1500-byte MTU, leaves TCP checksums to netback (which fills them in or
/// hands the guest partial ones) and takes TCP segments of up to 64 KiB, which netback passes to
/// a guest with GSO whole and cuts for one without (`netback::offload`), as a TAP link does.
struct VifShape;

impl Device for VifShape {
    type RxToken<'a> = NoToken;
    type TxToken<'a> = NoToken;
    fn receive(
        &mut self,
        _t: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        None
    }
    fn transmit(&mut self, _t: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        None
    }
    fn capabilities(&self) -> DeviceCapabilities {
        netback::vif::capabilities(crate::link::MAX_FRAME)
    }
}

/// The vif called `name` if netback has it connected (else its endpoint is not polled).
fn connected_vif<'a, G: GrantTable, E: EventChannel>(
    netback: Option<&'a mut Netback<G, E>>,
    name: &str,
) -> Option<&'a mut netback::Vif<G::Mapping>> {
    netback
        .and_then(|nb| nb.vif_mut(name))
        .filter(|v| v.is_connected())
}

/// A socket this endpoint connected from one of its ephemeral ports.
#[derive(Clone, Copy)]
pub(super) struct OutgoingSocket {
    /// The socket in the endpoint's set.
    pub handle: SocketHandle,
    /// Its local port, in use until [`Endpoint::remove_outgoing`].
    pub port: u16,
}

/// The address, route and MAC of an endpoint's interface.
pub(super) struct Addressing {
    /// The interface's own address.
    pub addr: Ipv4Cidr,
    /// The default route, if any.
    pub gateway: Option<Ipv4Addr>,
    /// The interface's MAC: [`EXTERNAL_MAC`] or [`REPLICA_MAC`].
    pub mac: EthernetAddress,
    /// A number of its own per link (0 external, 1 + index for replicas), which keeps the
    /// links' random seeds and first local ports apart.
    pub seed: u8,
}

/// domain-nv's MAC on the external link (locally administered unicast).
pub(super) const EXTERNAL_MAC: EthernetAddress = EthernetAddress([0x02, 0x4e, 0x56, 0, 0, 0]);

/// domain-nv's MAC on every replica link, the same on each, as every replica link has the same
/// addresses: a replica cloned from another's memory keeps that one's neighbour cache, which
/// must still be right on the clone's own link.
pub(super) const REPLICA_MAC: EthernetAddress = EthernetAddress([0x02, 0x4e, 0x56, 0, 0, 1]);

/// One link with its smoltcp interface and sockets.
pub(super) struct Endpoint {
    /// The link's name in logs (`external` or the replica's name).
    pub name: String,
    frames: Frames,
    iface: Interface,
    /// Every socket on this link.
    pub sockets: SocketSet<'static>,
    ports: PortPool,
    /// Where smoltcp's clock starts.
    epoch: Instant,
    /// The time of the last poll: when ports are taken and given back.
    polled_at: Instant,
}

impl Endpoint {
    /// Opens the link (a `vif` link is only named: netback serves it) and its interface.
    pub fn open(
        name: &str,
        link: &LinkConfig,
        mtu: usize,
        addressing: Addressing,
        epoch: Instant,
    ) -> anyhow::Result<Endpoint> {
        let Addressing {
            addr,
            gateway,
            mac,
            seed,
        } = addressing;
        let mut frames = match link {
            LinkConfig::Vif { name } => Frames::Vif(name.clone()),
            other => Frames::Link(
                LinkDevice::open(other, mtu).map_err(|e| anyhow::anyhow!("link {name}: {e}"))?,
            ),
        };
        let mut cfg = IfaceConfig::new(HardwareAddress::Ethernet(mac));
        cfg.random_seed = u64::from(std::process::id()) << 8 | u64::from(seed);
        let t = smol_now(epoch, Instant::now());
        let mut iface = match &mut frames {
            Frames::Link(device) => Interface::new(cfg, device, t),
            // The vif may not exist yet. smoltcp keeps the capabilities it is created with (MTU,
            // checksums), so they must be a vif's, not a loopback's (which has checksums off).
            Frames::Vif(_) => Interface::new(cfg, &mut VifShape, t),
        };
        iface.set_neighbor_retry_interval(ARP_RETRY);
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(addr.addr), addr.prefix));
        });
        if let Some(gw) = gateway {
            iface
                .routes_mut()
                .add_default_ipv4_route(gw)
                .map_err(|e| anyhow::anyhow!("link {name}: default route: {e:?}"))?;
        }
        Ok(Endpoint {
            name: name.to_owned(),
            frames,
            iface,
            sockets: SocketSet::new(Vec::new()),
            ports: PortPool::new(first_port(start_seed() ^ u64::from(seed))),
            epoch,
            polled_at: epoch,
        })
    }

    /// Opens the link of replica `index` (configured as `r`), which takes up to
    /// [`REPLICA_RX_BUDGET`] frames per poll round.
    pub fn open_replica(
        r: &ReplicaConfig,
        index: usize,
        mtu: usize,
        epoch: Instant,
    ) -> anyhow::Result<Endpoint> {
        let addressing = Addressing {
            addr: r.address,
            gateway: None,
            mac: REPLICA_MAC,
            seed: 1 + index as u8,
        };
        let mut ep = Endpoint::open(&r.name, &r.link, mtu, addressing, epoch)?;
        if let Some(device) = ep.device() {
            device.set_rx_budget(REPLICA_RX_BUDGET);
            device.set_behind_at(crate::link::RX_BUDGET);
        }
        Ok(ep)
    }

    /// The link this process opened, if it is not a vif.
    pub fn device(&mut self) -> Option<&mut LinkDevice> {
        match &mut self.frames {
            Frames::Link(device) => Some(device),
            Frames::Vif(_) => None,
        }
    }

    /// The descriptor of the link this process opened (a vif has none of its own).
    pub fn link_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.frames {
            Frames::Link(device) => Some(device.as_fd()),
            Frames::Vif(_) => None,
        }
    }

    /// Ingress and egress; a vif that is not connected is skipped. `readable` false: the
    /// caller knows the link's descriptor has no frame waiting (poll(2) said so), and only
    /// egress runs, which saves a read that would find nothing (a vif is always read).
    pub fn poll<G: GrantTable, E: EventChannel>(
        &mut self,
        now: smoltcp::time::Instant,
        netback: Option<&mut Netback<G, E>>,
        readable: bool,
    ) {
        self.polled_at = self.instant(now);
        match &mut self.frames {
            Frames::Link(device) => {
                device.begin_poll();
                if readable {
                    self.iface.poll(now, device, &mut self.sockets);
                } else {
                    // what `Interface::poll` does after its ingress
                    self.iface.poll_maintenance(now);
                    while self.iface.poll_egress(now, device, &mut self.sockets) != PollResult::None
                    {
                    }
                }
            }
            Frames::Vif(name) => {
                if let Some(vif) = connected_vif(netback, name) {
                    self.iface.poll(now, vif, &mut self.sockets);
                }
            }
        }
    }

    /// Egress only: one round (each socket sends at most one packet; a TCP socket one segment
    /// of up to 64 KiB with offload) for `rounds` = 1, or up to `rounds` rounds while sockets
    /// still send (a UDP socket sends one datagram per round).
    pub fn poll_egress<G: GrantTable, E: EventChannel>(
        &mut self,
        now: smoltcp::time::Instant,
        mut netback: Option<&mut Netback<G, E>>,
        rounds: usize,
    ) {
        self.polled_at = self.instant(now);
        for _ in 0..rounds {
            let sent = match &mut self.frames {
                Frames::Link(device) => self.iface.poll_egress(now, device, &mut self.sockets),
                Frames::Vif(name) => match connected_vif(netback.as_deref_mut(), name) {
                    Some(vif) => self.iface.poll_egress(now, vif, &mut self.sockets),
                    None => PollResult::None,
                },
            };
            if sent == PollResult::None {
                break;
            }
        }
    }

    /// How long smoltcp may wait before this interface needs a poll.
    pub fn poll_delay(&mut self, now: smoltcp::time::Instant) -> Option<std::time::Duration> {
        self.iface
            .poll_delay(now, &self.sockets)
            .map(|d| std::time::Duration::from_micros(d.total_micros()))
    }

    /// True if the link can carry frames.
    pub fn is_up<G: GrantTable, E: EventChannel>(&self, netback: Option<&Netback<G, E>>) -> bool {
        match &self.frames {
            Frames::Link(device) => device.is_up(),
            Frames::Vif(name) => {
                netback.is_some_and(|nb| nb.vifs().any(|v| v.name() == name && v.is_connected()))
            }
        }
    }

    /// True if the last ingress stopped at its frame budget.
    pub fn budget_exhausted(&self) -> bool {
        matches!(&self.frames, Frames::Link(d) if d.budget_exhausted())
    }

    /// True if the last ingress took so many frames that domain-nv fell behind reading the
    /// link ([`LinkDevice::fell_behind`]).
    pub fn fell_behind(&self) -> bool {
        matches!(&self.frames, Frames::Link(d) if d.fell_behind())
    }

    /// The `Instant` of smoltcp's instant `t`.
    fn instant(&self, t: smoltcp::time::Instant) -> Instant {
        self.epoch + std::time::Duration::from_micros(t.total_micros().max(0) as u64)
    }

    /// The least recently used free port of the ephemeral range.
    fn alloc_port(&mut self) -> Option<u16> {
        self.ports.take(self.polled_at)
    }

    /// One line on this link's local ports for the log: how many went out, and how many of
    /// them less than TIME_WAIT after they were last given back (a replica that closed that
    /// port's earlier connection first may still hold it).
    pub fn port_summary(&self) -> String {
        format!(
            "{}: {} local ports handed out, {} of them within {} s of their last use",
            self.name,
            self.ports.taken(),
            self.ports.reused_in_time_wait(),
            TIME_WAIT.as_secs()
        )
    }

    /// Starts a TCP connection to `remote` from a free ephemeral port, with socket buffers of
    /// `buffer` bytes: `Ok(None)` if every port is in use; on smoltcp's error the port is free
    /// again.
    pub fn connect(
        &mut self,
        remote: (Ipv4Addr, u16),
        buffer: usize,
    ) -> Result<Option<OutgoingSocket>, ConnectError> {
        let Some(port) = self.alloc_port() else {
            return Ok(None);
        };
        let mut sock = new_socket(buffer);
        let remote = (IpAddress::Ipv4(remote.0), remote.1);
        match sock.connect(self.iface.context(), remote, port) {
            Ok(()) => Ok(Some(OutgoingSocket {
                handle: self.sockets.add(sock),
                port,
            })),
            Err(e) => {
                self.ports.give_back(port, self.polled_at);
                Err(e)
            }
        }
    }

    /// Binds a UDP socket with room for `packets` datagrams of `bytes` in all each way to a
    /// free ephemeral port (`None` if every port is in use).
    pub fn bind_udp(&mut self, packets: usize, bytes: usize) -> Option<OutgoingSocket> {
        let port = self.alloc_port()?;
        let mut sock = new_udp_socket(packets, bytes);
        // A port of our own, never 0: binding cannot fail.
        if sock.bind(port).is_err() {
            self.ports.give_back(port, self.polled_at);
            return None;
        }
        Some(OutgoingSocket {
            handle: self.sockets.add(sock),
            port,
        })
    }

    /// The UDP socket `h`.
    pub fn udp(&mut self, h: SocketHandle) -> &mut udp::Socket<'static> {
        self.sockets.get_mut::<udp::Socket>(h)
    }

    /// Drops a socket from [`Endpoint::connect`] or [`Endpoint::bind_udp`] and frees its port.
    pub fn remove_outgoing(&mut self, socket: OutgoingSocket) {
        self.sockets.remove(socket.handle);
        self.ports.give_back(socket.port, self.polled_at);
    }

    /// The TCP socket `h`.
    pub fn tcp(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }
}
