//! The plan of `nvctl up`, computed without I/O from a spec and what was observed of the
//! running group ([`Observed`]): which domains `up` would create or destroy, whether it would
//! hand domain-nv a changed config (a live change), and the drift it cannot change live, which
//! needs a `replace` (`nvctl up --dry-run`, `nvctl diff`, and the list `up` ends with).
//!
//! Drift of a running domain is found two ways: the xl config it was created from (kept in the
//! state dir) against the one the spec renders now, key by key; and the memory and vcpus
//! `xl list -v` reports against the spec's.

use super::{Record, Role};
use crate::render::{self, Instance};
use crate::spec::GroupSpec;
use crate::xl::Domain;
use anyhow::{anyhow, Result};
use std::collections::BTreeMap;
use std::fmt;

/// What one step of a plan does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// `up` creates the domain.
    Create,
    /// `up` or `down` destroys the domain (or, if it no longer runs, `up` forgets its record).
    Destroy,
    /// `up` hands the NV domain a changed domain-nv config, which it applies live.
    Push,
    /// The running domain differs from the spec in a setting `up` cannot change live:
    /// `nvctl replace` (a replica) or `nvctl down` + `up` (the NV domain) applies it.
    Replace,
}

impl Action {
    /// The mark a step is printed with: `+` create, `-` destroy, `~` push, `!` replace.
    fn mark(self) -> char {
        match self {
            Action::Create => '+',
            Action::Destroy => '-',
            Action::Push => '~',
            Action::Replace => '!',
        }
    }
}

/// One step of a plan: an action on a target (a domain, or the domain-nv config).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Step {
    /// What `up` does, or must leave to `replace`.
    pub action: Action,
    /// The domain, or `domain-nv config`.
    pub target: String,
    /// Why, or what differs (`memory: 512 -> 1024`).
    pub detail: String,
}

/// What `up` would do to bring a group to its spec; empty when the group matches it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The steps, in the order `up` takes them (replace steps last).
    pub steps: Vec<Step>,
}

impl Plan {
    /// The drift `up` cannot change live.
    pub fn needs_replace(&self) -> Vec<&Step> {
        self.steps
            .iter()
            .filter(|s| s.action == Action::Replace)
            .collect()
    }

    pub(super) fn add(
        &mut self,
        action: Action,
        target: impl Into<String>,
        detail: impl Into<String>,
    ) {
        self.steps.push(Step {
            action,
            target: target.into(),
            detail: detail.into(),
        });
    }
}

impl fmt::Display for Plan {
    /// One line per step, `<mark> <target>: <detail>`, or a line saying nothing changes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.steps.is_empty() {
            return writeln!(f, "no changes: the group matches its spec");
        }
        for s in &self.steps {
            writeln!(f, "{} {}: {}", s.action.mark(), s.target, s.detail)?;
        }
        Ok(())
    }
}

/// What was observed of a group before planning.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The group's record; None for a group nvctl does not know yet.
    pub record: Option<Record>,
    /// The running domains nvctl created for the group, by name (`xl list -v` rows).
    pub running: BTreeMap<String, Domain>,
    /// Running replica domains nvctl created for the group that the record does not hold.
    pub orphans: Vec<String>,
    /// The xl config each running domain was created from, by domain name (where kept).
    pub created_from: BTreeMap<String, String>,
    /// The domain-nv config the running NV domain was handed, if any.
    pub pushed_config: Option<String>,
}

