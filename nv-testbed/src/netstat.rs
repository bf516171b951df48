//! A network namespace's kernel counters: its TCP counters ([`TcpCounters`], from
//! `/proc/net/netstat` and `/proc/net/snmp` as `nstat` reads them) and the frames an interface
//! dropped ([`link_drops`]).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};

use crate::run;

/// The TCP counters of one namespace at one instant, by `Group.Name` (e.g.
/// `TcpExt.SyncookiesSent`, `Tcp.PassiveOpens`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpCounters(BTreeMap<String, u64>);

impl TcpCounters {
    /// Reads the counters of namespace `ns`.
    pub fn read(ns: &str) -> Result<TcpCounters> {
        let out = run(&[
            "ip",
            "netns",
            "exec",
            ns,
            "cat",
            "/proc/net/netstat",
            "/proc/net/snmp",
        ])?;
        TcpCounters::parse(&String::from_utf8_lossy(&out.stdout))
            .with_context(|| format!("counters of namespace {ns}"))
    }

    /// Parses the `/proc/net/netstat` format: per group a line of names and a line of values,
    /// both starting with `Group:`.
    pub fn parse(text: &str) -> Result<TcpCounters> {
        let mut counters = BTreeMap::new();
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        while let Some(names) = lines.next() {
            let values = lines.next().context("a line of names without values")?;
            let (group, names) = names.split_once(':').context("no `Group:` on a line")?;
            let Some(values) = values.strip_prefix(group).and_then(|v| v.strip_prefix(':')) else {
                bail!("the values of group {group} do not follow its names");
            };
            for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
                // A few counters are gauges that may be negative (e.g. Tcp.MaxConn): skipped.
                if let Ok(v) = value.parse::<u64>() {
                    counters.insert(format!("{group}.{name}"), v);
                }
            }
        }
        Ok(TcpCounters(counters))
    }

    /// Counter `name` (`Group.Name`), 0 if this kernel has no such counter.
    pub fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }

    /// How much each counter grew since `earlier` (a counter that went down counts 0).
    pub fn since(&self, earlier: &TcpCounters) -> TcpCounters {
        TcpCounters(
            self.0
                .iter()
                .map(|(k, &v)| (k.clone(), v.saturating_sub(earlier.get(k))))
                .collect(),
        )
    }
}

/// Frames dropped on interface `dev` of namespace `ns` so far: (received, sent) as that
/// namespace's kernel counts them. On a TAP, "sent" drops are frames the namespace sent
/// towards domain-nv that the TAP's queue had no room for (domain-nv did not read them in time).
pub fn link_drops(ns: &str, dev: &str) -> Result<(u64, u64)> {
    let out = run(&["ip", "-n", ns, "-s", "-j", "link", "show", "dev", dev])?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let stats = &v[0]["stats64"];
    let get = |dir: &str| stats[dir]["dropped"].as_u64().unwrap_or(0);
    Ok((get("rx"), get("tx")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NETSTAT: &str = "TcpExt: SyncookiesSent SyncookiesRecv ListenOverflows\n\
                           TcpExt: 12 3 0\n\
                           Tcp: RtoAlgorithm MaxConn PassiveOpens\n\
                           Tcp: 1 -1 40\n";

    #[test]
    fn counters_are_read_by_group_and_name() {
        let c = TcpCounters::parse(NETSTAT).unwrap();
        assert_eq!(c.get("TcpExt.SyncookiesSent"), 12);
        assert_eq!(c.get("TcpExt.SyncookiesRecv"), 3);
        assert_eq!(c.get("Tcp.PassiveOpens"), 40);
        // a negative gauge is skipped, an unknown counter is 0
        assert_eq!(c.get("Tcp.MaxConn"), 0);
        assert_eq!(c.get("TcpExt.NoSuchCounter"), 0);
    }

    #[test]
    fn growth_is_counted_from_an_earlier_reading() {
        let before = TcpCounters::parse(NETSTAT).unwrap();
        let after = TcpCounters::parse(&NETSTAT.replace("12 3 0", "20 3 5")).unwrap();
        let d = after.since(&before);
        assert_eq!(d.get("TcpExt.SyncookiesSent"), 8);
        assert_eq!(d.get("TcpExt.SyncookiesRecv"), 0);
        assert_eq!(d.get("TcpExt.ListenOverflows"), 5);
    }

    #[test]
    fn values_without_their_names_are_an_error() {
        assert!(TcpCounters::parse("TcpExt: A B\nTcp: 1 2\n").is_err());
        assert!(TcpCounters::parse("TcpExt: A B\n").is_err());
    }
}
