//! `nvctl up`: create, finish creating or converge a group from its spec.

use super::diff::observe;
use super::names::{check_names_are_free, check_no_collision};
use super::nv_status::{is_live, read_status};
use super::plan::plan;
use super::record::{gpath, load, remove_instance, save_instance};
use super::{home, Ctx, Role};
use crate::dom0;
use crate::failure::reword;
use crate::failure::Failure;
use crate::owned::DomainRole;
use crate::render::{self, Instance};
use crate::spec::GroupSpec;
use crate::store::write_blob;
use crate::xl;
use anyhow::{anyhow, Result};
use nv_schema::handoff::XS_CONFIG;
use nv_schema::status::XS_BASE;

/// `nvctl up`: create (or finish creating, or converge) a group from its spec text.
///
/// Steps, each skipped when already done: record the spec; check that Dom0 has the files,
/// bridge and PCI devices of every domain to create and dry-run their configs (before anything
/// is created or destroyed); drop instances of an interrupted `replace` and of replicas no
/// longer in the spec; create the NV domain; write the domain-nv
/// config to its xenstore home; wait until it reports `ready`; create the missing replicas;
/// wait until every replica is reported live. Running replicas are left alone (their settings
/// change only through `nvctl replace`): the drift between them and the spec that needs a
/// `replace` ([`super::plan`]) is listed at the end, and `up` still succeeds. The domain-nv
/// config is handed again on every run, so its settings converge live.
pub fn up(ctx: &Ctx, spec_text: &str) -> Result<()> {
    let spec = GroupSpec::parse(spec_text).map_err(|e| Failure::Invalid.error(e.to_string()))?;
    let g = spec.group.clone();
    let base = gpath(&g);
    let nv = spec.nv_name();
    check_no_collision(ctx.store, &spec)?;
    let mut owned = ctx.owned(&g)?;
    let running = xl::list(ctx.xl)?;
    owned.forget_gone(&running)?;
    check_names_are_free(&spec, load(ctx.store, &g).ok().as_ref(), &owned, &running)?;
    write_blob(ctx.store, &format!("{base}/spec"), spec_text)?;
    ctx.store.write(&format!("{base}/nv-domain"), &nv)?;
    let mut rec = load(ctx.store, &g)?;
    let plan = plan(
        &spec,
        &observe(ctx, &spec, &owned, &running, Some(rec.clone()))?,
    )?;
    // removed only after the checks below, as nothing may be destroyed before them
    let dropped: Vec<(Instance, &str)> = rec
        .instances
        .iter()
        .filter_map(|(i, role)| match role {
            Role::Joining => Some((i.clone(), "unfinished replacement")),
            Role::Member if spec.replica(&i.replica).is_none() => {
                Some((i.clone(), "no longer in the spec"))
            }
            Role::Member => None,
        })
        .collect();
    rec.instances
        .retain(|(i, r)| *r == Role::Member && spec.replica(&i.replica).is_some());
    for r in &spec.replicas {
        if !rec.instances.iter().any(|(i, _)| i.replica == r.name) {
            let i = Instance::new(&spec, &r.name, 0, r.image.clone())
                .ok_or_else(|| anyhow!("bad replica-link in the spec"))?;
            save_instance(ctx.store, &g, &i, Role::Member)?;
            rec.instances.push((i, Role::Member));
        }
    }
    rec.sort();
    let members = rec.members();
    // every config xl will create a domain from names only what Dom0 has and passes a dry run,
    // before anything is created or destroyed
    let mut configs = Vec::new();
    let mut needs = Vec::new();
    if owned.running(&nv, &running).is_none() {
        configs.push((nv.clone(), render::nv_domain_cfg(&spec)));
        needs.extend(dom0::needs_of_nv(&spec));
    }
    for i in &members {
        let d = i.domain(&g);
        if owned.running(&d, &running).is_none() {
            let r = spec
                .replica(&i.replica)
                .ok_or_else(|| anyhow!("instance {} of unknown replica", i.name()))?;
            configs.push((d, render::replica_cfg(&spec, r, i)));
            needs.extend(dom0::needs_of_replica(
                &spec,
                r,
                i,
                "image (set by --image)",
            ));
        }
    }
    ctx.check_dom0(&g, &needs)?;
    for (d, cfg) in &configs {
        ctx.dry_run(&g, d, cfg)?;
    }
    for (i, why) in &dropped {
        ctx.say(&format!("instance {}: {why}, removing", i.name()));
        if let Some(d) = owned.running(&i.domain(&g), &running) {
            ctx.destroy(&mut owned, &i.domain(&g), &d.uuid)?;
        }
        remove_instance(ctx.store, &g, i)?;
    }
    for (d, uuid) in rec.orphans(&owned, &running) {
        ctx.say(&format!("{d}: left over from an interrupted replacement"));
        ctx.destroy(&mut owned, &d, &uuid)?;
    }
    let domid = match owned.running(&nv, &running) {
        Some(d) => {
            ctx.say(&format!("NV domain {nv}: already running (id {})", d.id));
            d.id
        }
        None => {
            ctx.say(&format!("NV domain {nv}: creating"));
            let cfg = render::nv_domain_cfg(&spec);
            let id = ctx.create(&mut owned, DomainRole::Nv, &g, &nv, &cfg)?;
            ctx.say(&format!("NV domain {nv}: created (id {id})"));
            id
        }
    };
    ctx.push_config(&spec, domid, &members)?;
    ctx.say(&format!(
        "NV domain {nv}: config written to {}/{XS_CONFIG}, waiting for it to report ready",
        home(domid)
    ));
    let watch = format!("{}/{XS_BASE}", home(domid));
    ctx.wait_for(&format!("{nv} to report ready"), &watch, || {
        Ok(read_status(ctx.store, domid)?
            .filter(|s| s.ready)
            .map(|_| ()))
    })?;
    ctx.say(&format!("NV domain {nv}: ready"));
    for (k, i) in members.iter().enumerate() {
        let d = i.domain(&g);
        let r = spec
            .replica(&i.replica)
            .ok_or_else(|| anyhow!("instance {} of unknown replica", i.name()))?;
        let step = format!("[{}/{}] replica {d}", k + 1, members.len());
        if let Some(dom) = owned.running(&d, &running) {
            ctx.say(&format!("{step}: already running (id {})", dom.id));
        } else {
            ctx.say(&format!("{step}: creating"));
            let cfg = render::replica_cfg(&spec, r, i);
            let id = ctx.create(&mut owned, DomainRole::Replica, &g, &d, &cfg)?;
            ctx.say(&format!("{step}: created (id {id})"));
        }
    }
    ctx.say("waiting for domain-nv to report every replica live");
    ctx.wait_for("every replica to be live", &watch, || {
        let st = read_status(ctx.store, domid)?;
        Ok(members
            .iter()
            .all(|i| is_live(&st, &i.name()))
            .then_some(()))
    })
    .map_err(|e| {
        let st = read_status(ctx.store, domid).ok().flatten();
        let missing: Vec<String> = members
            .iter()
            .filter(|i| !is_live(&st, &i.name()))
            .map(Instance::name)
            .collect();
        reword(&e, format!("{e}; not live: {}", missing.join(", ")))
    })?;
    ctx.say(&format!("group {g}: up, {} replicas live", members.len()));
    let drift = plan.needs_replace();
    if !drift.is_empty() {
        ctx.say(&format!(
            "group {g}: {} running domain(s) differ from the spec in settings up cannot change live:",
            drift.len()
        ));
        for s in drift {
            ctx.say(&format!("  {}: {}", s.target, s.detail));
        }
    }
    Ok(())
}
