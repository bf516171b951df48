//! The group spec: one YAML file describing an NV domain, the voted service and N replicas.
//!
//! Parsing is strict (`deny_unknown_fields`); [`GroupSpec::parse`] also checks the semantic rules
//! (see [`GroupSpec::validate`]). Every error names the field (`replicas[2].memory`) and, when
//! the field (or its nearest parent) can be found in the text, the line.

use nv_schema::name::{check_ifname, check_name};
use nv_schema::net::{prefix_mask, Ipv4Cidr};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;

use crate::xl_value::{self, CMDLINE_MAX};

/// Voting policy of the group's service: the domain-nv config's word for it.
///
/// `majority` needs N >= 3 (⌊N/2⌋+1 must agree), `unanimous` and `primary-backup` N >= 2.
pub use nv_schema::config::PolicyName as Policy;

/// Guest type of a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum GuestType {
    /// Paravirtualised guest (needed for PCI passthrough).
    Pv,
    /// PVH guest (the default).
    #[default]
    Pvh,
}

impl GuestType {
    /// The value of xl's `type=` key.
    pub fn as_str(self) -> &'static str {
        match self {
            GuestType::Pv => "pv",
            GuestType::Pvh => "pvh",
        }
    }
}

/// The NV domain's external NIC: PCI passthrough or a vif on a Dom0 bridge. Either way the NIC
/// shows up in the NV domain's kernel as `interface`, which domain-nv opens as a raw link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct External {
    /// PCI BDFs passed through (`0000:03:00.0`); excludes `bridge`.
    #[serde(default)]
    pub pci: Vec<String>,
    /// Dom0 bridge of a vif; excludes `pci`.
    pub bridge: Option<String>,
    /// MAC of the bridged vif (only with `bridge`; xl picks one if absent).
    pub mac: Option<String>,
    /// Name of the NIC inside the NV domain (default `eth0`).
    #[serde(default = "d_interface")]
    pub interface: String,
    /// Address of the service on the external network, `a.b.c.d/len`.
    pub address: String,
    /// Default gateway on the external network.
    pub gateway: Option<String>,
}

fn d_interface() -> String {
    "eth0".into()
}

/// The NV (network/voting) driver domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NvDomain {
    /// Domain name; default `<group>-nv`.
    pub name: Option<String>,
    /// `pv` or `pvh` (default; PCI passthrough needs `pv`).
    #[serde(default, rename = "type")]
    pub guest_type: GuestType,
    /// Kernel image path in Dom0.
    pub kernel: String,
    /// Initramfs holding domain-nv as /init (key `initramfs` or `ramdisk`).
    #[serde(alias = "ramdisk")]
    pub initramfs: String,
    /// Extra kernel command line.
    #[serde(default)]
    pub extra: String,
    /// Memory in MiB.
    pub memory: u32,
    /// Virtual CPUs (default 1).
    #[serde(default = "one")]
    pub vcpus: u32,
    /// The external NIC.
    pub external: External,
}

fn one() -> u32 {
    1
}

/// One voted port of the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Port {
    /// Name (shown in status and faults).
    pub name: String,
    /// Port the clients connect to on the external address.
    pub listen: u16,
    /// Port the replicas listen on (default: `listen`).
    pub replica_port: Option<u16>,
}

impl Port {
    /// The port on the replicas.
    pub fn replica_port(&self) -> u16 {
        self.replica_port.unwrap_or(self.listen)
    }
}

/// The voted service: its ports, voting policy and timeouts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Service {
    /// Voting policy.
    pub policy: Policy,
    /// The primary replica (spec name), for `primary-backup` only.
    pub primary: Option<String>,
    /// The voted ports.
    pub ports: Vec<Port>,
    /// A replica behind the released output for this long is a straggler (default 2000).
    #[serde(default = "d_timeout")]
    pub straggler_timeout_ms: u64,
    /// Replica connect timeout (default 2000).
    #[serde(default = "d_timeout")]
    pub connect_timeout_ms: u64,
    /// Per-replica bound on buffered bytes, each direction (default 1 MiB).
    #[serde(default = "d_buffer")]
    pub buffer_limit: u64,
    /// Where domain-nv also writes its status as JSON, inside the NV domain (optional).
    pub status_file: Option<String>,
}

