//! How a service is carried and compared: `transport` (tcp, the default, or udp) and `protocol`
//! (bytes, the default; redis or http for TCP services; dns for UDP services), with the rules that tie them together, and the
//! bounds on the datagram state (`datagram`).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::validate::check_header_name;
use super::{InputOrdering, ServiceConfig};

/// The transport a service is reached by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// TCP: a byte stream per client connection, voted byte by byte.
    #[default]
    Tcp,
    /// UDP: each client datagram goes to every replica and their answers to it are voted.
    Udp,
}

impl Transport {
    /// True for the default (the config then leaves the key out).
    pub fn is_default(&self) -> bool {
        *self == Transport::default()
    }

    /// The word used in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How replica outputs of a service are compared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// Byte for byte (TCP: the stream; UDP: each answer datagram); no request is ordered
    /// (unless `ordering: serial`).
    #[default]
    Bytes,
    /// Redis RESP2/RESP3 over TCP: conflicting commands ordered by their keys, unordered
    /// listings compared as multisets.
    Redis,
    /// HTTP/1.x over TCP: unsafe methods ordered by path, `Date` compared by format.
    Http,
    /// DNS over UDP: answers matched by query ID and question, compared with the order of the
    /// records inside an RRset ignored, everything else exact.
    Dns,
}

impl Protocol {
    /// True for the default (the config then leaves the key out).
    pub fn is_default(&self) -> bool {
        *self == Protocol::default()
    }
}

/// Bounds on the questions of UDP services waiting for their answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatagramLimits {
    /// Questions pending at once per UDP service; one more drops the oldest.
    #[serde(default = "default_pending")]
    pub pending: usize,
    /// Questions pending at once from one client address and port; one more drops its oldest.
    #[serde(default = "default_pending_per_client")]
    pub pending_per_client: usize,
}

/// Default bound on pending questions over all UDP services.
pub const DEFAULT_DATAGRAM_PENDING: usize = 1024;
/// Default bound on pending questions per client address and port.
pub const DEFAULT_DATAGRAM_PENDING_PER_CLIENT: usize = 64;
/// Largest allowed `datagram.pending`.
pub const MAX_DATAGRAM_PENDING: usize = 1 << 20;

fn default_pending() -> usize {
    DEFAULT_DATAGRAM_PENDING
}
fn default_pending_per_client() -> usize {
    DEFAULT_DATAGRAM_PENDING_PER_CLIENT
}

impl Default for DatagramLimits {
    fn default() -> DatagramLimits {
        DatagramLimits {
            pending: DEFAULT_DATAGRAM_PENDING,
            pending_per_client: DEFAULT_DATAGRAM_PENDING_PER_CLIENT,
        }
    }
}

impl DatagramLimits {
    /// True if every setting is at its default (the config then leaves the key out).
    pub fn is_default(&self) -> bool {
        *self == DatagramLimits::default()
    }

    /// The bounds' own rules; the error is (field path, message).
    pub(super) fn check(&self) -> Result<(), (String, String)> {
        if self.pending == 0 || self.pending > MAX_DATAGRAM_PENDING {
            return Err((
                "datagram.pending".into(),
                format!("{} is outside 1..={MAX_DATAGRAM_PENDING}", self.pending),
            ));
        }
        if self.pending_per_client == 0 || self.pending_per_client > self.pending {
            return Err((
                "datagram.pending_per_client".into(),
                format!(
                    "{} is outside 1..={} (datagram.pending)",
                    self.pending_per_client, self.pending
                ),
            ));
        }
        Ok(())
    }
}

impl ServiceConfig {
    /// The rules of this service's own keys, whatever the other services: `dns` needs
    /// `transport: udp`, `redis` and `http` need `transport: tcp`, `ordering` needs `protocol:
    /// bytes` and `transport: tcp`, `mask_headers` needs `protocol: http` and holds HTTP header
    /// names other than the framing ones. The error is (the key at fault as spelled in the
    /// config, message); nvctl checks its spec's services with these same rules.
    pub fn check_own_keys(&self) -> Result<(), (&'static str, String)> {
        if self.protocol == Protocol::Dns && self.transport != Transport::Udp {
            return Err((
                "protocol",
                "dns is compared per datagram and needs `transport: udp` (DNS over TCP is voted \
                 as bytes: leave `protocol` out)"
                    .into(),
            ));
        }
        if matches!(self.protocol, Protocol::Redis | Protocol::Http)
            && self.transport != Transport::Tcp
        {
            return Err((
                "protocol",
                format!(
                    "{} is framed on a TCP stream and needs `transport: tcp`",
                    if self.protocol == Protocol::Redis {
                        "redis"
                    } else {
                        "http"
                    }
                ),
            ));
        }
        if self.ordering != InputOrdering::None && self.protocol != Protocol::Bytes {
            return Err((
                "ordering",
                "only for `protocol: bytes` (redis and http order requests by what they touch)"
                    .into(),
            ));
        }
        if self.ordering != InputOrdering::None && self.transport != Transport::Tcp {
            return Err((
                "ordering",
                "orders client connections' input and needs `transport: tcp`".into(),
            ));
        }
        if !self.mask_headers.is_empty() && self.protocol != Protocol::Http {
            return Err(("mask_headers", "only for `protocol: http`".into()));
        }
        for h in &self.mask_headers {
            check_header_name(h).map_err(|m| ("mask_headers", m))?;
        }
        Ok(())
    }
}

/// `services[i]` listens on a port none of the services before it uses with the same
/// transport; the error is (field path, message).
pub(super) fn check_listen(
    i: usize,
    s: &ServiceConfig,
    earlier: &[ServiceConfig],
) -> Result<(), (String, String)> {
    if let Some(j) = earlier
        .iter()
        .position(|o| o.listen == s.listen && o.transport == s.transport)
    {
        return Err((
            format!("services[{i}].listen"),
            format!(
                "{} port {} is already used by services[{j}]",
                s.transport, s.listen
            ),
        ));
    }
    Ok(())
}
