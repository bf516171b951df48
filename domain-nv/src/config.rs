//! The appliance configuration: the types, parsing and validation live in
//! [`nv_schema::config`] (shared with nvctl and the test labs) and are re-exported here; this
//! module adds what only the appliance needs, the voter settings.

use std::time::Duration;

pub use nv_schema::config::*;

use crate::datagram::DatagramConfig;
use crate::voter::{Policy, VoterConfig};

/// The voter settings a config implies.
pub trait VoterSettings {
    /// The voter settings for one connection.
    fn voter_config(&self) -> VoterConfig;
    /// The datagram voter settings for a UDP service compared by `protocol`: the policy, the
    /// straggler timeout as each question's deadline, the `datagram` bounds.
    fn datagram_config(&self, protocol: Protocol) -> DatagramConfig;
}

impl VoterSettings for Config {
    fn voter_config(&self) -> VoterConfig {
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

    fn datagram_config(&self, protocol: Protocol) -> DatagramConfig {
        let voter = self.voter_config();
        DatagramConfig {
            policy: voter.policy,
            protocol,
            deadline: voter.straggler_timeout,
            pending: self.datagram.pending,
            pending_per_client: self.datagram.pending_per_client,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
policy: primary-backup
primary: r1
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
    link: { kind: vif, name: r1 }
    address: 10.77.2.1/24
    replica_address: 10.77.2.2
";

    #[test]
    fn voter_settings_follow_the_config() {
        let c = Config::from_yaml(GOOD).unwrap();
        let v = c.voter_config();
        assert_eq!(v.straggler_timeout, Duration::from_millis(500));
        assert_eq!(v.buffer_limit, 1 << 20);
        assert_eq!(v.policy, Policy::PrimaryBackup { primary: 1 });
        let majority = Config {
            policy: PolicyName::Majority,
            primary: None,
            ..c
        };
        assert_eq!(majority.voter_config().policy, Policy::Majority);
    }
}
