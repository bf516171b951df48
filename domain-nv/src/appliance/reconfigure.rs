//! What a config change may change in place ([`plan`]): which running replicas the new config
//! keeps, which it adds, and which keys it may not change while the appliance runs
//! ([`Refused`]).
//!
//! Replicas are matched by name: a name in both configs is the same replica (its link and
//! addresses must not change), a name only in the new config is a new replica (it joins on
//! probation), a name only in the old one is removed. The external link, the services, the MTU,
//! the listen pool and the status file are fixed for the appliance's life; every other key
//! (policy, timeouts, buffer sizes, probation) applies to connections opened from then on.

use std::fmt;

use crate::config::Config;

/// A config change that cannot be applied in place: the key and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The key, as written in the config (e.g. `external`, `replicas[1].address`).
    pub key: String,
    /// Why it cannot change while the appliance runs.
    pub reason: &'static str,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` cannot change in place: {}", self.key, self.reason)
    }
}

impl std::error::Error for Refused {}

/// For each replica of the new config (by index), the index of the same replica in the old
/// config, or `None` for a new one; or the first key that cannot change in place.
pub fn plan(old: &Config, new: &Config) -> Result<Vec<Option<usize>>, Refused> {
    let refuse = |key: &str, reason| {
        Err(Refused {
            key: key.to_owned(),
            reason,
        })
    };
    if old.external != new.external {
        return refuse("external", "clients' connections live on the external link");
    }
    if old.services != new.services {
        return refuse("services", "the listening sockets are opened at start");
    }
    if old.mtu != new.mtu {
        return refuse("mtu", "every link is opened with it");
    }
    if old.listen_pool != new.listen_pool {
        return refuse("listen_pool", "the listening sockets are opened at start");
    }
    if old.status_file != new.status_file {
        return refuse("status_file", "the status sink is chosen at start");
    }
    let mut kept = Vec::with_capacity(new.replicas.len());
    for (i, r) in new.replicas.iter().enumerate() {
        let Some(o) = old.replicas.iter().position(|o| o.name == r.name) else {
            kept.push(None);
            continue;
        };
        let before = &old.replicas[o];
        let why = "a running replica keeps its link and addresses (replace it under a new name)";
        if before.link != r.link {
            return refuse(&format!("replicas[{i}].link"), why);
        }
        if before.address != r.address {
            return refuse(&format!("replicas[{i}].address"), why);
        }
        if before.replica_address != r.replica_address {
            return refuse(&format!("replicas[{i}].replica_address"), why);
        }
        kept.push(Some(o));
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE: &str = "\
policy: majority
external:
  link: { kind: tap, name: ext0, netns: nv-client }
  address: 10.77.0.1/24
services:
  - name: web
    listen: 80
    replica_port: 80
replicas:
  - name: r0
    link: { kind: tap, name: r0 }
    address: 10.77.1.1/24
    replica_address: 10.77.1.2
  - name: r1
    link: { kind: tap, name: r1 }
    address: 10.77.2.1/24
    replica_address: 10.77.2.2
  - name: r2
    link: { kind: tap, name: r2 }
    address: 10.77.3.1/24
    replica_address: 10.77.3.2
";

    fn three() -> Config {
        Config::from_yaml(THREE).unwrap()
    }

    #[test]
    fn replicas_are_kept_by_name_and_new_names_are_new() {
        let old = three();
        let mut new = three();
        new.replicas.remove(1);
        new.replicas[1].name = "r2-g1".into();
        new.replicas[1].link = crate::config::LinkConfig::Tap {
            name: "r2-g1".into(),
            netns: None,
            offload: true,
        };
        new.straggler_timeout_ms += 1000;
        new.probation.connections = 7;
        assert_eq!(plan(&old, &new), Ok(vec![Some(0), None]));
    }

    #[test]
    fn a_key_that_cannot_change_is_named() {
        let old = three();
        let mut new = three();
        new.services[0].listen = 8080;
        assert_eq!(plan(&old, &new).unwrap_err().key, "services");
        let mut new = three();
        new.replicas[2].replica_address = "10.77.3.9".parse().unwrap();
        let e = plan(&old, &new).unwrap_err();
        assert_eq!(e.key, "replicas[2].replica_address");
        assert!(e
            .to_string()
            .contains("`replicas[2].replica_address` cannot change"));
        let mut new = three();
        new.external.gateway = Some("10.77.0.254".parse().unwrap());
        assert_eq!(plan(&old, &new).unwrap_err().key, "external");
    }
}
