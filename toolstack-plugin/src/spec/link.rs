//! [`LinkAddrs`]: the two ends of a replica's private link, and the MAC derived from an address.

use nv_schema::net::{prefix_mask, Ipv4Cidr};
use std::net::Ipv4Addr;

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

    /// True if the two link subnets share an address.
    pub fn overlaps(&self, other_net: u32, other_prefix: u8) -> bool {
        let p = self.prefix.min(other_prefix);
        self.network() & prefix_mask(p) == other_net & prefix_mask(p)
    }
}

/// The default MAC of a link address: Xen's OUI `00:16:3e` + the address's last three octets.
pub fn mac_for(a: Ipv4Addr) -> String {
    let o = a.octets();
    format!("00:16:3e:{:02x}:{:02x}:{:02x}", o[1], o[2], o[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_defaults_and_overlaps() {
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
        assert!(l.overlaps(u32::from(Ipv4Addr::new(10, 77, 0, 0)), 16));
        assert!(!l.overlaps(u32::from(Ipv4Addr::new(10, 77, 9, 0)), 24));
    }
}
