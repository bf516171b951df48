//! The appliance's status book: per replica health, connections, bytes voted and faults; per
//! service connection counts and connections without a quorum, and for UDP services the
//! question counters. Health combines reachability
//! and membership (see `crate::membership`): `faulty` while Excluded (sticky until replaced);
//! otherwise `starting` until the first connection (a client's or a health probe's), `down` when
//! it refuses or its link goes down, and once it accepts one `live` (a Member) or `joining` (on
//! probation).
//! Rendered as an `nv_schema::status::Status` (JSON file; xenstore on Xen).

use std::time::{SystemTime, UNIX_EPOCH};

use nv_schema::status::{
    DatagramCounters, FaultRecord, LinkState, ReplicaHealth, ReplicaStatus, ServiceStatus, Status,
    VifStatus, MAX_FAULTS, SCHEMA_VERSION,
};

use crate::config::{Config, Transport};
use crate::link::LinkStats;
use crate::membership::Standing;
use crate::voter::FaultKind;

/// Milliseconds since the Unix epoch.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The status name of a fault kind (stable: it is part of the status schema).
pub fn fault_kind_name(kind: &FaultKind) -> &'static str {
    match kind {
        FaultKind::ValueMismatch { .. } => "value-mismatch",
        FaultKind::Refused => "refused",
        FaultKind::EarlyClose { .. } => "early-close",
        FaultKind::Reset => "reset",
        FaultKind::Straggler => "straggler",
        FaultKind::Flood => "flood",
        FaultKind::ProtocolError { .. } => "protocol-error",
    }
}

/// Whether a replica has been seen serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Not yet seen serving since it was attached.
    Starting,
    /// Accepted a connection.
    Serving,
    /// Refused, or its link went down.
    Down,
}

/// One replica's health as the book tracks it.
#[derive(Debug, Clone, Copy)]
struct Health {
    reach: Reach,
    standing: Standing,
}

impl Health {
    /// The published health.
    fn published(self) -> ReplicaHealth {
        match (self.standing, self.reach) {
            (Standing::Excluded, _) => ReplicaHealth::Faulty,
            (_, Reach::Starting) => ReplicaHealth::Starting,
            (_, Reach::Down) => ReplicaHealth::Down,
            (Standing::Member, Reach::Serving) => ReplicaHealth::Live,
            (Standing::Joining(_), Reach::Serving) => ReplicaHealth::Joining,
        }
    }
}

/// Live counters and health, updated by the event loop.
#[derive(Debug, Clone)]
pub struct StatusBook {
    status: Status,
    health: Vec<Health>,
    changed: bool,
    /// The netback vifs' counters as last published (to notice a change without allocating).
    vif_stats: Vec<(String, netback::VifStats)>,
    /// The external link's counters as last published.
    external_link: Option<LinkStats>,
}

impl StatusBook {
    /// A book for the services and replicas of `config`; replicas start `starting`.
    pub fn new(config: &Config) -> StatusBook {
        let services = config
            .services
            .iter()
            .map(|s| ServiceStatus {
                name: s.name.clone(),
                listen: format!("{}:{}", config.external.address.addr, s.listen),
                active: 0,
                total: 0,
                no_quorum: 0,
                refused_limit: 0,
                timed_out: 0,
                refused_memory: 0,
                masked: 0,
                datagrams: (s.transport == Transport::Udp).then(DatagramCounters::default),
            })
            .collect();
        let replicas: Vec<ReplicaStatus> = config
            .replicas
            .iter()
            .map(|r| ReplicaStatus {
                name: r.name.clone(),
                state: ReplicaHealth::Starting,
                link: LinkState::Up,
                connections: 0,
                bytes_voted: 0,
                faults: Vec::new(),
                overloaded: 0,
            })
            .collect();
        let health = vec![
            Health {
                reach: Reach::Starting,
                standing: Standing::Member,
            };
            replicas.len()
        ];
        StatusBook {
            health,
            status: Status {
                version: SCHEMA_VERSION,
                ready: false,
                draining: false,
                updated_ms: wall_ms(),
                services,
                replicas,
                vifs: Vec::new(),
                links: Vec::new(),
            },
            changed: true,
            vif_stats: Vec::new(),
            external_link: None,
        }
    }

