//! Rendering a group: the xl configs (from the templates in `xl-configs/`) and the domain-nv
//! config (YAML).

use anyhow::{anyhow, Context, Result};
use nv_schema::config::{Config, ExternalConfig, Ipv4Cidr, LinkConfig, ReplicaConfig};

use crate::spec::{GroupSpec, LinkAddrs, Policy, Replica};
use crate::xl_extra;

/// Template of the NV domain's xl config.
pub const NV_TEMPLATE: &str = include_str!("../../xl-configs/nv-domain.cfg.in");
/// Template of a replica's xl config.
pub const REPLICA_TEMPLATE: &str = include_str!("../../xl-configs/replica.cfg.in");
/// File name of the domain-nv config written by `nvctl render`.
pub const NV_CONFIG_FILE: &str = "domain-nv.yaml";

/// One incarnation of a replica: generation 0 is the spec's; `replace`/`patch` create later
/// generations with their own name and private link (old and new run side by side), addressed
/// like every other replica link (`replica-link` of the spec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The replica (spec name) this incarnates.
    pub replica: String,
    /// 0 for the spec's instance, +1 per replacement.
    pub generation: u32,
    /// MAC of its vif.
    pub mac: String,
    /// Its private link.
    pub link: LinkAddrs,
    /// Root disk image (the spec's unless replaced with `--image`).
    pub image: Option<String>,
}

impl Instance {
    /// Generation `generation` of a spec replica with the given image, on the spec's replica
    /// link; None if `replica-link` is malformed (a validated spec never has one).
    pub fn new(
        spec: &GroupSpec,
        replica: &str,
        generation: u32,
        image: Option<String>,
    ) -> Option<Instance> {
        Some(Instance {
            replica: replica.to_string(),
            generation,
            mac: spec.replica_mac(),
            link: spec.link()?,
            image,
        })
    }

    /// Name in the group, in domain-nv's config/status and of its link: `<replica>` or
    /// `<replica>-g<generation>`.
    pub fn name(&self) -> String {
        if self.generation == 0 {
            self.replica.clone()
        } else {
            format!("{}-g{}", self.replica, self.generation)
        }
    }

    /// Its Xen domain name: `<group>-<instance name>`.
    pub fn domain(&self, group: &str) -> String {
        format!("{group}-{}", self.name())
    }
}

