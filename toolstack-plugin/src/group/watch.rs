//! `nvctl watch`: the repair loop. Each pass supervises the NV domain (brings the group back
//! with `up` when it is gone, crashed or restarted without its config) and then
//! every member instance: one that is `faulty`, `down` for longer than a grace period, crashed
//! (xl state `c`) or whose domain vanished is replaced when the spec says `auto-repair: true`,
//! else reported once per change. A pass holds the group lock; between passes nothing is held.

use super::clone::StateFrom;
use super::nv_status::{health, read_status};
use super::record::{gpath, load, Record};
use super::replace::{replace, Mode};
use super::up::up;
use super::{home, utc, Ctx};
use crate::render::Instance;
use crate::store::read_blob;
use crate::xl;
use anyhow::{anyhow, Result};
use nv_schema::handoff::XS_CONFIG;
use nv_schema::status::{ReplicaHealth, XS_BASE};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What is wrong with a member instance, as one pass sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble {
    /// Its domain no longer runs.
    Gone,
    /// Its domain crashed and was preserved (xl state `c`).
    Crashed,
    /// domain-nv reports it faulty.
    Faulty,
    /// domain-nv reports it down (hung, or its link is gone) for longer than the grace period.
    Down,
    /// (The NV domain only.) It runs again with a new domid and without its config.
    Restarted,
}

impl Trouble {
    /// The words of a log line.
    fn why(self) -> &'static str {
        match self {
            Trouble::Gone => "domain gone",
            Trouble::Crashed => "domain crashed",
            Trouble::Faulty => "reported faulty",
            Trouble::Down => "reported down past the grace period",
            Trouble::Restarted => "restarted without its config",
        }
    }
}

/// True if xl's state flags (`r-----`, `--c---`, ...) say the domain crashed.
fn crashed(state: &str) -> bool {
    state.contains('c')
}

/// The trouble of a member from what a pass observed: its domain's xl state (None: not
/// running), its health as domain-nv reports it, and for how long it has been reported down.
pub fn trouble(
    xl_state: Option<&str>,
    health: Option<ReplicaHealth>,
    down_for: Duration,
    grace: Duration,
) -> Option<Trouble> {
    match (xl_state, health) {
        (None, _) => Some(Trouble::Gone),
        (Some(s), _) if crashed(s) => Some(Trouble::Crashed),
        (_, Some(ReplicaHealth::Faulty)) => Some(Trouble::Faulty),
        (_, Some(ReplicaHealth::Down)) if down_for >= grace => Some(Trouble::Down),
        _ => None,
    }
}

/// How `nvctl watch` paces itself.
#[derive(Debug, Clone, Copy)]
pub struct WatchOptions {
    /// Longest pause between two passes (a status change wakes it earlier).
    pub interval: Duration,
    /// How long a member may be reported `down` before it counts as failed.
    pub down_grace: Duration,
}

/// The repair loop's memory across passes: since when each member has been down, what was
/// last reported of each, and the NV domain's domid.
pub struct Watcher {
    group: String,
    opts: WatchOptions,
    down_since: BTreeMap<String, Instant>,
    reported: BTreeMap<String, Trouble>,
    nv_reported: Option<Trouble>,
    nv_domid: Option<u32>,
}

impl Watcher {
    /// A watcher of `group` that has seen nothing yet.
    pub fn new(group: &str, opts: WatchOptions) -> Watcher {
        Watcher {
            group: group.to_string(),
            opts,
            down_since: BTreeMap::new(),
            reported: BTreeMap::new(),
            nv_reported: None,
            nv_domid: None,
        }
    }

    /// A progress line with the wall-clock time (UTC) in front.
    fn log(&self, ctx: &Ctx, msg: &str) {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        ctx.say(&format!("{} {msg}", utc(ms)));
    }

    /// One pass: supervise the NV domain, then repair (or report) every member in trouble.
    /// Returns the instances that replaced failed ones.
    pub fn pass(&mut self, ctx: &Ctx) -> Result<Vec<Instance>> {
        let group = self.group.clone();
        let rec = load(ctx.store, &group)?;
        let Some(domid) = self.supervise_nv(ctx, &rec)? else {
            return Ok(Vec::new());
        };
        let st = read_status(ctx.store, domid)?;
        let running = xl::list(ctx.xl)?;
        let owned = ctx.owned(&group)?;
        let now = Instant::now();
        let mut done = Vec::new();
        let members = rec.members();
        self.down_since
            .retain(|n, _| members.iter().any(|i| i.name() == *n));
        self.reported
            .retain(|n, _| members.iter().any(|i| i.name() == *n));
        for i in members {
            let name = i.name();
            let h = health(&st, &name);
            let down_for = if h == Some(ReplicaHealth::Down) {
                now - *self.down_since.entry(name.clone()).or_insert(now)
            } else {
                self.down_since.remove(&name);
                Duration::ZERO
            };
            let dom = owned.running(&i.domain(&group), &running);
            let state = dom.as_ref().map(|d| d.state.as_str());
            let Some(t) = trouble(state, h, down_for, self.opts.down_grace) else {
                self.reported.remove(&name);
                continue;
            };
            let why = t.why();
            if rec.spec.auto_repair {
                self.log(ctx, &format!("{name}: {why}, replacing"));
                // a failed repair is tried again next pass; the other members still get theirs
                match replace(
                    ctx,
                    &group,
                    &i.replica,
                    None,
                    &StateFrom::Spec,
                    Mode::Repair,
                    Duration::ZERO,
                ) {
                    Ok(new) => {
                        self.log(ctx, &format!("{name}: replaced by {}", new.name()));
                        self.down_since.remove(&name);
                        self.reported.remove(&name);
                        done.push(new);
                    }
                    Err(e) => self.log(ctx, &format!("{name}: repair failed: {e:#}")),
                }
            } else if self.reported.insert(name.clone(), t) != Some(t) {
                self.log(ctx, &format!("{name}: {why} (auto-repair is off)"));
            }
        }
        Ok(done)
    }

