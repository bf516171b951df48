//! `nvctl down`: destroy the domains nvctl created for a group and forget the group.

use super::record::gpath;
use super::Ctx;
use crate::owned::DomainRole;
use crate::store::read_blob;
use crate::xl;
use anyhow::{Context, Result};

/// `nvctl down`: destroy exactly the domains nvctl recorded as created for the group that still
/// run (replicas, newest first, then the NV domain; also leftovers of an interrupted
/// replacement and an NV domain renamed in the spec since), then forget the group. A failing
/// `xl destroy` stops it with the record of what still runs kept, so it can be re-run. A group
/// nvctl knows nothing of is already down: that is reported, not an error.
pub fn down(ctx: &Ctx, group: &str) -> Result<()> {
    let recorded = read_blob(ctx.store, &format!("{}/spec", gpath(group)))?.is_some();
    let mut owned = ctx.owned(group)?;
    if !recorded && owned.domains.is_empty() {
        ctx.say(&format!("group {group}: not found, nothing to do"));
        return Ok(());
    }
    let running = xl::list(ctx.xl)?;
    let mut doomed: Vec<(String, String)> = Vec::new();
    for role in [DomainRole::Replica, DomainRole::Nv] {
        doomed.extend(
            owned
                .alive(&running)
                .into_iter()
                .rev()
                .filter(|(_, o)| o.role == role)
                .map(|(name, o)| (name.to_string(), o.uuid.clone())),
        );
    }
    for (d, uuid) in &doomed {
        ctx.destroy(&mut owned, d, uuid)?;
    }
    ctx.store.rm(&gpath(group))?;
    match std::fs::remove_dir_all(ctx.dir.join(group)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).context("removing the group's xl configs")
        }
        _ => {}
    }
    ctx.say(&format!(
        "group {group}: down ({} domains destroyed)",
        doomed.len()
    ));
    Ok(())
}
