//! The checks before `up` changes anything: a group's domain names collide with no other
//! group's, and every name `up` would keep or create belongs to a domain nvctl created.

use super::record::{gpath, groups, Record};
use crate::owned::{DomainRole, Owned};
use crate::spec::GroupSpec;
use crate::store::Store;
use crate::xl;
use anyhow::{bail, Result};
use std::collections::BTreeMap;

/// Refuse a group whose domain names could be those of another recorded group: domains are
/// named `<group>-...`, so two groups collide when one name is the other's plus `-...`; NV
/// domain names (which the spec may set) must not fall into another group's names either.
pub(super) fn check_no_collision(store: &dyn Store, spec: &GroupSpec) -> Result<()> {
    let g = &spec.group;
    let nv = spec.nv_name();
    let under = |name: &str, group: &str| name == group || name.starts_with(&format!("{group}-"));
    for other in groups(store)? {
        if &other == g {
            continue;
        }
        let other_nv = store
            .read(&format!("{}/nv-domain", gpath(&other)))?
            .unwrap_or_else(|| format!("{other}-nv"));
        if under(g, &other) || under(&other, g) {
            bail!("group name {g} collides with group {other}: the domains of one could be named like those of the other (choose a name that is not the other's plus `-...`)");
        }
        if nv == other_nv || under(&nv, &other) || under(&other_nv, g) {
            bail!("NV domain {nv} of group {g} collides with group {other} (NV domain {other_nv})");
        }
    }
    Ok(())
}

/// Before `up` changes anything: the NV domain has not been renamed while the one nvctl
/// created runs (the replicas are attached to it), and no domain nvctl did not create has a
/// name `up` would keep or create.
pub(super) fn check_names_are_free(
    spec: &GroupSpec,
    old: Option<&Record>,
    owned: &Owned,
    running: &BTreeMap<String, xl::Domain>,
) -> Result<()> {
    let nv = spec.nv_name();
    for (name, o) in owned.alive(running) {
        if o.role == DomainRole::Nv && name != nv {
            bail!(
                "the group's NV domain runs as {name}, the spec names it {nv}: a running NV domain cannot be renamed (`nvctl down {}` first)",
                spec.group
            );
        }
    }
    let mut names = vec![nv];
    names.extend(
        spec.replicas
            .iter()
            .map(|r| format!("{}-{}", spec.group, r.name)),
    );
    names.extend(
        old.iter()
            .flat_map(|r| &r.instances)
            .map(|(i, _)| i.domain(&spec.group)),
    );
    for n in names {
        owned.find(&n, running)?;
    }
    Ok(())
}
