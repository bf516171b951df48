//! `nvctl down`: drain the group's NV domain, destroy the domains nvctl created for the group
//! and forget the group; `--dry-run` shows what it would do.

use super::nv_status::read_status;
use super::plan::{Action, Plan, Step};
use super::record::gpath;
use super::{home, Ctx};
use crate::failure::Failure;
use crate::owned::{DomainRole, Owned};
use crate::store::read_blob;
use crate::xl;
use anyhow::{Context, Result};
use nv_schema::handoff::{DRAIN_REQUEST, XS_CONTROL};
use nv_schema::status::XS_BASE;

/// A domain `down` destroys.
struct Doomed {
    /// Its name.
    name: String,
    /// Its UUID (what nvctl recorded).
    uuid: String,
    /// Its domid now.
    domid: u32,
    /// Replica or NV domain.
    role: DomainRole,
}

/// What `down` finds: the group's record, if any, and the domains nvctl created for it that
/// still run (replicas, newest first, then the NV domain; also leftovers of an interrupted
/// replacement and an NV domain renamed in the spec since), in the order they are destroyed.
fn survey(ctx: &Ctx, group: &str) -> Result<Option<(Owned, Vec<Doomed>)>> {
    let recorded = read_blob(ctx.store, &format!("{}/spec", gpath(group)))?.is_some();
    let owned = ctx.owned(group)?;
    if !recorded && owned.domains.is_empty() {
        return Ok(None);
    }
    let running = xl::list(ctx.xl)?;
    let mut doomed = Vec::new();
    for role in [DomainRole::Replica, DomainRole::Nv] {
        doomed.extend(
            owned
                .alive(&running)
                .into_iter()
                .rev()
                .filter(|(_, o)| o.role == role)
                .map(|(name, o)| Doomed {
                    name: name.to_string(),
                    uuid: o.uuid.clone(),
                    domid: running.get(name).map_or(o.domid, |d| d.id),
                    role,
                }),
        );
    }
    Ok(Some((owned, doomed)))
}

/// `nvctl down`: first asks the NV domain to drain (`drain` at its [`XS_CONTROL`] node: its
/// domain-nv stops accepting and lets open connections finish for up to its
/// `drain_timeout_ms`, as on SIGTERM) and waits for it, bounded by the context's timeout (past
/// it, down says so and goes on); then destroys exactly the domains nvctl recorded as created
/// for the group that still run (replicas, newest first, then the NV domain), then forgets the
/// group. A failing `xl destroy` stops it with the record of what still runs kept, so it can be
/// re-run. A group nvctl knows nothing of is already down: that is reported, not an error.
pub fn down(ctx: &Ctx, group: &str) -> Result<()> {
    let Some((mut owned, doomed)) = survey(ctx, group)? else {
        ctx.say(&format!("group {group}: not found, nothing to do"));
        return Ok(());
    };
    for d in doomed.iter().filter(|d| d.role == DomainRole::Nv) {
        drain(ctx, &d.name, d.domid)?;
    }
    for d in &doomed {
        match d.role {
            DomainRole::Replica => ctx.destroy(&mut owned, &d.name, &d.uuid)?,
            DomainRole::Nv => destroy_drained(ctx, &mut owned, d)?,
        }
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

/// Destroys NV domain `d` after its drain, or forgets it if it is gone already: domain-nv
/// powers its domain off once drained, and with `on_poweroff = "destroy"` the domain (and its
/// xenstore home) disappears by itself, before or while `xl destroy` runs.
fn destroy_drained(ctx: &Ctx, owned: &mut Owned, d: &Doomed) -> Result<()> {
    // its xenstore home first: `xl list` runs only once that is gone
    let gone = |ctx: &Ctx| -> Result<bool> {
        Ok(ctx.store.directory(&home(d.domid))?.is_empty()
            && !xl::list(ctx.xl)?.values().any(|x| x.uuid == d.uuid))
    };
    if gone(ctx)? {
        ctx.say(&format!("{}: powered off after draining", d.name));
        return owned.forget(&d.uuid);
    }
    match ctx.destroy(owned, &d.name, &d.uuid) {
        Err(e) if gone(ctx)? => {
            log::debug!("xl destroy {}: {e:#}; it powered off meanwhile", d.name);
            ctx.say(&format!("{}: powered off after draining", d.name));
            owned.forget(&d.uuid)
        }
        r => r,
    }
}

/// `nvctl down --dry-run`: what [`down`] would do, changing nothing (it only lists the
/// domains): a drain of the NV domain and a destroy per domain, in order; empty for a group
/// nvctl knows nothing of.
pub fn down_plan(ctx: &Ctx, group: &str) -> Result<Plan> {
    let Some((_, doomed)) = survey(ctx, group)? else {
        return Ok(Plan::default());
    };
    let steps = doomed
        .into_iter()
        .map(|d| Step {
            action: Action::Destroy,
            detail: match d.role {
                DomainRole::Nv => {
                    "drain first (clients' open connections may finish, up to domain-nv's drain_timeout_ms), then destroy"
                        .to_string()
                }
                DomainRole::Replica => "destroy (after the NV domain drained)".to_string(),
            },
            target: d.name,
        })
        .collect();
    Ok(Plan { steps })
}

/// Asks NV domain `name` (`domid`) to drain and waits until it has: its domain-nv publishes a
/// status neither ready nor draining (its last before it powers off) or none at all. Past the
/// context's timeout it says so and returns: the domain is destroyed anyway.
fn drain(ctx: &Ctx, name: &str, domid: u32) -> Result<()> {
    let h = home(domid);
    ctx.say(&format!(
        "asking {name} to drain (open client connections may finish, up to domain-nv's drain_timeout_ms)"
    ));
    ctx.store
        .write(&format!("{h}/{XS_CONTROL}"), DRAIN_REQUEST)
        .with_context(|| format!("asking {name} to drain"))?;
    let waited = ctx.wait_for(
        &format!("{name} to drain"),
        &format!("{h}/{XS_BASE}"),
        || {
            Ok(match read_status(ctx.store, domid)? {
                Some(st) if st.ready || st.draining => None,
                _ => Some(()),
            })
        },
    );
    match waited {
        Ok(()) => ctx.say(&format!("{name}: drained")),
        Err(e) if Failure::of(&e) == Some(Failure::Timeout) => ctx.say(&format!(
            "{name}: still draining after {}s (--timeout); destroying it anyway, connections still open are cut",
            ctx.timeout.as_secs_f32()
        )),
        Err(e) => return Err(e),
    }
    Ok(())
}
