//! [`GroupSpec::validate`]: the semantic rules of a spec, every error with its field and line.

use super::locate::locate;
use super::names::{generation_suffix, valid_bdf, valid_name};
use super::{GroupSpec, GuestType, Policy, Replica, SpecError, SpecErrors};
use crate::xl_extra::{self, XlExtra, XlScalar};
use crate::xl_value::{self, CMDLINE_MAX};
use nv_schema::config::Transport;
use nv_schema::name::check_ifname;
use nv_schema::net::Ipv4Cidr;
use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

struct Checker<'a> {
    text: &'a str,
    errors: Vec<SpecError>,
}

impl Checker<'_> {
    /// Record the error of a value check, if any, for `field`.
    fn check(&mut self, field: impl Into<String>, r: Result<(), String>) {
        if let Err(m) = r {
            self.err(field, m);
        }
    }

    /// Check the optional `cpus` and `seclabel` of the domain at `prefix` by their grammars.
    fn check_isolation_keys(&mut self, prefix: &str, cpus: Option<&str>, seclabel: Option<&str>) {
        if let Some(cpus) = cpus {
            self.check(
                format!("{prefix}.cpus"),
                xl_value::parse_cpus(cpus).map(drop),
            );
        }
        if let Some(label) = seclabel {
            self.check(
                format!("{prefix}.seclabel"),
                xl_value::check_seclabel(label),
            );
        }
    }

    /// Check every key and value of the `xl-extra` of the domain at `prefix` (with `memory`
    /// MiB: `maxmem` may not be less).
    fn check_xl_extra(&mut self, prefix: &str, extra: &XlExtra, memory: u32) {
        for (k, v) in extra {
            let field = format!("{prefix}.xl-extra.{k}");
            self.check(field.clone(), xl_extra::render_value(k, v).map(drop));
            if let (true, XlScalar::Int(m)) = (k == "maxmem", v) {
                if *m < i64::from(memory) {
                    self.err(
                        field,
                        format!("{m} MiB is less than `memory` ({memory} MiB)"),
                    );
                }
            }
        }
    }

    fn err(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let field = field.into();
        let line = locate(self.text, &field);
        self.errors.push(SpecError {
            field,
            line,
            message: message.into(),
        });
    }
}