fn d_timeout() -> u64 {
    2000
}
fn d_buffer() -> u64 {
    1 << 20
}

/// One replica guest; kernels and images may differ between replicas (N-version groups).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Replica {
    /// Replica name (unique in the group); its domain is `<group>-<name>`.
    pub name: String,
    /// `pv` or `pvh` (default).
    #[serde(default, rename = "type")]
    pub guest_type: GuestType,
    /// Kernel image path in Dom0.
    pub kernel: String,
    /// Initramfs path in Dom0 (key `initramfs` or `ramdisk`).
    #[serde(alias = "ramdisk")]
    pub initramfs: Option<String>,
    /// Extra kernel command line (nvctl appends a static `ip=` for the private link).
    #[serde(default)]
    pub extra: String,
    /// Root disk image (raw) path in Dom0, attached read-only as xvda: instances share images
    /// (replicas of one version, old and new side by side), so a replica keeps its writable
    /// state in memory (tmpfs/overlay), as a rejuvenated replica restarts from a clean image.
    pub image: Option<String>,
    /// Memory in MiB.
    pub memory: u32,
    /// Virtual CPUs (default 1).
    #[serde(default = "one")]
    pub vcpus: u32,
    /// MAC of its vif (default `00:16:3e:` + the last three octets of `address`).
    pub mac: Option<String>,
    /// Its address on its private link to the NV domain, `a.b.c.d/len`.
    pub address: String,
    /// The NV domain's address on that link (default: the lowest other host address).
    pub nv_address: Option<String>,
}

/// A replica group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GroupSpec {
    /// Group name: letters, digits, `-`, `_`.
    pub group: String,
    /// The NV domain.
    pub nv_domain: NvDomain,
    /// The voted service.
    pub service: Service,
    /// The replicas.
    pub replicas: Vec<Replica>,
    /// Replace replicas reported faulty (`nvctl watch`).
    #[serde(default)]
    pub auto_repair: bool,
}

/// The two ends of a replica's private link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkAddrs {
    /// The replica's address.
    pub replica: Ipv4Addr,
    /// The NV domain's address.
    pub nv: Ipv4Addr,
    /// Prefix length of the link subnet.
    pub prefix: u8,
}

impl LinkAddrs {
    /// From `a.b.c.d/len` and an optional NV-side address (default: the lowest host address of
    /// the subnet other than the replica's). None if malformed or the subnet has no room for two.
    pub fn new(address: &str, nv: Option<&str>) -> Option<LinkAddrs> {
        let cidr: Ipv4Cidr = address.parse().ok()?;
        if cidr.prefix > 31 {
            return None;
        }
        let nv = match nv {
            Some(s) => s.parse().ok()?,
            None => cidr.hosts().find(|a| *a != cidr.addr)?,
        };
        Some(LinkAddrs {
            replica: cidr.addr,
            nv,
            prefix: cidr.prefix,
        })
    }

    /// The network address of the link subnet.
    pub fn network(&self) -> u32 {
        u32::from(self.replica) & prefix_mask(self.prefix)
    }

    /// The subnet mask.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(prefix_mask(self.prefix))
    }

    /// The same link moved to another subnet of the same size (host parts kept).
    pub fn moved_to(&self, network: u32) -> LinkAddrs {
        let host = |a: Ipv4Addr| u32::from(a) & !prefix_mask(self.prefix);
        LinkAddrs {
            replica: Ipv4Addr::from(network | host(self.replica)),
            nv: Ipv4Addr::from(network | host(self.nv)),
            prefix: self.prefix,
        }
    }

    /// True if the two link subnets share an address.
    pub fn overlaps(&self, other_net: u32, other_prefix: u8) -> bool {
        let p = self.prefix.min(other_prefix);
        self.network() & prefix_mask(p) == other_net & prefix_mask(p)
    }
}

