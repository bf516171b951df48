//! The status of groups as `nvctl status` prints it: a table (like `xl list`) or JSON.

use super::{GroupView, Role};
use crate::printable::printable;
use crate::xl;
use nv_schema::status::{FaultRecord, ReplicaStatus, ServiceStatus, Status};
use serde::Serialize;

/// Unix time in ms as UTC `YYYY-MM-DDTHH:MM:SS.mmmZ` (proleptic Gregorian calendar).
pub fn utc(ms: u64) -> String {
    let (days, rem) = ((ms / 86_400_000) as i64, ms % 86_400_000);
    // civil_from_days (H. Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, mi, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

/// A value as its serde word (`live`, `value-mismatch`, ...).
pub(super) fn word<T: serde::Serialize>(v: &T) -> String {
    serde_yaml::to_string(v)
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// One service's line: connections for TCP, question counters for UDP.
fn service_line(s: &ServiceStatus) -> String {
    let (name, listen) = (printable(&s.name), printable(&s.listen));
    match &s.datagrams {
        None => format!(
            "  service {name} on {listen}: {} active, {} total\n",
            s.active, s.total
        ),
        Some(d) => format!(
            "  service {name} on udp {listen}: {} questions, {} answered, {} masked, {} dropped, \
             {} no-quorum, {} unsolicited\n",
            d.questions, d.answered, d.masked, d.dropped, s.no_quorum, d.unsolicited
        ),
    }
}

/// The table `nvctl status` prints (columns like `xl list`).
pub fn format_table(views: &[GroupView]) -> String {
    let mut o = String::new();
    for v in views {
        if !o.is_empty() {
            o.push('\n');
        }
        let nv = match (&v.nv, &v.status) {
            (None, _) => "not running".to_string(),
            (Some(d), None) => format!("id {} {}, no status yet", d.id, d.state),
            (Some(d), Some(s)) => format!(
                "id {} {}, {}",
                d.id,
                d.state,
                match (s.ready, s.draining) {
                    (_, true) => "draining",
                    (true, false) => "ready",
                    (false, false) => "not ready",
                }
            ),
        };
        o.push_str(&format!(
            "Group {}   NV domain {} ({nv})\n",
            v.group, v.nv_name
        ));
        for s in v.status.iter().flat_map(|s| &s.services) {
            o.push_str(&service_line(s));
        }
        o.push_str(&format!(
            "{:<12} {:<22} {:>5} {:<7} {:<8} {:<5} {:>5} {:>12} {:>6}  {}\n",
            "Replica",
            "Domain",
            "ID",
            "State",
            "Health",
            "Link",
            "Conns",
            "Bytes-voted",
            "Faults",
            "Last fault"
        ));
        for i in &v.instances {
            let name = if i.role == Role::Joining {
                format!("{}*", i.instance.name())
            } else {
                i.instance.name()
            };
            let (id, state) = match &i.domain {
                Some(d) => (d.id.to_string(), d.state.clone()),
                None => ("-".to_string(), "gone".to_string()),
            };
            let (health, link, conns, bytes, nf, last) = match &i.status {
                Some(r) => (
                    word(&r.state),
                    word(&r.link),
                    r.connections.to_string(),
                    r.bytes_voted.to_string(),
                    r.faults.len().to_string(),
                    r.faults.last().map(fault_line).unwrap_or_default(),
                ),
                None => (
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    String::new(),
                ),
            };
            let row = format!(
                "{:<12} {:<22} {:>5} {:<7} {:<8} {:<5} {:>5} {:>12} {:>6}  {}",
                name,
                i.instance.domain(&v.group),
                id,
                state,
                health,
                link,
                conns,
                bytes,
                nf,
                last
            );
            o.push_str(row.trim_end());
            o.push('\n');
        }
        let faulty: Vec<&ReplicaStatus> = v
            .instances
            .iter()
            .filter_map(|i| i.status.as_ref())
            .filter(|r| r.faults.len() > 1)
            .collect();
        if !faulty.is_empty() {
            o.push_str(&format!(
                "Recent faults (last {SHOWN_FAULTS} per replica; all with --json):\n"
            ));
        }
        for r in faulty {
            for f in r.faults.iter().rev().take(SHOWN_FAULTS) {
                o.push_str(&format!("  {:<10} {}\n", printable(&r.name), fault_line(f)));
            }
        }
    }
    o
}

/// How many faults per replica the status table lists below the rows.
const SHOWN_FAULTS: usize = 5;

/// A fault as the status table shows it: time, kind, service#connection, detail (control
/// characters escaped).
fn fault_line(f: &FaultRecord) -> String {
    let line = format!(
        "{} {} {}#{} {}",
        utc(f.time_ms),
        f.kind,
        f.service,
        f.connection,
        f.detail
    );
    printable(line.trim_end())
}

/// One group in `nvctl status --json`.
#[derive(Serialize)]
struct GroupJson<'a> {
    group: &'a str,
    nv_domain: NvDomainJson<'a>,
    instances: Vec<InstanceJson<'a>>,
    status: Option<&'a Status>,
}

/// The NV domain of a [`GroupJson`].
#[derive(Serialize)]
struct NvDomainJson<'a> {
    name: &'a str,
    domain: Option<&'a xl::Domain>,
}

/// One instance of a [`GroupJson`].
#[derive(Serialize)]
struct InstanceJson<'a> {
    name: String,
    replica: &'a str,
    generation: u32,
    role: &'static str,
    domain_name: String,
    domain: Option<&'a xl::Domain>,
    mac: &'a str,
    address: String,
    image: Option<&'a str>,
}