impl GroupSpec {
    /// Semantic checks; `text` is the spec source, used only to find lines.
    ///
    /// Rules: names are valid and unique, replica names do not end in `-g<digits>` (reserved for
    /// replacements) and no replica domain is named like the NV domain; MACs are valid, unicast
    /// and the replicas' is not the external NIC's; the replica link (the same for every
    /// replica) parses, has room for both ends, does not overlap the external subnet; memory and
    /// vcpus > 0; the external NIC is exactly one of `pci` (which needs `type: pv`) / `bridge`;
    /// the external address is `a.b.c.d/len` and the gateway lies in it; at least one port,
    /// listen ports > 0 and unique per transport, a port's `transport`, `protocol` and
    /// `mask-headers` follow domain-nv's rules
    /// ([`nv_schema::config::ServiceConfig::check_own_keys`]); `majority` needs N >= 3,
    /// `unanimous` and `primary-backup` N >= 2; `primary` is set exactly for `primary-backup` and
    /// names a replica; timeouts > 0; `buffer-limit` >= 4096; a replica has an initramfs or an image;
    /// `cpus`, `seclabel` and `rate` follow their grammars ([`xl_value`]), `rate` of the external
    /// NIC only with `bridge`; `xl-extra` keys are allowed and their values follow their grammars
    /// ([`xl_extra`]), `maxmem` not below `memory`; with `isolate-cpus` every replica has `cpus`, pairwise disjoint.
    pub fn validate(&self, text: &str) -> Result<(), SpecErrors> {
        let mut c = Checker {
            text,
            errors: Vec::new(),
        };
        if !valid_name(&self.group) {
            c.err(
                "group",
                format!(
                    "invalid name {:?} (letters, digits, -, _; at most 48)",
                    self.group
                ),
            );
        }
        let nv = &self.nv_domain;
        if let Some(n) = &nv.name {
            if !valid_name(n) {
                c.err("nv-domain.name", format!("invalid name {n:?}"));
            }
        }
        for (f, v) in [
            ("nv-domain.kernel", &nv.kernel),
            ("nv-domain.initramfs", &nv.initramfs),
        ] {
            if v.trim().is_empty() {
                c.err(f, "must not be empty");
            } else {
                c.check(f, xl_value::check_path(v));
            }
        }
        c.check(
            "nv-domain.extra",
            xl_value::check_cmdline(&nv.extra, CMDLINE_MAX),
        );
        c.check("nv-domain.memory", xl_value::check_memory(nv.memory));
        c.check("nv-domain.vcpus", xl_value::check_vcpus(nv.vcpus));
        c.check_isolation_keys("nv-domain", nv.cpus.as_deref(), nv.seclabel.as_deref());
        c.check_xl_extra("nv-domain", &nv.xl_extra, nv.memory);
        let ext = &nv.external;
        match (ext.pci.is_empty(), &ext.bridge) {
            (true, None) => c.err("nv-domain.external", "needs `pci` or `bridge`"),
            (false, Some(_)) => c.err(
                "nv-domain.external.bridge",
                "`pci` and `bridge` exclude each other",
            ),
            _ => {}
        }
        if let Some(b) = &ext.bridge {
            c.check("nv-domain.external.bridge", xl_value::check_bridge(b));
        }
        if !ext.pci.is_empty() && nv.guest_type == GuestType::Pvh {
            c.err("nv-domain.external.pci", "PCI passthrough needs `nv-domain.type: pv` (xl cannot pass PCI devices to PVH guests)");
        }
        for (i, p) in ext.pci.iter().enumerate() {
            if !valid_bdf(p) {
                c.err(
                    format!("nv-domain.external.pci[{i}]"),
                    format!("bad PCI address {p:?} (want dddd:bb:dd.f)"),
                );
            }
        }
        if let Some(m) = &ext.mac {
            if ext.bridge.is_none() {
                c.err("nv-domain.external.mac", "only goes with `bridge`");
            } else {
                c.check("nv-domain.external.mac", xl_value::check_mac(m));
            }
        }
        if let Some(rate) = &ext.rate {
            if ext.bridge.is_none() {
                c.err("nv-domain.external.rate", "only goes with `bridge`");
            } else {
                c.check("nv-domain.external.rate", xl_value::check_rate(rate));
            }
        }
        if !valid_name(&ext.interface) || check_ifname(&ext.interface).is_err() {
            c.err(
                "nv-domain.external.interface",
                format!("bad interface name {:?}", ext.interface),
            );
        }
        let external = ext
            .address
            .parse::<Ipv4Cidr>()
            .ok()
            .filter(|c| c.has_host(c.addr));
        match external {
            None => c.err(
                "nv-domain.external.address",
                format!(
                    "bad address {:?} (want a host address a.b.c.d/len)",
                    ext.address
                ),
            ),
            Some(e) => {
                if let Some(g) = &ext.gateway {
                    match g.parse::<Ipv4Addr>() {
                        Ok(gw) if e.has_host(gw) && gw != e.addr => {}
                        _ => c.err(
                            "nv-domain.external.gateway",
                            format!("{g:?} is not another host address of {}", ext.address),
                        ),
                    }
                }
            }
        }
        self.validate_service(&mut c);
        self.validate_replicas(&mut c);
        self.validate_replica_link(&mut c, external);
        if self.isolate_cpus {
            self.validate_cpu_isolation(&mut c);
        }
        if c.errors.is_empty() {
            Ok(())
        } else {
            Err(SpecErrors(c.errors))
        }
    }

