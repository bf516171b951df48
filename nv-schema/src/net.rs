//! IPv4 addresses with a prefix length (`10.77.1.1/24`) and their subnet arithmetic, parsed and
//! checked in one place for the domain-nv config and nvctl's group spec.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The netmask of a prefix length (0..=32; longer counts as 32), as a number.
pub fn prefix_mask(prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0)
}

/// An IPv4 address with its prefix length, written `10.77.1.1/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    /// The address.
    pub addr: Ipv4Addr,
    /// Prefix length, 1..=32.
    pub prefix: u8,
}

impl Ipv4Cidr {
    /// The netmask, as a number.
    pub fn mask(&self) -> u32 {
        prefix_mask(self.prefix)
    }

    /// The subnet's network address, as a number.
    pub fn network(&self) -> u32 {
        u32::from(self.addr) & self.mask()
    }

    /// True if `other` lies in this address's subnet.
    pub fn contains(&self, other: Ipv4Addr) -> bool {
        u32::from(other) & self.mask() == self.network()
    }

    /// True if `other` is a usable host address of this subnet: in it, and neither its network
    /// nor its broadcast address (both addresses of a /31 or /32 are usable).
    pub fn has_host(&self, other: Ipv4Addr) -> bool {
        let host = u32::from(other) & !self.mask();
        self.contains(other) && (self.prefix >= 31 || (host != 0 && host != !self.mask()))
    }

    /// The usable host addresses of the subnet, lowest first (both addresses of a /31).
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let net = self.network();
        let last = net | !self.mask();
        let (lo, hi) = if self.prefix >= 31 {
            (net, last)
        } else {
            (net + 1, last - 1)
        };
        (lo..=hi).map(Ipv4Addr::from)
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

impl Serialize for Ipv4Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_contains() {
        let c: Ipv4Cidr = "10.77.1.1/24".parse().unwrap();
        assert!(c.contains("10.77.1.200".parse().unwrap()));
        assert!(!c.contains("10.77.2.1".parse().unwrap()));
        assert!("10.77.1.1".parse::<Ipv4Cidr>().is_err());
        assert!("10.77.1.1/33".parse::<Ipv4Cidr>().is_err());
    }

    #[test]
    fn masks_hosts_and_text() {
        assert_eq!(prefix_mask(0), 0);
        assert_eq!(prefix_mask(24), 0xffff_ff00);
        assert_eq!(prefix_mask(32), u32::MAX);
        let c: Ipv4Cidr = "10.77.1.2/24".parse().unwrap();
        assert!(c.has_host("10.77.1.1".parse().unwrap()));
        assert!(!c.has_host("10.77.1.0".parse().unwrap()));
        assert!(!c.has_host("10.77.1.255".parse().unwrap()));
        let p2p: Ipv4Cidr = "10.0.0.1/31".parse().unwrap();
        assert!(p2p.has_host("10.0.0.0".parse().unwrap()));
        assert_eq!(p2p.hosts().count(), 2);
        assert_eq!(c.hosts().next(), Some(Ipv4Addr::new(10, 77, 1, 1)));
        assert_eq!(c.to_string(), "10.77.1.2/24");
        assert!("0.0.0.0/0".parse::<Ipv4Cidr>().is_err());
    }
}
