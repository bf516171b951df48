//! `nvctl replace`: a new generation of one replica boots next to the old one on a link of its
//! own (addressed like every replica link), votes side by side with it and takes over.

use super::clone::{self, StateFrom};
use super::nv_status::{
    describe, faults_of, health, health_word, is_joining, is_live, new_faults, read_status, report,
};
use super::patch::not_admitted;
use super::plan::{Action, Plan};
use super::record::{load, remove_instance, save_instance, Record};
use super::{home, quorum, Ctx, Role};
use crate::dom0;
use crate::failure::Failure;
use crate::owned::DomainRole;
use crate::render::{self, Instance};
use crate::spec::Policy;
use crate::xl_value;
use anyhow::{anyhow, bail, Result};
use nv_schema::status::{ReplicaHealth, Status, XS_BASE};
use std::time::{Duration, Instant};

/// How strict a replacement is about faults while old and new vote side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Repair: only faults of the new instance abort (the old one is expected to be faulty).
    Repair,
    /// Rolling patch: a new fault on any instance aborts.
    Patch,
}

/// A disk image given on the command line (`--image`) follows the path grammar of the spec's.
pub(super) fn check_image(path: &str) -> Result<()> {
    xl_value::check_path(path).map_err(|m| Failure::Invalid.error(format!("--image: {m}")))
}

/// A replacement decided and checked, before anything changed: the record, the old and new
/// instance, the clone's source (None: fresh), the new instance's xl config (it passed
/// `xl create -n`), the NV domain and its status.
struct Prepared {
    rec: Record,
    old: Instance,
    new: Instance,
    source: Option<Instance>,
    cfg: String,
    domid: u32,
    before: Option<Status>,
}

/// Decide the new instance of `replica` and check it: Dom0 has what its config names, xl
/// parses the config (`xl create -n`); a clone's source is a live member of another replica.
/// Changes nothing.
fn prepare(
    ctx: &Ctx,
    group: &str,
    replica: &str,
    image: Option<&str>,
    state: &StateFrom,
) -> Result<Prepared> {
    if let Some(p) = image {
        check_image(p)?;
    }
    let rec = load(ctx.store, group)?;
    let spec = &rec.spec;
    if spec.service.policy == Policy::Unanimous {
        bail!("{}", unanimous_refusal(group));
    }
    let old = rec.member_of(replica)?;
    let r = spec
        .replica(replica)
        .ok_or_else(|| Failure::NotFound.error(format!("replica {replica} not in the spec")))?;
    let wanted = clone::wanted(spec.state, replica, state, image)?;
    // a clone's source must be live: the status is read first
    let early = match wanted {
        Some(_) => {
            let domid = ctx.nv_domid(spec)?;
            Some((domid, read_status(ctx.store, domid)?))
        }
        None => None,
    };
    let source = match (&wanted, &early) {
        (Some(w), Some((_, st))) => Some(clone::source(&rec, st, replica, w)?),
        _ => None,
    };
    // an unfinished replacement (joining) of this replica is replaced again
    let generation = rec
        .instances
        .iter()
        .filter(|(i, role)| i.replica == replica && *role != Role::Joining)
        .map(|(i, _)| i.generation)
        .max()
        .unwrap_or(0)
        + 1;
    let image = match &source {
        Some(src) => src.image.clone(),
        None => image.map(str::to_string).or_else(|| old.image.clone()),
    };
    let new = Instance::new(spec, replica, generation, image)
        .ok_or_else(|| anyhow!("bad replica-link in the recorded spec"))?;
    let (cfg, needs) = match &source {
        Some(src) => {
            let sr = spec
                .replica(&src.replica)
                .ok_or_else(|| anyhow!("replica {} not in the spec", src.replica))?;
            (
                render::clone_cfg(spec, r, sr, &new),
                dom0::needs_of_replica(spec, sr, &new, "--clone-from"),
            )
        }
        None => (
            render::replica_cfg(spec, r, &new),
            dom0::needs_of_replica(spec, r, &new, "--image"),
        ),
    };
    ctx.check_dom0(group, &needs)?;
    ctx.dry_run(group, &new.domain(group), &cfg)?;
    let (domid, before) = match early {
        Some(e) => e,
        None => {
            let domid = ctx.nv_domid(spec)?;
            (domid, read_status(ctx.store, domid)?)
        }
    };
    Ok(Prepared {
        old,
        new,
        source,
        cfg,
        domid,
        before,
        rec,
    })
}