    fn validate_service(&self, c: &mut Checker) {
        let s = &self.service;
        let n = self.replicas.len();
        if s.ports.is_empty() {
            c.err("service.ports", "at least one port is needed");
        }
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut listens: HashMap<(u16, Transport), usize> = HashMap::new();
        for (i, p) in s.ports.iter().enumerate() {
            if !valid_name(&p.name) {
                c.err(
                    format!("service.ports[{i}].name"),
                    format!("invalid name {:?}", p.name),
                );
            } else if let Some(j) = names.insert(&p.name, i) {
                c.err(
                    format!("service.ports[{i}].name"),
                    format!("duplicate name {:?} (also service.ports[{j}])", p.name),
                );
            }
            if p.listen == 0 {
                c.err(format!("service.ports[{i}].listen"), "must be > 0");
            } else if let Some(j) = listens.insert((p.listen, p.transport), i) {
                c.err(
                    format!("service.ports[{i}].listen"),
                    format!(
                        "{} port {} is also service.ports[{j}]",
                        p.transport, p.listen
                    ),
                );
            }
            if p.replica_port == Some(0) {
                c.err(format!("service.ports[{i}].replica-port"), "must be > 0");
            }
            if let Err((key, m)) = p.service_config().check_own_keys() {
                c.err(format!("service.ports[{i}].{}", key.replace('_', "-")), m);
            }
        }
        match s.policy {
            Policy::Majority if n < 3 => c.err(
                "service.policy",
                format!("majority needs at least 3 replicas, the group has {n}"),
            ),
            Policy::Unanimous | Policy::PrimaryBackup if n < 2 => c.err(
                "service.policy",
                format!(
                    "{} needs at least 2 replicas, the group has {n}",
                    s.policy.as_str()
                ),
            ),
            _ => {}
        }
        match (&s.primary, s.policy) {
            (None, Policy::PrimaryBackup) => {
                c.err("service.primary", "required with policy primary-backup")
            }
            (Some(p), Policy::PrimaryBackup) if self.replica(p).is_none() => c.err(
                "service.primary",
                format!("{p:?} is not a replica of this group"),
            ),
            (Some(_), Policy::Majority | Policy::Unanimous) => {
                c.err("service.primary", "only allowed with policy primary-backup")
            }
            _ => {}
        }
        if s.straggler_timeout_ms == 0 {
            c.err("service.straggler-timeout-ms", "must be > 0");
        }
        if s.connect_timeout_ms == 0 {
            c.err("service.connect-timeout-ms", "must be > 0");
        }
        if s.buffer_limit < 4096 {
            c.err(
                "service.buffer-limit",
                format!("{} bytes is below the minimum 4096", s.buffer_limit),
            );
        }
        if let Some(f) = &s.status_file {
            if !f.starts_with('/') {
                c.err(
                    "service.status-file",
                    format!("{f:?} is not an absolute path"),
                );
            }
        }
    }

    /// A replica's `extra` follows the command-line grammar and, with the longest `ip=` nvctl
    /// may append (any link, any generation), fits the PV command line.
    fn check_replica_cmdline(&self, r: &Replica) -> Result<(), String> {
        xl_value::check_cmdline(&r.extra, usize::MAX)?;
        let a = Ipv4Addr::BROADCAST;
        let longest_ip = format!(
            "ip={a}::{a}:{a}:{}-{}-g{}:eth0:off",
            self.group,
            r.name,
            u32::MAX
        );
        let total = if r.extra.is_empty() {
            longest_ip.len()
        } else {
            r.extra.len() + 1 + longest_ip.len()
        };
        if total > CMDLINE_MAX {
            return Err(format!(
                "{} bytes plus the up to {} bytes of nvctl's ` ip=...` make a kernel command line longer than the {CMDLINE_MAX} bytes Xen passes to a PV guest",
                r.extra.len(),
                total - r.extra.len()
            ));
        }
        Ok(())
    }

    /// With `isolate-cpus`: every replica has `cpus`, and no two replicas' sets intersect.
    fn validate_cpu_isolation(&self, c: &mut Checker) {
        let mut taken: Vec<(usize, BTreeSet<u32>)> = Vec::new();
        for (i, r) in self.replicas.iter().enumerate() {
            let field = format!("replicas[{i}].cpus");
            let Some(cpus) = &r.cpus else {
                c.err(field, "required with `isolate-cpus: true`");
                continue;
            };
            let Ok(set) = xl_value::parse_cpus(cpus) else {
                continue; // reported by the grammar check
            };
            if let Some((j, shared)) = taken
                .iter()
                .find_map(|(j, o)| o.intersection(&set).next().map(|x| (*j, *x)))
            {
                c.err(
                    field,
                    format!("shares CPU {shared} with replicas[{j}] (`isolate-cpus: true` asks for disjoint CPUs)"),
                );
            }
            taken.push((i, set));
        }
    }