impl Replica {
    /// The replica's private link; None if `address`/`nv-address` are malformed.
    pub fn link(&self) -> Option<LinkAddrs> {
        LinkAddrs::new(&self.address, self.nv_address.as_deref())
    }

    /// Its MAC: `mac` or the default derived from `address`, lower case.
    pub fn mac(&self) -> String {
        match &self.mac {
            Some(m) => m.to_ascii_lowercase(),
            None => match self.address.parse::<Ipv4Cidr>() {
                Ok(c) => mac_for(c.addr),
                Err(_) => String::new(),
            },
        }
    }
}

/// The default MAC of a link address: Xen's OUI `00:16:3e` + the address's last three octets.
pub fn mac_for(a: Ipv4Addr) -> String {
    let o = a.octets();
    format!("00:16:3e:{:02x}:{:02x}:{:02x}", o[1], o[2], o[3])
}

/// A spec error: the field and, where known, the 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// Field path, e.g. `replicas[2].memory` (empty if unknown).
    pub field: String,
    /// 1-based line in the spec file.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = self.line {
            write!(f, "line {l}: ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for SpecError {}

/// All errors of one spec, one per line when displayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

/// True if `s` is a unicast, non-zero MAC `xx:xx:xx:xx:xx:xx` ([`xl_value::check_mac`]).
pub fn valid_mac(s: &str) -> bool {
    xl_value::check_mac(s).is_ok()
}

/// Longest group, domain, replica or port name in a spec (leaves room for `<group>-` and
/// `-g<generation>` within the domain-nv config's limit).
pub const SPEC_NAME_MAX: usize = 48;

/// True if `s` is a valid group / domain / replica name: a domain-nv config name (letters,
/// digits, `-`, `_`) of 1..=[`SPEC_NAME_MAX`] chars, not starting with `-` (it is also a
/// command-line argument).
pub fn valid_name(s: &str) -> bool {
    check_name(s, SPEC_NAME_MAX).is_ok() && !s.starts_with('-')
}

/// True if `s` ends like a replacement instance name (`-g<digits>`), reserved for nvctl.
fn generation_suffix(s: &str) -> bool {
    s.rsplit_once("-g")
        .is_some_and(|(_, d)| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
}

/// True if `s` is a PCI BDF `dddd:bb:dd.f`.
fn valid_bdf(s: &str) -> bool {
    let b = s.as_bytes();
    let hex = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_hexdigit);
    b.len() == 12
        && b[4] == b':'
        && b[7] == b':'
        && b[10] == b'.'
        && hex(0..4)
        && hex(5..7)
        && hex(8..10)
        && (b'0'..=b'7').contains(&b[11])
}

/// Quorum of `n` replicas under majority voting: ⌊n/2⌋+1.
pub fn majority_quorum(n: usize) -> usize {
    n / 2 + 1
}

/// One significant line of a YAML text, for [`locate`].
struct YLine<'a> {
    /// 1-based line number.
    no: usize,
    /// Column of the first character (of the `-` for a sequence item).
    start: usize,
    /// True if the line starts a sequence item.
    item: bool,
    /// Column of the key, if the line holds `key:`.
    key_col: usize,
    /// The key, if any.
    key: Option<&'a str>,
}

fn ylines(text: &str) -> Vec<YLine<'_>> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let rest = raw.trim_start_matches(' ');
        if rest.is_empty() || rest.starts_with('#') || rest.starts_with("---") {
            continue;
        }
        let start = raw.len() - rest.len();
        let (item, body, key_col) = match rest.strip_prefix('-') {
            Some(b) if b.is_empty() || b.starts_with(' ') => {
                let b2 = b.trim_start_matches(' ');
                (true, b2, start + 1 + (b.len() - b2.len()))
            }
            _ => (false, rest, start),
        };
        let key = body.split_once(':').and_then(|(k, v)| {
            let k = k.trim().trim_matches(|c| c == '"' || c == '\'');
            let plain = !k.is_empty() && !k.contains(' ') && !k.starts_with(['{', '[']);
            (plain && (v.is_empty() || v.starts_with(' '))).then_some(k)
        });
        out.push(YLine {
            no: i + 1,
            start,
            item,
            key_col,
            key,
        });
    }
    out
}