    /// Make sure the NV domain runs and holds its config. When it is gone, crashed, or runs
    /// again without its config (`on_reboot=restart` gave it a new domid and an empty xenstore
    /// home), the replicas' vifs point at a backend that no longer exists; with auto-repair the
    /// replica domains are destroyed and [`up`] (on the recorded spec) brings the group back:
    /// the NV domain recreated (or kept) and handed the config, the replicas created with vifs
    /// served by it, all of them members again as when the group first started. Without
    /// auto-repair the trouble is reported once. Returns the domid of a healthy NV domain.
    fn supervise_nv(&mut self, ctx: &Ctx, rec: &Record) -> Result<Option<u32>> {
        let group = self.group.clone();
        let nv = rec.spec.nv_name();
        let mut owned = ctx.owned(&group)?;
        let running = xl::list(ctx.xl)?;
        let dom = owned.running(&nv, &running);
        let why = match &dom {
            Some(d) if crashed(&d.state) => Trouble::Crashed,
            Some(d) => {
                if ctx
                    .store
                    .read(&format!("{}/{XS_CONFIG}", home(d.id)))?
                    .is_some()
                {
                    self.nv_reported = None;
                    self.nv_domid = Some(d.id);
                    return Ok(Some(d.id));
                }
                Trouble::Restarted
            }
            None => Trouble::Gone,
        };
        self.nv_domid = None;
        if !rec.spec.auto_repair {
            if self.nv_reported.replace(why) != Some(why) {
                self.log(
                    ctx,
                    &format!("NV domain {nv}: {} (auto-repair is off)", why.why()),
                );
            }
            return Ok(None);
        }
        self.log(
            ctx,
            &format!(
                "NV domain {nv}: {}, restarting the group (the replicas' vifs were served by it)",
                why.why()
            ),
        );
        if let Some(d) = dom.as_ref().filter(|d| crashed(&d.state)) {
            ctx.destroy(&mut owned, &nv, &d.uuid)?;
        }
        for (i, _) in &rec.instances {
            let d = i.domain(&group);
            if let Some(dom) = owned.running(&d, &running) {
                ctx.destroy(&mut owned, &d, &dom.uuid)?;
            }
        }
        let text = read_blob(ctx.store, &format!("{}/spec", gpath(&group)))?
            .ok_or_else(|| anyhow!("group {group}: no recorded spec"))?;
        up(ctx, &text)?;
        let id = ctx.nv_domid(&rec.spec)?;
        self.log(
            ctx,
            &format!("NV domain {nv}: running (id {id}) with its replicas"),
        );
        self.nv_reported = None;
        self.nv_domid = Some(id);
        Ok(Some(id))
    }

    /// One round of the loop: a [`Watcher::pass`] holding the guard `lock` returns (skipped when
    /// the lock is taken: another nvctl works on the group), then, holding nothing, wait for a
    /// status change or `interval`.
    pub fn round<L>(&mut self, ctx: &Ctx, lock: &mut impl FnMut() -> Result<L>) -> Result<()> {
        match lock() {
            Ok(guard) => {
                if let Err(e) = self.pass(ctx) {
                    self.log(ctx, &format!("repair failed: {e:#}"));
                }
                drop(guard);
            }
            Err(e) => self.log(ctx, &format!("pass skipped: {e:#}")),
        }
        let path = match self.nv_domid {
            Some(id) => format!("{}/{XS_BASE}/replicas", home(id)),
            None => gpath(&self.group),
        };
        ctx.store.watch(&path, self.opts.interval)?;
        Ok(())
    }
}

/// `nvctl watch`: [`Watcher::round`] forever; `lock` takes the group lock for one pass.
pub fn watch<L>(
    ctx: &Ctx,
    group: &str,
    opts: WatchOptions,
    mut lock: impl FnMut() -> Result<L>,
) -> Result<()> {
    load(ctx.store, group)?;
    let mut w = Watcher::new(group, opts);
    loop {
        w.round(ctx, &mut lock)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trouble_from_observations() {
        let s = Duration::from_secs;
        let t = |st, h, d| trouble(st, h, s(d), s(30));
        assert_eq!(t(None, Some(ReplicaHealth::Live), 0), Some(Trouble::Gone));
        assert_eq!(t(Some("--c---"), None, 0), Some(Trouble::Crashed));
        assert_eq!(
            t(Some("-b----"), Some(ReplicaHealth::Faulty), 0),
            Some(Trouble::Faulty)
        );
        assert_eq!(t(Some("-b----"), Some(ReplicaHealth::Down), 29), None);
        assert_eq!(
            t(Some("-b----"), Some(ReplicaHealth::Down), 30),
            Some(Trouble::Down)
        );
        for h in [
            None,
            Some(ReplicaHealth::Live),
            Some(ReplicaHealth::Joining),
            Some(ReplicaHealth::Starting),
        ] {
            assert_eq!(t(Some("r-----"), h, 100), None);
        }
    }
}