    fn validate_replicas(&self, c: &mut Checker) {
        if self.replicas.is_empty() {
            c.err("replicas", "at least one replica is needed");
        }
        let nv_name = self.nv_name();
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (i, r) in self.replicas.iter().enumerate() {
            let f = |k: &str| format!("replicas[{i}].{k}");
            if !valid_name(&r.name) {
                c.err(
                    f("name"),
                    format!("invalid name {:?} (letters, digits, -, _)", r.name),
                );
            } else if generation_suffix(&r.name) {
                c.err(
                    f("name"),
                    format!(
                        "{:?} ends in -g<number>, which nvctl uses for replacements",
                        r.name
                    ),
                );
            } else if format!("{}-{}", self.group, r.name) == nv_name {
                c.err(
                    f("name"),
                    format!("its domain {nv_name} would be named like the NV domain"),
                );
            } else if nv_name
                .strip_prefix(&format!("{}-{}-g", self.group, r.name))
                .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
            {
                c.err(
                    "nv-domain.name",
                    format!("{nv_name} would be named like a replacement of replicas[{i}]"),
                );
            }
            if let Some(j) = names.insert(&r.name, i) {
                c.err(
                    f("name"),
                    format!("duplicate name {:?} (also replicas[{j}])", r.name),
                );
            }
            if r.kernel.trim().is_empty() {
                c.err(f("kernel"), "must not be empty");
            } else {
                c.check(f("kernel"), xl_value::check_path(&r.kernel));
            }
            if let Some(p) = &r.initramfs {
                c.check(f("initramfs"), xl_value::check_path(p));
            }
            if let Some(p) = &r.image {
                c.check(f("image"), xl_value::check_path(p));
            }
            if r.initramfs.is_none() && r.image.is_none() {
                c.err(f("image"), "a replica needs an `image` or an `initramfs`");
            }
            c.check(f("memory"), xl_value::check_memory(r.memory));
            c.check(f("vcpus"), xl_value::check_vcpus(r.vcpus));
            c.check(f("extra"), self.check_replica_cmdline(r));
            c.check_isolation_keys(
                &format!("replicas[{i}]"),
                r.cpus.as_deref(),
                r.seclabel.as_deref(),
            );
            if let Some(rate) = &r.rate {
                c.check(f("rate"), xl_value::check_rate(rate));
            }
            c.check_xl_extra(&format!("replicas[{i}]"), &r.xl_extra, r.memory);
        }
    }

    /// The one replica link: `address` a host address with room for the NV domain's end,
    /// `nv-address` another host of its subnet, the subnet apart from the external one, `mac`
    /// valid and not the external NIC's.
    fn validate_replica_link(&self, c: &mut Checker, external: Option<Ipv4Cidr>) {
        let l = &self.replica_link;
        let cidr = l.address.parse::<Ipv4Cidr>().ok();
        let link = match cidr {
            Some(a) if a.prefix <= 31 && a.has_host(a.addr) => self.link(),
            _ => {
                c.err(
                    "replica-link.address",
                    format!(
                        "bad address {:?} (want a host address a.b.c.d/len, len <= 31)",
                        l.address
                    ),
                );
                None
            }
        };
        if let (Some(nva), Some(a)) = (&l.nv_address, cidr) {
            match nva.parse::<Ipv4Addr>() {
                Ok(x) if a.has_host(x) && x != a.addr => {}
                _ => c.err(
                    "replica-link.nv-address",
                    format!("{nva:?} is not another host address of {}", l.address),
                ),
            }
        }
        if let Some(link) = link {
            if external.is_some_and(|e| link.overlaps(e.network(), e.prefix)) {
                c.err(
                    "replica-link.address",
                    format!("link subnet of {} overlaps the external subnet", l.address),
                );
            }
        }
        let mac = self.replica_mac();
        if l.mac.is_some() {
            c.check("replica-link.mac", xl_value::check_mac(&mac));
        }
        let external_mac = self.nv_domain.external.mac.as_deref();
        if !mac.is_empty() && external_mac.is_some_and(|m| m.eq_ignore_ascii_case(&mac)) {
            c.err(
                "replica-link.mac",
                format!("{mac} is also nv-domain.external.mac"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{LinkAddrs, SPEC_NAME_MAX};

    #[test]
    fn addresses_follow_the_domain_nv_config_rules() {
        // the prefix length is 1..=32 as in domain-nv's config (a /0 spec used to pass nvctl
        // and then fail in domain-nv)
        let spec = include_str!("../../../xl-configs/example-group.yaml");
        assert!(spec.contains("address: 192.0.2.10/24"));
        let e = GroupSpec::parse(&spec.replace("address: 192.0.2.10/24", "address: 192.0.2.10/0"))
            .unwrap_err();
        assert_eq!(e.0[0].field, "nv-domain.external.address", "{e}");
        assert!(LinkAddrs::new("10.0.0.1/0", None).is_none());
        assert!(valid_name("r0") && !valid_name(&"x".repeat(SPEC_NAME_MAX + 1)));
    }
}
