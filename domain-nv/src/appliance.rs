//! The event loop: smoltcp terminates client TCP on the external link, opens one TCP connection
//! per replica per client connection on the replica links, and moves bytes through one
//! [`Voter`] per client connection.
//!
//! Single-threaded and poll(2)-driven: every link is a descriptor; the loop sleeps until a frame
//! arrives or the earliest smoltcp / voter / connect deadline.

use std::collections::HashSet;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use netback::Netback;
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp::{self, CongestionControl, State};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address};

use crate::config::{Config, Ipv4Cidr, LinkConfig};
use crate::link::LinkDevice;
use crate::status::{fault_kind_name, StatusBook};
use crate::voter::{ReplicaState, Voter, VoterConfig, VoterEvent};
use xen::{EventChannel, GrantTable};

/// First local port used for connections to replicas.
const EPHEMERAL_FIRST: u16 = 49152;
/// How long a finished connection may linger (waiting for FIN handshakes) before it is aborted.
const LINGER: Duration = Duration::from_secs(30);
/// Bound on handshakes in progress per service (a SYN flood cannot exhaust memory).
const MAX_HALF_OPEN: usize = 1024;
/// Receive rounds per step on the external link; each round takes at most `listen_pool` frames
/// so that listeners are replenished between SYNs of a burst.
const EXTERNAL_ROUNDS: usize = 32;
/// smoltcp idle timeout for every socket (a peer that vanishes silently).
const SOCKET_TIMEOUT: Duration = Duration::from_secs(120);
/// Interval between two health probes of a replica not yet seen serving.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Socket buffers of a health probe (it sends and reads nothing).
const PROBE_BUFFER: usize = 1024;

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
/// netback vif has a 1500-byte MTU and needs full checksums in both directions (a Linux guest
/// drops TCP segments whose checksum is not filled in).
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
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = crate::link::MAX_FRAME;
        caps
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

/// One link with its smoltcp interface and sockets.
struct Endpoint {
    name: String,
    frames: Frames,
    iface: Interface,
    sockets: SocketSet<'static>,
    ports_in_use: HashSet<u16>,
    next_port: u16,
}