/// Why a unanimous group gets no new instance: under `unanimous` every configured replica must
/// be a Member and agree, so a new instance on probation (counted as configured, not voting)
/// leaves no quorum: every new connection is reset, and it never agrees with a quorum, so it is
/// never promoted. Such a group changes members only by starting again.
fn unanimous_refusal(group: &str) -> String {
    format!(
        "group {group} is voted unanimously: a new instance joins on probation and votes only          once it agreed with a quorum, but with a replica on probation a unanimous group has no          quorum (every new connection would be reset) and the new instance would never be          promoted. Start the group again instead (every replica starts as a member):          `nvctl down {group}` then `nvctl up SPEC`"
    )
}

/// What `replace` would do, as plan steps (`nvctl replace --dry-run`): the checks of a real
/// run are made (Dom0, `xl create -n`, a clone's source), nothing is changed.
pub fn replace_plan(
    ctx: &Ctx,
    group: &str,
    replica: &str,
    image: Option<&str>,
    state: &StateFrom,
) -> Result<Plan> {
    let p = prepare(ctx, group, replica, image, state)?;
    let (nn, nd, od) = (p.new.name(), p.new.domain(group), p.old.domain(group));
    let mut plan = Plan::default();
    for (i, _) in p
        .rec
        .instances
        .iter()
        .filter(|(i, role)| *role == Role::Joining && i.replica == replica)
    {
        plan.add(
            Action::Destroy,
            i.domain(group),
            format!("an unfinished replacement of {replica}"),
        );
    }
    let how = match &p.source {
        Some(src) => format!(
            "a memory copy of {}: `xl save -c` to {}, `xl restore` (the file is removed after)",
            src.domain(group),
            clone::Checkpoint::file(&ctx.dir, group, &nd).display()
        ),
        None => format!(
            "booted fresh from {}",
            p.new.image.as_deref().unwrap_or("its initramfs")
        ),
    };
    plan.add(
        Action::Create,
        &nd,
        format!("instance {nn} of {replica}, {how}"),
    );
    plan.add(
        Action::Push,
        "domain-nv config",
        format!("{nn} joins on probation next to {}", p.old.name()),
    );
    plan.add(
        Action::Destroy,
        &od,
        format!("retired once {nn} serves (joining or live)"),
    );
    Ok(plan)
}

