//! The appliance configuration (YAML): services, replicas and their links, voting policy,
//! timeouts and buffer bounds.
//!
//! Every error names the field (`replicas[1].address`) and, where it can be found, the line.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::voter::{Policy, VoterConfig};

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

/// An IPv4 address with its prefix length, written `10.77.1.1/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    /// The address.
    pub addr: Ipv4Addr,
    /// Prefix length, 1..=32.
    pub prefix: u8,
}

impl Ipv4Cidr {
    /// True if `other` lies in this address's subnet.
    pub fn contains(&self, other: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        u32::from(self.addr) & mask == u32::from(other) & mask
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("expected ADDRESS/PREFIX like 10.77.1.1/24, got {s:?}"))?;
        let addr = a
            .parse::<Ipv4Addr>()
            .map_err(|_| format!("{a:?} is not an IPv4 address"))?;
        let prefix = p
            .parse::<u8>()
            .ok()
            .filter(|p| (1..=32).contains(p))
            .ok_or_else(|| format!("prefix {p:?} is not in 1..=32"))?;
        Ok(Ipv4Cidr { addr, prefix })
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl<'de> Deserialize<'de> for Ipv4Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor (rather than String then parse) so that the error carries the scalar's
        // position and field path.
        struct CidrVisitor;
        impl serde::de::Visitor<'_> for CidrVisitor {
            type Value = Ipv4Cidr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an IPv4 address with prefix length, like 10.77.1.1/24")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Ipv4Cidr, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(CidrVisitor)
    }
}

/// Where a link's frames come from and go to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LinkConfig {
    /// A Linux TAP device, optionally inside a network namespace (`ip netns` name or path).
    Tap {
        /// Interface name.
        name: String,
        /// Network namespace holding the interface.
        #[serde(default)]
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
        #[serde(default)]
        netns: Option<String>,
    },
    /// A Xen netback vif served by this process (on Xen only).
    Vif {
        /// The vif's name as given by the toolstack (e.g. the replica name).
        name: String,
    },
}

impl LinkConfig {
    fn ifname(&self) -> &str {
        match self {
            LinkConfig::Tap { name, .. } | LinkConfig::Vif { name } => name,
            LinkConfig::Raw { interface, .. } => interface,
        }
    }
}

/// The voting policy as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyName {
    /// Majority of N >= 3.
    Majority,
    /// All must agree (N = 2: fail-stop).
    Unanimous,
    /// Primary released at once, backups compared behind it.
    PrimaryBackup,
}

fn default_straggler_ms() -> u64 {
    2000
}
fn default_connect_ms() -> u64 {
    2000
}
fn default_buffer_limit() -> usize {
    1 << 20
}
fn default_tcp_buffer() -> usize {
    256 << 10
}
fn default_mtu() -> usize {
    1500
}
fn default_offload() -> bool {
    true
}
fn default_listen_pool() -> usize {
    16
}

/// The external link: where clients come from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalConfig {
    /// The link.
    pub link: LinkConfig,
    /// The appliance's address on it.
    pub address: Ipv4Cidr,
    /// Default gateway for clients outside the subnet.
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
}

/// One voted service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Name used in logs and status.
    pub name: String,
    /// TCP port on the external address.
    pub listen: u16,
    /// TCP port of the service on each replica.
    pub replica_port: u16,
}

/// One replica and its private link.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Voting policy.
    pub policy: PolicyName,
    /// The primary's replica name (primary-backup only).
    #[serde(default)]
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
    /// Where to write the JSON status (optional).
    #[serde(default)]
    pub status_file: Option<String>,
    /// The external link.
    pub external: ExternalConfig,
    /// The voted services.
    pub services: Vec<ServiceConfig>,
    /// The replicas, in order.
    pub replicas: Vec<ReplicaConfig>,
}

impl Config {
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
            line: locate(text, &field),
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