/// The JSON `nvctl status --json` prints: an array of groups; `status` is the NV domain's
/// status in the encoding of [`Status::to_json`] (or null).
pub fn format_json(views: &[GroupView]) -> String {
    let groups: Vec<GroupJson> = views
        .iter()
        .map(|v| GroupJson {
            group: &v.group,
            nv_domain: NvDomainJson {
                name: &v.nv_name,
                domain: v.nv.as_ref(),
            },
            instances: v
                .instances
                .iter()
                .map(|i| InstanceJson {
                    name: i.instance.name(),
                    replica: &i.instance.replica,
                    generation: i.instance.generation,
                    role: i.role.word(),
                    domain_name: i.instance.domain(&v.group),
                    domain: i.domain.as_ref(),
                    mac: &i.instance.mac,
                    address: format!("{}/{}", i.instance.link.replica, i.instance.link.prefix),
                    image: i.instance.image.as_deref(),
                })
                .collect(),
            status: v.status.as_ref(),
        })
        .collect();
    // Strings, numbers and sequences only: serializing cannot fail.
    serde_json::to_string(&groups).expect("the status view serializes to JSON")
}

#[cfg(test)]
mod tests {
    use super::super::nv_status::{describe, new_faults, Faults};
    use super::super::tests::SPEC;
    use super::super::InstanceView;
    use super::*;
    use crate::render;
    use crate::spec::GroupSpec;
    use nv_schema::status::ReplicaHealth;

    #[test]
    fn status_text_from_the_nv_domain_is_printed_without_control_characters() {
        let spec = GroupSpec::parse(SPEC).unwrap();
        let evil = "\u{1b}[2J\u{1b}]0;owned\u{7}\r\u{9b}31m";
        let fault = FaultRecord {
            time_ms: 0,
            kind: format!("value-mismatch{evil}"),
            service: format!("redis{evil}"),
            connection: 3,
            detail: format!("offset 120\n{evil}"),
        };
        let replica = |name: &str| ReplicaStatus {
            name: name.to_string(),
            state: ReplicaHealth::Faulty,
            link: nv_schema::status::LinkState::Up,
            connections: 1,
            bytes_voted: 2,
            faults: vec![fault.clone(), fault.clone()],
            overloaded: 0,
        };
        let status = Status {
            version: nv_schema::status::SCHEMA_VERSION,
            ready: true,
            draining: false,
            updated_ms: 0,
            services: vec![nv_schema::status::ServiceStatus {
                name: format!("redis{evil}"),
                listen: format!("192.0.2.10:6379{evil}"),
                active: 1,
                total: 1,
                no_quorum: 0,
                refused_limit: 0,
                timed_out: 0,
                refused_memory: 0,
                masked: 0,
                datagrams: None,
            }],
            replicas: vec![replica("r0"), replica(&format!("r0{evil}"))],
            vifs: Vec::new(),
            links: Vec::new(),
        };
        let view = GroupView {
            group: "web".into(),
            nv_name: "web-nv".into(),
            nv: None,
            status: Some(status.clone()),
            instances: render::initial_instances(&spec)
                .into_iter()
                .map(|i| InstanceView {
                    status: Some(replica(&i.name())),
                    instance: i,
                    role: Role::Member,
                    domain: None,
                })
                .collect(),
        };
        let table = format_table(&[view]);
        assert!(
            !table.chars().any(|c| c.is_control() && c != '\n'),
            "{table:?}"
        );
        assert!(table.contains("offset 120"), "{table}");
        let faults = new_faults(&Faults::new(), &Some(status), None);
        let text = describe(&faults);
        assert!(!text.chars().any(char::is_control), "{text:?}");
    }

    #[test]
    fn a_draining_nv_domain_says_so() {
        let status = Status {
            version: nv_schema::status::SCHEMA_VERSION,
            ready: true,
            draining: true,
            updated_ms: 0,
            services: vec![],
            replicas: vec![],
            vifs: Vec::new(),
            links: Vec::new(),
        };
        let mut view = GroupView {
            group: "web".into(),
            nv_name: "web-nv".into(),
            nv: Some(xl::Domain {
                id: 7,
                mem: 256,
                vcpus: 1,
                state: "-b----".into(),
                uuid: String::new(),
            }),
            status: Some(status),
            instances: vec![],
        };
        assert!(format_table(&[view.clone()]).contains("(id 7 -b----, draining)"));
        view.status.as_mut().unwrap().draining = false;
        assert!(format_table(&[view]).contains("(id 7 -b----, ready)"));
    }

    #[test]
    fn udp_services_show_their_question_counters() {
        let service = |datagrams| ServiceStatus {
            name: "dns".into(),
            listen: "192.0.2.10:53".into(),
            active: 0,
            total: 0,
            no_quorum: 1,
            refused_limit: 0,
            timed_out: 0,
            refused_memory: 0,
            masked: 0,
            datagrams,
        };
        let udp = service(Some(nv_schema::status::DatagramCounters {
            questions: 120,
            answered: 117,
            masked: 3,
            dropped: 2,
            unsolicited: 4,
        }));
        assert_eq!(
            service_line(&udp),
            "  service dns on udp 192.0.2.10:53: 120 questions, 117 answered, 3 masked, \
             2 dropped, 1 no-quorum, 4 unsolicited\n"
        );
        assert_eq!(
            service_line(&service(None)),
            "  service dns on 192.0.2.10:53: 0 active, 0 total\n"
        );
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(utc(1_790_000_000_100), "2026-09-21T14:13:20.100Z");
    }
}
