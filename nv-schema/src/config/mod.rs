//! The appliance configuration (YAML): services, replicas and their links, voting policy,
//! timeouts and buffer bounds.
//!
//! Every error names the field (`replicas[1].address`) and, where it can be found, the line.
//!
//! domain-nv reads it with [`Config::from_yaml`]; nvctl and the test labs build a [`Config`]
//! value and write it with [`Config::to_yaml`], so the format is declared once, here.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use crate::net::Ipv4Cidr;

#[cfg(test)]
mod tests;
mod transport;
mod validate;

pub use transport::{
    DatagramLimits, Protocol, Transport, DEFAULT_DATAGRAM_PENDING,
    DEFAULT_DATAGRAM_PENDING_PER_CLIENT, MAX_DATAGRAM_PENDING,
};

/// A configuration error: which field, where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Path of the field, e.g. `replicas[1].address` (`.` for the whole document).
    pub field: String,
    /// 1-based line in the YAML text, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(
                f,
                "config error in `{}` (line {}): {}",
                self.field, line, self.message
            ),
            None => write!(f, "config error in `{}`: {}", self.field, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Where a link's frames come from and go to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LinkConfig {
    /// A Linux TAP device, optionally inside a network namespace (`ip netns` name or path).
    Tap {
        /// Interface name.
        name: String,
        /// Network namespace holding the interface.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        netns: Option<String>,
        /// Exchange TCP segments of up to 64 KiB with the host (virtio-net header with
        /// checksum and segmentation offload) instead of one MTU-sized frame per syscall.
        /// Default on; plain frames if the kernel refuses.
        #[serde(default = "default_offload")]
        offload: bool,
    },
    /// A NIC read and written through an `AF_PACKET` raw socket.
    Raw {
        /// Interface name.
        interface: String,
        /// Network namespace holding the interface.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        netns: Option<String>,
        /// Exchange TCP segments of up to 64 KiB with the NIC (`PACKET_VNET_HDR`: a
        /// virtio-net header with partial checksums and GSO) instead of one MTU-sized frame per
        /// syscall. Default on; plain frames if the kernel refuses.
        #[serde(default = "default_offload")]
        offload: bool,
    },
    /// A Xen netback vif served by this process (on Xen only).
    Vif {
        /// The vif's name as given by the toolstack (e.g. the replica name).
        name: String,
    },
}

/// The voting policy as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyName {
    /// Majority of N >= 3.
    Majority,
    /// All must agree (N = 2: fail-stop).
    Unanimous,
    /// Primary released at once, backups compared behind it.
    PrimaryBackup,
}

impl PolicyName {
    /// The word used in YAML (`majority`, `unanimous`, `primary-backup`).
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyName::Majority => "majority",
            PolicyName::Unanimous => "unanimous",
            PolicyName::PrimaryBackup => "primary-backup",
        }
    }
}

impl FromStr for PolicyName {
    type Err = String;
    /// Reads the word used in YAML, with the YAML reader's rules and error message.
    fn from_str(s: &str) -> Result<Self, String> {
        use serde::de::IntoDeserializer;
        PolicyName::deserialize(s.into_deserializer())
            .map_err(|e: serde::de::value::Error| e.to_string())
    }
}

impl fmt::Display for PolicyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much a joining replica (restarted or new) must agree with the quorum before it votes:
/// client connections that ended with its output in agreement, and output bytes that matched.
/// Both must be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probation {
    /// Client connections on which it agreed to the end (at least 1).
    #[serde(default = "default_probation_connections")]
    pub connections: u64,
    /// Output bytes on which it agreed, over those connections.
    #[serde(default = "default_probation_bytes")]
    pub bytes: u64,
}

impl Default for Probation {
    fn default() -> Probation {
        Probation {
            connections: DEFAULT_PROBATION_CONNECTIONS,
            bytes: DEFAULT_PROBATION_BYTES,
        }
    }
}

impl Probation {
    /// True if every setting is at its default (the config then leaves the key out).
    pub fn is_default(&self) -> bool {
        *self == Probation::default()
    }
}

/// Default probation: client connections in agreement.
pub const DEFAULT_PROBATION_CONNECTIONS: u64 = 20;
/// Default probation: output bytes in agreement.
pub const DEFAULT_PROBATION_BYTES: u64 = 4096;

fn default_probation_connections() -> u64 {
    DEFAULT_PROBATION_CONNECTIONS
}
fn default_probation_bytes() -> u64 {
    DEFAULT_PROBATION_BYTES
}