/// The plan of `nvctl up` for `spec` given what was observed; fails only on a record a
/// validated spec cannot produce.
pub fn plan(spec: &GroupSpec, seen: &Observed) -> Result<Plan> {
    let g = &spec.group;
    let mut plan = Plan::default();
    let mut members = Vec::new();
    for (i, role) in seen.record.iter().flat_map(|r| &r.instances) {
        let why = match role {
            Role::Joining => "unfinished replacement",
            Role::Member if spec.replica(&i.replica).is_none() => "no longer in the spec",
            Role::Member => {
                members.push(i.clone());
                continue;
            }
        };
        let d = i.domain(g);
        if seen.running.contains_key(&d) {
            plan.add(Action::Destroy, d, why);
        } else {
            plan.add(
                Action::Destroy,
                d,
                format!("{why} (not running: its record only)"),
            );
        }
    }
    for r in &spec.replicas {
        if !members.iter().any(|i| i.replica == r.name) {
            members.push(
                Instance::new(spec, &r.name, 0, r.image.clone())
                    .ok_or_else(|| anyhow!("bad replica-link in the spec"))?,
            );
        }
    }
    for d in &seen.orphans {
        plan.add(
            Action::Destroy,
            d,
            "left over from an interrupted replacement",
        );
    }
    let mut drift = Vec::new();
    let nv = spec.nv_name();
    match seen.running.get(&nv) {
        None => plan.add(
            Action::Create,
            &nv,
            "NV domain, then hand it the domain-nv config",
        ),
        Some(dom) => {
            let changed = changed_settings(
                seen.created_from.get(&nv),
                &render::nv_domain_cfg(spec),
                dom,
                spec.nv_domain.memory,
                spec.nv_domain.vcpus,
            );
            if !changed.is_empty() {
                drift.push((
                    nv.clone(),
                    format!(
                        "{}; needs `nvctl down {g}` and `nvctl up`",
                        changed.join(", ")
                    ),
                ));
            }
            let want = render::nv_config(spec, &members)?;
            match &seen.pushed_config {
                Some(have) if *have == want => {}
                Some(have) => plan.add(
                    Action::Push,
                    "domain-nv config",
                    format!(
                        "changed: {} (handed live to {nv})",
                        changed_yaml_keys(have, &want)
                    ),
                ),
                None => plan.add(
                    Action::Push,
                    "domain-nv config",
                    format!("not handed yet (to {nv})"),
                ),
            }
        }
    }
    for i in &members {
        let d = i.domain(g);
        let r = spec
            .replica(&i.replica)
            .ok_or_else(|| anyhow!("instance {} of unknown replica", i.name()))?;
        let Some(dom) = seen.running.get(&d) else {
            plan.add(Action::Create, &d, format!("replica {}", i.replica));
            continue;
        };
        // every instance renders as the spec would create it now: the spec's replica link and
        // MAC, the spec's image
        let as_spec = Instance::new(spec, &i.replica, i.generation, r.image.clone())
            .unwrap_or_else(|| i.clone());
        let changed = changed_settings(
            seen.created_from.get(&d),
            &render::replica_cfg(spec, r, &as_spec),
            dom,
            r.memory,
            r.vcpus,
        );
        if !changed.is_empty() {
            // `replace` keeps an instance's image unless given another
            let image = match &r.image {
                Some(p) if i.image.as_ref() != Some(p) => format!(" --image {p}"),
                _ => String::new(),
            };
            drift.push((
                d,
                format!(
                    "{}; needs `nvctl replace {g} {}{image}`",
                    changed.join(", "),
                    i.replica
                ),
            ));
        }
    }
    for (d, detail) in drift {
        plan.add(Action::Replace, d, detail);
    }
    Ok(plan)
}

/// How far the memory `xl list` reports may lie from the configured one before it counts as
/// drift: xl shows the pages a domain holds, a few MiB off the target for page tables and
/// firmware.
fn memory_slack(mib: u32) -> u64 {
    u64::from((mib / 32).max(4))
}

/// The settings of a running domain that differ from the spec's: the xl config it was created
/// from (if kept) against `want`, key by key, then the memory and vcpus xl reports.
fn changed_settings(
    created_from: Option<&String>,
    want: &str,
    dom: &Domain,
    memory: u32,
    vcpus: u32,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(have) = created_from {
        let (have, want) = (xl_settings(have), xl_settings(want));
        let keys: std::collections::BTreeSet<&String> = have.keys().chain(want.keys()).collect();
        for k in keys {
            let (h, w) = (have.get(k), want.get(k));
            if h != w {
                let show = |v: Option<&String>| v.map_or("(unset)".to_string(), Clone::clone);
                out.push(format!("{k}: {} -> {}", show(h), show(w)));
            }
        }
    }
    if dom.mem.abs_diff(u64::from(memory)) > memory_slack(memory) {
        out.push(format!("runs with {} MiB, the spec says {memory}", dom.mem));
    }
    if dom.vcpus != 0 && dom.vcpus != vcpus {
        out.push(format!(
            "runs with {} vcpus, the spec says {vcpus}",
            dom.vcpus
        ));
    }
    out
}

