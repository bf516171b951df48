//! The event loop: smoltcp terminates client TCP on the external link, opens one TCP connection
//! per replica per client connection on the replica links, and moves bytes through one
//! [`Voter`] per client connection.
//!
//! Single-threaded and poll(2)-driven: every link is a descriptor; the loop sleeps until a frame
//! arrives or the earliest smoltcp / voter / connect deadline.

use std::collections::HashSet;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, CongestionControl, State};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address};

use crate::config::{Config, Ipv4Cidr, LinkConfig};
use crate::link::LinkDevice;
use crate::status::{fault_kind_name, StatusBook};
use crate::voter::{ReplicaState, Voter, VoterConfig, VoterEvent};

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

/// One link with its smoltcp interface and sockets.
struct Endpoint {
    name: String,
    device: LinkDevice,
    iface: Interface,
    sockets: SocketSet<'static>,
    ports_in_use: HashSet<u16>,
    next_port: u16,
}

impl Endpoint {
    fn open(name: &str, link: &LinkConfig, addr: Ipv4Cidr, gateway: Option<std::net::Ipv4Addr>, mac_index: u8, epoch: Instant) -> anyhow::Result<Endpoint> {
        let mut device = LinkDevice::open(link).map_err(|e| anyhow::anyhow!("link {name}: {e}"))?;
        // Locally administered unicast MAC, one per link.
        let mac = EthernetAddress([0x02, 0x4e, 0x56, 0x00, 0x00, mac_index]);
        let mut cfg = IfaceConfig::new(HardwareAddress::Ethernet(mac));
        cfg.random_seed = u64::from(std::process::id()) << 8 | u64::from(mac_index);
        let mut iface = Interface::new(cfg, &mut device, smol_now(epoch, Instant::now()));
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(Ipv4Address::from(addr.addr)), addr.prefix));
        });
        if let Some(gw) = gateway {
            iface
                .routes_mut()
                .add_default_ipv4_route(Ipv4Address::from(gw))
                .map_err(|e| anyhow::anyhow!("link {name}: default route: {e:?}"))?;
        }
        Ok(Endpoint { name: name.to_owned(), device, iface, sockets: SocketSet::new(Vec::new()), ports_in_use: HashSet::new(), next_port: EPHEMERAL_FIRST })
    }

    fn poll(&mut self, now: smoltcp::time::Instant) {
        self.device.begin_poll();
        self.iface.poll(now, &mut self.device, &mut self.sockets);
    }

    fn poll_egress(&mut self, now: smoltcp::time::Instant) {
        self.iface.poll_egress(now, &mut self.device, &mut self.sockets);
    }

    fn alloc_port(&mut self) -> Option<u16> {
        for _ in 0..=(u16::MAX - EPHEMERAL_FIRST) {
            let p = self.next_port;
            self.next_port = if p == u16::MAX { EPHEMERAL_FIRST } else { p + 1 };
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
    let mut s = tcp::Socket::new(tcp::SocketBuffer::new(vec![0; buffer]), tcp::SocketBuffer::new(vec![0; buffer]));
    s.set_ack_delay(None);
    s.set_nagle_enabled(false);
    s.set_congestion_control(CongestionControl::Cubic);
    s.set_timeout(Some(smoltcp::time::Duration::from_micros(SOCKET_TIMEOUT.as_micros() as u64)));
    s
}

/// True in the states where the peer's FIN has arrived.
fn remote_closed(state: State) -> bool {
    matches!(state, State::CloseWait | State::LastAck | State::Closing | State::TimeWait)
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

/// The running appliance.
pub struct Appliance {
    config: Config,
    voter_config: VoterConfig,
    epoch: Instant,
    external: Endpoint,
    replicas: Vec<Endpoint>,
    listeners: Vec<Vec<SocketHandle>>,
    conns: Vec<Connection>,
    next_conn_id: u64,
    status: StatusBook,
}

impl Appliance {
    /// Opens every link and starts listening on every service.
    pub fn new(config: Config) -> anyhow::Result<Appliance> {
        let epoch = Instant::now();
        let mut external = Endpoint::open("external", &config.external.link, config.external.address, config.external.gateway, 0, epoch)?;
        external.device.set_rx_budget(config.listen_pool);
        let mut replicas = Vec::new();
        for (i, r) in config.replicas.iter().enumerate() {
            replicas.push(Endpoint::open(&r.name, &r.link, r.address, None, 1 + i as u8, epoch)?);
        }
        let mut app = Appliance {
            voter_config: config.voter_config(),
            status: StatusBook::new(&config),
            listeners: vec![Vec::new(); config.services.len()],
            config,
            epoch,
            external,
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
            .map_err(|e| anyhow::anyhow!("service {}: listen: {e:?}", self.config.services[service].name))?;
        let h = self.external.sockets.add(s);
        self.listeners[service].push(h);
        Ok(())
    }

    /// Every descriptor the loop waits on (external link first, then replica links in order).
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        std::iter::once(&self.external).chain(self.replicas.iter()).map(|e| e.device.as_fd()).collect()
    }

    /// Marks link `index` (in `fds()` order) down after poll(2) reported an error on it.
    pub fn link_error(&mut self, index: usize) {
        if index == 0 {
            self.external.device.set_down();
        } else if let Some(e) = self.replicas.get_mut(index - 1) {
            e.device.set_down();
        }
    }

    /// The status book.
    pub fn status(&mut self) -> &mut StatusBook {
        &mut self.status
    }

    /// Number of client connections in progress.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// One round: poll every interface, accept, move bytes, vote, reap. Returns how long the
    /// caller may sleep (waiting for descriptors) before the next round.
    pub fn step(&mut self, now: Instant) -> Duration {
        let snow = smol_now(self.epoch, now);
        for _ in 0..EXTERNAL_ROUNDS {
            self.external.poll(snow);
            self.accept(now);
            if !self.external.device.budget_exhausted() {
                break;
            }
        }
        for e in &mut self.replicas {
            e.poll(snow);
        }
        for i in 0..self.conns.len() {
            self.pump(i, now);
        }
        // Egress only: ingress here would take SYNs with no accept() to replace the listeners.
        self.external.poll_egress(snow);
        for e in &mut self.replicas {
            e.poll_egress(snow);
        }
        self.reap(now);
        for (r, e) in self.replicas.iter().enumerate() {
            self.status.set_link(r, e.device.is_up());
        }
        self.next_wait(now)
    }

    fn next_wait(&mut self, now: Instant) -> Duration {
        let snow = smol_now(self.epoch, now);
        let mut wait = Duration::from_secs(1);
        let mut consider = |d: Option<Duration>| {
            if let Some(d) = d {
                wait = wait.min(d);
            }
        };
        consider(self.external.iface.poll_delay(snow, &self.external.sockets).map(|d| Duration::from_micros(d.total_micros())));
        for e in &mut self.replicas {
            consider(e.iface.poll_delay(snow, &e.sockets).map(|d| Duration::from_micros(d.total_micros())));
        }
        for c in &self.conns {
            consider(c.voter.poll_timeout().map(|t| t.saturating_duration_since(now)));
            for side in c.replicas.iter().filter(|s| !s.connected && !s.ended) {
                consider(Some(side.connect_deadline.saturating_duration_since(now)));
            }
            if let Some(t) = c.finished_at {
                consider(Some((t + LINGER).saturating_duration_since(now)));
            }
        }
        wait
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
                let Some(k) = self.listeners[s].iter().position(|&h| self.external.tcp(h).state() == State::Listen) else { break };
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
        log::info!("connection {id}: {} from {}", svc.name, peer.map(|p| p.to_string()).unwrap_or_default());
        let mut sides = Vec::new();
        let voter = Voter::new(self.voter_config.clone(), self.replicas.len(), now);
        for (r, ep) in self.replicas.iter_mut().enumerate() {
            let deadline = now + Duration::from_millis(self.config.connect_timeout_ms);
            let mut side = ReplicaSide { socket: None, port: 0, connect_deadline: deadline, connected: false, remote_fin: false, ended: false, input_closed: false, counted: false };
            if let Some(port) = ep.alloc_port() {
                let mut sock = new_socket(self.config.tcp_buffer);
                let remote = (IpAddress::Ipv4(Ipv4Address::from(self.config.replicas[r].replica_address)), svc.replica_port);
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
        while conn.voter.client_window() > 0 && c.can_recv() {
            let window = conn.voter.client_window();
            let voter = &mut conn.voter;
            match c.recv(|buf| {
                let n = voter.push_client(&buf[..buf.len().min(window)], now);
                (n, n)
            }) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
        let cstate = c.state();
        if remote_closed(cstate) {
            conn.client_remote_fin = true;
        }
        if conn.client_remote_fin && c.recv_queue() == 0 && !conn.client_fin_reported {
            conn.client_fin_reported = true;
            conn.voter.client_fin(now);
        }
        if cstate == State::Closed && !conn.client_remote_fin && !conn.client_closed && !conn.client_aborted && !conn.client_reset_reported {
            conn.client_reset_reported = true;
            conn.voter.client_reset(now);
        }
        // Voter <-> replicas.
        for (r, side) in conn.replicas.iter_mut().enumerate() {
            let Some(h) = side.socket else { continue };
            if !side.connected || side.ended {
                continue;
            }
            let s = self.replicas[r].tcp(h);
            loop {
                let data = conn.voter.replica_input(r);
                if data.is_empty() || !s.can_send() {
                    break;
                }
                match s.send_slice(data) {
                    Ok(n) if n > 0 => conn.voter.replica_input_sent(r, n),
                    _ => break,
                }
            }
            if conn.voter.replica_input_fin(r) && !side.input_closed {
                side.input_closed = true;
                s.close();
            }
            while conn.voter.replica_window(r) > 0 && s.can_recv() {
                let window = conn.voter.replica_window(r);
                let voter = &mut conn.voter;
                match s.recv(|buf| {
                    let n = voter.push_replica(r, &buf[..buf.len().min(window)], now);
                    (n, n)
                }) {
                    Ok(n) if n > 0 => {}
                    _ => break,
                }
            }
            let state = s.state();
            if remote_closed(state) {
                side.remote_fin = true;
            }
            if side.remote_fin && s.recv_queue() == 0 {
                side.ended = true;
                conn.voter.replica_fin(r, now);
            } else if state == State::Closed && !side.remote_fin {
                side.ended = true;
                conn.voter.replica_reset(r, now);
            }
        }
        // Voter -> client.
        let c = self.external.tcp(conn.client);
        loop {
            let out = conn.voter.client_output();
            if out.is_empty() || !c.can_send() {
                break;
            }
            match c.send_slice(out) {
                Ok(n) if n > 0 => conn.voter.client_output_sent(n),
                _ => break,
            }
        }
        // Events.
        let service_name = &self.config.services[conn.service].name;
        while let Some(ev) = conn.voter.poll_event() {
            match ev {
                VoterEvent::Fault(f) => {
                    let name = &self.config.replicas[f.replica].name;
                    log::warn!("connection {}: replica {name} faulty: {} ({:?})", conn.id, fault_kind_name(&f.kind), f.kind);
                    self.status.record_fault(f.replica, &f.kind, service_name, conn.id);
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
                    log::warn!("connection {}: client connection reset (no agreed output)", conn.id);
                    self.external.tcp(conn.client).abort();
                    conn.client_aborted = true;
                }
            }
        }
        if conn.close_client && !conn.client_closed && !conn.client_aborted && conn.voter.client_output().is_empty() {
            conn.client_closed = true;
            self.external.tcp(conn.client).close();
        }
        // Bytes voted per replica in agreement.
        let released = conn.voter.stats().bytes_released;
        let delta = released - conn.released_counted;
        if delta > 0 {
            conn.released_counted = released;
            for r in 0..conn.replicas.len() {
                if matches!(conn.voter.replica_state(r), ReplicaState::Live | ReplicaState::Finished) {
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
            let gone = |s: &mut tcp::Socket<'static>| s.state() == State::TimeWait || (s.state() == State::Closed && s.remote_endpoint().is_none());
            {
                let c = self.external.tcp(conn.client);
                if linger_over && !gone(c) {
                    c.abort();
                }
                all_gone &= gone(c);
            }
            let force = linger_over || conn.client_aborted;
            for (r, side) in conn.replicas.iter().enumerate() {
                if let Some(h) = side.socket {
                    let cut = matches!(conn.voter.replica_state(r), ReplicaState::Faulty | ReplicaState::Gone);
                    let s = self.replicas[r].tcp(h);
                    // A connection that is over for the client leaves nothing open on replicas.
                    if !gone(s) && (force || cut) && s.state() != State::Closed {
                        s.abort();
                    }
                    all_gone &= gone(s);
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
            log::info!("connection {}: done, {} bytes in, {} bytes voted out", conn.id, conn.voter.stats().client_bytes_in, conn.voter.stats().bytes_released);
        }
    }
}
