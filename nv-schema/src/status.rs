//! The status schema shared by domain-nv (writer) and nvctl (reader).
//!
//! One [`Status`] value has two encodings with the same content:
//! - JSON (`to_json` / `from_json`): the status file / unix socket of domain-nv, and `nvctl status --json`;
//! - xenstore keys (`to_xenstore` / `from_xenstore`) below `/local/domain/<nv-domid>/` + [`XS_BASE`].
//!
//! Xenstore layout (every value a decimal or a word; `<r>` a replica name, `<s>` a service name):
//! ```text
//! data/domain-nv/version             schema version (1)
//! data/domain-nv/ready               1 once links and listeners are up
//! data/domain-nv/draining            1 while stopping: no new connections, open ones finish (absent: 0)
//! data/domain-nv/updated-ms          unix time of this snapshot, ms
//! data/domain-nv/services/<s>/listen       "addr:port"
//! data/domain-nv/services/<s>/active       open client connections
//! data/domain-nv/services/<s>/total        client connections accepted so far
//! data/domain-nv/services/<s>/no-quorum    client connections reset (UDP: questions unanswered) for want of a quorum (absent: 0)
//! data/domain-nv/services/<s>/datagrams/{questions,answered,masked,dropped,unsolicited}
//!                                          UDP services only (see [`DatagramCounters`])
//! data/domain-nv/services/<s>/masked       masked fields whose replicas' real bytes differed (absent: 0)
//! data/domain-nv/replicas/<r>/state        starting | live | joining | faulty | down
//! data/domain-nv/replicas/<r>/link         up | down
//! data/domain-nv/replicas/<r>/connections  open replica connections
//! data/domain-nv/replicas/<r>/bytes-voted  output bytes of this replica that agreed with a released quorum
//! data/domain-nv/replicas/<r>/overloaded   rounds domain-nv fell behind reading this replica's link (absent: 0)
//! data/domain-nv/replicas/<r>/faults/<n>   "<time-ms> <kind> <service> <connection> <detail...>" (last MAX_FAULTS)
//! data/domain-nv/vifs/<v>                  "<counter>=<n> <counter>=<n> ..." (Xen only; netback's per-vif counters)
//! data/domain-nv/links/<l>                 "<counter>=<n> ..." (domain-nv's own TAP / AF_PACKET links: `external`)
//! ```
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

/// Version of this schema, published as `version`.
pub const SCHEMA_VERSION: u32 = 1;
/// Where the status lives, relative to the NV domain's xenstore home `/local/domain/<domid>/`.
pub const XS_BASE: &str = "data/domain-nv";
/// How many recent faults are kept per replica.
pub const MAX_FAULTS: usize = 32;

/// Errors decoding a status.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The JSON text is not a status document.
    #[error("status JSON: {0}")]
    Json(String),
    /// A xenstore key is missing or malformed.
    #[error("status key {key}: {why}")]
    Key {
        /// The key, relative to the NV domain's home.
        key: String,
        /// What is wrong with it.
        why: String,
    },
}

/// Health of a replica as domain-nv sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplicaHealth {
    /// Link configured, not yet seen working.
    Starting,
    /// Serving and agreeing.
    Live,
    /// Serving on probation (restarted or new): compared with the quorum, not voting yet.
    Joining,
    /// Excluded from voting: found faulty (its output differed) since it was attached.
    Faulty,
    /// Link down or unreachable.
    Down,
}

/// State of a replica's link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkState {
    /// Frames can flow.
    Up,
    /// No carrier / backend not connected.
    Down,
}

/// One reported fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// Unix time in milliseconds.
    pub time_ms: u64,
    /// Kind in kebab-case: value-mismatch, refused, early-close, reset, straggler, flood,
    /// protocol-error (and no-quorum in documents of earlier versions).
    pub kind: String,
    /// The service whose connection saw it.
    pub service: String,
    /// Connection number within that service.
    pub connection: u64,
    /// Free text (e.g. "offset 1234"); no newlines.
    pub detail: String,
}