    /// The appliance is serving.
    pub fn set_ready(&mut self, ready: bool) {
        self.changed |= self.status.ready != ready;
        self.status.ready = ready;
    }

    /// The appliance is stopping gracefully: no new connections, open ones may finish.
    pub fn set_draining(&mut self, draining: bool) {
        self.changed |= self.status.draining != draining;
        self.status.draining = draining;
    }

    /// A client connection to `service` was accepted.
    pub fn connection_opened(&mut self, service: usize) {
        let s = &mut self.status.services[service];
        s.active += 1;
        s.total += 1;
        self.changed = true;
    }

    /// A client connection to `service` ended.
    pub fn connection_closed(&mut self, service: usize) {
        let s = &mut self.status.services[service];
        s.active = s.active.saturating_sub(1);
        self.changed = true;
    }

    /// Replica `r` accepted a client's connection: counted, and reachable.
    pub fn replica_connected(&mut self, r: usize) {
        self.status.replicas[r].connections += 1;
        self.changed = true;
        self.replica_reachable(r);
    }

    /// Publishes replica `r`'s health after a change of its reachability or standing.
    fn update_health(&mut self, r: usize) {
        let state = self.health[r].published();
        let rep = &mut self.status.replicas[r];
        if rep.state != state {
            rep.state = state;
            self.changed = true;
        }
    }

    /// Replica `r` accepted a connection (a client's or a health probe's): `starting` and `down`
    /// become `live` (or `joining` on probation); `faulty` stays until the replica is replaced
    /// (a fault is a fact about that replica).
    pub fn replica_reachable(&mut self, r: usize) {
        self.health[r].reach = Reach::Serving;
        self.update_health(r);
    }

    /// Replica `r`'s membership changed to `standing`.
    pub fn set_standing(&mut self, r: usize, standing: Standing) {
        self.health[r].standing = standing;
        self.update_health(r);
    }

    /// True if replica `r` is `starting` or `down` (not seen serving since it was (re)attached)
    /// and not excluded.
    pub fn replica_unproven(&self, r: usize) -> bool {
        let h = self.health[r];
        h.standing != Standing::Excluded && matches!(h.reach, Reach::Starting | Reach::Down)
    }

    /// Takes over what `earlier` (the book before a config change) knew of replicas of the same
    /// name: reachability, bytes voted and faults (their standing comes from
    /// `crate::membership`, see `Membership::reconfigure`). Connections are not taken over here
    /// (see [`StatusBook::reconfigured`]).
    pub fn carry_over(&mut self, earlier: &Status) {
        for (r, rep) in self.status.replicas.iter_mut().enumerate() {
            if let Some(old) = earlier.replicas.iter().find(|o| o.name == rep.name) {
                self.health[r].reach = match old.state {
                    ReplicaHealth::Starting => Reach::Starting,
                    ReplicaHealth::Down => Reach::Down,
                    ReplicaHealth::Live | ReplicaHealth::Joining | ReplicaHealth::Faulty => {
                        Reach::Serving
                    }
                };
                rep.bytes_voted = old.bytes_voted;
                rep.overloaded = old.overloaded;
                rep.faults = old.faults.clone();
                self.changed = true;
            }
        }
        for r in 0..self.health.len() {
            self.update_health(r);
        }
    }

    /// The book after a config change applied in place (`config`, the new one): replicas of
    /// the same name keep what they had (see [`StatusBook::carry_over`]) and their open
    /// connections, the services keep their counters (open connections go on), new replicas
    /// start `starting`.
    pub fn reconfigured(&self, config: &Config) -> StatusBook {
        let mut book = StatusBook::new(config);
        book.carry_over(&self.status);
        book.status.ready = self.status.ready;
        book.status.services = self.status.services.clone();
        for rep in &mut book.status.replicas {
            if let Some(old) = self.status.replicas.iter().find(|o| o.name == rep.name) {
                rep.connections = old.connections;
            }
        }
        book.changed = true;
        book
    }