/// The 1-based line of a field path (`replicas[2].memory`) in a block-style YAML text; if the
/// field itself is absent, the line of its nearest present parent; None if not even the first
/// segment is found.
pub fn locate(text: &str, path: &str) -> Option<usize> {
    let lines = ylines(text);
    let (mut lo, mut hi) = (0, lines.len());
    let (mut key_floor, mut item_floor) = (0usize, 0usize);
    let mut found = None;
    for seg in path.split('.') {
        let (key, indices) = match seg.find('[') {
            Some(p) => (&seg[..p], &seg[p..]),
            None => (seg, ""),
        };
        // the key
        if !key.is_empty() {
            let Some(level) = lines[lo..hi]
                .iter()
                .filter(|l| l.key.is_some() && l.key_col >= key_floor)
                .map(|l| l.key_col)
                .min()
            else {
                return found;
            };
            let Some(i) =
                (lo..hi).find(|&i| lines[i].key_col == level && lines[i].key == Some(key))
            else {
                return found;
            };
            found = Some(lines[i].no);
            let kc = lines[i].key_col;
            let end = (i + 1..hi)
                .find(|&j| lines[j].start < kc || (lines[j].start == kc && !lines[j].item))
                .unwrap_or(hi);
            (lo, hi) = (i + 1, end);
            (key_floor, item_floor) = (kc + 1, kc);
        }
        // its indices
        for idx in indices.split('[').filter(|s| !s.is_empty()) {
            let Ok(n) = idx.trim_end_matches(']').parse::<usize>() else {
                return found;
            };
            let Some(level) = lines[lo..hi]
                .iter()
                .filter(|l| l.item && l.start >= item_floor)
                .map(|l| l.start)
                .min()
            else {
                return found;
            };
            let items: Vec<usize> = (lo..hi)
                .filter(|&i| lines[i].item && lines[i].start == level)
                .collect();
            let Some(&i) = items.get(n) else { return found };
            found = Some(lines[i].no);
            let end = (i + 1..hi).find(|&j| lines[j].start <= level).unwrap_or(hi);
            (lo, hi) = (i, end);
            (key_floor, item_floor) = (level + 1, level + 1);
        }
    }
    found
}

struct Checker<'a> {
    text: &'a str,
    errors: Vec<SpecError>,
}

impl Checker<'_> {
    /// Record the error of a value check, if any, for `field`.
    fn check(&mut self, field: impl Into<String>, r: Result<(), String>) {
        if let Err(m) = r {
            self.err(field, m);
        }
    }

    fn err(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let field = field.into();
        let line = locate(self.text, &field);
        self.errors.push(SpecError {
            field,
            line,
            message: message.into(),
        });
    }
}

impl GroupSpec {
    /// Parse and validate a spec; every error names its field (and line where possible).
    pub fn parse(text: &str) -> Result<GroupSpec, SpecErrors> {
        let spec: GroupSpec = serde_yaml::from_str(text).map_err(|e| {
            let line = e.location().map(|l| l.line());
            let msg = e.to_string();
            // yaml_serde prefixes the path of the offending field ("replicas[2]: missing field ...").
            let (field, message) = match msg.split_once(": ") {
                Some((f, m)) if !f.contains(' ') => (f.to_string(), m.to_string()),
                _ => (String::new(), msg.clone()),
            };
            let message = match message.split_once(" at line ") {
                Some((m, _)) => m.to_string(),
                None => message,
            };
            SpecErrors(vec![SpecError {
                field,
                line,
                message,
            }])
        })?;
        spec.validate(text)?;
        Ok(spec)
    }

    /// The NV domain's name (`nv-domain.name` or `<group>-nv`).
    pub fn nv_name(&self) -> String {
        self.nv_domain
            .name
            .clone()
            .unwrap_or_else(|| format!("{}-nv", self.group))
    }

