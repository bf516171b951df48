//! The cross-field rules of a config that its types cannot express, and finding the line of a
//! field in the YAML text for the error.

use super::{Config, LinkConfig, PolicyName};
use crate::name::{check_ifname, check_name, CONFIG_NAME_MAX};

impl LinkConfig {
    /// The interface name the link opens (a vif's name for vifs).
    fn ifname(&self) -> &str {
        match self {
            LinkConfig::Tap { name, .. } | LinkConfig::Vif { name } => name,
            LinkConfig::Raw { interface, .. } => interface,
        }
    }
}

impl Config {
    /// Cross-field checks that the YAML types cannot express; the error is (field path, message).
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
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
        if self.probation.connections == 0 {
            return err(
                "probation.connections",
                "must be at least 1 (a joining replica must agree on a connection)".into(),
            );
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
        if self.drain_timeout_ms > super::MAX_DRAIN_TIMEOUT_MS {
            return err(
                "drain_timeout_ms",
                format!(
                    "{} is above the maximum of {} (an hour)",
                    self.drain_timeout_ms,
                    super::MAX_DRAIN_TIMEOUT_MS
                ),
            );
        }
        if self.max_connections != 0 && self.max_connections_per_client > self.max_connections {
            return err(
                "max_connections_per_client",
                format!(
                    "{} is above max_connections ({})",
                    self.max_connections_per_client, self.max_connections
                ),
            );
        }
        if self.client_timeout_ms > super::MAX_IDLE_TIMEOUT_MS {
            return err(
                "client_timeout_ms",
                format!(
                    "{} is above the maximum of {} (a day)",
                    self.client_timeout_ms,
                    super::MAX_IDLE_TIMEOUT_MS
                ),
            );
        }
        if self.replica_timeout_ms > super::MAX_IDLE_TIMEOUT_MS {
            return err(
                "replica_timeout_ms",
                format!(
                    "{} is above the maximum of {} (a day)",
                    self.replica_timeout_ms,
                    super::MAX_IDLE_TIMEOUT_MS
                ),
            );
        }
        if self.memory_budget_mb > super::MAX_MEMORY_BUDGET_MB {
            return err(
                "memory_budget_mb",
                format!(
                    "{} is above the maximum of {} (1 TiB)",
                    self.memory_budget_mb,
                    super::MAX_MEMORY_BUDGET_MB
                ),
            );
        }
        self.datagram.check()?;
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
            check_name(&s.name, CONFIG_NAME_MAX).map_err(|m| (format!("services[{i}].name"), m))?;
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
            s.check_own_keys()
                .map_err(|(key, m)| (format!("services[{i}].{key}"), m))?;
            if let Some(j) = self.services[..i].iter().position(|o| o.name == s.name) {
                return err(
                    &format!("services[{i}].name"),
                    format!("{:?} is already used by services[{j}]", s.name),
                );
            }
            super::transport::check_listen(i, s, &self.services[..i])?;
        }
        let mut links = vec![("external.link".to_owned(), &self.external.link)];
        for (i, r) in self.replicas.iter().enumerate() {
            check_name(&r.name, CONFIG_NAME_MAX).map_err(|m| (format!("replicas[{i}].name"), m))?;
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
            check_ifname(link.ifname()).map_err(|m| (format!("{field}.name"), m))?;
            if let Some((other, _)) = links[..i].iter().find(|(_, l)| *l == *link) {
                return err(field, format!("the same link is already used by {other}"));
            }
        }
        Ok(())
    }
}

/// Checks a header name of `mask_headers`: an HTTP field name (a token, RFC 9110 section 5.1)
/// other than the framing headers, which cannot be masked.
pub(super) fn check_header_name(name: &str) -> Result<(), String> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(tchar) {
        return Err(format!("{name:?} is not an HTTP header name"));
    }
    if ["content-length", "transfer-encoding"].contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "{name} frames the message body and cannot be masked"
        ));
    }
    Ok(())
}

/// Finds the line of a field path like `replicas[1].address` in block-style YAML.
pub(super) fn locate(text: &str, field: &str) -> Option<usize> {
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
            if lines[item].contains('{') {
                // A flow-mapping item (`- { name: dns, ... }`): its fields are on this line.
                break;
            }
        }
    }
    found.map(|l| l + 1)
}