    /// A client connection to `service` was reset because its replicas found no quorum.
    pub fn no_quorum(&mut self, service: usize) {
        self.status.services[service].no_quorum += 1;
        self.changed = true;
    }

    /// The question counters of UDP service `service` (`no_quorum`: its questions left
    /// unanswered for want of a quorum).
    pub fn set_datagrams(&mut self, service: usize, counters: DatagramCounters, no_quorum: u64) {
        let s = &mut self.status.services[service];
        if s.datagrams != Some(counters) || s.no_quorum != no_quorum {
            s.datagrams = Some(counters);
            s.no_quorum = no_quorum;
            self.changed = true;
        }
    }

    /// A client connection to `service` was reset at accept: a connection limit was reached.
    pub fn refused_limit(&mut self, service: usize) {
        self.status.services[service].refused_limit += 1;
        self.changed = true;
    }

    /// A client connection to `service` was reset at accept: the memory budget was reached.
    pub fn refused_memory(&mut self, service: usize) {
        self.status.services[service].refused_memory += 1;
        self.changed = true;
    }

    /// A client connection to `service` was reset after `client_timeout_ms` without bytes.
    pub fn timed_out(&mut self, service: usize) {
        self.status.services[service].timed_out += 1;
        self.changed = true;
    }

    /// `n` masked reply fields of `service` were released where the replicas' real bytes
    /// differed (benign differences, blamed on no replica).
    pub fn masked(&mut self, service: usize, n: u64) {
        if n > 0 {
            self.status.services[service].masked += n;
            self.changed = true;
        }
    }

    /// Replica `r`'s connection ended.
    pub fn replica_disconnected(&mut self, r: usize) {
        let rep = &mut self.status.replicas[r];
        rep.connections = rep.connections.saturating_sub(1);
        self.changed = true;
    }

    /// domain-nv fell behind reading replica `r`'s link this round (its own overload, not the
    /// replica's fault).
    pub fn link_overloaded(&mut self, r: usize) {
        self.status.replicas[r].overloaded += 1;
        self.changed = true;
    }

    /// `bytes` more were released to a client with replica `r` in agreement.
    pub fn add_bytes_voted(&mut self, r: usize, bytes: u64) {
        if bytes > 0 {
            self.status.replicas[r].bytes_voted += bytes;
            self.changed = true;
        }
    }

    /// Records a fault of replica `r` (the newest `MAX_FAULTS` are kept); a refusal makes it
    /// `down` (what it means for its membership is `crate::membership`'s business).
    pub fn record_fault(&mut self, r: usize, kind: &FaultKind, service: &str, connection: u64) {
        let detail = match kind {
            FaultKind::ValueMismatch { offset } => {
                format!("output differs from the quorum at byte {offset}")
            }
            FaultKind::EarlyClose { offset } => {
                format!("closed at byte {offset} before the quorum")
            }
            FaultKind::Refused => "refused the connection".to_owned(),
            FaultKind::Reset => "reset the connection".to_owned(),
            FaultKind::Straggler => "fell behind the quorum past the straggler deadline".to_owned(),
            FaultKind::Flood => "sent more than the quorum".to_owned(),
            FaultKind::ProtocolError { offset, reason } => {
                format!("reply does not frame at byte {offset}: {reason}")
            }
        };
        if *kind == FaultKind::Refused {
            self.health[r].reach = Reach::Down;
            self.update_health(r);
        }
        let rep = &mut self.status.replicas[r];
        rep.faults.push(FaultRecord {
            time_ms: wall_ms(),
            kind: fault_kind_name(kind).to_owned(),
            service: service.to_owned(),
            connection,
            detail,
        });
        if rep.faults.len() > MAX_FAULTS {
            let excess = rep.faults.len() - MAX_FAULTS;
            rep.faults.drain(..excess);
        }
        self.changed = true;
    }