/// Status of one replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// Name from the config.
    pub name: String,
    /// Health.
    pub state: ReplicaHealth,
    /// Link state.
    pub link: LinkState,
    /// Open replica-side connections.
    pub connections: u64,
    /// Output bytes of this replica that agreed with released (voted) output.
    pub bytes_voted: u64,
    /// Most recent faults, oldest first, at most [`MAX_FAULTS`].
    pub faults: Vec<FaultRecord>,
    /// Receive rounds in which domain-nv itself fell behind reading this replica's link (it
    /// stopped at its frame budget with frames still waiting; the kernel may have dropped
    /// some): the appliance's own overload, never counted against the replica.
    #[serde(default)]
    pub overloaded: u64,
}

/// Status of one service (listener).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// Name from the config.
    pub name: String,
    /// "address:port" the clients connect to.
    pub listen: String,
    /// Open client connections.
    pub active: u64,
    /// Client connections accepted so far.
    pub total: u64,
    /// Client connections reset because no quorum agreed (no replica blamed); 0 when absent.
    #[serde(default)]
    pub no_quorum: u64,
    /// Client connections reset at accept because a connection limit was reached
    /// (`max_connections`, `max_connections_per_client`; no replica saw them); 0 when absent.
    #[serde(default)]
    pub refused_limit: u64,
    /// Client connections reset because they were idle for `client_timeout_ms`, or waited
    /// `replica_timeout_ms` for an answer no quorum gave (no replica blamed); 0 when absent.
    #[serde(default)]
    pub timed_out: u64,
    /// Client connections reset at accept because the open connections' memory had reached
    /// `memory_budget_mb` (no replica saw them); 0 when absent.
    #[serde(default)]
    pub refused_memory: u64,
    /// Masked reply fields (an HTTP `Date`, a redis set listing's order) released where the
    /// replicas' real bytes differed: benign differences, blamed on no replica; 0 when absent.
    #[serde(default)]
    pub masked: u64,
    /// The question counters of a UDP service (absent for TCP services).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datagrams: Option<DatagramCounters>,
}

/// The counters of a UDP service, question by question.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatagramCounters {
    /// Client datagrams taken as questions and sent to the replicas.
    pub questions: u64,
    /// Questions answered with an agreed answer (one answer each).
    pub answered: u64,
    /// Answered questions on which a replica was wrong or missing (a fault masked).
    pub masked: u64,
    /// Questions dropped from the pending table over a bound (the oldest goes; answered
    /// already or not: an answered one still waited for a replica, which is then not judged),
    /// or malformed.
    pub dropped: u64,
    /// Replica datagrams that matched no pending question, dropped.
    pub unsolicited: u64,
}

impl DatagramCounters {
    /// The counters as (xenstore key word, value), in the order written.
    fn fields(&self) -> [(&'static str, u64); 5] {
        [
            ("questions", self.questions),
            ("answered", self.answered),
            ("masked", self.masked),
            ("dropped", self.dropped),
            ("unsolicited", self.unsolicited),
        ]
    }
}

/// The datapath counters of one netback vif (Xen only): frames, bytes, GSO frames and ring slots
/// each way, grant-copy calls and segments, notifications each way, drops by reason; or of one
/// of domain-nv's own links (frames each way, large and GSO frames, drops). Keys are
/// kebab-case counter names (`tx-frames`, `copy-calls`, ...), as netback or the link names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VifStatus {
    /// The vif's name (its `vifname`, else `vif<domid>.<handle>`).
    pub name: String,
    /// Counter name to value.
    pub counters: std::collections::BTreeMap<String, u64>,
}

impl VifStatus {
    /// The xenstore value: `name=value` words.
    fn to_words(&self) -> String {
        let words: Vec<String> = self
            .counters
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        words.join(" ")
    }

