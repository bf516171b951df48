//! One UDP service ([`UdpService`]): a UDP socket on its port of the external link takes the
//! clients' questions; each client (address and port) gets one UDP socket of its own on every
//! replica link (its mapping: a replica sees one stable peer per client, for as long as the
//! client has questions pending); one [`DatagramVoter`] votes the answers, and the agreed one
//! goes back through the service's socket to the client that asked.

use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::time::Instant;

use smoltcp::iface::SocketHandle;
use smoltcp::wire::{IpAddress, IpEndpoint};

use super::connection::Context;
use super::endpoint::{Endpoint, OutgoingSocket};
use super::sockets::new_udp_socket;
use crate::config::VoterSettings;
use crate::datagram::{Client, DatagramEvent, DatagramVoter, Refusal};
use crate::status::fault_kind_name;
use crate::voter::Role;
use nv_schema::status::DatagramCounters;

/// The service socket's buffers, each way: datagrams, bytes.
const SERVICE_PACKETS: usize = 512;
const SERVICE_BYTES: usize = 512 << 10;
/// A mapping socket's buffers, each way (drained or flushed every round).
const MAPPING_PACKETS: usize = 16;
const MAPPING_BYTES: usize = 8 << 10;
/// Most questions taken from the service socket per round (the rest wait in its buffer).
const QUESTIONS_PER_ROUND: usize = 256;

/// One client's sockets on the replica links (index: replica slot).
struct Mapping {
    sockets: Vec<Option<OutgoingSocket>>,
}

impl Mapping {
    /// True if each socket of a replica that gets questions (`roles`) can queue one of `len`
    /// bytes (twice that in the ring: it may not wrap).
    fn has_room(&self, replicas: &mut [Endpoint], roles: &[Role], len: usize) -> bool {
        self.sockets.iter().enumerate().all(|(r, s)| {
            let Some(s) = s else {
                return true;
            };
            if roles.get(r).is_none_or(|role| *role == Role::Absent) {
                return true;
            }
            let u = replicas[r].udp(s.handle);
            let need = (2 * len).min(u.payload_send_capacity());
            u.can_send() && u.payload_send_capacity() - u.send_queue() >= need
        })
    }
}

/// One UDP service.
pub(super) struct UdpService {
    service: usize,
    socket: SocketHandle,
    /// False once draining: no new question is taken, pending ones are answered.
    open: bool,
    voter: DatagramVoter,
    mappings: HashMap<Client, Mapping>,
}

impl UdpService {
    /// Binds service `service`'s port on the external link.
    pub fn open(service: usize, cx: &mut Context<'_>) -> anyhow::Result<UdpService> {
        let svc = &cx.config.services[service];
        let mut s = new_udp_socket(SERVICE_PACKETS, SERVICE_BYTES);
        s.bind(svc.listen)
            .map_err(|e| anyhow::anyhow!("service {}: bind udp: {e:?}", svc.name))?;
        Ok(UdpService {
            service,
            socket: cx.external.sockets.add(s),
            open: true,
            voter: DatagramVoter::new(cx.config.datagram_config(svc.protocol)),
            mappings: HashMap::new(),
        })
    }

    /// One round: questions in and out to the replicas, answers in, the vote, agreed answers to
    /// the clients, events reported, idle mappings closed, counters published.
    pub fn pump(&mut self, cx: &mut Context<'_>, now: Instant) {
        if self.open {
            self.take_questions(cx, now);
        }
        self.take_answers(cx, now);
        self.voter.handle_timeout(now);
        while let Some(t) = self.voter.poll_transmit() {
            let to = IpEndpoint::new(IpAddress::Ipv4(*t.client.ip()), t.client.port());
            if let Err(e) = cx.external.udp(self.socket).send_slice(&t.payload, to) {
                log::debug!("udp {}: answer to {to} not sent: {e}", self.name(cx));
            }
        }
        self.report(cx);
        self.close_idle(cx);
        let s = self.voter.stats();
        let counters = DatagramCounters {
            questions: s.questions,
            answered: s.answered,
            masked: s.masked,
            dropped: s.dropped,
            unsolicited: s.unsolicited,
        };
        cx.status.set_datagrams(self.service, counters, s.no_quorum);
    }

    fn name<'c>(&self, cx: &'c Context<'_>) -> &'c str {
        &cx.config.services[self.service].name
    }

