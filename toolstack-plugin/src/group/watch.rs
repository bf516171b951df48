//! `nvctl watch`: auto-repair, a replacement for every member that is faulty or gone.

use super::nv_status::{health, read_status};
use super::record::load;
use super::replace::{replace, Mode};
use super::{home, Ctx};
use crate::render::Instance;
use crate::xl;
use anyhow::Result;
use nv_schema::status::{ReplicaHealth, XS_BASE};
use std::time::Duration;

/// One pass of auto-repair: every member that is faulty (or whose domain is gone) is replaced
/// when the spec says `auto-repair: true`, else only reported. Returns the new instances.
pub fn repair_pass(ctx: &Ctx, group: &str) -> Result<Vec<Instance>> {
    let rec = load(ctx.store, group)?;
    let domid = ctx.nv_domid(&rec.spec)?;
    let st = read_status(ctx.store, domid)?;
    let running = xl::list(ctx.xl)?;
    let owned = ctx.owned(group)?;
    let mut done = Vec::new();
    for i in rec.members() {
        let gone = owned.running(&i.domain(group), &running).is_none();
        let faulty = health(&st, &i.name()) == Some(ReplicaHealth::Faulty);
        if !(gone || faulty) {
            continue;
        }
        let why = if gone {
            "domain gone"
        } else {
            "reported faulty"
        };
        if rec.spec.auto_repair {
            ctx.say(&format!("{}: {why}, replacing", i.name()));
            done.push(replace(
                ctx,
                group,
                &i.replica,
                None,
                Mode::Repair,
                Duration::ZERO,
            )?);
        } else {
            ctx.say(&format!("{}: {why} (auto-repair is off)", i.name()));
        }
    }
    Ok(done)
}

/// `nvctl watch`: [`repair_pass`] on every status change (or every `interval`), forever.
pub fn watch(ctx: &Ctx, group: &str, interval: Duration) -> Result<()> {
    loop {
        if let Err(e) = repair_pass(ctx, group) {
            ctx.say(&format!("repair failed: {e:#}"));
        }
        let rec = load(ctx.store, group)?;
        let domid = ctx.nv_domid(&rec.spec)?;
        ctx.store
            .watch(&format!("{}/{XS_BASE}/replicas", home(domid)), interval)?;
    }
}