/// The `key = value` settings of a rendered xl config (comments and blank lines skipped).
fn xl_settings(cfg: &str) -> BTreeMap<String, String> {
    cfg.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The top-level keys of two domain-nv configs (YAML) whose values differ, comma-separated.
fn changed_yaml_keys(have: &str, want: &str) -> String {
    let map = |t: &str| match serde_yaml::from_str::<serde_yaml::Value>(t) {
        Ok(serde_yaml::Value::Mapping(m)) => m,
        _ => serde_yaml::Mapping::new(),
    };
    let (have, want) = (map(have), map(want));
    let mut keys: Vec<String> = have
        .keys()
        .chain(want.keys())
        .filter(|k| have.get(*k) != want.get(*k))
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    keys.sort();
    keys.dedup();
    if keys.is_empty() {
        "its text".into()
    } else {
        keys.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::SPEC;
    use super::*;
    use crate::render::initial_instances;

    fn dom(id: u32, mem: u64, vcpus: u32) -> Domain {
        Domain {
            id,
            mem,
            vcpus,
            state: "-b----".into(),
            uuid: format!("5e1f0000-0000-4000-8000-{id:012}"),
        }
    }

    /// The example group as `up` leaves it: every domain running as created from `spec`.
    fn running_group(spec: &GroupSpec) -> Observed {
        let members = initial_instances(spec);
        let mut seen = Observed {
            record: Some(Record {
                spec: spec.clone(),
                instances: members.iter().map(|i| (i.clone(), Role::Member)).collect(),
            }),
            pushed_config: Some(render::nv_config(spec, &members).unwrap()),
            ..Observed::default()
        };
        let nv = spec.nv_name();
        seen.running.insert(
            nv.clone(),
            dom(1, spec.nv_domain.memory.into(), spec.nv_domain.vcpus),
        );
        seen.created_from.insert(nv, render::nv_domain_cfg(spec));
        for (k, (r, i)) in spec.replicas.iter().zip(&members).enumerate() {
            let d = i.domain(&spec.group);
            seen.running
                .insert(d.clone(), dom(2 + k as u32, r.memory.into(), r.vcpus));
            seen.created_from.insert(d, render::replica_cfg(spec, r, i));
        }
        seen
    }

    #[test]
    fn a_new_group_creates_everything_and_a_matching_one_nothing() {
        let spec = GroupSpec::parse(SPEC).unwrap();
        let p = plan(&spec, &Observed::default()).unwrap();
        let created: Vec<&str> = p.steps.iter().map(|s| s.target.as_str()).collect();
        assert_eq!(created, ["web-nv", "web-r0", "web-r1", "web-r2"]);
        assert!(p.steps.iter().all(|s| s.action == Action::Create));
        let p = plan(&spec, &running_group(&spec)).unwrap();
        assert_eq!(p, Plan::default());
        assert_eq!(p.to_string(), "no changes: the group matches its spec\n");
    }

    #[test]
    fn changed_memory_is_drift_that_needs_a_replace() {
        let old = GroupSpec::parse(SPEC).unwrap();
        let seen = running_group(&old);
        let new =
            GroupSpec::parse(&SPEC.replacen("    memory: 512", "    memory: 1024", 1)).unwrap();
        let p = plan(&new, &seen).unwrap();
        assert_eq!(p.steps.len(), 1, "{p}");
        let s = &p.steps[0];
        assert_eq!((s.action, s.target.as_str()), (Action::Replace, "web-r0"));
        assert!(s.detail.contains("memory: 512 -> 1024"), "{}", s.detail);
        assert!(
            s.detail.contains("runs with 512 MiB, the spec says 1024"),
            "{}",
            s.detail
        );
        assert!(s.detail.contains("nvctl replace web r0"), "{}", s.detail);
        assert_eq!(p.needs_replace().len(), 1);
    }

    #[test]
    fn what_xl_reports_counts_without_a_kept_config() {
        let spec = GroupSpec::parse(SPEC).unwrap();
        let mut seen = running_group(&spec);
        seen.created_from.clear();
        assert!(plan(&spec, &seen).unwrap().steps.is_empty());
        seen.running.get_mut("web-r1").unwrap().vcpus = 4;
        // a few MiB less than the target is no drift, half of it is
        seen.running.get_mut("web-r2").unwrap().mem = 382;
        seen.running.get_mut("web-nv").unwrap().mem = 128;
        let p = plan(&spec, &seen).unwrap();
        let lines = p.to_string();
        assert_eq!(p.needs_replace().len(), 2, "{lines}");
        assert!(
            lines
                .contains("! web-nv: runs with 128 MiB, the spec says 256; needs `nvctl down web`"),
            "{lines}"
        );
        assert!(
            lines.contains("! web-r1: runs with 4 vcpus, the spec says 1"),
            "{lines}"
        );
    }

    #[test]
    fn service_keys_are_pushed_live_and_isolation_keys_need_a_replace() {
        let old = GroupSpec::parse(SPEC).unwrap();
        let seen = running_group(&old);
        let new = GroupSpec::parse(
            &SPEC
                .replacen("straggler-timeout-ms: 2000", "straggler-timeout-ms: 500", 1)
                .replacen("    memory: 384\n", "    memory: 384\n    cpus: 2-3\n", 1),
        )
        .unwrap();
        let p = plan(&new, &seen).unwrap();
        let lines = p.to_string();
        assert_eq!(p.steps.len(), 2, "{lines}");
        assert_eq!(p.steps[0].action, Action::Push);
        assert!(
            lines.contains(
                "~ domain-nv config: changed: straggler_timeout_ms (handed live to web-nv)"
            ),
            "{lines}"
        );
        assert!(
            lines.contains("! web-r1: cpus: (unset) -> \"2-3\""),
            "{lines}"
        );
    }

    #[test]
    fn an_image_other_than_the_specs_is_drift_replaced_with_that_image() {
        let old = GroupSpec::parse(SPEC).unwrap();
        let seen = running_group(&old);
        let new = GroupSpec::parse(&SPEC.replacen("redis-7.0.img", "redis-7.2.img", 1)).unwrap();
        let p = plan(&new, &seen).unwrap();
        assert_eq!(p.steps.len(), 1, "{p}");
        let s = &p.steps[0];
        assert_eq!((s.action, s.target.as_str()), (Action::Replace, "web-r1"));
        assert!(
            s.detail
                .ends_with("needs `nvctl replace web r1 --image /srv/nv/alpine/redis-7.2.img`"),
            "{}",
            s.detail
        );
    }

    #[test]
    fn removed_replicas_leftovers_and_new_replicas() {
        let old = GroupSpec::parse(SPEC).unwrap();
        let mut seen = running_group(&old);
        seen.orphans.push("web-r1-g3".into());
        // r2 leaves the spec, r3 joins it
        let new = GroupSpec::parse(&SPEC.replacen("  - name: r2\n", "  - name: r3\n", 1)).unwrap();
        let p = plan(&new, &seen).unwrap();
        let lines = p.to_string();
        assert!(
            lines.contains("- web-r2: no longer in the spec\n"),
            "{lines}"
        );
        assert!(
            lines.contains("- web-r1-g3: left over from an interrupted replacement\n"),
            "{lines}"
        );
        assert!(lines.contains("+ web-r3: replica r3\n"), "{lines}");
        assert!(
            lines.contains("~ domain-nv config: changed: replicas"),
            "{lines}"
        );
        assert!(p.needs_replace().is_empty(), "{lines}");
    }
}