    /// Parses the xenstore value of vif `name`; `None` if a word is not `counter=number`.
    fn from_words(name: String, value: &str) -> Option<VifStatus> {
        let counters = value
            .split_whitespace()
            .map(|w| {
                let (k, v) = w.split_once('=')?;
                (!k.is_empty()).then_some(())?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect::<Option<_>>()?;
        Some(VifStatus { name, counters })
    }
}

/// A status snapshot of one domain-nv instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// [`SCHEMA_VERSION`].
    pub version: u32,
    /// True once links and listeners are up.
    pub ready: bool,
    /// True while stopping gracefully: listeners are closed and open client connections may
    /// finish until the drain timeout; false when absent (documents of earlier writers).
    #[serde(default)]
    pub draining: bool,
    /// Unix time of this snapshot, ms.
    pub updated_ms: u64,
    /// Services.
    pub services: Vec<ServiceStatus>,
    /// Replicas, in config order.
    pub replicas: Vec<ReplicaStatus>,
    /// Netback vifs and their counters (Xen only; empty when absent).
    #[serde(default)]
    pub vifs: Vec<VifStatus>,
    /// domain-nv's own TAP and `AF_PACKET` links (today the external one, named `external`)
    /// and their counters (empty when absent or the link is a vif).
    #[serde(default)]
    pub links: Vec<VifStatus>,
}

fn kebab<T: Serialize>(v: &T) -> String {
    serde_yaml::to_string(v)
        .unwrap_or_default()
        .trim()
        .to_string()
}

impl Status {
    /// The JSON encoding (one object, keys as in the struct fields).
    pub fn to_json(&self) -> String {
        // Strings, numbers, bools and sequences only: serializing cannot fail.
        serde_json::to_string(self).expect("a Status serializes to JSON")
    }

    /// Decodes the JSON encoding.
    pub fn from_json(text: &str) -> Result<Status, StatusError> {
        serde_json::from_str(text).map_err(|e| StatusError::Json(e.to_string()))
    }

    /// The xenstore encoding: (key relative to the NV domain's home, value) pairs.
    pub fn to_xenstore(&self) -> Vec<(String, String)> {
        let b = XS_BASE;
        let mut kv = vec![
            (format!("{b}/version"), self.version.to_string()),
            (format!("{b}/ready"), u8::from(self.ready).to_string()),
            (format!("{b}/draining"), u8::from(self.draining).to_string()),
            (format!("{b}/updated-ms"), self.updated_ms.to_string()),
        ];
        for s in &self.services {
            let p = format!("{b}/services/{}", s.name);
            kv.push((format!("{p}/listen"), s.listen.clone()));
            kv.push((format!("{p}/active"), s.active.to_string()));
            kv.push((format!("{p}/total"), s.total.to_string()));
            kv.push((format!("{p}/no-quorum"), s.no_quorum.to_string()));
            kv.push((format!("{p}/refused-limit"), s.refused_limit.to_string()));
            kv.push((format!("{p}/timed-out"), s.timed_out.to_string()));
            kv.push((format!("{p}/refused-memory"), s.refused_memory.to_string()));
            for (k, v) in s.datagrams.iter().flat_map(DatagramCounters::fields) {
                kv.push((format!("{p}/datagrams/{k}"), v.to_string()));
            }
            kv.push((format!("{p}/masked"), s.masked.to_string()));
        }
        for r in &self.replicas {
            let p = format!("{b}/replicas/{}", r.name);
            kv.push((format!("{p}/state"), kebab(&r.state)));
            kv.push((format!("{p}/link"), kebab(&r.link)));
            kv.push((format!("{p}/connections"), r.connections.to_string()));
            kv.push((format!("{p}/bytes-voted"), r.bytes_voted.to_string()));
            kv.push((format!("{p}/overloaded"), r.overloaded.to_string()));
            for (n, f) in r.faults.iter().enumerate() {
                kv.push((
                    format!("{p}/faults/{n}"),
                    format!(
                        "{} {} {} {} {}",
                        f.time_ms,
                        f.kind,
                        f.service,
                        f.connection,
                        f.detail.replace('\n', " ")
                    ),
                ));
            }
        }
        for (dir, list) in [("vifs", &self.vifs), ("links", &self.links)] {
            for v in list {
                kv.push((format!("{b}/{dir}/{}", v.name), v.to_words()));
            }
        }
        kv
    }

