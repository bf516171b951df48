//! The simulated host the workspace's tests share: dom0 with its xenstore connection (the
//! toolstack) and one driver domain (domain-nv's NV domain) that serves the guests' devices.
//! `netback::testhost` builds on it with netback running in the driver domain.

use crate::xenstore::Xenstore;
use crate::{DomId, Error, Result};

use super::SimXen;

/// A [`SimXen`] with dom0's xenstore connection and a driver domain.
pub struct SimHost {
    /// The simulated Xen.
    pub sim: SimXen,
    /// Dom0's xenstore connection: the toolstack's.
    pub dom0: Xenstore,
    /// The driver domain (the NV domain).
    pub nv: DomId,
}

impl SimHost {
    /// A host whose driver domain is the first guest, domain 1.
    pub fn new() -> Result<SimHost> {
        SimHost::with_nv_domid(1)
    }

    /// A host whose driver domain has id `nv` (domains `1..nv` are created before it and stay
    /// idle), for tests that replay transcripts with fixed domain ids.
    pub fn with_nv_domid(nv: DomId) -> Result<SimHost> {
        if nv == 0 {
            return Err(Error::InvalidArgument(
                "dom0 cannot be the driver domain".into(),
            ));
        }
        let sim = SimXen::new()?;
        let mut last = 0;
        while last < nv {
            last = sim.create_domain()?;
        }
        let dom0 = sim.connect_xenstore(0)?;
        Ok(SimHost { sim, dom0, nv })
    }

    /// A new xenstore connection of the driver domain.
    pub fn nv_xenstore(&self) -> Result<Xenstore> {
        self.sim.connect_xenstore(self.nv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_driver_domain_gets_the_asked_id_and_its_own_connection() {
        let host = SimHost::with_nv_domid(3).unwrap();
        assert_eq!(host.nv, 3);
        assert_eq!(host.sim.domains(), [0, 1, 2, 3]);
        let nv = host.nv_xenstore().unwrap();
        nv.write("data/x", "1").unwrap();
        assert_eq!(host.dom0.read("/local/domain/3/data/x").unwrap(), b"1");
        assert_eq!(SimHost::new().unwrap().nv, 1);
        assert!(SimHost::with_nv_domid(0).is_err());
    }
}