    /// Cross-field checks that the YAML types cannot express; the error is (field path, message).
    fn validate(&self) -> Result<(), (String, String)> {
        let n = self.replicas.len();
        let err = |f: &str, m: String| Err((f.to_owned(), m));
        match self.policy {
            PolicyName::Majority if n < 3 => {
                return err(
                    "policy",
                    format!(
                        "majority needs at least 3 replicas, {n} configured (use unanimous for 2)"
                    ),
                )
            }
            PolicyName::Unanimous | PolicyName::PrimaryBackup if n < 2 => {
                return err(
                    "replicas",
                    format!("at least 2 replicas are needed, {n} configured"),
                )
            }
            _ => {}
        }
        match (&self.policy, &self.primary) {
            (PolicyName::PrimaryBackup, None) => {
                return err(
                    "primary",
                    "primary-backup needs `primary: <replica name>`".into(),
                )
            }
            (PolicyName::PrimaryBackup, Some(p)) if !self.replicas.iter().any(|r| &r.name == p) => {
                return err("primary", format!("{p:?} is not the name of a replica"))
            }
            (PolicyName::Majority | PolicyName::Unanimous, Some(_)) => {
                return err(
                    "primary",
                    "only meaningful with policy primary-backup".into(),
                )
            }
            _ => {}
        }
        if self.straggler_timeout_ms == 0 {
            return err("straggler_timeout_ms", "must be greater than 0".into());
        }
        if self.connect_timeout_ms == 0 {
            return err("connect_timeout_ms", "must be greater than 0".into());
        }
        if self.buffer_limit < 4096 {
            return err(
                "buffer_limit",
                format!("{} is below the minimum of 4096 bytes", self.buffer_limit),
            );
        }
        if self.tcp_buffer < 4096 || self.tcp_buffer > 64 << 20 {
            return err(
                "tcp_buffer",
                format!("{} is outside 4096..=67108864 bytes", self.tcp_buffer),
            );
        }
        if !(576..=65521).contains(&self.mtu) {
            return err("mtu", format!("{} is outside 576..=65521", self.mtu));
        }
        if self.listen_pool == 0 || self.listen_pool > 1024 {
            return err(
                "listen_pool",
                format!("{} is outside 1..=1024", self.listen_pool),
            );
        }
        if let Some(gw) = self.external.gateway {
            if !self.external.address.contains(gw) {
                return err(
                    "external.gateway",
                    format!("{gw} is not in {}", self.external.address),
                );
            }
        }
        if self.services.is_empty() {
            return err("services", "at least one service is needed".into());
        }
        for (i, s) in self.services.iter().enumerate() {
            check_name(&s.name).map_err(|m| (format!("services[{i}].name"), m))?;
            if s.listen == 0 {
                return err(
                    &format!("services[{i}].listen"),
                    "port 0 is not a port".into(),
                );
            }
            if s.replica_port == 0 {
                return err(
                    &format!("services[{i}].replica_port"),
                    "port 0 is not a port".into(),
                );
            }
            if let Some(j) = self.services[..i].iter().position(|o| o.name == s.name) {
                return err(
                    &format!("services[{i}].name"),
                    format!("{:?} is already used by services[{j}]", s.name),
                );
            }
            if let Some(j) = self.services[..i].iter().position(|o| o.listen == s.listen) {
                return err(
                    &format!("services[{i}].listen"),
                    format!("port {} is already used by services[{j}]", s.listen),
                );
            }
        }
        let mut links = vec![("external.link".to_owned(), &self.external.link)];
        for (i, r) in self.replicas.iter().enumerate() {
            check_name(&r.name).map_err(|m| (format!("replicas[{i}].name"), m))?;
            if let Some(j) = self.replicas[..i].iter().position(|o| o.name == r.name) {
                return err(
                    &format!("replicas[{i}].name"),
                    format!("{:?} is already used by replicas[{j}]", r.name),
                );
            }
            if !r.address.contains(r.replica_address) || r.address.addr == r.replica_address {
                return err(
                    &format!("replicas[{i}].replica_address"),
                    format!(
                        "{} must be another address in {}",
                        r.replica_address, r.address
                    ),
                );
            }
            links.push((format!("replicas[{i}].link"), &r.link));
        }
        for (i, (field, link)) in links.iter().enumerate() {
            let name = link.ifname();
            if name.is_empty() || name.len() > 15 || name.contains('/') {
                return err(
                    &format!("{field}.name"),
                    format!("interface name {name:?} must be 1..=15 bytes without '/'"),
                );
            }
            if let Some((other, _)) = links[..i].iter().find(|(_, l)| *l == *link) {
                return err(field, format!("the same link is already used by {other}"));
            }
        }
        Ok(())
    }

