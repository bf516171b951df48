//! `nvctl diff` and `nvctl up --dry-run`: observe the running group (its record, the domains
//! nvctl created for it as `xl list -v` shows them, the xl configs they were created from and
//! the domain-nv config handed to the NV domain) and plan `up` ([`super::plan`]) without
//! changing anything.

use super::names::{check_names_are_free, check_no_collision};
use super::plan::{plan, Observed, Plan};
use super::record::{load, Record};
use super::{home, Ctx};
use crate::failure::Failure;
use crate::owned::Owned;
use crate::spec::GroupSpec;
use crate::store::read_blob;
use crate::xl::{self, Domain};
use anyhow::Result;
use nv_schema::handoff::XS_CONFIG;
use std::collections::BTreeMap;

/// What `nvctl up` would do with `spec_text`, changing nothing. Fails as `up` would before
/// its first change: an invalid spec, a name collision, a domain of the group's names that
/// nvctl did not create.
pub fn diff(ctx: &Ctx, spec_text: &str) -> Result<Plan> {
    let spec = GroupSpec::parse(spec_text).map_err(|e| Failure::Invalid.error(e.to_string()))?;
    check_no_collision(ctx.store, &spec)?;
    let owned = ctx.owned(&spec.group)?;
    let all = xl::list(ctx.xl)?;
    let record = load(ctx.store, &spec.group).ok();
    check_names_are_free(&spec, record.as_ref(), &owned, &all)?;
    let seen = observe(ctx, &spec, &owned, &all, record)?;
    plan(&spec, &seen)
}

/// What is observed of the group of `spec` for [`plan`], given its domains nvctl created
/// (`owned`), `xl list -v` (`all`) and its record (None if unknown).
pub(super) fn observe(
    ctx: &Ctx,
    spec: &GroupSpec,
    owned: &Owned,
    all: &BTreeMap<String, Domain>,
    record: Option<Record>,
) -> Result<Observed> {
    let mut seen = Observed {
        orphans: record
            .as_ref()
            .map(|r| r.orphans(owned, all).into_iter().map(|(d, _)| d).collect())
            .unwrap_or_default(),
        ..Observed::default()
    };
    for (name, _) in owned.alive(all) {
        if let Some(d) = owned.running(name, all) {
            seen.running.insert(name.to_string(), d);
        }
        if let Ok(cfg) = std::fs::read_to_string(ctx.cfg_path(&spec.group, name)) {
            seen.created_from.insert(name.to_string(), cfg);
        }
    }
    if let Some(nv) = seen.running.get(&spec.nv_name()) {
        seen.pushed_config = read_blob(ctx.store, &format!("{}/{XS_CONFIG}", home(nv.id)))?;
    }
    seen.record = record;
    Ok(seen)
}