    /// The spec replica called `name`.
    pub fn replica(&self, name: &str) -> Option<&Replica> {
        self.replicas.iter().find(|r| r.name == name)
    }

    /// Semantic checks; `text` is the spec source, used only to find lines.
    ///
    /// Rules: names are valid and unique, replica names do not end in `-g<digits>` (reserved for
    /// replacements) and no replica domain is named like the NV domain; MACs are valid, unicast
    /// and unique; every replica link parses, has room for both ends, does not overlap another
    /// link nor the external subnet; memory and vcpus > 0; the external NIC is exactly one of
    /// `pci` (which needs `type: pv`) / `bridge`; the external address is `a.b.c.d/len` and the
    /// gateway lies in it; at least one port, listen ports unique and > 0; `majority` needs N >= 3,
    /// `unanimous` and `primary-backup` N >= 2; `primary` is set exactly for `primary-backup` and
    /// names a replica; timeouts > 0; `buffer-limit` >= 4096; a replica has an initramfs or an image.
    pub fn validate(&self, text: &str) -> Result<(), SpecErrors> {
        let mut c = Checker {
            text,
            errors: Vec::new(),
        };
        if !valid_name(&self.group) {
            c.err(
                "group",
                format!(
                    "invalid name {:?} (letters, digits, -, _; at most 48)",
                    self.group
                ),
            );
        }
        let nv = &self.nv_domain;
        if let Some(n) = &nv.name {
            if !valid_name(n) {
                c.err("nv-domain.name", format!("invalid name {n:?}"));
            }
        }
        for (f, v) in [
            ("nv-domain.kernel", &nv.kernel),
            ("nv-domain.initramfs", &nv.initramfs),
        ] {
            if v.trim().is_empty() {
                c.err(f, "must not be empty");
            } else {
                c.check(f, xl_value::check_path(v));
            }
        }
        c.check(
            "nv-domain.extra",
            xl_value::check_cmdline(&nv.extra, CMDLINE_MAX),
        );
        c.check("nv-domain.memory", xl_value::check_memory(nv.memory));
        c.check("nv-domain.vcpus", xl_value::check_vcpus(nv.vcpus));
        let ext = &nv.external;
        match (ext.pci.is_empty(), &ext.bridge) {
            (true, None) => c.err("nv-domain.external", "needs `pci` or `bridge`"),
            (false, Some(_)) => c.err(
                "nv-domain.external.bridge",
                "`pci` and `bridge` exclude each other",
            ),
            _ => {}
        }
        if let Some(b) = &ext.bridge {
            c.check("nv-domain.external.bridge", xl_value::check_bridge(b));
        }
        if !ext.pci.is_empty() && nv.guest_type == GuestType::Pvh {
            c.err("nv-domain.external.pci", "PCI passthrough needs `nv-domain.type: pv` (xl cannot pass PCI devices to PVH guests)");
        }
        for (i, p) in ext.pci.iter().enumerate() {
            if !valid_bdf(p) {
                c.err(
                    format!("nv-domain.external.pci[{i}]"),
                    format!("bad PCI address {p:?} (want dddd:bb:dd.f)"),
                );
            }
        }
        if let Some(m) = &ext.mac {
            if ext.bridge.is_none() {
                c.err("nv-domain.external.mac", "only goes with `bridge`");
            } else {
                c.check("nv-domain.external.mac", xl_value::check_mac(m));
            }
        }
        if !valid_name(&ext.interface) || check_ifname(&ext.interface).is_err() {
            c.err(
                "nv-domain.external.interface",
                format!("bad interface name {:?}", ext.interface),
            );
        }
        let external = ext
            .address
            .parse::<Ipv4Cidr>()
            .ok()
            .filter(|c| c.has_host(c.addr));
        match external {
            None => c.err(
                "nv-domain.external.address",
                format!(
                    "bad address {:?} (want a host address a.b.c.d/len)",
                    ext.address
                ),
            ),
            Some(e) => {
                if let Some(g) = &ext.gateway {
                    match g.parse::<Ipv4Addr>() {
                        Ok(gw) if e.has_host(gw) && gw != e.addr => {}
                        _ => c.err(
                            "nv-domain.external.gateway",
                            format!("{g:?} is not another host address of {}", ext.address),
                        ),
                    }
                }
            }
        }
        self.validate_service(&mut c);
        self.validate_replicas(&mut c, external);
        if c.errors.is_empty() {
            Ok(())
        } else {
            Err(SpecErrors(c.errors))
        }
    }

