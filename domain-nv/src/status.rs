//! The appliance's status book: per replica health, connections, bytes voted and faults; per
//! service connection counts. Health: `starting` until the first connection, `live` once it
//! accepts one, `down` when it refuses, `faulty` (sticky) after any other fault.
//! Rendered as an `nv_status::Status` (JSON file; xenstore on Xen).

use std::time::{SystemTime, UNIX_EPOCH};

use nv_status::{FaultRecord, LinkState, ReplicaHealth, ReplicaStatus, ServiceStatus, Status, MAX_FAULTS, SCHEMA_VERSION};

use crate::config::Config;
use crate::voter::FaultKind;

/// Milliseconds since the Unix epoch.
pub fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
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
        FaultKind::NoQuorum => "no-quorum",
    }
}

/// Live counters and health, updated by the event loop.
#[derive(Debug, Clone)]
pub struct StatusBook {
    status: Status,
    changed: bool,
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
            })
            .collect();
        let replicas = config
            .replicas
            .iter()
            .map(|r| ReplicaStatus {
                name: r.name.clone(),
                state: ReplicaHealth::Starting,
                link: LinkState::Up,
                connections: 0,
                bytes_voted: 0,
                faults: Vec::new(),
            })
            .collect();
        StatusBook {
            status: Status { version: SCHEMA_VERSION, ready: false, updated_ms: wall_ms(), services, replicas },
            changed: true,
        }
    }

    /// The appliance is serving.
    pub fn set_ready(&mut self, ready: bool) {
        self.changed |= self.status.ready != ready;
        self.status.ready = ready;
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

    /// Replica `r` accepted a connection (it is reachable): `starting` and `down` become `live`;
    /// `faulty` stays until the replica is replaced (a fault is a fact about that replica).
    pub fn replica_connected(&mut self, r: usize) {
        let rep = &mut self.status.replicas[r];
        rep.connections += 1;
        if matches!(rep.state, ReplicaHealth::Starting | ReplicaHealth::Down) {
            rep.state = ReplicaHealth::Live;
        }
        self.changed = true;
    }

    /// Replica `r`'s connection ended.
    pub fn replica_disconnected(&mut self, r: usize) {
        let rep = &mut self.status.replicas[r];
        rep.connections = rep.connections.saturating_sub(1);
        self.changed = true;
    }

    /// `bytes` more were released to a client with replica `r` in agreement.
    pub fn add_bytes_voted(&mut self, r: usize, bytes: u64) {
        if bytes > 0 {
            self.status.replicas[r].bytes_voted += bytes;
            self.changed = true;
        }
    }

    /// Records a fault of replica `r` (the newest `MAX_FAULTS` are kept).
    pub fn record_fault(&mut self, r: usize, kind: &FaultKind, service: &str, connection: u64) {
        let detail = match kind {
            FaultKind::ValueMismatch { offset } => format!("output differs from the quorum at byte {offset}"),
            FaultKind::EarlyClose { offset } => format!("closed at byte {offset} before the quorum"),
            FaultKind::Refused => "refused the connection".to_owned(),
            FaultKind::Reset => "reset the connection".to_owned(),
            FaultKind::Straggler => "fell behind the quorum past the straggler deadline".to_owned(),
            FaultKind::Flood => "sent more than the quorum".to_owned(),
            FaultKind::NoQuorum => "replicas disagree, no quorum".to_owned(),
        };
        let rep = &mut self.status.replicas[r];
        rep.state = if *kind == FaultKind::Refused { ReplicaHealth::Down } else { ReplicaHealth::Faulty };
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

    /// Sets replica `r`'s link state.
    pub fn set_link(&mut self, r: usize, up: bool) {
        let link = if up { LinkState::Up } else { LinkState::Down };
        let rep = &mut self.status.replicas[r];
        if rep.link != link {
            rep.link = link;
            self.changed = true;
        }
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
