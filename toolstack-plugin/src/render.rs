//! Rendering a group: the xl configs (from the templates in `xl-configs/`) and the domain-nv
//! config (YAML).

use crate::spec::{GroupSpec, LinkAddrs, Policy, Replica};

/// Template of the NV domain's xl config.
pub const NV_TEMPLATE: &str = include_str!("../../xl-configs/nv-domain.cfg.in");
/// Template of a replica's xl config.
pub const REPLICA_TEMPLATE: &str = include_str!("../../xl-configs/replica.cfg.in");
/// File name of the domain-nv config written by `nvctl render`.
pub const NV_CONFIG_FILE: &str = "domain-nv.yaml";

/// One incarnation of a replica: generation 0 is the spec's; `replace`/`patch` create later
/// generations with their own name, private link and MAC (old and new run side by side).
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
    /// The generation-0 instance of a spec replica; None if its address is malformed (a
    /// validated spec never has one).
    pub fn initial(r: &Replica) -> Option<Instance> {
        Some(Instance {
            replica: r.name.clone(),
            generation: 0,
            mac: r.mac(),
            link: r.link()?,
            image: r.image.clone(),
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
            ("EXTERNAL", external),
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
        ],
    )
}

/// YAML-quote a scalar (double quotes, escaped) unless it is a plain, unambiguous word.
fn yq(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        && !s.starts_with(['-', '.'])
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
        )
        && s.parse::<f64>().is_err();
    if plain {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// The domain-nv config (YAML) for the given voting instances, in that order. `primary` of a
/// primary-backup group names the first of `instances` that incarnates the spec's primary.
pub fn nv_config(spec: &GroupSpec, instances: &[Instance]) -> String {
    let s = &spec.service;
    let ext = &spec.nv_domain.external;
    let mut o = String::new();
    o.push_str(&format!("# domain-nv config of replica group {}, generated by nvctl; edit the spec, not this file.\n", spec.group));
    o.push_str(&format!("policy: {}\n", s.policy.as_str()));
    if s.policy == Policy::PrimaryBackup {
        if let Some(p) = &s.primary {
            let primary = instances
                .iter()
                .find(|i| &i.replica == p)
                .map(Instance::name)
                .unwrap_or_else(|| p.clone());
            o.push_str(&format!("primary: {}\n", yq(&primary)));
        }
    }
    o.push_str(&format!(
        "straggler_timeout_ms: {}\n",
        s.straggler_timeout_ms
    ));
    o.push_str(&format!("buffer_limit: {}\n", s.buffer_limit));
    o.push_str(&format!("connect_timeout_ms: {}\n", s.connect_timeout_ms));
    if let Some(f) = &s.status_file {
        o.push_str(&format!("status_file: {}\n", yq(f)));
    }
    o.push_str("external:\n");
    o.push_str(&format!(
        "  link: {{ kind: raw, interface: {} }}\n",
        yq(&ext.interface)
    ));
    o.push_str(&format!("  address: {}\n", ext.address));
    if let Some(g) = &ext.gateway {
        o.push_str(&format!("  gateway: {g}\n"));
    }
    o.push_str("services:\n");
    for p in &s.ports {
        o.push_str(&format!("  - name: {}\n", yq(&p.name)));
        o.push_str(&format!("    listen: {}\n", p.listen));
        o.push_str(&format!("    replica_port: {}\n", p.replica_port()));
    }
    o.push_str("replicas:\n");
    for i in instances {
        let name = yq(&i.name());
        o.push_str(&format!("  - name: {name}\n"));
        o.push_str(&format!("    link: {{ kind: vif, name: {name} }}\n"));
        o.push_str(&format!("    address: {}/{}\n", i.link.nv, i.link.prefix));
        o.push_str(&format!("    replica_address: {}\n", i.link.replica));
    }
    o
}

/// The generation-0 instances of a validated spec, in spec order.
pub fn initial_instances(spec: &GroupSpec) -> Vec<Instance> {
    spec.replicas.iter().filter_map(Instance::initial).collect()
}

/// Every file `nvctl render` writes, as (file name, contents): the NV domain's xl config, the
/// replicas' (spec order), then [`NV_CONFIG_FILE`].
pub fn render_all(spec: &GroupSpec) -> Vec<(String, String)> {
    let mut files = vec![(format!("{}.cfg", spec.nv_name()), nv_domain_cfg(spec))];
    let instances = initial_instances(spec);
    for (r, i) in spec.replicas.iter().zip(&instances) {
        files.push((
            format!("{}.cfg", i.domain(&spec.group)),
            replica_cfg(spec, r, i),
        ));
    }
    files.push((NV_CONFIG_FILE.into(), nv_config(spec, &instances)));
    files
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
    fn yaml_quoting() {
        assert_eq!(yq("r0"), "r0");
        assert_eq!(yq("/run/x.json"), "/run/x.json");
        assert_eq!(yq("no"), "\"no\"");
        assert_eq!(yq("1e3"), "\"1e3\"");
        assert_eq!(yq("a b"), "\"a b\"");
        assert_eq!(yq("-x"), "\"-x\"");
    }
}
