//! The event loop: smoltcp terminates client TCP on the external link, opens one TCP connection
//! per replica per client connection on the replica links, and moves bytes through one
//! [`Voter`](crate::voter::Voter) per client connection.
//!
//! Single-threaded and poll(2)-driven: every link is a descriptor; the loop sleeps until a frame
//! arrives or the earliest smoltcp / voter / connect deadline. The caller owns the loop: it waits
//! on [`Appliance::fds`] (each tagged with its [`FdOwner`]) and calls [`Appliance::step`].
//!
//! - `endpoint`: one link with its smoltcp interface and sockets;
//! - `port_pool`: the local ports of the connections a link opens, least recently used first;
//! - `sockets`: making TCP sockets, moving bytes between a socket and a voter;
//! - `listen`: the listening sockets of every TCP service;
//! - `datagram`: a UDP service, its per-client sockets on the replica links and its voter;
//! - `limits`: the connection limits, in all and per client address;
//! - `answer`: the replica timeout, how long a client may wait for an answer;
//! - `memory`: the memory budget of the open connections;
//! - `connection`: one client connection, its voter and its phases per round;
//! - `protocol_layer`: which gate and reply path a service's connections get (its protocol);
//! - `gate`: a connection's client input held until the service's sequencer admits it;
//! - `reply_path`: replicas' output through their reply framers, masked fields restored on
//!   release;
//! - `replica_side`: one replica's connection within a client connection;
//! - `probe`: health probes of replicas no connection has shown serving yet;
//! - `reconfigure`: what a config change may change in place.

mod answer;
mod connect_deadline;
mod connection;
mod datagram;
mod endpoint;
mod gate;
mod limits;
mod listen;
mod memory;
mod port_pool;
mod probe;
mod protocol_layer;
mod reconfigure;
mod replica_side;
mod reply_path;
mod sockets;

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use netback::Netback;
use xen::{EventChannel, GrantTable};

use crate::config::{Config, LinkConfig, Transport, VoterSettings};
use crate::membership::Membership;
use crate::protocol::sequencer::Sequencer;
use crate::status::StatusBook;
use crate::voter::VoterConfig;
use connection::{Connection, Context};
use datagram::UdpService;
use endpoint::{smol_now, Addressing, Endpoint, EXTERNAL_MAC};
use limits::ConnectionLimits;
use listen::ListenPool;
use memory::{state_memory, MemoryBudget};
use probe::{Probe, ProbeTarget};
pub use reconfigure::Refused;
pub use sockets::ACK_DELAY;

/// Receive rounds per step on the external link; each round takes at most `listen_pool` frames
/// so that listeners are replenished between SYNs of a burst.
const EXTERNAL_ROUNDS: usize = 32;

/// Most egress rounds per step with UDP services (each UDP socket sends one datagram per round).
const UDP_EGRESS_ROUNDS: usize = 64;
/// Extra rounds per step over connections whose waiting request was admitted after they were
/// pumped (a chain of admissions longer than this goes on at the next step).
const ADMISSION_ROUNDS: usize = 4;

/// One of the appliance's links.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkId {
    /// The link clients come from.
    External,
    /// Replica `.0`'s link (its index in the config's `replicas`).
    Replica(usize),
}

/// What a descriptor returned by [`Appliance::fds`] belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdOwner {
    /// A link this process opened (TAP, `AF_PACKET`); a vif has no descriptor of its own.
    Link(LinkId),
    /// Netback's xenstore connection (its watches).
    NetbackXenstore,
    /// Netback's event channels.
    NetbackEvtchn,
}