    /// Sets replica `r`'s link state; a serving replica whose link goes down is `down`. True if
    /// a serving replica lost its link (it may come back restarted); a link that was never up
    /// with the replica serving says nothing.
    pub fn set_link(&mut self, r: usize, up: bool) -> bool {
        let link = if up { LinkState::Up } else { LinkState::Down };
        let rep = &mut self.status.replicas[r];
        if rep.link == link {
            return false;
        }
        rep.link = link;
        self.changed = true;
        let lost = !up && self.health[r].reach == Reach::Serving;
        if lost {
            self.health[r].reach = Reach::Down;
            self.update_health(r);
        }
        lost
    }

    /// Takes the netback vifs' counters (`vifs()` yields name and counters; on Xen): the status
    /// changes if any counter or the set of vifs did.
    pub fn set_vifs<'a, I: Iterator<Item = (&'a str, netback::VifStats)>>(
        &mut self,
        vifs: impl Fn() -> I,
    ) {
        let same = vifs().count() == self.vif_stats.len()
            && vifs()
                .zip(&self.vif_stats)
                .all(|((n, s), (pn, ps))| n == pn && s == *ps);
        if same {
            return;
        }
        self.vif_stats = vifs().map(|(n, s)| (n.to_string(), s)).collect();
        self.status.vifs = self
            .vif_stats
            .iter()
            .map(|(name, s)| VifStatus {
                name: name.clone(),
                counters: s.named().iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            })
            .collect();
        self.changed = true;
    }

    /// Takes the external link's counters (a TAP or raw link; not called for a vif): the
    /// status changes if any counter did. Published as the link `external`.
    pub fn set_external_link(&mut self, stats: LinkStats) {
        if self.external_link == Some(stats) {
            return;
        }
        self.external_link = Some(stats);
        self.status.links = vec![VifStatus {
            name: "external".into(),
            counters: stats
                .named()
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        }];
        self.changed = true;
    }

    /// True if something changed since the last `take_snapshot`.
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// The current status, stamped now; clears the changed flag.
    pub fn take_snapshot(&mut self) -> Status {
        self.changed = false;
        self.status.updated_ms = wall_ms();
        self.status.clone()
    }

    /// The current status without stamping.
    pub fn status(&self) -> &Status {
        &self.status
    }
}

