//! The group spec: one YAML file describing an NV domain, the voted service and N replicas.
//!
//! Parsing is strict (`deny_unknown_fields`); [`GroupSpec::parse`] also checks the semantic rules
//! (see [`GroupSpec::validate`]). Every error names the field (`replicas[2].memory`) and, when
//! the field (or its nearest parent) can be found in the text, the line.
//!
//! One file per concern: this one holds the spec types; `link` the replica links and their
//! MACs, `parse` parsing and [`SpecError`], `locate` finding a field's line, `names` the name,
//! MAC and PCI address checks, `validate` the semantic rules.

mod link;
mod locate;
mod names;
mod parse;
mod validate;

pub use link::{mac_for, LinkAddrs};
pub use locate::locate;
pub use names::{valid_mac, valid_name, SPEC_NAME_MAX};
pub use parse::{SpecError, SpecErrors};

use crate::xl_extra::XlExtra;
use nv_schema::config::{Protocol, ServiceConfig, Transport};
use nv_schema::net::Ipv4Cidr;
use serde::{Deserialize, Serialize};

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
    /// Rate limit of the bridged vif (xl's vif `rate=`, e.g. `100Mb/s`; only with `bridge`).
    pub rate: Option<String>,
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
    /// Physical CPUs it may run on (xl's `cpus=`, e.g. `0-1`; default: any).
    pub cpus: Option<String>,
    /// XSM security label (xl's `seclabel=`, `user:role:type`).
    pub seclabel: Option<String>,
    /// Other xl.cfg keys passed through ([`crate::xl_extra`]).
    #[serde(default)]
    pub xl_extra: XlExtra,
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
    /// `tcp` (the default) or `udp`.
    #[serde(default, skip_serializing_if = "Transport::is_default")]
    pub transport: Transport,
    /// How replica outputs are compared: `bytes` (the default), `redis` or `http` (TCP), `dns`
    /// (UDP); domain-nv's config rules apply ([`ServiceConfig::check_own_keys`]).
    #[serde(default, skip_serializing_if = "Protocol::is_default")]
    pub protocol: Protocol,
    /// With `protocol: http`: response headers besides `Date` compared by shape only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mask_headers: Vec<String>,
}

impl Port {
    /// The port on the replicas.
    pub fn replica_port(&self) -> u16 {
        self.replica_port.unwrap_or(self.listen)
    }

    /// The domain-nv service of this port.
    pub fn service_config(&self) -> ServiceConfig {
        ServiceConfig {
            transport: self.transport,
            protocol: self.protocol,
            mask_headers: self.mask_headers.clone(),
            ..ServiceConfig::tcp(&self.name, self.listen, self.replica_port())
        }
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
    /// Rate limit of its vif (xl's vif `rate=`, e.g. `10Mb/s@20ms`; default: none).
    pub rate: Option<String>,
    /// Physical CPUs it may run on (xl's `cpus=`, e.g. `2-3`; default: any).
    pub cpus: Option<String>,
    /// XSM security label (xl's `seclabel=`, `user:role:type`).
    pub seclabel: Option<String>,
    /// Other xl.cfg keys passed through ([`crate::xl_extra`]).
    #[serde(default)]
    pub xl_extra: XlExtra,
}

/// Where the state of a new instance of a replica comes from (`state` of the spec), when
/// `replace` or `watch`'s auto-repair makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum StateTransfer {
    /// Boots from its image with no state of its own (stateless services; the default).
    #[default]
    Fresh,
    /// A memory copy of a live member of another replica (`xl save -c`, `xl restore`).
    Clone,
}

/// The private link of every replica to the NV domain. Every link presents the same addressing
/// (replica address and MAC, NV-side address): a replica cloned from another's memory keeps its
/// addresses and neighbour cache and works on its own link, and replicas look alike to the voter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ReplicaLink {
    /// The replica's address, `a.b.c.d/len` (default `10.77.0.2/24`).
    #[serde(default = "d_link_address")]
    pub address: String,
    /// The NV domain's address (default: the lowest other host address of the subnet).
    pub nv_address: Option<String>,
    /// MAC of every replica's vif (default `00:16:3e:` + the last three octets of `address`).
    pub mac: Option<String>,
}

fn d_link_address() -> String {
    "10.77.0.2/24".into()
}

impl Default for ReplicaLink {
    fn default() -> ReplicaLink {
        ReplicaLink {
            address: d_link_address(),
            nv_address: None,
            mac: None,
        }
    }
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
    /// The addressing of every replica's private link (the same on each).
    #[serde(default)]
    pub replica_link: ReplicaLink,
    /// The replicas.
    pub replicas: Vec<Replica>,
    /// Replace replicas reported faulty (`nvctl watch`).
    #[serde(default)]
    pub auto_repair: bool,
    /// Where a new instance's state comes from in `replace` and auto-repair (default `fresh`).
    #[serde(default)]
    pub state: StateTransfer,
    /// Every replica must have `cpus`, and no two replicas may share a physical CPU (the
    /// reliability model assumes replicas fail independently).
    #[serde(default)]
    pub isolate_cpus: bool,
}

impl GroupSpec {
    /// The private link every replica presents; None if `replica-link` is malformed.
    pub fn link(&self) -> Option<LinkAddrs> {
        let l = &self.replica_link;
        LinkAddrs::new(&l.address, l.nv_address.as_deref())
    }

    /// The MAC of every replica's vif: `replica-link.mac` or the default derived from its
    /// address, lower case.
    pub fn replica_mac(&self) -> String {
        let l = &self.replica_link;
        match &l.mac {
            Some(m) => m.to_ascii_lowercase(),
            None => match l.address.parse::<Ipv4Cidr>() {
                Ok(c) => mac_for(c.addr),
                Err(_) => String::new(),
            },
        }
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
}

/// Quorum of `n` replicas under majority voting: ⌊n/2⌋+1.
pub fn majority_quorum(n: usize) -> usize {
    n / 2 + 1
}