impl Endpoint {
    #[allow(clippy::too_many_arguments)]
    fn open(
        name: &str,
        link: &LinkConfig,
        mtu: usize,
        addr: Ipv4Cidr,
        gateway: Option<std::net::Ipv4Addr>,
        mac_index: u8,
        epoch: Instant,
    ) -> anyhow::Result<Endpoint> {
        let mut frames = match link {
            LinkConfig::Vif { name } => Frames::Vif(name.clone()),
            other => Frames::Link(
                LinkDevice::open(other, mtu).map_err(|e| anyhow::anyhow!("link {name}: {e}"))?,
            ),
        };
        // Locally administered unicast MAC, one per link.
        let mac = EthernetAddress([0x02, 0x4e, 0x56, 0x00, 0x00, mac_index]);
        let mut cfg = IfaceConfig::new(HardwareAddress::Ethernet(mac));
        cfg.random_seed = u64::from(std::process::id()) << 8 | u64::from(mac_index);
        let t = smol_now(epoch, Instant::now());
        let mut iface = match &mut frames {
            Frames::Link(device) => Interface::new(cfg, device, t),
            // The vif may not exist yet. smoltcp keeps the capabilities it is created with (MTU,
            // checksums), so they must be a vif's, not a loopback's (which has checksums off).
            Frames::Vif(_) => Interface::new(cfg, &mut VifShape, t),
        };
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(
                IpAddress::Ipv4(Ipv4Address::from(addr.addr)),
                addr.prefix,
            ));
        });
        if let Some(gw) = gateway {
            iface
                .routes_mut()
                .add_default_ipv4_route(Ipv4Address::from(gw))
                .map_err(|e| anyhow::anyhow!("link {name}: default route: {e:?}"))?;
        }
        Ok(Endpoint {
            name: name.to_owned(),
            frames,
            iface,
            sockets: SocketSet::new(Vec::new()),
            ports_in_use: HashSet::new(),
            next_port: EPHEMERAL_FIRST,
        })
    }

    /// Ingress and egress; a vif that is not connected is skipped.
    fn poll<G: GrantTable, E: EventChannel>(
        &mut self,
        now: smoltcp::time::Instant,
        netback: Option<&mut Netback<G, E>>,
    ) {
        match &mut self.frames {
            Frames::Link(device) => {
                device.begin_poll();
                self.iface.poll(now, device, &mut self.sockets);
            }
            Frames::Vif(name) => {
                if let Some(vif) = connected_vif(netback, name) {
                    self.iface.poll(now, vif, &mut self.sockets);
                }
            }
        }
    }

    /// Egress only.
    fn poll_egress<G: GrantTable, E: EventChannel>(
        &mut self,
        now: smoltcp::time::Instant,
        netback: Option<&mut Netback<G, E>>,
    ) {
        match &mut self.frames {
            Frames::Link(device) => {
                self.iface.poll_egress(now, device, &mut self.sockets);
            }
            Frames::Vif(name) => {
                if let Some(vif) = connected_vif(netback, name) {
                    self.iface.poll_egress(now, vif, &mut self.sockets);
                }
            }
        }
    }

    /// True if the link can carry frames.
    fn is_up<G: GrantTable, E: EventChannel>(&self, netback: Option<&Netback<G, E>>) -> bool {
        match &self.frames {
            Frames::Link(device) => device.is_up(),
            Frames::Vif(name) => {
                netback.is_some_and(|nb| nb.vifs().any(|v| v.name() == name && v.is_connected()))
            }
        }
    }

    /// True if the last ingress stopped at its frame budget.
    fn budget_exhausted(&self) -> bool {
        matches!(&self.frames, Frames::Link(d) if d.budget_exhausted())
    }

    fn alloc_port(&mut self) -> Option<u16> {
        for _ in 0..=(u16::MAX - EPHEMERAL_FIRST) {
            let p = self.next_port;
            self.next_port = if p == u16::MAX {
                EPHEMERAL_FIRST
            } else {
                p + 1
            };
            if self.ports_in_use.insert(p) {
                return Some(p);
            }
        }
        None
    }

    fn tcp(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }
}

fn smol_now(epoch: Instant, now: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(now.saturating_duration_since(epoch).as_micros() as i64)
}

fn new_socket(buffer: usize) -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; buffer]),
        tcp::SocketBuffer::new(vec![0; buffer]),
    );
    s.set_ack_delay(None);
    s.set_nagle_enabled(false);
    s.set_congestion_control(CongestionControl::Cubic);
    s.set_timeout(Some(smoltcp::time::Duration::from_micros(
        SOCKET_TIMEOUT.as_micros() as u64,
    )));
    s
}