/// Writes `status` as JSON to `path` atomically (temporary file, then rename).
pub fn write_status_file(path: &std::path::Path, status: &Status) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, status.to_json())?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> StatusBook {
        let yaml = "policy: majority\nexternal:\n  link: { kind: tap, name: ext }\n  address: 10.0.0.1/24\nservices:\n  - { name: s, listen: 80, replica_port: 80 }\nreplicas:\n  - { name: r0, link: { kind: tap, name: t0 }, address: 10.1.0.1/24, replica_address: 10.1.0.2 }\n  - { name: r1, link: { kind: tap, name: t1 }, address: 10.2.0.1/24, replica_address: 10.2.0.2 }\n  - { name: r2, link: { kind: tap, name: t2 }, address: 10.3.0.1/24, replica_address: 10.3.0.2 }\n";
        StatusBook::new(&Config::from_yaml(yaml).expect("test config"))
    }

    #[test]
    fn the_external_link_counters_are_published_when_they_change() {
        let mut b = book();
        let _ = b.take_snapshot();
        let stats = LinkStats {
            tx_frames: 3,
            tx_gso: 2,
            ..LinkStats::default()
        };
        b.set_external_link(stats);
        assert!(b.changed());
        let s = b.take_snapshot();
        assert_eq!(s.links.len(), 1);
        assert_eq!(s.links[0].name, "external");
        assert_eq!(
            (
                s.links[0].counters["tx-frames"],
                s.links[0].counters["tx-gso"]
            ),
            (3, 2)
        );
        b.set_external_link(stats);
        assert!(!b.changed(), "the same counters are no change");
    }

    #[test]
    fn a_probe_makes_a_replica_live_without_counting_a_connection() {
        let mut b = book();
        assert!(b.replica_unproven(0));
        b.replica_reachable(0);
        assert_eq!(b.status().replicas[0].state, ReplicaHealth::Live);
        assert_eq!(b.status().replicas[0].connections, 0);
        assert!(!b.replica_unproven(0));
    }

    #[test]
    fn faulty_stays_faulty_when_reachable_and_live_goes_down_with_its_link() {
        let mut b = book();
        b.record_fault(1, &FaultKind::ValueMismatch { offset: 0 }, "s", 1);
        b.record_fault(
            1,
            &FaultKind::ProtocolError {
                offset: 5,
                reason: "not a reply",
            },
            "s",
            1,
        );
        let last = b.status().replicas[1]
            .faults
            .last()
            .cloned()
            .expect("recorded");
        assert_eq!(last.kind, "protocol-error");
        assert!(
            last.detail.contains("byte 5: not a reply"),
            "{}",
            last.detail
        );
        b.set_standing(1, Standing::Excluded);
        b.replica_reachable(1);
        assert_eq!(b.status().replicas[1].state, ReplicaHealth::Faulty);
        b.replica_reachable(0);
        b.set_link(0, false);
        assert_eq!(b.status().replicas[0].state, ReplicaHealth::Down);
        assert!(b.replica_unproven(0));
        b.set_link(1, false);
        assert_eq!(b.status().replicas[1].state, ReplicaHealth::Faulty);
    }

    #[test]
    fn a_joining_replica_shows_joining_once_it_serves_and_a_refusal_makes_it_down() {
        let mut b = book();
        let progress = crate::membership::Progress {
            since: 1,
            connections: 0,
            bytes: 0,
        };
        b.set_standing(0, Standing::Joining(progress));
        assert_eq!(b.status().replicas[0].state, ReplicaHealth::Starting);
        b.replica_reachable(0);
        assert_eq!(b.status().replicas[0].state, ReplicaHealth::Joining);
        b.record_fault(0, &FaultKind::Refused, "s", 2);
        assert_eq!(b.status().replicas[0].state, ReplicaHealth::Down);
        b.replica_reachable(0);
        b.set_standing(0, Standing::Member);
        assert_eq!(b.status().replicas[0].state, ReplicaHealth::Live);
        b.no_quorum(0);
        assert_eq!(b.status().services[0].no_quorum, 1);
        b.refused_limit(0);
        b.timed_out(0);
        b.timed_out(0);
        b.refused_memory(0);
        b.masked(0, 3);
        let s = &b.status().services[0];
        assert_eq!(
            (s.refused_limit, s.timed_out, s.refused_memory, s.masked),
            (1, 2, 1, 3)
        );
    }

    #[test]
    fn carry_over_keeps_health_and_faults_of_replicas_with_the_same_name() {
        let mut old = book();
        old.record_fault(2, &FaultKind::ValueMismatch { offset: 7 }, "s", 3);
        old.set_standing(2, Standing::Excluded);
        old.replica_connected(0);
        old.add_bytes_voted(0, 100);
        let earlier = old.status().clone();
        let mut new = book();
        new.status.replicas[1].name = "r1-g2".into();
        new.carry_over(&earlier);
        // The appliance sets the standing from its membership (`Membership::reconfigure`).
        new.set_standing(2, Standing::Excluded);
        let r = &new.status().replicas;
        assert_eq!(
            (r[0].state, r[0].bytes_voted, r[0].connections),
            (ReplicaHealth::Live, 100, 0)
        );
        assert_eq!(r[1].state, ReplicaHealth::Starting);
        assert_eq!((r[2].state, r[2].faults.len()), (ReplicaHealth::Faulty, 1));
    }
}