/// Fill `@KEY@` placeholders; a line consisting only of a placeholder that expands to "" is
/// dropped. An unknown placeholder is left as is (the golden tests would show it).
pub fn fill(template: &str, vars: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    for line in template.lines() {
        let vanishes = vars
            .iter()
            .any(|(k, v)| v.is_empty() && line.trim() == format!("@{k}@"));
        if vanishes {
            continue;
        }
        let mut l = line.to_string();
        for (k, v) in vars {
            l = l.replace(&format!("@{k}@"), v);
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// Escape a value for xl's `key = "..."` syntax.
fn q(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// `key = "value"` for a value that is set, else "" (the template line vanishes).
fn optional_key(key: &str, value: Option<&str>) -> String {
    value
        .map(|v| format!("{key} = \"{}\"", q(v)))
        .unwrap_or_default()
}

/// The NV domain's xl config.
pub fn nv_domain_cfg(spec: &GroupSpec) -> String {
    let nv = &spec.nv_domain;
    let ext = &nv.external;
    let external = match &ext.bridge {
        Some(bridge) => {
            let mut v = format!("bridge={bridge}");
            if let Some(m) = &ext.mac {
                v.push_str(&format!(",mac={}", m.to_ascii_lowercase()));
            }
            if let Some(rate) = &ext.rate {
                v.push_str(&format!(",rate={rate}"));
            }
            format!("vif = [ '{v}' ]")
        }
        None => {
            let list: Vec<String> = ext.pci.iter().map(|p| format!("'{p}'")).collect();
            format!("pci = [ {} ]", list.join(", "))
        }
    };
    fill(
        NV_TEMPLATE,
        &[
            ("GROUP", spec.group.clone()),
            ("NAME", spec.nv_name()),
            ("TYPE", nv.guest_type.as_str().into()),
            ("KERNEL", q(&nv.kernel)),
            ("RAMDISK", q(&nv.initramfs)),
            (
                "EXTRA",
                if nv.extra.is_empty() {
                    String::new()
                } else {
                    format!("extra = \"{}\"", q(&nv.extra))
                },
            ),
            ("MEMORY", nv.memory.to_string()),
            ("VCPUS", nv.vcpus.to_string()),
            ("CPUS", optional_key("cpus", nv.cpus.as_deref())),
            ("SECLABEL", optional_key("seclabel", nv.seclabel.as_deref())),
            ("EXTERNAL", external),
            ("XL_EXTRA", xl_extra::other_lines(&nv.xl_extra)),
            ("ON_POWEROFF", xl_extra::action(&nv.xl_extra, "on_poweroff")),
            ("ON_REBOOT", xl_extra::action(&nv.xl_extra, "on_reboot")),
            ("ON_CRASH", xl_extra::action(&nv.xl_extra, "on_crash")),
        ],
    )
}

/// A replica instance's xl config. The kernel command line gets a static
/// `ip=<replica>::<nv>:<netmask>:<domain>:eth0:off` for its private link.
pub fn replica_cfg(spec: &GroupSpec, r: &Replica, inst: &Instance) -> String {
    let l = &inst.link;
    let ip_arg = format!(
        "ip={}::{}:{}:{}:eth0:off",
        l.replica,
        l.nv,
        l.netmask(),
        inst.domain(&spec.group)
    );
    let extra = if r.extra.is_empty() {
        ip_arg
    } else {
        format!("{} {ip_arg}", r.extra)
    };
    fill(
        REPLICA_TEMPLATE,
        &[
            ("GROUP", spec.group.clone()),
            ("INSTANCE", inst.name()),
            ("GENERATION", inst.generation.to_string()),
            ("NAME", inst.domain(&spec.group)),
            ("TYPE", r.guest_type.as_str().into()),
            ("KERNEL", q(&r.kernel)),
            (
                "RAMDISK",
                r.initramfs
                    .as_ref()
                    .map(|p| format!("ramdisk = \"{}\"", q(p)))
                    .unwrap_or_default(),
            ),
            ("EXTRA", q(&extra)),
            ("MEMORY", r.memory.to_string()),
            ("VCPUS", r.vcpus.to_string()),
            ("CPUS", optional_key("cpus", r.cpus.as_deref())),
            ("SECLABEL", optional_key("seclabel", r.seclabel.as_deref())),
            ("BACKEND", spec.nv_name()),
            ("MAC", inst.mac.clone()),
            ("ADDRESS", l.replica.to_string()),
            ("VIFNAME", inst.name()),
            (
                "DISK",
                inst.image
                    .as_ref()
                    .map(|p| format!("disk = [ 'format=raw,vdev=xvda,access=ro,target={p}' ]"))
                    .unwrap_or_default(),
            ),
            ("XL_EXTRA", xl_extra::other_lines(&r.xl_extra)),
            ("ON_POWEROFF", xl_extra::action(&r.xl_extra, "on_poweroff")),
            ("ON_REBOOT", xl_extra::action(&r.xl_extra, "on_reboot")),
            ("ON_CRASH", xl_extra::action(&r.xl_extra, "on_crash")),
            // last: a rate holds `@`, which no later placeholder may see
            (
                "RATE",
                r.rate
                    .as_ref()
                    .map(|rate| format!(",rate={rate}"))
                    .unwrap_or_default(),
            ),
        ],
    )
}

/// The xl config a memory copy of an instance of `source` is restored with as `inst`, a new
/// instance of `r`: `source`'s settings, which its memory image needs (type, kernel, memory,
/// vcpus, disk image, XSM label, other xl keys), under `inst`'s name and on `inst`'s link (its
/// vifname), with `r`'s placement (`cpus`) and vif `rate`.
pub fn clone_cfg(spec: &GroupSpec, r: &Replica, source: &Replica, inst: &Instance) -> String {
    let shape = Replica {
        name: r.name.clone(),
        cpus: r.cpus.clone(),
        rate: r.rate.clone(),
        ..source.clone()
    };
    replica_cfg(spec, &shape, inst)
}

/// The domain-nv config for the given voting instances, in that order: the external NIC as a
/// raw link, each instance's vif, the spec's service settings, every other setting at domain-nv's
/// default. `primary` of a primary-backup group names the first of `instances` that incarnates
/// the spec's primary. Fails only on an address a validated spec cannot have.
pub fn domain_nv_config(spec: &GroupSpec, instances: &[Instance]) -> Result<Config> {
    let s = &spec.service;
    let ext = &spec.nv_domain.external;
    let external = ExternalConfig {
        // The NIC with segmentation offload: 64 KiB TCP segments through one syscall each.
        link: LinkConfig::Raw {
            interface: ext.interface.clone(),
            netns: None,
            offload: true,
        },
        address: ext
            .address
            .parse()
            .map_err(|e| anyhow!("nv-domain.external.address: {e}"))?,
        gateway: match &ext.gateway {
            Some(g) => Some(
                g.parse()
                    .with_context(|| format!("nv-domain.external.gateway {g:?}"))?,
            ),
            None => None,
        },
    };
    let services = s.ports.iter().map(|p| p.service_config()).collect();
    let replicas = instances
        .iter()
        .map(|i| ReplicaConfig {
            name: i.name(),
            link: LinkConfig::Vif { name: i.name() },
            address: Ipv4Cidr {
                addr: i.link.nv,
                prefix: i.link.prefix,
            },
            replica_address: i.link.replica,
        })
        .collect();
    let mut config = Config::new(s.policy, external, services, replicas);
    if s.policy == Policy::PrimaryBackup {
        config.primary = s.primary.as_ref().map(|p| {
            instances
                .iter()
                .find(|i| &i.replica == p)
                .map(Instance::name)
                .unwrap_or_else(|| p.clone())
        });
    }
    config.straggler_timeout_ms = s.straggler_timeout_ms;
    config.connect_timeout_ms = s.connect_timeout_ms;
    config.buffer_limit = usize::try_from(s.buffer_limit).context("service.buffer-limit")?;
    config.status_file = s.status_file.clone();
    // The connections' buffers may take half the NV domain's memory: the rest is the kernel,
    // the binary, the smoltcp socket tables and the netback rings.
    config.memory_budget_mb = (spec.nv_domain.memory / 2).max(1) as usize;
    Ok(config)
}

/// The text of [`domain_nv_config`]: a comment naming the group, then the YAML.
pub fn nv_config(spec: &GroupSpec, instances: &[Instance]) -> Result<String> {
    Ok(format!(
        "# domain-nv config of replica group {}, generated by nvctl; edit the spec, not this file.\n{}",
        spec.group,
        domain_nv_config(spec, instances)?.to_yaml()
    ))
}

/// The generation-0 instances of a validated spec, in spec order.
pub fn initial_instances(spec: &GroupSpec) -> Vec<Instance> {
    spec.replicas
        .iter()
        .filter_map(|r| Instance::new(spec, &r.name, 0, r.image.clone()))
        .collect()
}

/// Every file `nvctl render` writes, as (file name, contents): the NV domain's xl config, the
/// replicas' (spec order), then [`NV_CONFIG_FILE`]; fails as
/// [`domain_nv_config`] does.
pub fn render_all(spec: &GroupSpec) -> Result<Vec<(String, String)>> {
    let mut files = vec![(format!("{}.cfg", spec.nv_name()), nv_domain_cfg(spec))];
    let instances = initial_instances(spec);
    for (r, i) in spec.replicas.iter().zip(&instances) {
        files.push((
            format!("{}.cfg", i.domain(&spec.group)),
            replica_cfg(spec, r, i),
        ));
    }
    files.push((NV_CONFIG_FILE.into(), nv_config(spec, &instances)?));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_drops_empty_whole_line_placeholders_only() {
        let t = "a = @A@\n@B@\nc = \"@B@\"\n@C@\n";
        let out = fill(
            t,
            &[
                ("A", "1".into()),
                ("B", String::new()),
                ("C", "x = 2".into()),
            ],
        );
        assert_eq!(out, "a = 1\nc = \"\"\nx = 2\n");
    }

    #[test]
    fn ambiguous_words_survive_the_yaml() {
        let spec = GroupSpec::parse(include_str!("../../xl-configs/example-group.yaml")).unwrap();
        let mut config = domain_nv_config(&spec, &initial_instances(&spec)).unwrap();
        for (i, word) in ["r0", "no", "1e3", "a b", "-x", "null", "true"]
            .iter()
            .enumerate()
        {
            config.services[0].name = word.to_string();
            config.status_file = Some(format!("/run/x{i}.json {word}"));
            let text = config.to_yaml();
            let back: Config = serde_yaml::from_str(&text).unwrap();
            assert_eq!(back, config, "{text}");
        }
    }
}