/// Moves bytes from a socket's receive buffer into the voter while `window` allows.
fn recv_into_voter(
    s: &mut tcp::Socket<'static>,
    voter: &mut Voter,
    window: impl Fn(&Voter) -> usize,
    push: impl Fn(&mut Voter, &[u8]) -> usize,
) {
    while window(voter) > 0 && s.can_recv() {
        let w = window(voter);
        match s.recv(|buf| {
            let n = push(voter, &buf[..buf.len().min(w)]);
            (n, n)
        }) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}

/// Moves the voter's bytes for a socket (`data`) into its send buffer; `sent` acknowledges them.
fn send_from_voter(
    s: &mut tcp::Socket<'static>,
    voter: &mut Voter,
    data: impl Fn(&Voter) -> &[u8],
    sent: impl Fn(&mut Voter, usize),
) {
    loop {
        let out = data(voter);
        if out.is_empty() || !s.can_send() {
            break;
        }
        match s.send_slice(out) {
            Ok(n) if n > 0 => sent(voter, n),
            _ => break,
        }
    }
}

/// True in the states where the peer's FIN has arrived.
fn remote_closed(state: State) -> bool {
    matches!(
        state,
        State::CloseWait | State::LastAck | State::Closing | State::TimeWait
    )
}

/// A socket that is gone: closed and, after an abort, its reset sent.
fn socket_gone(s: &tcp::Socket<'static>) -> bool {
    s.state() == State::TimeWait || (s.state() == State::Closed && s.remote_endpoint().is_none())
}

/// One health probe connection in progress (or being reset).
struct ProbeAttempt {
    socket: SocketHandle,
    port: u16,
    /// Until the connect gives up; once reset, until the reset may still go out.
    deadline: Instant,
    reset: bool,
}

/// Health probes of one replica: while it is `starting` or `down` (no connection has shown it
/// serving since it was attached), a TCP connect to its first service port every
/// [`PROBE_INTERVAL`]; an accepted one makes it `live` (and is reset at once), so that the
/// toolstack sees a new replica live before any client arrives.
struct Probe {
    attempt: Option<ProbeAttempt>,
    next_at: Instant,
}

/// The appliance side of one replica's connection for one client connection.
struct ReplicaSide {
    socket: Option<SocketHandle>,
    port: u16,
    connect_deadline: Instant,
    connected: bool,
    remote_fin: bool,
    /// The voter has been told how this side ended (FIN, reset or refused).
    ended: bool,
    input_closed: bool,
    /// Told the status book it is connected.
    counted: bool,
}

/// One client connection and its replica connections.
struct Connection {
    id: u64,
    service: usize,
    client: SocketHandle,
    client_fin_reported: bool,
    client_remote_fin: bool,
    client_reset_reported: bool,
    close_client: bool,
    client_closed: bool,
    client_aborted: bool,
    replicas: Vec<ReplicaSide>,
    voter: Voter,
    released_counted: u64,
    finished_at: Option<Instant>,
}

/// The running appliance; `G`/`E` are the Xen grant table and event channels behind netback
/// (unused without `vif` links).
pub struct Appliance<G: GrantTable = xen::gntdev::Gntdev, E: EventChannel = xen::evtchn::Evtchn> {
    netback: Option<Netback<G, E>>,
    config: Config,
    voter_config: VoterConfig,
    epoch: Instant,
    external: Endpoint,
    replicas: Vec<Endpoint>,
    probes: Vec<Probe>,
    listeners: Vec<Vec<SocketHandle>>,
    conns: Vec<Connection>,
    next_conn_id: u64,
    status: StatusBook,
}

impl<G: GrantTable, E: EventChannel> Appliance<G, E> {
    /// Opens every link and starts listening on every service. `vif` links are served by
    /// `netback`, which is required if the config has any.
    pub fn new(config: Config, netback: Option<Netback<G, E>>) -> anyhow::Result<Appliance<G, E>> {
        let uses_vifs = std::iter::once(&config.external.link)
            .chain(config.replicas.iter().map(|r| &r.link))
            .any(|l| matches!(l, LinkConfig::Vif { .. }));
        if uses_vifs && netback.is_none() {
            anyhow::bail!(
                "vif links need the Xen netback: run domain-nv with --xen in a Xen driver domain"
            );
        }
        let epoch = Instant::now();
        let mut external = Endpoint::open(
            "external",
            &config.external.link,
            config.mtu,
            config.external.address,
            config.external.gateway,
            0,
            epoch,
        )?;
        if let Frames::Link(device) = &mut external.frames {
            device.set_rx_budget(config.listen_pool);
        }
        let mut replicas = Vec::new();
        for (i, r) in config.replicas.iter().enumerate() {
            replicas.push(Endpoint::open(
                &r.name,
                &r.link,
                config.mtu,
                r.address,
                None,
                1 + i as u8,
                epoch,
            )?);
        }
        let mut app = Appliance {
            netback,
            voter_config: config.voter_config(),
            status: StatusBook::new(&config),
            listeners: vec![Vec::new(); config.services.len()],
            config,
            epoch,
            external,
            // The first probe waits one interval: a link that just came up may drop frames for a
            // moment (Linux starts a TAP's queue only when its link-watch event runs, up to a
            // second after the carrier), and a lost ARP request keeps smoltcp from asking again
            // for a second, which would stall the first clients' connections as well.
            probes: replicas
                .iter()
                .map(|_| Probe {
                    attempt: None,
                    next_at: epoch + PROBE_INTERVAL,
                })
                .collect(),
            replicas,
            conns: Vec::new(),
            next_conn_id: 1,
        };
        for s in 0..app.config.services.len() {
            while app.listeners[s].len() < app.config.listen_pool {
                app.add_listener(s)?;
            }
        }
        app.status.set_ready(true);
        Ok(app)
    }

    fn add_listener(&mut self, service: usize) -> anyhow::Result<()> {
        let mut s = new_socket(self.config.tcp_buffer);
        s.listen(self.config.services[service].listen)
            .map_err(|e| {
                anyhow::anyhow!(
                    "service {}: listen: {e:?}",
                    self.config.services[service].name
                )
            })?;
        let h = self.external.sockets.add(s);
        self.listeners[service].push(h);
        Ok(())
    }

    /// Every descriptor the loop waits on: the links this process opened (external first, then
    /// replicas in order), then netback's xenstore and event-channel descriptors.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let mut fds: Vec<BorrowedFd<'_>> = std::iter::once(&self.external)
            .chain(self.replicas.iter())
            .filter_map(|e| match &e.frames {
                Frames::Link(d) => Some(d.as_fd()),
                Frames::Vif(_) => None,
            })
            .collect();
        if let Some(nb) = &self.netback {
            fds.push(nb.xenstore_fd());
            fds.push(nb.evtchn_fd());
        }
        fds
    }

    /// Marks the link behind `fds()[index]` down after poll(2) reported an error on it.
    pub fn link_error(&mut self, index: usize) {
        let link = std::iter::once(&mut self.external)
            .chain(self.replicas.iter_mut())
            .filter_map(|e| match &mut e.frames {
                Frames::Link(d) => Some(d),
                Frames::Vif(_) => None,
            })
            .nth(index);
        if let Some(d) = link {
            d.set_down();
        }
    }

    /// The status book.
    pub fn status(&mut self) -> &mut StatusBook {
        &mut self.status
    }

    /// Ends the appliance for a new configuration: every connection is reset (clients and
    /// replicas get an RST), and the netback (with its connected vifs) is handed back. The
    /// replicas' health and faults go to the next appliance with `StatusBook::carry_over`.
    pub fn shutdown(mut self, now: Instant) -> Option<Netback<G, E>> {
        for conn in &self.conns {
            self.external.tcp(conn.client).abort();
            for (r, side) in conn.replicas.iter().enumerate() {
                if let Some(h) = side.socket {
                    self.replicas[r].tcp(h).abort();
                }
            }
        }
        for (r, p) in self.probes.iter().enumerate() {
            if let Some(a) = &p.attempt {
                self.replicas[r].tcp(a.socket).abort();
            }
        }
        self.egress(now);
        self.netback.take()
    }

    /// Sends what the sockets queued on every link (egress only: ingress would take SYNs with
    /// no accept() to replace the listeners) and hands netback's queued frames to the guests.
    fn egress(&mut self, now: Instant) {
        let snow = smol_now(self.epoch, now);
        self.external.poll_egress(snow, self.netback.as_mut());
        for e in &mut self.replicas {
            e.poll_egress(snow, self.netback.as_mut());
        }
        if let Some(nb) = &mut self.netback {
            if let Err(e) = nb.flush(now) {
                log::warn!("netback: flush: {e}");
            }
        }
    }

    /// Number of client connections in progress.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// One round: poll every interface, accept, move bytes, vote, reap. Returns how long the
    /// caller may sleep (waiting for descriptors) before the next round.
    pub fn step(&mut self, now: Instant) -> Duration {
        let snow = smol_now(self.epoch, now);
        if let Some(nb) = &mut self.netback {
            if let Err(e) = nb.handle_xenstore_events(now) {
                log::warn!("netback: xenstore: {e}");
            }
            if let Err(e) = nb.handle_evtchn(now) {
                log::warn!("netback: event channels: {e}");
            }
        }
        for _ in 0..EXTERNAL_ROUNDS {
            self.external.poll(snow, self.netback.as_mut());
            self.accept(now);
            if !self.external.budget_exhausted() {
                break;
            }
        }
        for e in &mut self.replicas {
            e.poll(snow, self.netback.as_mut());
        }
        for i in 0..self.conns.len() {
            self.pump(i, now);
        }
        self.probe(now);
        self.egress(now);
        self.reap(now);
        for (r, e) in self.replicas.iter().enumerate() {
            self.status.set_link(r, e.is_up(self.netback.as_ref()));
        }
        self.next_wait(now)
    }

    fn next_wait(&mut self, now: Instant) -> Duration {
        let snow = smol_now(self.epoch, now);
        let mut wait = Duration::from_secs(1);
        if self
            .netback
            .as_ref()
            .is_some_and(|nb| nb.has_pending_work())
        {
            return Duration::ZERO;
        }
        let mut consider = |d: Option<Duration>| {
            if let Some(d) = d {
                wait = wait.min(d);
            }
        };
        consider(
            self.external
                .iface
                .poll_delay(snow, &self.external.sockets)
                .map(|d| Duration::from_micros(d.total_micros())),
        );
        for e in &mut self.replicas {
            consider(
                e.iface
                    .poll_delay(snow, &e.sockets)
                    .map(|d| Duration::from_micros(d.total_micros())),
            );
        }
        for (r, p) in self.probes.iter().enumerate() {
            match &p.attempt {
                Some(a) => consider(Some(a.deadline.saturating_duration_since(now))),
                None if self.status.replica_unproven(r) => {
                    consider(Some(p.next_at.saturating_duration_since(now)))
                }
                None => {}
            }
        }
        for c in &self.conns {
            consider(
                c.voter
                    .poll_timeout()
                    .map(|t| t.saturating_duration_since(now)),
            );
            for side in c.replicas.iter().filter(|s| !s.connected && !s.ended) {
                consider(Some(side.connect_deadline.saturating_duration_since(now)));
            }
            if let Some(t) = c.finished_at {
                consider(Some((t + LINGER).saturating_duration_since(now)));
            }
        }
        wait
    }

    /// Runs the health probes (see [`Probe`]).
    fn probe(&mut self, now: Instant) {
        let Some(service) = self.config.services.first() else {
            return;
        };
        for (r, ep) in self.replicas.iter_mut().enumerate() {
            let link_up = ep.is_up(self.netback.as_ref());
            let wanted = link_up && self.status.replica_unproven(r);
            let probe = &mut self.probes[r];
            if let Some(a) = &mut probe.attempt {
                let s = ep.sockets.get_mut::<tcp::Socket>(a.socket);
                // A reset that cannot go out (no link, no neighbour) is given up: the socket is
                // dropped as it is.
                if socket_gone(s) || !link_up || (a.reset && now >= a.deadline) {
                    ep.sockets.remove(a.socket);
                    ep.ports_in_use.remove(&a.port);
                    probe.attempt = None;
                } else if !a.reset {
                    let accepted = !matches!(
                        s.state(),
                        State::SynSent | State::SynReceived | State::Closed
                    );
                    if accepted && wanted {
                        log::info!("replica {}: health probe accepted: live", ep.name);
                        self.status.replica_reachable(r);
                    }
                    if accepted || now >= a.deadline || !wanted {
                        s.abort();
                        a.reset = true;
                        a.deadline = now + PROBE_INTERVAL;
                    }
                }
                continue;
            }
            if !wanted || now < probe.next_at {
                continue;
            }
            probe.next_at = now + PROBE_INTERVAL;
            let Some(port) = ep.alloc_port() else {
                continue;
            };
            let mut sock = new_socket(PROBE_BUFFER);
            let remote = (
                IpAddress::Ipv4(Ipv4Address::from(self.config.replicas[r].replica_address)),
                service.replica_port,
            );
            match sock.connect(ep.iface.context(), remote, port) {
                Ok(()) => {
                    let deadline = now + Duration::from_millis(self.config.connect_timeout_ms);
                    probe.attempt = Some(ProbeAttempt {
                        socket: ep.sockets.add(sock),
                        port,
                        deadline,
                        reset: false,
                    });
                }
                Err(e) => {
                    log::warn!("replica {}: health probe: connect: {e:?}", ep.name);
                    ep.ports_in_use.remove(&port);
                }
            }
        }
    }

    /// Turns listening sockets that completed a handshake into connections and keeps
    /// `listen_pool` sockets listening per service (smoltcp has no backlog: a socket that got a
    /// SYN stops listening, so it is replaced at once; half-open ones are bounded).
    fn accept(&mut self, now: Instant) {
        for s in 0..self.listeners.len() {
            let mut k = 0;
            let (mut listening, mut half_open) = (0, 0);
            while k < self.listeners[s].len() {
                let h = self.listeners[s][k];
                match self.external.tcp(h).state() {
                    State::Listen => listening += 1,
                    State::SynReceived => half_open += 1,
                    State::Closed => {
                        self.listeners[s].swap_remove(k);
                        self.external.sockets.remove(h);
                        continue;
                    }
                    _ => {
                        self.listeners[s].swap_remove(k);
                        self.open_connection(s, h, now);
                        continue;
                    }
                }
                k += 1;
            }
            while listening < self.config.listen_pool && half_open < MAX_HALF_OPEN {
                if let Err(e) = self.add_listener(s) {
                    log::error!("{e}");
                    break;
                }
                listening += 1;
            }
            // Half-open sockets that were reset return to Listen: drop the surplus.
            while listening > self.config.listen_pool {
                let Some(k) = self.listeners[s]
                    .iter()
                    .position(|&h| self.external.tcp(h).state() == State::Listen)
                else {
                    break;
                };
                let h = self.listeners[s].swap_remove(k);
                self.external.sockets.remove(h);
                listening -= 1;
            }
        }
    }

    fn open_connection(&mut self, service: usize, client: SocketHandle, now: Instant) {
        let id = self.next_conn_id;
        self.next_conn_id += 1;
        let svc = &self.config.services[service];
        let peer = self.external.tcp(client).remote_endpoint();
        log::info!(
            "connection {id}: {} from {}",
            svc.name,
            peer.map(|p| p.to_string()).unwrap_or_default()
        );
        let mut sides = Vec::new();
        let voter = Voter::new(self.voter_config.clone(), self.replicas.len(), now);
        for (r, ep) in self.replicas.iter_mut().enumerate() {
            let deadline = now + Duration::from_millis(self.config.connect_timeout_ms);
            let mut side = ReplicaSide {
                socket: None,
                port: 0,
                connect_deadline: deadline,
                connected: false,
                remote_fin: false,
                ended: false,
                input_closed: false,
                counted: false,
            };
            if let Some(port) = ep.alloc_port() {
                let mut sock = new_socket(self.config.tcp_buffer);
                let remote = (
                    IpAddress::Ipv4(Ipv4Address::from(self.config.replicas[r].replica_address)),
                    svc.replica_port,
                );
                match sock.connect(ep.iface.context(), remote, port) {
                    Ok(()) => {
                        side.socket = Some(ep.sockets.add(sock));
                        side.port = port;
                    }
                    Err(e) => {
                        log::warn!("connection {id}: replica {}: connect: {e:?}", ep.name);
                        ep.ports_in_use.remove(&port);
                    }
                }
            }
            sides.push(side);
        }
        let mut conn = Connection {
            id,
            service,
            client,
            client_fin_reported: false,
            client_remote_fin: false,
            client_reset_reported: false,
            close_client: false,
            client_closed: false,
            client_aborted: false,
            replicas: sides,
            voter,
            released_counted: 0,
            finished_at: None,
        };
        for (r, side) in conn.replicas.iter_mut().enumerate() {
            if side.socket.is_none() {
                side.ended = true;
                conn.voter.replica_refused(r, now);
            }
        }
        self.status.connection_opened(service);
        self.conns.push(conn);
    }

    /// Moves bytes and events of connection `i`.
    fn pump(&mut self, i: usize, now: Instant) {
        let conn = &mut self.conns[i];
        if conn.voter.poll_timeout().is_some_and(|t| t <= now) {
            conn.voter.handle_timeout(now);
        }
        // Replica connection states.
        for (r, side) in conn.replicas.iter_mut().enumerate() {
            let Some(h) = side.socket else { continue };
            if side.ended {
                continue;
            }
            let s = self.replicas[r].tcp(h);
            let state = s.state();
            if !side.connected {
                match state {
                    State::SynSent | State::SynReceived if now >= side.connect_deadline => {
                        s.abort();
                        side.ended = true;
                        conn.voter.replica_refused(r, now);
                    }
                    State::SynSent | State::SynReceived => {}
                    State::Closed => {
                        side.ended = true;
                        conn.voter.replica_refused(r, now);
                    }
                    _ => {
                        side.connected = true;
                        side.counted = true;
                        self.status.replica_connected(r);
                        conn.voter.replica_connected(r, now);
                    }
                }
            }
        }
        // Client -> voter.
        let c = self.external.tcp(conn.client);
        recv_into_voter(
            c,
            &mut conn.voter,
            |v| v.client_window(),
            |v, b| v.push_client(b, now),
        );
        let cstate = c.state();
        if remote_closed(cstate) {
            conn.client_remote_fin = true;
        }
        if conn.client_remote_fin && c.recv_queue() == 0 && !conn.client_fin_reported {
            conn.client_fin_reported = true;
            log::debug!(
                "connection {}: client FIN after {} bytes in, {} released",
                conn.id,
                conn.voter.stats().client_bytes_in,
                conn.voter.stats().bytes_released
            );
            conn.voter.client_fin(now);
        }
        // A client socket that closes without our FIN (RST, also after the client's own FIN, or
        // a timeout) is gone: nothing more can reach it, so every replica is reset at once.
        if cstate == State::Closed
            && !conn.client_closed
            && !conn.client_aborted
            && !conn.client_reset_reported
        {
            conn.client_reset_reported = true;
            log::debug!(
                "connection {}: client reset after {} bytes in, {} released",
                conn.id,
                conn.voter.stats().client_bytes_in,
                conn.voter.stats().bytes_released
            );
            conn.voter.client_reset(now);
        }
        // Voter <-> replicas.
        for (r, side) in conn.replicas.iter_mut().enumerate() {
            let Some(h) = side.socket else { continue };
            if !side.connected || side.ended {
                continue;
            }
            let s = self.replicas[r].tcp(h);
            send_from_voter(
                s,
                &mut conn.voter,
                |v| v.replica_input(r),
                |v, n| v.replica_input_sent(r, n),
            );
            // The client's FIN goes on only once the replica has acknowledged all input, so
            // that every replica sees the last request before the end of input (a service may
            // answer differently, e.g. `Connection: close`, when both arrive together).
            if conn.voter.replica_input_fin(r) && !side.input_closed && s.send_queue() == 0 {
                side.input_closed = true;
                s.close();
            }
            recv_into_voter(
                s,
                &mut conn.voter,
                |v| v.replica_window(r),
                |v, b| v.push_replica(r, b, now),
            );
            let state = s.state();
            if remote_closed(state) {
                side.remote_fin = true;
            }
            if side.remote_fin && s.recv_queue() == 0 {
                side.ended = true;
                log::debug!(
                    "connection {}: replica {r} FIN ({} released)",
                    conn.id,
                    conn.voter.stats().bytes_released
                );
                conn.voter.replica_fin(r, now);
            } else if state == State::Closed && !side.remote_fin {
                side.ended = true;
                log::debug!(
                    "connection {}: replica {r} reset ({} released)",
                    conn.id,
                    conn.voter.stats().bytes_released
                );
                conn.voter.replica_reset(r, now);
            }
        }
        // Voter -> client.
        let c = self.external.tcp(conn.client);
        send_from_voter(
            c,
            &mut conn.voter,
            |v| v.client_output(),
            |v, n| v.client_output_sent(n, now),
        );
        // Events.
        let service_name = &self.config.services[conn.service].name;
        while let Some(ev) = conn.voter.poll_event() {
            match ev {
                VoterEvent::Fault(f) => {
                    let name = &self.config.replicas[f.replica].name;
                    log::warn!(
                        "connection {}: replica {name} faulty: {} ({:?})",
                        conn.id,
                        fault_kind_name(&f.kind),
                        f.kind
                    );
                    self.status
                        .record_fault(f.replica, &f.kind, service_name, conn.id);
                }
                VoterEvent::CloseReplica(r) => {
                    if let Some(h) = conn.replicas[r].socket {
                        self.replicas[r].tcp(h).close();
                        conn.replicas[r].input_closed = true;
                    }
                }
                VoterEvent::ResetReplica(r) => {
                    if let Some(h) = conn.replicas[r].socket {
                        self.replicas[r].tcp(h).abort();
                    }
                    conn.replicas[r].ended = true;
                }
                VoterEvent::CloseClient => conn.close_client = true,
                VoterEvent::ResetClient => {
                    log::warn!(
                        "connection {}: client connection reset (no agreed output)",
                        conn.id
                    );
                    self.external.tcp(conn.client).abort();
                    conn.client_aborted = true;
                }
            }
        }
        if conn.close_client
            && !conn.client_closed
            && !conn.client_aborted
            && conn.voter.client_output().is_empty()
        {
            conn.client_closed = true;
            self.external.tcp(conn.client).close();
        }
        // Bytes voted per replica in agreement.
        let released = conn.voter.stats().bytes_released;
        let delta = released - conn.released_counted;
        if delta > 0 {
            conn.released_counted = released;
            for r in 0..conn.replicas.len() {
                if matches!(
                    conn.voter.replica_state(r),
                    ReplicaState::Live | ReplicaState::Finished
                ) {
                    self.status.add_bytes_voted(r, delta);
                }
            }
        }
        if conn.finished_at.is_none() && (conn.client_aborted || conn.voter.is_finished()) {
            conn.finished_at = Some(now);
        }
    }

    /// Removes connections whose sockets are all gone; aborts those lingering too long.
    fn reap(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.conns.len() {
            let conn = &self.conns[i];
            let Some(done) = conn.finished_at else {
                i += 1;
                continue;
            };
            let linger_over = now >= done + LINGER;
            let mut all_gone = true;
            {
                let c = self.external.tcp(conn.client);
                if linger_over && !socket_gone(c) {
                    c.abort();
                }
                all_gone &= socket_gone(c);
            }
            let force = linger_over || conn.client_aborted;
            for (r, side) in conn.replicas.iter().enumerate() {
                if let Some(h) = side.socket {
                    let cut = matches!(
                        conn.voter.replica_state(r),
                        ReplicaState::Faulty | ReplicaState::Gone
                    );
                    let s = self.replicas[r].tcp(h);
                    // A connection that is over for the client leaves nothing open on replicas.
                    if !socket_gone(s) && (force || cut) && s.state() != State::Closed {
                        s.abort();
                    }
                    all_gone &= socket_gone(s);
                }
            }
            if !all_gone {
                i += 1;
                continue;
            }
            let conn = self.conns.swap_remove(i);
            self.external.sockets.remove(conn.client);
            for (r, side) in conn.replicas.iter().enumerate() {
                if let Some(h) = side.socket {
                    self.replicas[r].sockets.remove(h);
                    self.replicas[r].ports_in_use.remove(&side.port);
                }
                if side.counted {
                    self.status.replica_disconnected(r);
                }
            }
            self.status.connection_closed(conn.service);
            log::info!(
                "connection {}: done, {} bytes in, {} bytes voted out",
                conn.id,
                conn.voter.stats().client_bytes_in,
                conn.voter.stats().bytes_released
            );
        }
    }
}