/// Default straggler deadline, ms.
pub const DEFAULT_STRAGGLER_TIMEOUT_MS: u64 = 2000;
/// Default replica connect deadline, ms.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 2000;
/// Default per-replica bound on buffered bytes per connection.
pub const DEFAULT_BUFFER_LIMIT: usize = 1 << 20;
/// Default size of each TCP socket buffer.
pub const DEFAULT_TCP_BUFFER: usize = 256 << 10;
/// Default IP MTU of TAP and raw links.
pub const DEFAULT_MTU: usize = 1500;
/// Default number of listening sockets kept ready per service.
pub const DEFAULT_LISTEN_POOL: usize = 16;
/// Default time open client connections get to finish after SIGTERM, ms.
pub const DEFAULT_DRAIN_TIMEOUT_MS: u64 = 30_000;
/// Longest allowed `drain_timeout_ms` (an hour).
pub const MAX_DRAIN_TIMEOUT_MS: u64 = 3_600_000;
/// Default memory budget of the open connections, MiB.
pub const DEFAULT_MEMORY_BUDGET_MB: usize = 1024;
/// Largest allowed `memory_budget_mb` (1 TiB).
pub const MAX_MEMORY_BUDGET_MB: usize = 1 << 20;
/// Longest allowed `client_timeout_ms` and `replica_timeout_ms` (a day).
pub const MAX_IDLE_TIMEOUT_MS: u64 = 86_400_000;

fn default_straggler_ms() -> u64 {
    DEFAULT_STRAGGLER_TIMEOUT_MS
}
fn default_connect_ms() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_MS
}
fn default_buffer_limit() -> usize {
    DEFAULT_BUFFER_LIMIT
}
fn default_tcp_buffer() -> usize {
    DEFAULT_TCP_BUFFER
}
fn default_mtu() -> usize {
    DEFAULT_MTU
}
fn default_offload() -> bool {
    true
}
fn default_listen_pool() -> usize {
    DEFAULT_LISTEN_POOL
}
fn default_memory_budget_mb() -> usize {
    DEFAULT_MEMORY_BUDGET_MB
}
fn is_default_memory_budget(mb: &usize) -> bool {
    *mb == DEFAULT_MEMORY_BUDGET_MB
}
fn default_drain_timeout_ms() -> u64 {
    DEFAULT_DRAIN_TIMEOUT_MS
}
fn is_default_drain_timeout(ms: &u64) -> bool {
    *ms == DEFAULT_DRAIN_TIMEOUT_MS
}
fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// The external link: where clients come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalConfig {
    /// The link.
    pub link: LinkConfig,
    /// The appliance's address on it.
    pub address: Ipv4Cidr,
    /// Default gateway for clients outside the subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
}

/// One voted service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Name used in logs and status.
    pub name: String,
    /// Port on the external address.
    pub listen: u16,
    /// Port of the service on each replica.
    pub replica_port: u16,
    /// TCP (the default) or UDP.
    #[serde(default, skip_serializing_if = "Transport::is_default")]
    pub transport: Transport,
    /// The protocol it speaks: how replica outputs are compared, and for TCP how conflicting
    /// requests are ordered and which benign differences are masked (default `bytes`: neither).
    #[serde(default, skip_serializing_if = "Protocol::is_default")]
    pub protocol: Protocol,
    /// With `protocol: bytes`, how client connections' input is ordered (default `none`).
    #[serde(default, skip_serializing_if = "InputOrdering::is_none")]
    pub ordering: InputOrdering,
    /// With `protocol: http`, response headers (besides `Date`) whose values compare by shape
    /// only (letters and digits as `x`), e.g. `ETag`, `Last-Modified`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mask_headers: Vec<String>,
}

impl ServiceConfig {
    /// A TCP service voted as bytes.
    pub fn tcp(name: &str, listen: u16, replica_port: u16) -> ServiceConfig {
        ServiceConfig {
            name: name.to_owned(),
            listen,
            replica_port,
            transport: Transport::Tcp,
            protocol: Protocol::Bytes,
            ordering: InputOrdering::None,
            mask_headers: Vec::new(),
        }
    }
}

/// How the input of a `bytes` service's client connections is ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputOrdering {
    /// Every connection's input goes to the replicas at once.
    #[default]
    None,
    /// One client connection's input at a time: a connection's input waits until every
    /// connection that sent input before it has ended.
    Serial,
}

impl InputOrdering {
    /// True for `none`, the default.
    pub fn is_none(&self) -> bool {
        *self == InputOrdering::None
    }
}

/// One replica and its private link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaConfig {
    /// Name used in logs and status.
    pub name: String,
    /// The private link to the replica.
    pub link: LinkConfig,
    /// The appliance's address on that link.
    pub address: Ipv4Cidr,
    /// The replica's address on that link.
    pub replica_address: Ipv4Addr,
}