    fn validate_service(&self, c: &mut Checker) {
        let s = &self.service;
        let n = self.replicas.len();
        if s.ports.is_empty() {
            c.err("service.ports", "at least one port is needed");
        }
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut listens: HashMap<u16, usize> = HashMap::new();
        for (i, p) in s.ports.iter().enumerate() {
            if !valid_name(&p.name) {
                c.err(
                    format!("service.ports[{i}].name"),
                    format!("invalid name {:?}", p.name),
                );
            } else if let Some(j) = names.insert(&p.name, i) {
                c.err(
                    format!("service.ports[{i}].name"),
                    format!("duplicate name {:?} (also service.ports[{j}])", p.name),
                );
            }
            if p.listen == 0 {
                c.err(format!("service.ports[{i}].listen"), "must be > 0");
            } else if let Some(j) = listens.insert(p.listen, i) {
                c.err(
                    format!("service.ports[{i}].listen"),
                    format!("port {} is also service.ports[{j}]", p.listen),
                );
            }
            if p.replica_port == Some(0) {
                c.err(format!("service.ports[{i}].replica-port"), "must be > 0");
            }
        }
        match s.policy {
            Policy::Majority if n < 3 => c.err(
                "service.policy",
                format!("majority needs at least 3 replicas, the group has {n}"),
            ),
            Policy::Unanimous | Policy::PrimaryBackup if n < 2 => c.err(
                "service.policy",
                format!(
                    "{} needs at least 2 replicas, the group has {n}",
                    s.policy.as_str()
                ),
            ),
            _ => {}
        }
        match (&s.primary, s.policy) {
            (None, Policy::PrimaryBackup) => {
                c.err("service.primary", "required with policy primary-backup")
            }
            (Some(p), Policy::PrimaryBackup) if self.replica(p).is_none() => c.err(
                "service.primary",
                format!("{p:?} is not a replica of this group"),
            ),
            (Some(_), Policy::Majority | Policy::Unanimous) => {
                c.err("service.primary", "only allowed with policy primary-backup")
            }
            _ => {}
        }
        if s.straggler_timeout_ms == 0 {
            c.err("service.straggler-timeout-ms", "must be > 0");
        }
        if s.connect_timeout_ms == 0 {
            c.err("service.connect-timeout-ms", "must be > 0");
        }
        if s.buffer_limit < 4096 {
            c.err(
                "service.buffer-limit",
                format!("{} bytes is below the minimum 4096", s.buffer_limit),
            );
        }
        if let Some(f) = &s.status_file {
            if !f.starts_with('/') {
                c.err(
                    "service.status-file",
                    format!("{f:?} is not an absolute path"),
                );
            }
        }
    }

    /// A replica's `extra` follows the command-line grammar and, with the longest `ip=` nvctl
    /// may append (any link, any generation), fits the PV command line.
    fn check_replica_cmdline(&self, r: &Replica) -> Result<(), String> {
        xl_value::check_cmdline(&r.extra, usize::MAX)?;
        let a = Ipv4Addr::BROADCAST;
        let longest_ip = format!(
            "ip={a}::{a}:{a}:{}-{}-g{}:eth0:off",
            self.group,
            r.name,
            u32::MAX
        );
        let total = if r.extra.is_empty() {
            longest_ip.len()
        } else {
            r.extra.len() + 1 + longest_ip.len()
        };
        if total > CMDLINE_MAX {
            return Err(format!(
                "{} bytes plus the up to {} bytes of nvctl's ` ip=...` make a kernel command line longer than the {CMDLINE_MAX} bytes Xen passes to a PV guest",
                r.extra.len(),
                total - r.extra.len()
            ));
        }
        Ok(())
    }

