//! `nvctl patch`: roll a new image over every replica, one replacement at a time.

use super::nv_status::{describe, faults_of, is_live, new_faults, read_status};
use super::record::load;
use super::replace::{check_image, replace, Mode};
use super::{quorum, Ctx};
use crate::failure::reword;
use anyhow::{bail, Result};
use std::time::Duration;

/// `nvctl patch`: roll `image` over every replica, one at a time, old and new voting side by
/// side for `soak` each; the roll stops at the first fault (or when a step would leave fewer
/// than a quorum live). Replicas already on `image` are skipped, so a stopped roll can be re-run.
pub fn patch(ctx: &Ctx, group: &str, image: &str, soak: Duration) -> Result<()> {
    check_image(image)?;
    let rec = load(ctx.store, group)?;
    let domid = ctx.nv_domid(&rec.spec)?;
    let roll_base = faults_of(&read_status(ctx.store, domid)?);
    let q = quorum(&rec.spec);
    let replicas: Vec<String> = rec.spec.replicas.iter().map(|r| r.name.clone()).collect();
    for (k, name) in replicas.iter().enumerate() {
        let rec = load(ctx.store, group)?;
        if rec.member_of(name)?.image.as_deref() == Some(image) {
            ctx.say(&format!(
                "[{}/{}] {name}: already on {image}",
                k + 1,
                replicas.len()
            ));
            continue;
        }
        let st = read_status(ctx.store, domid)?;
        let live = rec
            .members()
            .iter()
            .filter(|i| is_live(&st, &i.name()))
            .count();
        if live < q {
            bail!("patch stopped before {name}: only {live} replicas live, quorum is {q}");
        }
        ctx.say(&format!(
            "[{}/{}] {name}: patching to {image}",
            k + 1,
            replicas.len()
        ));
        replace(ctx, group, name, Some(image), Mode::Patch, soak)
            .map_err(|e| reword(&e, format!("patch stopped at {name}: {e:#}")))?;
        let f = new_faults(&roll_base, &read_status(ctx.store, domid)?, None);
        if !f.is_empty() {
            bail!("patch stopped after {name}: {}", describe(&f));
        }
    }
    ctx.say(&format!("group {group}: every replica runs {image}"));
    Ok(())
}