/// The whole appliance configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Voting policy.
    pub policy: PolicyName,
    /// The primary's replica name (primary-backup only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    /// Straggler deadline in milliseconds.
    #[serde(default = "default_straggler_ms")]
    pub straggler_timeout_ms: u64,
    /// Replica connect deadline in milliseconds.
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
    /// Per-replica bound on buffered bytes per connection.
    #[serde(default = "default_buffer_limit")]
    pub buffer_limit: usize,
    /// Size of each TCP socket buffer (send and receive).
    #[serde(default = "default_tcp_buffer")]
    pub tcp_buffer: usize,
    /// IP MTU of TAP and raw links (vifs: 1500); the host side must match. Jumbo frames cut
    /// the per-frame cost (one syscall per frame per link).
    #[serde(default = "default_mtu")]
    pub mtu: usize,
    /// Listening sockets kept ready per service (smoltcp has no listen backlog).
    #[serde(default = "default_listen_pool")]
    pub listen_pool: usize,
    /// After SIGTERM: how long open client connections may go on (no new ones are accepted)
    /// before the rest are reset, in milliseconds; 0 resets them at once.
    #[serde(
        default = "default_drain_timeout_ms",
        skip_serializing_if = "is_default_drain_timeout"
    )]
    pub drain_timeout_ms: u64,
    /// Most client connections open at once over all services; one more is reset at accept
    /// (counted as `refused_limit`). 0 (the default): unlimited.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_connections: usize,
    /// Most client connections open at once from one client address; one more is reset at
    /// accept (counted as `refused_limit`). 0 (the default): unlimited.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_connections_per_client: usize,
    /// A client connection with no bytes either way (from the client, or released to it) for
    /// this long is reset, client and replicas, and counted as `timed_out`, in milliseconds.
    /// 0 (the default): no timeout.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub client_timeout_ms: u64,
    /// A client connection waiting this long for an answer no quorum of replicas gave (client
    /// bytes arrived after the last byte released to it, and nothing was released since the
    /// first of them) is reset, client and replicas, nobody blamed, and counted as
    /// `timed_out`, in milliseconds. A replica behind a quorum that did answer is the straggler
    /// timeout's. 0 (the default): no timeout (a service may legitimately take long, e.g. a
    /// blocking read).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub replica_timeout_ms: u64,
    /// Most memory, in MiB, the open client connections may take (their socket and voter
    /// buffers, which grow with the bytes in flight and shrink when idle, plus their state)
    /// before a new connection is reset at accept (counted as `refused_memory`). Connections
    /// already open may grow past it. 0: unlimited. Default 1024.
    #[serde(
        default = "default_memory_budget_mb",
        skip_serializing_if = "is_default_memory_budget"
    )]
    pub memory_budget_mb: usize,
    /// Where to write the JSON status (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_file: Option<String>,
    /// How much a joining replica must agree with the quorum before it votes.
    #[serde(default, skip_serializing_if = "Probation::is_default")]
    pub probation: Probation,
    /// Bounds on the questions of UDP services waiting for their answers.
    #[serde(default, skip_serializing_if = "DatagramLimits::is_default")]
    pub datagram: DatagramLimits,
    /// The external link.
    pub external: ExternalConfig,
    /// The voted services.
    pub services: Vec<ServiceConfig>,
    /// The replicas, in order.
    pub replicas: Vec<ReplicaConfig>,
}

impl Config {
    /// A config with the given policy, links and services and every optional setting at its
    /// default (no primary, no status file).
    pub fn new(
        policy: PolicyName,
        external: ExternalConfig,
        services: Vec<ServiceConfig>,
        replicas: Vec<ReplicaConfig>,
    ) -> Config {
        Config {
            policy,
            primary: None,
            straggler_timeout_ms: DEFAULT_STRAGGLER_TIMEOUT_MS,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            buffer_limit: DEFAULT_BUFFER_LIMIT,
            tcp_buffer: DEFAULT_TCP_BUFFER,
            mtu: DEFAULT_MTU,
            listen_pool: DEFAULT_LISTEN_POOL,
            drain_timeout_ms: DEFAULT_DRAIN_TIMEOUT_MS,
            max_connections: 0,
            max_connections_per_client: 0,
            client_timeout_ms: 0,
            replica_timeout_ms: 0,
            memory_budget_mb: DEFAULT_MEMORY_BUDGET_MB,
            status_file: None,
            probation: Probation::default(),
            datagram: DatagramLimits::default(),
            external,
            services,
            replicas,
        }
    }

    /// Parses and validates a YAML config.
    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = serde_yaml::from_str(text).map_err(|e| {
            let msg = e.to_string();
            // yaml_serde prefixes the message with the field path: "replicas[1].address: ...".
            let (field, message) = match msg.split_once(": ") {
                Some((f, m)) if !f.contains(' ') => (f.to_owned(), m.to_owned()),
                _ => (".".to_owned(), msg.clone()),
            };
            let message = match message.rfind(" at line ") {
                Some(i) => message[..i].to_owned(),
                None => message,
            };
            ConfigError {
                field,
                line: e.location().map(|l| l.line()),
                message,
            }
        })?;
        config.validate().map_err(|(field, message)| ConfigError {
            line: validate::locate(text, &field),
            field,
            message,
        })?;
        Ok(config)
    }

    /// Reads, parses and validates a config file.
    pub fn from_file(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            field: ".".into(),
            line: None,
            message: format!("cannot read {}: {e}", path.display()),
        })?;
        Config::from_yaml(&text)
    }

    /// The YAML text of this config (block style, every field written out), which
    /// [`Config::from_yaml`] reads back to the same value.
    pub fn to_yaml(&self) -> String {
        // Every field is a string, number, bool, sequence or struct: serializing cannot fail.
        serde_yaml::to_string(self).expect("a Config serializes to YAML")
    }
}