/// A descriptor the loop waits on for input, tagged with what it belongs to.
#[derive(Clone, Copy, Debug)]
pub struct WaitFd<'a> {
    /// What it belongs to.
    pub owner: FdOwner,
    /// The descriptor.
    pub fd: BorrowedFd<'a>,
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
    listen: ListenPool,
    limits: ConnectionLimits,
    budget: MemoryBudget,
    conns: Vec<Connection>,
    udp: Vec<UdpService>,
    next_conn_id: u64,
    membership: Membership,
    status: StatusBook,
    /// One per service, in config order (services are fixed for the appliance's life).
    sequencers: Vec<Sequencer>,
    /// The links the caller's poll(2) found readable, for the next step only
    /// ([`Appliance::set_readable`]); `None`: the step reads every link.
    readable: Option<Vec<LinkId>>,
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
        let external_addressing = Addressing {
            addr: config.external.address,
            gateway: config.external.gateway,
            mac: EXTERNAL_MAC,
            seed: 0,
        };
        let mut external = Endpoint::open(
            "external",
            &config.external.link,
            config.mtu,
            external_addressing,
            epoch,
        )?;
        if let Some(device) = external.device() {
            device.set_rx_budget(config.listen_pool);
        }
        let mut replicas = Vec::new();
        for (i, r) in config.replicas.iter().enumerate() {
            replicas.push(Endpoint::open_replica(r, i, config.mtu, epoch)?);
        }
        let listen = ListenPool::new(&mut external, &config)?;
        let config_services = config.services.len();
        let mut status = StatusBook::new(&config);
        status.set_ready(true);
        let limits =
            ConnectionLimits::new(config.max_connections, config.max_connections_per_client);
        let budget = MemoryBudget::new(config.memory_budget_mb << 20);
        let mut appliance = Appliance {
            netback,
            voter_config: config.voter_config(),
            membership: Membership::new(config.replicas.len(), config.probation),
            config,
            epoch,
            external,
            probes: replicas.iter().map(|_| Probe::new(epoch)).collect(),
            replicas,
            listen,
            limits,
            budget,
            conns: Vec::new(),
            udp: Vec::new(),
            next_conn_id: 1,
            status,
            sequencers: (0..config_services).map(|_| Sequencer::new()).collect(),
            readable: None,
        };
        for s in 0..appliance.config.services.len() {
            if appliance.config.services[s].transport == Transport::Udp {
                let (mut cx, _) = appliance.parts();
                let service = UdpService::open(s, &mut cx)?;
                appliance.udp.push(service);
            }
        }
        Ok(appliance)
    }

    /// Every descriptor the loop waits on: the links this process opened (external first, then
    /// replicas in order), then netback's xenstore and event-channel descriptors.
    pub fn fds(&self) -> Vec<WaitFd<'_>> {
        let links = std::iter::once((LinkId::External, &self.external)).chain(
            self.replicas
                .iter()
                .enumerate()
                .map(|(r, e)| (LinkId::Replica(r), e)),
        );
        let mut fds: Vec<WaitFd<'_>> = links
            .filter_map(|(id, e)| {
                e.link_fd().map(|fd| WaitFd {
                    owner: FdOwner::Link(id),
                    fd,
                })
            })
            .collect();
        if let Some(nb) = &self.netback {
            fds.push(WaitFd {
                owner: FdOwner::NetbackXenstore,
                fd: nb.xenstore_fd(),
            });
            fds.push(WaitFd {
                owner: FdOwner::NetbackEvtchn,
                fd: nb.evtchn_fd(),
            });
        }
        fds
    }

    /// Tells the next [`Appliance::step`] which links (of those with a descriptor, see
    /// [`Appliance::fds`]) poll(2) found readable: it reads only those, and vifs, and skips a
    /// read per idle link that would find nothing. Without this call a step reads every link.
    pub fn set_readable(&mut self, links: Vec<LinkId>) {
        self.readable = Some(links);
    }

    /// Marks `link` down after poll(2) reported an error on its descriptor (a vif has none:
    /// nothing to do).
    pub fn link_error(&mut self, link: LinkId) {
        let endpoint = match link {
            LinkId::External => Some(&mut self.external),
            LinkId::Replica(r) => self.replicas.get_mut(r),
        };
        if let Some(d) = endpoint.and_then(Endpoint::device) {
            d.set_down();
        }
    }

    /// The status book.
    pub fn status(&mut self) -> &mut StatusBook {
        &mut self.status
    }

    /// The membership book: which replicas vote on new connections.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Applies a changed config in place, without resetting a client: replicas are matched by
    /// name (see [`Refused`] and the `reconfigure` module for what may change). Open
    /// connections go on with the replicas they started with; a replica no longer configured is
    /// dropped from them (its socket reset, the voter told as a reset, nobody blamed) and its
    /// link closed; a new replica's link is opened and the replica joins on probation; new
    /// connections use the new replicas and settings. On an error (a key that cannot change, a
    /// link that does not open) nothing changed.
    pub fn reconfigure(&mut self, config: Config, now: Instant) -> anyhow::Result<()> {
        let kept = reconfigure::plan(&self.config, &config)?;
        // the replicas' slots may move: the next step reads every link
        self.readable = None;
        let mut opened: Vec<Option<Endpoint>> = Vec::with_capacity(kept.len());
        for (i, (r, old)) in config.replicas.iter().zip(&kept).enumerate() {
            if old.is_some() {
                opened.push(None);
                continue;
            }
            let ep = Endpoint::open_replica(r, i, config.mtu, self.epoch)?;
            opened.push(Some(ep));
        }
        let mut new_slot = vec![None; self.replicas.len()];
        for (i, old) in kept.iter().enumerate() {
            if let Some(o) = *old {
                new_slot[o] = Some(i);
            }
        }
        let removed: Vec<usize> = (0..new_slot.len())
            .filter(|&o| new_slot[o].is_none())
            .collect();
        let mut udp = std::mem::take(&mut self.udp);
        let (mut cx, conns) = self.parts();
        for conn in conns.iter_mut() {
            for &o in &removed {
                conn.detach(o, &mut cx, now);
            }
        }
        for u in &mut udp {
            u.reset(&mut cx, &config);
        }
        self.udp = udp;
        for &o in &removed {
            self.probes[o].abort(&mut self.replicas[o]);
            log::info!(
                "replica {}: removed from the config",
                self.config.replicas[o].name
            );
        }
        self.egress(now);
        let mut old_links: Vec<Option<Endpoint>> = self.replicas.drain(..).map(Some).collect();
        let mut old_probes: Vec<Option<Probe>> = self.probes.drain(..).map(Some).collect();
        for (i, (old, ep)) in kept.iter().zip(opened).enumerate() {
            let (link, probe) = match *old {
                Some(o) => (old_links[o].take(), old_probes[o].take()),
                None => {
                    log::info!("replica {}: new in the config", config.replicas[i].name);
                    (ep, Some(Probe::new(self.epoch)))
                }
            };
            self.replicas.extend(link);
            self.probes.extend(probe);
        }
        for conn in &mut self.conns {
            conn.remap(&new_slot);
        }
        self.membership.reconfigure(&kept, config.probation);
        self.status = self.status.reconfigured(&config);
        for r in 0..config.replicas.len() {
            self.status.set_standing(r, self.membership.standing(r));
        }
        self.voter_config = config.voter_config();
        self.limits
            .set(config.max_connections, config.max_connections_per_client);
        self.budget.set(config.memory_budget_mb << 20);
        self.config = config;
        log::info!(
            "config changed in place: {} replicas, {} connections kept (membership epoch {})",
            self.replicas.len(),
            self.conns.len(),
            self.membership.epoch()
        );
        Ok(())
    }

    /// Ends the appliance when domain-nv stops: every connection is reset (clients and
    /// replicas get an RST), and the netback (with its connected vifs) is handed back.
    pub fn shutdown(mut self, now: Instant) -> Option<Netback<G, E>> {
        let (mut cx, conns) = self.parts();
        for conn in conns.iter() {
            conn.abort(&mut cx);
        }
        for (probe, ep) in self.probes.iter().zip(&mut self.replicas) {
            probe.abort(ep);
            log::info!("replica link {}", ep.port_summary());
        }
        self.egress(now);
        self.netback.take()
    }

    /// Sends what the sockets queued on every link (egress only: ingress would take SYNs with
    /// no accept() to replace the listeners) and hands netback's queued frames to the guests.
    fn egress(&mut self, now: Instant) {
        let snow = smol_now(self.epoch, now);
        // One round, as TCP needs; with UDP services, until their sockets sent what is queued
        // (a UDP socket sends one datagram per round).
        let rounds = if self.udp.is_empty() {
            1
        } else {
            UDP_EGRESS_ROUNDS
        };
        self.external
            .poll_egress(snow, self.netback.as_mut(), rounds);
        for e in &mut self.replicas {
            e.poll_egress(snow, self.netback.as_mut(), rounds);
        }
        if let Some(nb) = &mut self.netback {
            if let Err(e) = nb.flush(now) {
                log::warn!("netback: flush: {e}");
            }
        }
    }

    /// How long open connections may finish once domain-nv is told to stop (the config's
    /// `drain_timeout_ms`).
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.config.drain_timeout_ms)
    }

    /// Starts a graceful stop: the listeners close (no new client connection is accepted; a
    /// handshake in progress is reset) and the status says `draining`. Open connections go on
    /// until they end; [`Appliance::shutdown`] resets those left.
    pub fn drain(&mut self) {
        self.listen.close(&mut self.external);
        for u in &mut self.udp {
            u.close();
        }
        self.status.set_draining(true);
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
        let readable = self.readable.take();
        let is_readable = |link: LinkId| readable.as_ref().is_none_or(|r| r.contains(&link));
        let external_readable = is_readable(LinkId::External);
        for _ in 0..EXTERNAL_ROUNDS {
            self.external
                .poll(snow, self.netback.as_mut(), external_readable);
            self.accept(now);
            if !self.external.budget_exhausted() {
                break;
            }
        }
        for (r, e) in self.replicas.iter_mut().enumerate() {
            e.poll(snow, self.netback.as_mut(), is_readable(LinkId::Replica(r)));
        }
        let lost: Vec<usize> = (0..self.replicas.len())
            .filter(|&r| !self.replicas[r].is_up(self.netback.as_ref()))
            .collect();
        // Links on which this round found a backlog (`RX_BUDGET` frames or more waiting): the
        // replicas' bytes reach the voters late (or the kernel dropped them from the full
        // queue and they are sent again) through no fault of theirs.
        let delayed: Vec<usize> = (0..self.replicas.len())
            .filter(|&r| self.replicas[r].fell_behind())
            .collect();
        for &r in &delayed {
            self.status.link_overloaded(r);
        }
        let (mut cx, conns) = self.parts();
        for conn in conns.iter_mut() {
            for &r in &lost {
                conn.replica_link_lost(r, &mut cx);
            }
            for &r in &delayed {
                conn.replica_link_delayed(r, &cx, now);
            }
            conn.pump(&mut cx, now);
        }
        // A reply taken late in the round may have admitted a request of a connection pumped
        // earlier: those go on now rather than at the next wake-up.
        for _ in 0..ADMISSION_ROUNDS {
            let mut again = false;
            for conn in conns.iter_mut() {
                if conn.newly_admitted(cx.sequencers) {
                    conn.pump(&mut cx, now);
                    again = true;
                }
            }
            if !again {
                break;
            }
        }
        let mut udp = std::mem::take(&mut self.udp);
        let (mut cx, _) = self.parts();
        for u in &mut udp {
            u.pump(&mut cx, now);
        }
        self.udp = udp;
        self.probe(now);
        self.egress(now);
        self.reap(now);
        if let Some(nb) = &self.netback {
            self.status
                .set_vifs(|| nb.vifs().map(|v| (v.name(), v.stats())));
        }
        if let Some(link) = self.external.device() {
            self.status.set_external_link(link.stats());
        }
        for (r, e) in self.replicas.iter().enumerate() {
            // A link that went down may come back with a restarted replica: probation.
            if self.status.set_link(r, e.is_up(self.netback.as_ref())) && self.membership.rejoin(r)
            {
                log::info!(
                    "replica {}: link down: joining on probation (membership epoch {})",
                    self.config.replicas[r].name,
                    self.membership.epoch()
                );
                self.status.set_standing(r, self.membership.standing(r));
            }
        }
        self.next_wait(now)
    }

    /// The context connections work in, and the connections.
    fn parts(&mut self) -> (Context<'_>, &mut Vec<Connection>) {
        let cx = Context {
            external: &mut self.external,
            replicas: &mut self.replicas,
            status: &mut self.status,
            membership: &mut self.membership,
            config: &self.config,
            voter_config: &self.voter_config,
            budget: &mut self.budget,
            sequencers: &mut self.sequencers,
        };
        (cx, &mut self.conns)
    }

    /// Turns listening sockets that completed a handshake into connections (and keeps the
    /// listen pool full); one over a connection limit or the memory budget is reset before it
    /// reaches a replica.
    fn accept(&mut self, now: Instant) {
        for accepted in self.listen.accept(&mut self.external, &self.config) {
            let id = self.next_conn_id;
            self.next_conn_id += 1;
            let peer = self.external.tcp(accepted.client).remote_endpoint();
            if let Err(b) = self.budget.admit(state_memory(self.replicas.len())) {
                log::warn!(
                    "connection {id}: {} from {} refused: memory budget reached ({} of {} bytes)",
                    self.config.services[accepted.service].name,
                    peer.map(|p| p.to_string()).unwrap_or_default(),
                    b.in_use,
                    b.budget
                );
                self.status.refused_memory(accepted.service);
                self.listen.refuse(&mut self.external, accepted);
                continue;
            }
            if let Some(peer) = peer {
                if let Err(limit) = self.limits.admit(id, peer.addr) {
                    log::warn!(
                        "connection {id}: {} from {peer} refused: {limit:?} connection limit",
                        self.config.services[accepted.service].name
                    );
                    self.status.refused_limit(accepted.service);
                    self.listen.refuse(&mut self.external, accepted);
                    continue;
                }
            }
            let (mut cx, conns) = self.parts();
            conns.push(Connection::open(
                id,
                accepted.service,
                accepted.client,
                &mut cx,
                now,
            ));
        }
    }

    /// Runs the health probes (see [`Probe`]) on the first TCP service (a UDP-only group has
    /// none: its replicas show serving at their first answer).
    fn probe(&mut self, now: Instant) {
        let Some(service) = self
            .config
            .services
            .iter()
            .find(|s| s.transport == Transport::Tcp)
        else {
            return;
        };
        for (r, (probe, ep)) in self.probes.iter_mut().zip(&mut self.replicas).enumerate() {
            let target = ProbeTarget {
                replica: r,
                remote: (
                    self.config.replicas[r].replica_address,
                    service.replica_port,
                ),
                link_up: ep.is_up(self.netback.as_ref()),
                connect_timeout: Duration::from_millis(self.config.connect_timeout_ms),
                status: &mut self.status,
            };
            probe.run(ep, target, now);
        }
    }

    /// Removes connections whose sockets are all gone; aborts those lingering too long.
    fn reap(&mut self, now: Instant) {
        let (mut cx, conns) = self.parts();
        let mut released = Vec::new();
        let mut i = 0;
        while i < conns.len() {
            if conns[i].wind_down(&mut cx, now) {
                released.push(conns[i].id());
                conns.swap_remove(i).release(&mut cx);
            } else {
                i += 1;
            }
        }
        for id in released {
            self.limits.release(id);
        }
    }

    /// How long the loop may sleep: until the earliest smoltcp, probe, voter, connect or linger
    /// deadline, at most a second; not at all while netback has work pending.
    fn next_wait(&mut self, now: Instant) -> Duration {
        if self
            .netback
            .as_ref()
            .is_some_and(|nb| nb.has_pending_work())
        {
            return Duration::ZERO;
        }
        let snow = smol_now(self.epoch, now);
        let mut wait = Duration::from_secs(1);
        let mut consider = |d: Option<Duration>| {
            if let Some(d) = d {
                wait = wait.min(d);
            }
        };
        consider(self.external.poll_delay(snow));
        for e in &mut self.replicas {
            consider(e.poll_delay(snow));
        }
        let until = |t: Instant| t.saturating_duration_since(now);
        // A rate-limited vif's credit refill, a throttled event port's unmask.
        consider(
            self.netback
                .as_ref()
                .and_then(|nb| nb.next_deadline())
                .map(until),
        );
        for (r, p) in self.probes.iter().enumerate() {
            consider(p.wake_at(self.status.replica_unproven(r)).map(until));
        }
        for c in &self.conns {
            if c.newly_admitted(&self.sequencers) {
                return Duration::ZERO;
            }
            consider(c.wake_at().map(until));
        }
        for u in &self.udp {
            consider(u.wake_at().map(until));
        }
        wait
    }
}