/// Replace the member instance of `replica` by a new generation: fresh (optionally with a new
/// image) or a clone of a live member of another replica (`state`). Boot or restore it, add it
/// to the voting set next to the old one, wait until it serves (`Repair`) or is live (`Patch`)
/// (and, for `soak`, that no fault appears), then retire the old one. On failure the new one is
/// removed and the old one stays. Returns the new instance.
pub fn replace(
    ctx: &Ctx,
    group: &str,
    replica: &str,
    image: Option<&str>,
    state: &StateFrom,
    mode: Mode,
    soak: Duration,
) -> Result<Instance> {
    let Prepared {
        mut rec,
        old,
        new,
        source,
        cfg,
        domid,
        before,
    } = prepare(ctx, group, replica, image, state)?;
    let mut owned = ctx.owned(group)?;
    let spec = rec.spec.clone();
    for (i, _) in rec
        .instances
        .iter()
        .filter(|(i, r)| *r == Role::Joining && i.replica == replica)
    {
        ctx.destroy_if_running(&mut owned, &i.domain(group))?;
        remove_instance(ctx.store, group, i)?;
    }
    rec.instances
        .retain(|(i, r)| !(*r == Role::Joining && i.replica == replica));
    let (nn, od, nd) = (new.name(), old.domain(group), new.domain(group));
    let baseline = faults_of(&before);
    // A clone copies its source as it is now: the checkpoint is taken before the new instance
    // enters the config, so no input reaches both the checkpoint and the clone.
    let checkpoint = match &source {
        Some(src) => {
            let cp = clone::Checkpoint::new(&ctx.dir, group, &nd)?;
            let sd = src.domain(group);
            if owned.find(&sd, &crate::xl::list(ctx.xl)?)?.is_none() {
                bail!("{sd}, the source of the clone, is not running");
            }
            ctx.say(&format!(
                "{replica}: checkpointing {sd} to {} (it keeps running)",
                cp.path().display()
            ));
            ctx.checkpoint(&sd, cp.path())
                .map_err(|e| e.context(format!("checkpointing {sd}")))?;
            Some(cp)
        }
        None => None,
    };
    save_instance(ctx.store, group, &new, Role::Joining)?;
    rec.instances.push((new.clone(), Role::Joining));
    rec.sort();
    let side_by_side: Vec<Instance> = rec.instances.iter().map(|(i, _)| i.clone()).collect();
    match &source {
        Some(src) => ctx.say(&format!(
            "{replica}: restoring {nd}, a copy of {}, next to {od}",
            src.domain(group)
        )),
        None => ctx.say(&format!("{replica}: booting {nd} next to {od}")),
    }
    ctx.push_config(&spec, domid, &side_by_side)?;
    let watch = format!("{}/{XS_BASE}", home(domid));
    let only = (mode == Mode::Repair).then_some(nn.as_str());
    let attempt = (|| -> Result<()> {
        match &checkpoint {
            Some(cp) => {
                ctx.restore(&mut owned, DomainRole::Replica, group, &nd, &cfg, cp.path())?;
            }
            None => {
                ctx.create(&mut owned, DomainRole::Replica, group, &nd, &cfg)?;
            }
        }
        // A new instance joins on probation: domain-nv compares it but counts it toward no
        // quorum until it agreed for a while. A repair (or a plain replace) retires the old
        // instance once the new one serves; a rolling patch waits until it is a full member, so
        // new instances never outnumber proven ones.
        let want = match mode {
            Mode::Repair => "serving (live, or joining on probation)",
            Mode::Patch => "live (its probation passed)",
        };
        ctx.wait_for(&format!("{nn} to be {want}"), &watch, || {
            let st = read_status(ctx.store, domid)?;
            let f = new_faults(&baseline, &st, only);
            if !f.is_empty() {
                bail!("fault while {nn} joined: {}", describe(&f));
            }
            let serving = match mode {
                Mode::Repair => is_live(&st, &nn) || is_joining(&st, &nn),
                Mode::Patch => is_live(&st, &nn),
            };
            Ok(serving.then_some(()))
        })
        .map_err(|e| {
            if mode != Mode::Patch {
                return e;
            }
            let st = match read_status(ctx.store, domid) {
                Ok(st) => st,
                Err(_) => return e,
            };
            let never_agreed = health(&st, &nn) == Some(ReplicaHealth::Faulty);
            if Failure::of(&e) == Some(Failure::Timeout) || never_agreed {
                let image = new.image.as_deref().unwrap_or("its image");
                not_admitted(&e, group, replica, &nn, image, &report(&st, &nn))
            } else {
                e
            }
        })?;
        ctx.say(&format!(
            "{replica}: {nn} is {}",
            health_word(&read_status(ctx.store, domid)?, &nn)
        ));
        if !soak.is_zero() {
            ctx.say(&format!(
                "{replica}: old and new vote side by side for {}s",
                soak.as_secs_f32()
            ));
            let until = Instant::now() + soak;
            loop {
                let st = read_status(ctx.store, domid)?;
                let f = new_faults(&baseline, &st, only);
                if !f.is_empty() {
                    bail!(
                        "fault while {nn} and {} voted side by side: {}",
                        old.name(),
                        describe(&f)
                    );
                }
                let now = Instant::now();
                if now >= until {
                    break;
                }
                ctx.store.watch(&watch, (until - now).min(ctx.poll))?;
            }
        }
        // Retiring an old instance that still votes must leave a quorum of live ones; one that
        // no longer votes (destroyed, faulty) takes nothing away.
        let st = read_status(ctx.store, domid)?;
        let live = side_by_side
            .iter()
            .filter(|i| **i != old && is_live(&st, &i.name()))
            .count();
        let q = quorum(&spec);
        if is_live(&st, &old.name()) && live < q {
            bail!(
                "retiring {} would leave {live} live replicas, fewer than the quorum {q}",
                old.name()
            );
        }
        Ok(())
    })();
    drop(checkpoint);
    if let Err(e) = attempt {
        ctx.say(&format!("{replica}: removing {nd} again, {od} stays"));
        ctx.destroy_if_running(&mut owned, &nd)?;
        remove_instance(ctx.store, group, &new)?;
        rec.instances.retain(|(i, _)| *i != new);
        ctx.push_config(&spec, domid, &rec.members())?;
        return Err(e.context(format!("replacing {}", old.name())));
    }
    // Record first: if nvctl dies below, `up`/`down` see the old domain as a leftover.
    save_instance(ctx.store, group, &new, Role::Member)?;
    remove_instance(ctx.store, group, &old)?;
    rec.instances.retain(|(i, _)| *i != old);
    for (i, role) in rec.instances.iter_mut() {
        if *i == new {
            *role = Role::Member;
        }
    }
    ctx.push_config(&spec, domid, &rec.members())?;
    ctx.destroy_if_running(&mut owned, &od)?;
    ctx.say(&format!("{replica}: {od} retired, {nd} serves"));
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::super::tests::SPEC;
    use crate::render::{initial_instances, Instance};
    use crate::spec::GroupSpec;

    #[test]
    fn a_new_generation_is_addressed_like_every_replica_link() {
        let spec = GroupSpec::parse(SPEC).unwrap();
        let new = Instance::new(&spec, "r1", 3, None).unwrap();
        for i in initial_instances(&spec) {
            assert_eq!((&i.link, &i.mac), (&new.link, &new.mac));
        }
        assert_eq!(new.name(), "r1-g3");
    }
}
