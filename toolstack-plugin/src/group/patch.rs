//! `nvctl patch`: roll a new image over every replica, one replacement at a time.

use super::clone::StateFrom;
use super::nv_status::{describe, faults_of, is_live, new_faults, read_status};
use super::record::load;
use super::replace::{check_image, replace, Mode};
use super::{quorum, Ctx};
use crate::failure::{reword, Failure};
use anyhow::{bail, Result};
use std::time::Duration;

/// `nvctl patch`: roll `image` over every replica, one at a time, old and new voting side by
/// side for `soak` each; every new instance boots fresh from `image` (a memory clone would run
/// its source's kernel and disk, not the new version), also with `state: clone`; the roll stops at the first fault (or when a step would leave fewer
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
        replace(
            ctx,
            group,
            name,
            Some(image),
            &StateFrom::Fresh,
            Mode::Patch,
            soak,
        )
        .map_err(|e| reword(&e, format!("patch stopped at {name}: {e:#}")))?;
        let f = new_faults(&roll_base, &read_status(ctx.store, domid)?, None);
        if !f.is_empty() {
            bail!("patch stopped after {name}: {}", describe(&f));
        }
    }
    ctx.say(&format!("group {group}: every replica runs {image}"));
    Ok(())
}

/// The error that stops a rolling patch when `new`, the new instance of `replica` on `image`,
/// did not pass probation: `wait` (the wait's error) and what domain-nv reports for `new`
/// (`report`: `joining` and how far its probation got, or `faulty` with its faults), that the
/// old instance keeps serving and the group stays at full strength, and what to do. A wait that
/// timed out keeps its kind (exit status 5); a fault has none (exit status 1).
pub(super) fn not_admitted(
    wait: &anyhow::Error,
    group: &str,
    replica: &str,
    new: &str,
    image: &str,
    report: &str,
) -> anyhow::Error {
    let todo = if Failure::of(wait) == Some(Failure::Timeout) {
        format!(
            "send client traffic so {new} can agree with the quorum (or raise --timeout), and \
             check that {image} holds the service's state"
        )
    } else {
        format!(
            "check that {image} holds the service's state and answers as the old version does \
             (a new version without the state never agrees)"
        )
    };
    reword(
        wait,
        format!(
            "{new} did not pass probation: {wait:#}\n  \
             domain-nv reports {new} {report}\n  \
             {new} is removed again; {replica} keeps serving, the group stays at full strength\n  \
             to continue: {todo}, then re-run `nvctl patch {group} --image {image}` (replicas \
             already on it are skipped)"
        ),
    )
}