    /// The voter settings for one connection.
    pub fn voter_config(&self) -> VoterConfig {
        let policy = match self.policy {
            PolicyName::Majority => Policy::Majority,
            PolicyName::Unanimous => Policy::Unanimous,
            PolicyName::PrimaryBackup => {
                let name = self.primary.as_deref().unwrap_or_default();
                Policy::PrimaryBackup {
                    primary: self
                        .replicas
                        .iter()
                        .position(|r| r.name == name)
                        .unwrap_or(0),
                }
            }
        };
        VoterConfig {
            policy,
            straggler_timeout: Duration::from_millis(self.straggler_timeout_ms),
            buffer_limit: self.buffer_limit,
        }
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "{name:?} must be 1..=64 characters of [A-Za-z0-9_-]"
        ));
    }
    Ok(())
}

/// Finds the line of a field path like `replicas[1].address` in block-style YAML.
fn locate(text: &str, field: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut from = 0usize;
    let mut found = None;
    for part in field.split('.') {
        let (key, index) = match part.split_once('[') {
            Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let key_at = (from..lines.len()).find(|&l| {
            let t = lines[l].trim_start().trim_start_matches("- ");
            t.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })?;
        found = Some(key_at);
        if lines[key_at].contains('{') {
            // A flow mapping: everything below this key is on this line.
            break;
        }
        from = key_at + 1;
        if let Some(index) = index {
            let items: Vec<usize> = (from..lines.len())
                .filter(|&l| lines[l].trim_start().starts_with("- "))
                .collect();
            let indent = items
                .first()
                .map(|&l| lines[l].len() - lines[l].trim_start().len())?;
            let item = *items
                .iter()
                .filter(|&&l| lines[l].len() - lines[l].trim_start().len() == indent)
                .nth(index)?;
            found = Some(item);
            from = item;
        }
    }
    found.map(|l| l + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
policy: majority
straggler_timeout_ms: 500
external:
  link: { kind: tap, name: ext0, netns: nv-client }
  address: 10.77.0.1/24
services:
  - name: redis
    listen: 6379
    replica_port: 6379
replicas:
  - name: r0
    link: { kind: tap, name: r0, netns: nv-r0 }
    address: 10.77.1.1/24
    replica_address: 10.77.1.2
  - name: r1
    link: { kind: tap, name: r1, netns: nv-r1 }
    address: 10.77.2.1/24
    replica_address: 10.77.2.2
  - name: r2
    link: { kind: vif, name: r2 }
    address: 10.77.3.1/24
    replica_address: 10.77.3.2
";

    fn error_for(from: &str, to: &str) -> ConfigError {
        assert!(GOOD.contains(from), "{from}");
        Config::from_yaml(&GOOD.replacen(from, to, 1)).unwrap_err()
    }

    #[test]
    fn good_config_parses_with_defaults() {
        let c = Config::from_yaml(GOOD).unwrap();
        assert_eq!(c.replicas.len(), 3);
        assert_eq!(c.buffer_limit, 1 << 20);
        assert_eq!(
            c.voter_config().straggler_timeout,
            Duration::from_millis(500)
        );
        assert_eq!(c.replicas[2].link, LinkConfig::Vif { name: "r2".into() });
        assert_eq!(
            c.replicas[0].link,
            LinkConfig::Tap {
                name: "r0".into(),
                netns: Some("nv-r0".into()),
                offload: true
            }
        );
    }

    #[test]
    fn tap_offload_can_be_switched_off_per_link() {
        let c = Config::from_yaml(&GOOD.replace(
            "name: r1, netns: nv-r1",
            "name: r1, netns: nv-r1, offload: false",
        ))
        .unwrap();
        assert!(matches!(
            c.replicas[0].link,
            LinkConfig::Tap { offload: true, .. }
        ));
        assert!(matches!(
            c.replicas[1].link,
            LinkConfig::Tap { offload: false, .. }
        ));
    }

    #[test]
    fn each_mistake_names_its_field_and_line() {
        let cases: &[(&str, &str, &str, usize)] = &[
            (
                "address: 10.77.1.1/24",
                "address: 10.77.1.300/24",
                "replicas[0].address",
                13,
            ),
            (
                "replica_address: 10.77.2.2",
                "replica_adress: 10.77.2.2",
                "replicas[1]",
                18,
            ),
            ("policy: majority", "policy: plurality", "policy", 1),
            ("listen: 6379", "listen: 70000", "services[0].listen", 8),
            ("listen: 6379", "listen: 0", "services[0].listen", 8),
            (
                "kind: tap, name: ext0",
                "kind: tun, name: ext0",
                "external.link.kind",
                4,
            ),
            (
                "replica_address: 10.77.3.2",
                "replica_address: 10.77.9.2",
                "replicas[2].replica_address",
                22,
            ),
            ("  - name: r1", "  - name: r0", "replicas[1].name", 15),
            (
                "straggler_timeout_ms: 500",
                "straggler_timeout_ms: 0",
                "straggler_timeout_ms",
                2,
            ),
            (
                "straggler_timeout_ms: 500",
                "straggler_timeout_ms: soon",
                "straggler_timeout_ms",
                2,
            ),
            (
                "{ kind: vif, name: r2 }",
                "{ kind: tap, name: r1, netns: nv-r1 }",
                "replicas[2].link",
                20,
            ),
            (
                "name: r2 }",
                "name: this-name-is-too-long }",
                "replicas[2].link.name",
                20,
            ),
            (
                "policy: majority",
                "policy: primary-backup\nprimary: r7",
                "primary",
                2,
            ),
            (
                "policy: majority",
                "policy: majority\nprimary: r0",
                "primary",
                2,
            ),
            (
                "straggler_timeout_ms: 500",
                "straggler_timeout_ms: 500\nmtu: 100",
                "mtu",
                3,
            ),
        ];
        for (from, to, field, line) in cases {
            let e = error_for(from, to);
            assert_eq!(&e.field, field, "{to}: {e}");
            assert_eq!(e.line, Some(*line), "{to}: {e}");
            assert!(e.to_string().contains(field), "{e}");
        }
    }

    #[test]
    fn majority_needs_three_replicas() {
        let two = GOOD.split("  - name: r2").next().unwrap();
        let e = Config::from_yaml(two).unwrap_err();
        assert_eq!(e.field, "policy");
        assert!(e.message.contains("unanimous"), "{e}");
        assert!(Config::from_yaml(&two.replace("policy: majority", "policy: unanimous")).is_ok());
    }

    #[test]
    fn missing_section_is_named() {
        let e = Config::from_yaml("policy: majority\n").unwrap_err();
        assert!(e.message.contains("missing field `external`"), "{e}");
    }

    #[test]
    fn cidr_contains() {
        let c: Ipv4Cidr = "10.77.1.1/24".parse().unwrap();
        assert!(c.contains("10.77.1.200".parse().unwrap()));
        assert!(!c.contains("10.77.2.1".parse().unwrap()));
        assert!("10.77.1.1".parse::<Ipv4Cidr>().is_err());
        assert!("10.77.1.1/33".parse::<Ipv4Cidr>().is_err());
    }
}