    /// Questions from the service socket to the voter and to every replica that gets them. A
    /// question whose client's socket on some replica link has no room waits in the service
    /// socket until the next round (after egress).
    fn take_questions(&mut self, cx: &mut Context<'_>, now: Instant) {
        let svc = &cx.config.services[self.service];
        for _ in 0..QUESTIONS_PER_ROUND {
            let (payload, from) = match cx.external.udp(self.socket).peek() {
                Ok((p, meta)) => (p.to_vec(), meta.endpoint),
                Err(_) => break,
            };
            let IpAddress::Ipv4(addr) = from.addr else {
                let _ = cx.external.udp(self.socket).recv();
                continue;
            };
            let client = SocketAddrV4::new(addr, from.port);
            let roles = cx.membership.roles();
            if let Some(m) = self.mappings.get(&client) {
                if !m.has_room(cx.replicas, &roles, payload.len()) {
                    break;
                }
            }
            let _ = cx.external.udp(self.socket).recv();
            match self
                .voter
                .question(client, &payload, &roles, cx.membership.epoch(), now)
            {
                Ok(()) => {}
                Err(Refusal::Malformed(e)) => {
                    log::debug!("udp {}: question from {client} dropped: {e}", svc.name);
                    continue;
                }
                Err(Refusal::NoQuorum) => continue,
            }
            let n = cx.replicas.len();
            let mapping = self.mappings.entry(client).or_insert_with(|| Mapping {
                sockets: vec![None; n],
            });
            for (r, role) in roles.iter().enumerate() {
                if *role == Role::Absent {
                    continue;
                }
                let ep = &mut cx.replicas[r];
                let socket = match mapping.sockets[r] {
                    Some(s) => s,
                    None => match ep.bind_udp(MAPPING_PACKETS, MAPPING_BYTES) {
                        Some(s) => *mapping.sockets[r].insert(s),
                        None => continue,
                    },
                };
                let rc = &cx.config.replicas[r];
                let to = IpEndpoint::new(IpAddress::Ipv4(rc.replica_address), svc.replica_port);
                if let Err(e) = ep.udp(socket.handle).send_slice(&payload, to) {
                    log::debug!("udp {}: question to {} not sent: {e}", svc.name, rc.name);
                }
            }
        }
    }

    /// Answers from each client's sockets on the replica links to the voter.
    fn take_answers(&mut self, cx: &mut Context<'_>, now: Instant) {
        let svc = &cx.config.services[self.service];
        for (client, mapping) in &self.mappings {
            for (r, socket) in mapping.sockets.iter().enumerate() {
                let Some(socket) = socket else {
                    continue;
                };
                let rc = &cx.config.replicas[r];
                let from_replica =
                    IpEndpoint::new(IpAddress::Ipv4(rc.replica_address), svc.replica_port);
                let ep = &mut cx.replicas[r];
                while let Ok((payload, meta)) = ep.udp(socket.handle).recv() {
                    // Only the replica's service port answers; anything else on this port is
                    // not an answer.
                    if meta.endpoint != from_replica {
                        continue;
                    }
                    self.voter.answer(r, *client, payload, now);
                    cx.status.replica_reachable(r);
                }
            }
        }
    }

    /// The voter's events to the status book, the membership and the log.
    fn report(&mut self, cx: &mut Context<'_>) {
        let name = &cx.config.services[self.service].name;
        while let Some(event) = self.voter.poll_event() {
            match event {
                DatagramEvent::Fault {
                    replica,
                    kind,
                    client,
                    ..
                } => {
                    let rname = &cx.config.replicas[replica].name;
                    log::warn!(
                        "udp {name}: question from {client}: replica {rname} faulty: {}",
                        fault_kind_name(&kind)
                    );
                    cx.status.record_fault(replica, &kind, name, 0);
                    if cx.membership.fault(replica, &kind) {
                        log::info!(
                            "replica {rname}: now {:?} (membership epoch {})",
                            cx.membership.standing(replica),
                            cx.membership.epoch()
                        );
                        cx.status
                            .set_standing(replica, cx.membership.standing(replica));
                    }
                }
                DatagramEvent::Agreed {
                    replica,
                    epoch,
                    bytes,
                } => {
                    cx.status.add_bytes_voted(replica, bytes);
                    if cx.membership.agreed(replica, epoch, bytes) {
                        log::info!(
                            "replica {}: probation passed: member (membership epoch {})",
                            cx.config.replicas[replica].name,
                            cx.membership.epoch()
                        );
                        cx.status
                            .set_standing(replica, cx.membership.standing(replica));
                    }
                }
                DatagramEvent::NoQuorum { client } => {
                    log::warn!("udp {name}: question from {client}: no quorum, not answered");
                }
            }
        }
    }

    /// Closes the mappings of clients with nothing pending.
    fn close_idle(&mut self, cx: &mut Context<'_>) {
        let voter = &self.voter;
        self.mappings.retain(|client, m| {
            if voter.pending_for(client) > 0 {
                return true;
            }
            close_mapping(m, cx.replicas);
            false
        });
    }

    /// Stops taking questions (a graceful stop); pending ones are still answered.
    pub fn close(&mut self) {
        self.open = false;
    }

    /// Before the replicas change (a config change): every pending question is dropped
    /// (counted) and every mapping closed, so that no socket outlives its link; the voter takes
    /// the new settings.
    pub fn reset(&mut self, cx: &mut Context<'_>, new_config: &crate::config::Config) {
        for (_, mut m) in self.mappings.drain() {
            close_mapping(&mut m, cx.replicas);
        }
        self.voter.clear();
        let protocol = new_config.services[self.service].protocol;
        self.voter.set_config(new_config.datagram_config(protocol));
    }

    /// When the voter next has a deadline.
    pub fn wake_at(&self) -> Option<Instant> {
        self.voter.next_deadline()
    }
}

/// Drops a mapping's sockets from their replica links.
fn close_mapping(m: &mut Mapping, replicas: &mut [Endpoint]) {
    for (r, s) in m.sockets.iter_mut().enumerate() {
        if let (Some(s), Some(ep)) = (s.take(), replicas.get_mut(r)) {
            ep.remove_outgoing(s);
        }
    }
}