    fn validate_replicas(&self, c: &mut Checker, external: Option<Ipv4Cidr>) {
        if self.replicas.is_empty() {
            c.err("replicas", "at least one replica is needed");
        }
        let nv_name = self.nv_name();
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut macs: HashMap<String, String> = HashMap::new();
        if let Some(m) = &self.nv_domain.external.mac {
            macs.insert(m.to_ascii_lowercase(), "nv-domain.external.mac".into());
        }
        let mut links: Vec<(usize, LinkAddrs)> = Vec::new();
        for (i, r) in self.replicas.iter().enumerate() {
            let f = |k: &str| format!("replicas[{i}].{k}");
            if !valid_name(&r.name) {
                c.err(
                    f("name"),
                    format!("invalid name {:?} (letters, digits, -, _)", r.name),
                );
            } else if generation_suffix(&r.name) {
                c.err(
                    f("name"),
                    format!(
                        "{:?} ends in -g<number>, which nvctl uses for replacements",
                        r.name
                    ),
                );
            } else if format!("{}-{}", self.group, r.name) == nv_name {
                c.err(
                    f("name"),
                    format!("its domain {nv_name} would be named like the NV domain"),
                );
            } else if nv_name
                .strip_prefix(&format!("{}-{}-g", self.group, r.name))
                .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
            {
                c.err(
                    "nv-domain.name",
                    format!("{nv_name} would be named like a replacement of replicas[{i}]"),
                );
            }
            if let Some(j) = names.insert(&r.name, i) {
                c.err(
                    f("name"),
                    format!("duplicate name {:?} (also replicas[{j}])", r.name),
                );
            }
            if r.kernel.trim().is_empty() {
                c.err(f("kernel"), "must not be empty");
            } else {
                c.check(f("kernel"), xl_value::check_path(&r.kernel));
            }
            if let Some(p) = &r.initramfs {
                c.check(f("initramfs"), xl_value::check_path(p));
            }
            if let Some(p) = &r.image {
                c.check(f("image"), xl_value::check_path(p));
            }
            if r.initramfs.is_none() && r.image.is_none() {
                c.err(f("image"), "a replica needs an `image` or an `initramfs`");
            }
            c.check(f("memory"), xl_value::check_memory(r.memory));
            c.check(f("vcpus"), xl_value::check_vcpus(r.vcpus));
            c.check(f("extra"), self.check_replica_cmdline(r));
            let cidr = r.address.parse::<Ipv4Cidr>().ok();
            let link = match cidr {
                Some(a) if a.prefix <= 31 && a.has_host(a.addr) => r.link(),
                _ => {
                    c.err(
                        f("address"),
                        format!(
                            "bad address {:?} (want a host address a.b.c.d/len, len <= 31)",
                            r.address
                        ),
                    );
                    None
                }
            };
            if let (Some(nva), Some(a)) = (&r.nv_address, cidr) {
                match nva.parse::<Ipv4Addr>() {
                    Ok(x) if a.has_host(x) && x != a.addr => {}
                    _ => c.err(
                        f("nv-address"),
                        format!("{nva:?} is not another host address of {}", r.address),
                    ),
                }
            }
            if let Some(link) = link {
                if let Some((j, _)) = links
                    .iter()
                    .find(|(_, o)| o.overlaps(link.network(), link.prefix))
                {
                    c.err(f("address"), format!("link subnet of {} overlaps that of replicas[{j}] (each replica needs its own subnet)", r.address));
                } else if external.is_some_and(|e| link.overlaps(e.network(), e.prefix)) {
                    c.err(
                        f("address"),
                        format!("link subnet of {} overlaps the external subnet", r.address),
                    );
                }
                links.push((i, link));
            }
            let mac = r.mac();
            let mac_ok = r.mac.is_none() || xl_value::check_mac(&mac).is_ok();
            if r.mac.is_some() {
                c.check(f("mac"), xl_value::check_mac(&mac));
            }
            if mac_ok && !mac.is_empty() {
                if let Some(other) = macs.insert(mac.clone(), format!("replicas[{i}]")) {
                    c.err(
                        f("mac"),
                        format!(
                            "duplicate MAC {mac} (also {other}){}",
                            if r.mac.is_none() {
                                "; set `mac` explicitly"
                            } else {
                                ""
                            }
                        ),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_finds_nested_fields_and_falls_back_to_parents() {
        let text = "group: web\n# comment\nnv-domain:\n  memory: 256\n  external:\n    pci:\n      - 0000:03:00.0\nreplicas:\n- name: r0\n  memory: 1\n-   name: r1\n    memory: 2\n";
        assert_eq!(locate(text, "group"), Some(1));
        assert_eq!(locate(text, "nv-domain.memory"), Some(4));
        assert_eq!(locate(text, "nv-domain.external.pci[0]"), Some(7));
        assert_eq!(locate(text, "replicas[0].name"), Some(9));
        assert_eq!(locate(text, "replicas[1].memory"), Some(12));
        assert_eq!(locate(text, "replicas[1].vcpus"), Some(11));
        assert_eq!(locate(text, "replicas[5].vcpus"), Some(8));
        assert_eq!(locate(text, "service.ports"), None);
    }

    #[test]
    fn addresses_follow_the_domain_nv_config_rules() {
        // the prefix length is 1..=32 as in domain-nv's config (a /0 spec used to pass nvctl
        // and then fail in domain-nv)
        let spec = include_str!("../../xl-configs/example-group.yaml");
        assert!(spec.contains("address: 192.0.2.10/24"));
        let e = GroupSpec::parse(&spec.replace("address: 192.0.2.10/24", "address: 192.0.2.10/0"))
            .unwrap_err();
        assert_eq!(e.0[0].field, "nv-domain.external.address", "{e}");
        assert!(LinkAddrs::new("10.0.0.1/0", None).is_none());
        assert!(valid_name("r0") && !valid_name(&"x".repeat(SPEC_NAME_MAX + 1)));
    }

    #[test]
    fn link_defaults_and_moves() {
        let l = LinkAddrs::new("10.77.1.2/24", None).unwrap();
        assert_eq!(
            (l.nv, l.netmask()),
            (Ipv4Addr::new(10, 77, 1, 1), Ipv4Addr::new(255, 255, 255, 0))
        );
        let l1 = LinkAddrs::new("10.77.1.1/24", None).unwrap();
        assert_eq!(l1.nv, Ipv4Addr::new(10, 77, 1, 2));
        let p2p = LinkAddrs::new("10.0.0.1/31", None).unwrap();
        assert_eq!(p2p.nv, Ipv4Addr::new(10, 0, 0, 0));
        assert!(LinkAddrs::new("10.0.0.1/32", None).is_none());
        let m = l.moved_to(u32::from(Ipv4Addr::new(10, 77, 9, 0)));
        assert_eq!(
            (m.replica, m.nv),
            (Ipv4Addr::new(10, 77, 9, 2), Ipv4Addr::new(10, 77, 9, 1))
        );
        assert!(l.overlaps(u32::from(Ipv4Addr::new(10, 77, 0, 0)), 16));
        assert!(!l.overlaps(m.network(), 24));
    }

    #[test]
    fn names_macs_and_bdfs() {
        assert!(valid_name("web-1") && !valid_name("-x") && !valid_name("a b") && !valid_name(""));
        assert!(
            generation_suffix("r0-g12") && !generation_suffix("r0-g") && !generation_suffix("big")
        );
        assert!(
            valid_mac("00:16:3e:aa:bb:cc")
                && !valid_mac("01:16:3e:aa:bb:cc")
                && !valid_mac("00:16:3e:aa:bb")
        );
        assert!(valid_bdf("0000:03:00.0") && !valid_bdf("0000:03:00.8") && !valid_bdf("03:00.0"));
        assert_eq!(mac_for(Ipv4Addr::new(10, 77, 1, 2)), "00:16:3e:4d:01:02");
        assert_eq!(majority_quorum(3), 2);
        assert_eq!(majority_quorum(4), 3);
    }
}