    /// Decode the xenstore encoding. `read(key)` returns the value of a key relative to the NV
    /// domain's home (None if absent); `list(key)` its children's names (empty if none).
    pub fn from_xenstore(
        read: &mut dyn FnMut(&str) -> Option<String>,
        list: &mut dyn FnMut(&str) -> Vec<String>,
    ) -> Result<Status, StatusError> {
        fn need(
            read: &mut dyn FnMut(&str) -> Option<String>,
            key: &str,
        ) -> Result<String, StatusError> {
            read(key).ok_or_else(|| StatusError::Key {
                key: key.to_string(),
                why: "missing".into(),
            })
        }
        fn num<T: std::str::FromStr>(
            read: &mut dyn FnMut(&str) -> Option<String>,
            key: &str,
        ) -> Result<T, StatusError> {
            let v = need(read, key)?;
            v.trim().parse().map_err(|_| StatusError::Key {
                key: key.to_string(),
                why: format!("not a number: {v:?}"),
            })
        }
        fn word<T: for<'de> Deserialize<'de>>(
            read: &mut dyn FnMut(&str) -> Option<String>,
            key: &str,
        ) -> Result<T, StatusError> {
            let v = need(read, key)?;
            serde_yaml::from_str(&v).map_err(|_| StatusError::Key {
                key: key.to_string(),
                why: format!("unknown value {v:?}"),
            })
        }
        fn optional_num(
            read: &mut dyn FnMut(&str) -> Option<String>,
            key: &str,
        ) -> Result<u64, StatusError> {
            match read(key) {
                Some(_) => num(read, key),
                None => Ok(0),
            }
        }
        let b = XS_BASE;
        let version = num(read, &format!("{b}/version"))?;
        let ready = num::<u8>(read, &format!("{b}/ready"))? != 0;
        let draining_key = format!("{b}/draining");
        // Written since schema version 1 gained it: absent in older documents.
        let draining = match read(&draining_key) {
            Some(_) => num::<u8>(read, &draining_key)? != 0,
            None => false,
        };
        let updated_ms = num(read, &format!("{b}/updated-ms"))?;
        let mut services = Vec::new();
        for name in list(&format!("{b}/services")) {
            let p = format!("{b}/services/{name}");
            let no_quorum_key = format!("{p}/no-quorum");
            let d = |k: &str| format!("{p}/datagrams/{k}");
            let datagrams = match read(&d("questions")) {
                Some(_) => Some(DatagramCounters {
                    questions: num(read, &d("questions"))?,
                    answered: num(read, &d("answered"))?,
                    masked: num(read, &d("masked"))?,
                    dropped: num(read, &d("dropped"))?,
                    unsolicited: num(read, &d("unsolicited"))?,
                }),
                None => None,
            };
            services.push(ServiceStatus {
                datagrams,
                // Written since schema version 1 gained them: absent in older documents.
                refused_limit: optional_num(read, &format!("{p}/refused-limit"))?,
                timed_out: optional_num(read, &format!("{p}/timed-out"))?,
                refused_memory: optional_num(read, &format!("{p}/refused-memory"))?,
                masked: optional_num(read, &format!("{p}/masked"))?,
                listen: need(read, &format!("{p}/listen"))?,
                active: num(read, &format!("{p}/active"))?,
                total: num(read, &format!("{p}/total"))?,
                // Written since schema version 1 gained it: absent in older documents.
                no_quorum: match read(&no_quorum_key) {
                    Some(_) => num(read, &no_quorum_key)?,
                    None => 0,
                },
                name,
            });
        }
        let mut replicas = Vec::new();
        for name in list(&format!("{b}/replicas")) {
            let p = format!("{b}/replicas/{name}");
            let mut idx: Vec<u64> = list(&format!("{p}/faults"))
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect();
            idx.sort_unstable();
            let mut faults = Vec::new();
            for n in idx {
                let key = format!("{p}/faults/{n}");
                let v = need(read, &key)?;
                let mut it = v.splitn(5, ' ');
                let bad = || StatusError::Key {
                    key: key.clone(),
                    why: format!("malformed fault {v:?}"),
                };
                let time_ms = it.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
                let kind = it.next().ok_or_else(bad)?.to_string();
                let service = it.next().ok_or_else(bad)?.to_string();
                let connection = it.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
                let detail = it.next().unwrap_or("").to_string();
                faults.push(FaultRecord {
                    time_ms,
                    kind,
                    service,
                    connection,
                    detail,
                });
            }
            replicas.push(ReplicaStatus {
                state: word(read, &format!("{p}/state"))?,
                link: word(read, &format!("{p}/link"))?,
                connections: num(read, &format!("{p}/connections"))?,
                bytes_voted: num(read, &format!("{p}/bytes-voted"))?,
                // Written since schema version 1 gained it: absent in older documents.
                overloaded: optional_num(read, &format!("{p}/overloaded"))?,
                faults,
                name,
            });
        }
        // Written since schema version 1 gained them (vifs on Xen only): absent otherwise.
        let mut counters = |dir: &str| -> Result<Vec<VifStatus>, StatusError> {
            let mut out = Vec::new();
            for name in list(&format!("{b}/{dir}")) {
                let key = format!("{b}/{dir}/{name}");
                let v = need(read, &key)?;
                out.push(
                    VifStatus::from_words(name, &v).ok_or_else(|| StatusError::Key {
                        key: key.clone(),
                        why: format!("malformed counters {v:?}"),
                    })?,
                );
            }
            Ok(out)
        };
        let vifs = counters("vifs")?;
        let links = counters("links")?;
        Ok(Status {
            version,
            ready,
            draining,
            updated_ms,
            services,
            replicas,
            vifs,
            links,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn sample() -> Status {
        Status {
            version: SCHEMA_VERSION,
            ready: true,
            draining: true,
            updated_ms: 1_790_000_000_000,
            services: vec![ServiceStatus {
                name: "redis".into(),
                listen: "10.0.0.1:6379".into(),
                active: 2,
                total: 9,
                no_quorum: 1,
                refused_limit: 3,
                timed_out: 2,
                refused_memory: 4,
                masked: 5,
                datagrams: None,
            }],
            replicas: vec![
                ReplicaStatus {
                    name: "r1".into(),
                    state: ReplicaHealth::Live,
                    link: LinkState::Up,
                    connections: 2,
                    bytes_voted: 77,
                    faults: vec![],
                    overloaded: 3,
                },
                ReplicaStatus {
                    name: "r2".into(),
                    state: ReplicaHealth::Faulty,
                    link: LinkState::Up,
                    connections: 0,
                    bytes_voted: 5,
                    overloaded: 0,
                    faults: vec![FaultRecord {
                        time_ms: 1,
                        kind: "value-mismatch".into(),
                        service: "redis".into(),
                        connection: 4,
                        detail: "offset 12 \"x\"".into(),
                    }],
                },
            ],
            vifs: vec![VifStatus {
                name: "vif3.0".into(),
                counters: [("tx-frames".to_string(), 12), ("copy-calls".to_string(), 3)]
                    .into_iter()
                    .collect(),
            }],
            links: vec![VifStatus {
                name: "external".into(),
                counters: [("tx-gso".to_string(), 7)].into_iter().collect(),
            }],
        }
    }

    #[test]
    fn malformed_vif_counters_are_an_error_and_absent_ones_empty() {
        let mut kv: BTreeMap<String, String> = sample().to_xenstore().into_iter().collect();
        let decode = |kv: &BTreeMap<String, String>| {
            let mut read = |k: &str| kv.get(k).cloned();
            let mut list = |k: &str| {
                let pre = format!("{k}/");
                let mut v: Vec<String> = kv
                    .keys()
                    .filter_map(|x| x.strip_prefix(&pre))
                    .map(|x| x.split('/').next().unwrap().to_string())
                    .collect();
                v.dedup();
                v
            };
            Status::from_xenstore(&mut read, &mut list)
        };
        for bad in ["tx-frames=x", "tx-frames", "=3 a=1"] {
            kv.insert("data/domain-nv/vifs/vif3.0".into(), bad.into());
            assert!(decode(&kv).is_err(), "{bad:?} accepted");
        }
        kv.remove("data/domain-nv/vifs/vif3.0");
        assert!(decode(&kv).unwrap().vifs.is_empty());
        let old = sample().to_json().replace(",\"vifs\":[", ",\"x\":[");
        assert!(Status::from_json(&old).unwrap().vifs.is_empty());
    }

    #[test]
    fn json_round_trip() {
        let s = sample();
        let j = s.to_json();
        assert!(j.contains("\"state\":\"faulty\""), "{j}");
        assert_eq!(Status::from_json(&j).unwrap(), s);
    }

    #[test]
    fn xenstore_round_trip() {
        let s = sample();
        let kv: BTreeMap<String, String> = s.to_xenstore().into_iter().collect();
        assert_eq!(kv["data/domain-nv/replicas/r2/state"], "faulty");
        assert_eq!(
            kv["data/domain-nv/vifs/vif3.0"],
            "copy-calls=3 tx-frames=12"
        );
        assert_eq!(kv["data/domain-nv/links/external"], "tx-gso=7");
        let mut read = |k: &str| kv.get(k).cloned();
        let mut list = |k: &str| {
            let pre = format!("{k}/");
            let mut v: Vec<String> = kv
                .keys()
                .filter_map(|x| x.strip_prefix(&pre))
                .map(|x| x.split('/').next().unwrap().to_string())
                .collect();
            v.dedup();
            v
        };
        assert_eq!(Status::from_xenstore(&mut read, &mut list).unwrap(), s);
    }

    #[test]
    fn udp_service_counters_round_trip_and_tcp_services_have_none() {
        let mut s = sample();
        assert!(!s.to_json().contains("datagrams"));
        assert!(!s.to_xenstore().iter().any(|(k, _)| k.contains("datagrams")));
        s.services[0] = ServiceStatus {
            name: "dns".into(),
            listen: "10.0.0.1:53".into(),
            active: 0,
            total: 0,
            no_quorum: 1,
            refused_limit: 0,
            timed_out: 0,
            refused_memory: 0,
            masked: 0,
            datagrams: Some(DatagramCounters {
                questions: 10,
                answered: 8,
                masked: 2,
                dropped: 1,
                unsolicited: 3,
            }),
        };
        assert_eq!(Status::from_json(&s.to_json()).unwrap(), s);
        let kv: BTreeMap<String, String> = s.to_xenstore().into_iter().collect();
        assert_eq!(kv["data/domain-nv/services/dns/datagrams/masked"], "2");
        let mut read = |k: &str| kv.get(k).cloned();
        let mut list = |k: &str| {
            let pre = format!("{k}/");
            let mut v: Vec<String> = kv
                .keys()
                .filter_map(|x| x.strip_prefix(&pre))
                .map(|x| x.split('/').next().unwrap().to_string())
                .collect();
            v.dedup();
            v
        };
        assert_eq!(Status::from_xenstore(&mut read, &mut list).unwrap(), s);
    }

    #[test]
    fn documents_without_no_quorum_or_with_joining_read() {
        let mut s = sample();
        s.replicas[0].state = ReplicaHealth::Joining;
        let j = s.to_json();
        assert!(j.contains("\"state\":\"joining\""), "{j}");
        assert_eq!(Status::from_json(&j).unwrap(), s);
        let old = j
            .replace(",\"no_quorum\":1", "")
            .replace(",\"draining\":true", "");
        assert_eq!(
            old.len(),
            j.len() - ",\"no_quorum\":1,\"draining\":true".len()
        );
        let old = Status::from_json(&old).unwrap();
        assert_eq!((old.services[0].no_quorum, old.draining), (0, false));
        let kv: BTreeMap<String, String> = s
            .to_xenstore()
            .into_iter()
            .filter(|(k, _)| !k.ends_with("/no-quorum") && !k.ends_with("/draining"))
            .collect();
        let mut read = |k: &str| kv.get(k).cloned();
        let mut list = |k: &str| {
            let pre = format!("{k}/");
            let mut v: Vec<String> = kv
                .keys()
                .filter_map(|x| x.strip_prefix(&pre))
                .map(|x| x.split('/').next().unwrap().to_string())
                .collect();
            v.dedup();
            v
        };
        let back = Status::from_xenstore(&mut read, &mut list).unwrap();
        assert_eq!(back.services[0].no_quorum, 0);
        assert!(!back.draining);
        assert_eq!(back.replicas[0].state, ReplicaHealth::Joining);
    }

    #[test]
    fn documents_without_refused_limit_or_timed_out_read() {
        let s = sample();
        let j = s.to_json();
        let old = j
            .replace(",\"refused_limit\":3", "")
            .replace(",\"timed_out\":2", "")
            .replace(",\"refused_memory\":4", "")
            .replace(",\"masked\":5", "");
        assert_eq!(
            old.len(),
            j.len()
                - ",\"refused_limit\":3,\"timed_out\":2,\"refused_memory\":4,\"masked\":5".len()
        );
        let old = Status::from_json(&old).unwrap();
        assert_eq!(
            (
                old.services[0].refused_limit,
                old.services[0].timed_out,
                old.services[0].refused_memory,
                old.services[0].masked
            ),
            (0, 0, 0, 0)
        );
        let kv: BTreeMap<String, String> = s
            .to_xenstore()
            .into_iter()
            .filter(|(k, _)| {
                !k.ends_with("/refused-limit")
                    && !k.ends_with("/timed-out")
                    && !k.ends_with("/refused-memory")
                    && !k.ends_with("/masked")
            })
            .collect();
        let mut read = |k: &str| kv.get(k).cloned();
        let mut list = |k: &str| {
            let pre = format!("{k}/");
            let mut v: Vec<String> = kv
                .keys()
                .filter_map(|x| x.strip_prefix(&pre))
                .map(|x| x.split('/').next().unwrap().to_string())
                .collect();
            v.dedup();
            v
        };
        let back = Status::from_xenstore(&mut read, &mut list).unwrap();
        assert_eq!(
            (
                back.services[0].refused_limit,
                back.services[0].timed_out,
                back.services[0].refused_memory,
                back.services[0].masked
            ),
            (0, 0, 0, 0)
        );
        assert_eq!(back.services[0].no_quorum, 1);
    }

    #[test]
    fn xenstore_malformed_names_key() {
        let mut read = |k: &str| {
            if k.ends_with("version") {
                Some("x".to_string())
            } else {
                None
            }
        };
        let mut list = |_: &str| Vec::new();
        let e = Status::from_xenstore(&mut read, &mut list)
            .unwrap_err()
            .to_string();
        assert!(e.contains("data/domain-nv/version"), "{e}");
    }
}
