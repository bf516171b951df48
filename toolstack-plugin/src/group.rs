//! The group lifecycle: `up`, `down`, `status`, `replace`, `patch`, `watch`.
//!
//! Group membership lives in xenstore, independent of any domain, below [`GROUPS`]:
//! ```text
//! /tool/nvctl/groups/<group>/spec                          the spec YAML as given to `up` (chunked)
//! /tool/nvctl/groups/<group>/nv-domain                     the NV domain's name
//! /tool/nvctl/groups/<group>/instances/<inst>/replica      spec replica it incarnates
//! /tool/nvctl/groups/<group>/instances/<inst>/generation   0, 1, ...
//! /tool/nvctl/groups/<group>/instances/<inst>/mac          its vif MAC
//! /tool/nvctl/groups/<group>/instances/<inst>/address      its link address, a.b.c.d/len
//! /tool/nvctl/groups/<group>/instances/<inst>/nv-address   the NV domain's end of its link
//! /tool/nvctl/groups/<group>/instances/<inst>/image        its disk image ("" if none)
//! /tool/nvctl/groups/<group>/instances/<inst>/role         member | joining
//! ```
//! Which domains are the group's is recorded apart from membership, by identity: the UUID of
//! every domain nvctl creates goes to `<state-dir>/<group>/domains` ([`crate::owned`]), and
//! nvctl keeps, destroys or talks to a running domain only if its UUID is recorded there.
//! Every config is dry-run (`xl create -n`) before anything is created.
//!
//! The NV domain gets its config at `/local/domain/<nv-domid>/data/domain-nv-config`
//! ([`nv_schema::handoff::XS_CONFIG`], chunked as in [`crate::store`]) and reports below
//! `/local/domain/<nv-domid>/data/domain-nv/` ([`nv_schema::status::XS_BASE`]).
//!
//! Every wait is bounded by [`Ctx::timeout`]; it re-checks its condition whenever the watched
//! xenstore subtree changes, and at least every [`Ctx::poll`].

use crate::failure::{reword, Failure};
use crate::owned::{DomainRole, Owned, OwnedDomain};
use crate::printable::printable;
use crate::render::{self, Instance};
use crate::spec::{majority_quorum, GroupSpec, LinkAddrs, Policy};
use crate::store::{read_blob, write_blob, Store};
use crate::xl::{self, xl_ok, XlRunner};
use crate::xl_value;
use anyhow::{anyhow, bail, Context, Result};
use nv_schema::handoff::XS_CONFIG;
use nv_schema::net::Ipv4Cidr;
use nv_schema::status::{FaultRecord, ReplicaHealth, ReplicaStatus, Status, XS_BASE};
use serde::Serialize;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Root of nvctl's group records in xenstore.
pub const GROUPS: &str = "/tool/nvctl/groups";

/// What a lifecycle command works with.
pub struct Ctx<'a> {
    /// How `xl` is run.
    pub xl: &'a dyn XlRunner,
    /// The xenstore.
    pub store: &'a dyn Store,
    /// Where xl config files are written (`<dir>/<group>/<domain>.cfg`).
    pub dir: PathBuf,
    /// Bound of every wait (NV domain ready, replica live).
    pub timeout: Duration,
    /// Longest pause between two checks of a waited-for condition (xenstore watches wake a
    /// wait earlier).
    pub poll: Duration,
    /// How often a long wait prints "still waiting".
    pub report_every: Duration,
    /// Progress lines go here.
    pub progress: &'a dyn Fn(&str),
}

/// Role of an instance in its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Part of the group's voting set.
    Member,
    /// Booted by `replace`/`patch`, not yet confirmed live.
    Joining,
}

/// A group as recorded in xenstore.
#[derive(Debug, Clone)]
pub struct Record {
    /// The spec.
    pub spec: GroupSpec,
    /// Instances in config order (spec replica order, then generation).
    pub instances: Vec<(Instance, Role)>,
}

/// The xenstore home of a domain.
pub fn home(domid: u32) -> String {
    format!("/local/domain/{domid}")
}

fn gpath(group: &str) -> String {
    format!("{GROUPS}/{group}")
}

impl Record {
    fn members(&self) -> Vec<Instance> {
        self.instances
            .iter()
            .filter(|(_, r)| *r == Role::Member)
            .map(|(i, _)| i.clone())
            .collect()
    }

    fn member_of(&self, replica: &str) -> Result<Instance> {
        self.instances
            .iter()
            .find(|(i, r)| i.replica == replica && *r == Role::Member)
            .map(|(i, _)| i.clone())
            .ok_or_else(|| {
                Failure::NotFound.error(format!(
                    "group {} has no replica {replica:?}",
                    self.spec.group
                ))
            })
    }

    /// Running replica domains nvctl created for this group that the record does not hold (left
    /// behind by an interrupted `replace`), as (name, uuid).
    fn orphans(
        &self,
        owned: &Owned,
        running: &BTreeMap<String, xl::Domain>,
    ) -> Vec<(String, String)> {
        let g = &self.spec.group;
        let known: Vec<String> = self.instances.iter().map(|(i, _)| i.domain(g)).collect();
        owned
            .alive(running)
            .into_iter()
            .filter(|(name, o)| o.role == DomainRole::Replica && !known.iter().any(|k| k == name))
            .map(|(name, o)| (name.to_string(), o.uuid.clone()))
            .collect()
    }

    fn sort(&mut self) {
        let order: BTreeMap<&str, usize> = self
            .spec
            .replicas
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.as_str(), i))
            .collect();
        self.instances.sort_by_key(|(i, _)| {
            (
                order.get(i.replica.as_str()).copied().unwrap_or(usize::MAX),
                i.generation,
            )
        });
    }
}

/// Load a group's record; an error if the group is unknown.
pub fn load(store: &dyn Store, group: &str) -> Result<Record> {
    let base = gpath(group);
    let text = read_blob(store, &format!("{base}/spec"))?.ok_or_else(|| {
        Failure::NotFound.error(format!("no group {group:?} (see `nvctl status`)"))
    })?;
    let spec = GroupSpec::parse(&text).map_err(|e| anyhow!("recorded spec of {group}: {e}"))?;
    let mut instances = Vec::new();
    for name in store.directory(&format!("{base}/instances"))? {
        let p = format!("{base}/instances/{name}");
        let get = |k: &str| -> Result<String> {
            store
                .read(&format!("{p}/{k}"))?
                .ok_or_else(|| anyhow!("{p}/{k} missing"))
        };
        // `role` is written last: without it the save was interrupted before any domain existed.
        let Some(role) = store.read(&format!("{p}/role"))? else {
            log::warn!("{p}: incomplete record, ignored");
            continue;
        };
        let image = get("image")?;
        let (address, nv_address) = (get("address")?, get("nv-address")?);
        let inst = Instance {
            replica: get("replica")?,
            generation: get("generation")?
                .parse()
                .with_context(|| format!("{p}/generation"))?,
            mac: get("mac")?,
            link: LinkAddrs::new(&address, Some(&nv_address))
                .ok_or_else(|| anyhow!("{p}: bad link {address} / {nv_address}"))?,
            image: (!image.is_empty()).then_some(image),
        };
        let role = if role == "joining" {
            Role::Joining
        } else {
            Role::Member
        };
        instances.push((inst, role));
    }
    let mut rec = Record { spec, instances };
    rec.sort();
    Ok(rec)
}

fn save_instance(store: &dyn Store, group: &str, i: &Instance, role: Role) -> Result<()> {
    let p = format!("{}/instances/{}", gpath(group), i.name());
    store.write(&format!("{p}/replica"), &i.replica)?;
    store.write(&format!("{p}/generation"), &i.generation.to_string())?;
    store.write(&format!("{p}/mac"), &i.mac)?;
    store.write(
        &format!("{p}/address"),
        &format!("{}/{}", i.link.replica, i.link.prefix),
    )?;
    store.write(&format!("{p}/nv-address"), &i.link.nv.to_string())?;
    store.write(&format!("{p}/image"), i.image.as_deref().unwrap_or(""))?;
    store.write(
        &format!("{p}/role"),
        if role == Role::Joining {
            "joining"
        } else {
            "member"
        },
    )
}

fn remove_instance(store: &dyn Store, group: &str, i: &Instance) -> Result<()> {
    store.rm(&format!("{}/instances/{}", gpath(group), i.name()))
}

/// Read the NV domain's status; None while it has published none. A snapshot that does not
/// decode (domain-nv rewriting it under our feet) is read again, up to `STATUS_READS` times.
pub fn read_status(store: &dyn Store, domid: u32) -> Result<Option<Status>> {
    let h = home(domid);
    let mut attempt = 0;
    loop {
        if store.read(&format!("{h}/{XS_BASE}/version"))?.is_none() {
            return Ok(None);
        }
        let err = RefCell::new(None);
        let mut read = |k: &str| keep_err(&err, store.read(&format!("{h}/{k}")));
        let mut list = |k: &str| keep_err(&err, store.directory(&format!("{h}/{k}")));
        let st = Status::from_xenstore(&mut read, &mut list);
        if let Some(e) = err.into_inner() {
            return Err(e);
        }
        attempt += 1;
        match st {
            Ok(st) => return Ok(Some(st)),
            Err(e) if attempt >= STATUS_READS => {
                return Err(e).context(format!("status of domain {domid}"))
            }
            Err(e) => log::debug!("status of domain {domid}: {e}; reading again"),
        }
    }
}

/// The value of `r`, or the default after recording the (first) error in `err`.
fn keep_err<T: Default>(err: &RefCell<Option<anyhow::Error>>, r: Result<T>) -> T {
    r.unwrap_or_else(|e| {
        err.borrow_mut().get_or_insert(e);
        T::default()
    })
}

/// How often [`read_status`] tries to get a consistent snapshot.
const STATUS_READS: usize = 3;

/// The least number of live replicas the group's policy needs: majority ⌊n/2⌋+1, unanimous n,
/// primary-backup 1.
pub fn quorum(spec: &GroupSpec) -> usize {
    let n = spec.replicas.len();
    match spec.service.policy {
        Policy::Majority => majority_quorum(n),
        Policy::Unanimous => n,
        Policy::PrimaryBackup => 1,
    }
}

impl Ctx<'_> {
    fn say(&self, s: &str) {
        (self.progress)(s)
    }

    fn cfg_path(&self, group: &str, domain: &str) -> PathBuf {
        self.dir.join(group).join(format!("{domain}.cfg"))
    }

    fn write_cfg(&self, group: &str, domain: &str, text: &str) -> Result<PathBuf> {
        let p = self.cfg_path(group, domain);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
        Ok(p)
    }

    /// The domains nvctl created for `group`.
    fn owned(&self, group: &str) -> Result<Owned> {
        Owned::load(&self.dir, group)
    }

    /// Write the config of `domain` and have xl parse it without creating anything
    /// (`xl create -n`, a dry run).
    fn dry_run(&self, group: &str, domain: &str, text: &str) -> Result<()> {
        let p = self.write_cfg(group, domain, text)?;
        xl_ok(self.xl, &["create", "-n", &p.to_string_lossy()])
            .with_context(|| format!("xl rejects the config of {domain}"))
            .map(drop)
    }

    /// `xl create` a domain from `text` and record its identity (UUID, domid) in `owned`.
    fn create(
        &self,
        owned: &mut Owned,
        role: DomainRole,
        group: &str,
        domain: &str,
        text: &str,
    ) -> Result<u32> {
        let p = self.write_cfg(group, domain, text)?;
        xl_ok(self.xl, &["create", &p.to_string_lossy()])?;
        let d = xl::list(self.xl)?
            .remove(domain)
            .ok_or_else(|| anyhow!("{domain} vanished right after `xl create`"))?;
        if d.uuid.is_empty() {
            bail!("`xl list -v` shows no UUID for {domain}");
        }
        owned.add(OwnedDomain {
            uuid: d.uuid,
            domid: d.id,
            role,
            name: domain.to_string(),
        })?;
        Ok(d.id)
    }

    /// Destroy `domain` if it runs and nvctl created it for the group (an error if another
    /// domain has the name).
    fn destroy_if_running(&self, owned: &mut Owned, domain: &str) -> Result<()> {
        if let Some(d) = owned.find(domain, &xl::list(self.xl)?)? {
            self.destroy(owned, domain, &d.uuid)?;
        }
        Ok(())
    }

    /// `xl destroy` a domain nvctl created (checked by the caller), then forget it.
    fn destroy(&self, owned: &mut Owned, domain: &str, uuid: &str) -> Result<()> {
        self.say(&format!("destroying {domain}"));
        xl_ok(self.xl, &["destroy", domain])?;
        owned.forget(uuid)
    }

    /// The domid of the group's NV domain, which must run and be one nvctl created.
    fn nv_domid(&self, spec: &GroupSpec) -> Result<u32> {
        let nv = spec.nv_name();
        let owned = self.owned(&spec.group)?;
        owned
            .find(&nv, &xl::list(self.xl)?)?
            .map(|d| d.id)
            .ok_or_else(|| {
                Failure::NotFound.error(format!("NV domain {nv} is not running (run `nvctl up`)"))
            })
    }

    fn push_config(&self, spec: &GroupSpec, domid: u32, instances: &[Instance]) -> Result<()> {
        write_blob(
            self.store,
            &format!("{}/{XS_CONFIG}", home(domid)),
            &render::nv_config(spec, instances)?,
        )
    }

    /// Wait (bounded by `timeout`, progress every `report_every`) until `check` yields a value;
    /// re-checks on changes below `watch` and at least every `poll`.
    fn wait_for<T>(
        &self,
        what: &str,
        watch: &str,
        mut check: impl FnMut() -> Result<Option<T>>,
    ) -> Result<T> {
        let start = Instant::now();
        let deadline = start + self.timeout;
        let mut next_report = start + self.report_every;
        loop {
            if let Some(v) = check()? {
                return Ok(v);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Failure::Timeout.error(format!(
                    "timed out after {}s waiting for {what}",
                    self.timeout.as_secs_f32()
                )));
            }
            if now >= next_report {
                self.say(&format!(
                    "  still waiting for {what} ({}s)",
                    (now - start).as_secs()
                ));
                next_report = now + self.report_every;
            }
            self.store.watch(watch, (deadline - now).min(self.poll))?;
        }
    }
}

/// Health of instance `name` in a status, if reported.
fn health(st: &Option<Status>, name: &str) -> Option<ReplicaHealth> {
    st.as_ref()?
        .replicas
        .iter()
        .find(|r| r.name == name)
        .map(|r| r.state)
}

type Faults = BTreeMap<String, Vec<FaultRecord>>;

fn faults_of(st: &Option<Status>) -> Faults {
    st.iter()
        .flat_map(|s| &s.replicas)
        .map(|r| (r.name.clone(), r.faults.clone()))
        .collect()
}

/// Faults in `now` not in `base` (per instance), restricted to instances `only` (all if None).
fn new_faults(
    base: &Faults,
    now: &Option<Status>,
    only: Option<&str>,
) -> Vec<(String, FaultRecord)> {
    let mut out = Vec::new();
    for r in now.iter().flat_map(|s| &s.replicas) {
        if only.is_some_and(|o| o != r.name) {
            continue;
        }
        let old = base.get(&r.name).map(Vec::as_slice).unwrap_or(&[]);
        out.extend(
            r.faults
                .iter()
                .filter(|f| !old.contains(f))
                .map(|f| (r.name.clone(), f.clone())),
        );
    }
    out
}

fn describe(faults: &[(String, FaultRecord)]) -> String {
    faults
        .iter()
        .map(|(n, f)| {
            let text = format!(
                "{n}: {} on {} connection {} {}",
                f.kind, f.service, f.connection, f.detail
            );
            printable(text.trim_end())
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `nvctl up`: create (or finish creating, or converge) a group from its spec text.
///
/// Steps, each skipped when already done: record the spec; drop instances of an interrupted
/// `replace` and of replicas no longer in the spec; create the NV domain; write the domain-nv
/// config to its xenstore home; wait until it reports `ready`; create the missing replicas;
/// wait until every replica is reported live. Running replicas are left alone (their settings
/// change only through `nvctl replace`).
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
    for (i, role) in &rec.instances {
        let why = match role {
            Role::Joining => "unfinished replacement",
            Role::Member if spec.replica(&i.replica).is_none() => "no longer in the spec",
            Role::Member => continue,
        };
        ctx.say(&format!("instance {}: {why}, removing", i.name()));
        if let Some(d) = owned.running(&i.domain(&g), &running) {
            ctx.destroy(&mut owned, &i.domain(&g), &d.uuid)?;
        }
        remove_instance(ctx.store, &g, i)?;
    }
    rec.instances
        .retain(|(i, r)| *r == Role::Member && spec.replica(&i.replica).is_some());
    for r in &spec.replicas {
        if !rec.instances.iter().any(|(i, _)| i.replica == r.name) {
            let i =
                Instance::initial(r).ok_or_else(|| anyhow!("replica {}: bad address", r.name))?;
            save_instance(ctx.store, &g, &i, Role::Member)?;
            rec.instances.push((i, Role::Member));
        }
    }
    rec.sort();
    let members = rec.members();
    // every config xl will create a domain from passes a dry run before anything is created
    let mut configs = Vec::new();
    if owned.running(&nv, &running).is_none() {
        configs.push((nv.clone(), render::nv_domain_cfg(&spec)));
    }
    for i in &members {
        let d = i.domain(&g);
        if owned.running(&d, &running).is_none() {
            let r = spec
                .replica(&i.replica)
                .ok_or_else(|| anyhow!("instance {} of unknown replica", i.name()))?;
            configs.push((d, render::replica_cfg(&spec, r, i)));
        }
    }
    for (d, cfg) in &configs {
        ctx.dry_run(&g, d, cfg)?;
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
            .all(|i| health(&st, &i.name()) == Some(ReplicaHealth::Live))
            .then_some(()))
    })
    .map_err(|e| {
        let st = read_status(ctx.store, domid).ok().flatten();
        let missing: Vec<String> = members
            .iter()
            .filter(|i| health(&st, &i.name()) != Some(ReplicaHealth::Live))
            .map(Instance::name)
            .collect();
        reword(&e, format!("{e}; not live: {}", missing.join(", ")))
    })?;
    ctx.say(&format!("group {g}: up, {} replicas live", members.len()));
    Ok(())
}

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

/// Refuse a group whose domain names could be those of another recorded group: domains are
/// named `<group>-...`, so two groups collide when one name is the other's plus `-...`; NV
/// domain names (which the spec may set) must not fall into another group's names either.
fn check_no_collision(store: &dyn Store, spec: &GroupSpec) -> Result<()> {
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
fn check_names_are_free(
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

/// How strict a replacement is about faults while old and new vote side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Repair: only faults of the new instance abort (the old one is expected to be faulty).
    Repair,
    /// Rolling patch: a new fault on any instance aborts.
    Patch,
}

/// A private link for a new generation of `replica`: the replica's spec link moved to the
/// first subnet of the same size above it that overlaps no link in use (spec or recorded) nor
/// the external subnet; the MAC is derived from the new address.
fn allocate(rec: &Record, replica: &str) -> Result<(LinkAddrs, String)> {
    let spec = &rec.spec;
    let base = spec
        .replica(replica)
        .and_then(|r| r.link())
        .ok_or_else(|| anyhow!("replica {replica} has no valid link in the spec"))?;
    let mut used: Vec<(u32, u8)> = spec
        .replicas
        .iter()
        .filter_map(|r| r.link())
        .map(|l| (l.network(), l.prefix))
        .collect();
    used.extend(
        rec.instances
            .iter()
            .map(|(i, _)| (i.link.network(), i.link.prefix)),
    );
    if let Ok(e) = spec.nv_domain.external.address.parse::<Ipv4Cidr>() {
        used.push((e.network(), e.prefix));
    }
    let mut macs: Vec<String> = spec.replicas.iter().map(|r| r.mac()).collect();
    macs.extend(rec.instances.iter().map(|(i, _)| i.mac.clone()));
    macs.extend(
        spec.nv_domain
            .external
            .mac
            .iter()
            .map(|m| m.to_ascii_lowercase()),
    );
    let size = 1u64 << (32 - u32::from(base.prefix));
    let count = (1u64 << 32) / size;
    for k in 1..count.min(1 << 16) {
        let net = ((u64::from(base.network()) + k * size) % (1u64 << 32)) as u32;
        let cand = base.moved_to(net);
        let mac = crate::spec::mac_for(cand.replica);
        if used.iter().all(|&(n, p)| !cand.overlaps(n, p)) && !macs.contains(&mac) {
            return Ok((cand, mac));
        }
    }
    bail!(
        "no free subnet of the size of {} left for a new link",
        spec.replica(replica)
            .map(|r| r.address.as_str())
            .unwrap_or(replica)
    )
}

/// A disk image given on the command line (`--image`) follows the path grammar of the spec's.
fn check_image(path: &str) -> Result<()> {
    xl_value::check_path(path).map_err(|m| Failure::Invalid.error(format!("--image: {m}")))
}

/// Replace the member instance of `replica` by a new generation (optionally with a new image):
/// boot it, add it to the voting set next to the old one, wait until it is live (and, for
/// `soak`, that no fault appears), then retire the old one. On failure the new one is removed
/// and the old one stays. Returns the new instance.
pub fn replace(
    ctx: &Ctx,
    group: &str,
    replica: &str,
    image: Option<&str>,
    mode: Mode,
    soak: Duration,
) -> Result<Instance> {
    if let Some(p) = image {
        check_image(p)?;
    }
    let mut rec = load(ctx.store, group)?;
    let mut owned = ctx.owned(group)?;
    let spec = rec.spec.clone();
    let old = rec.member_of(replica)?;
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
    let generation = rec
        .instances
        .iter()
        .filter(|(i, _)| i.replica == replica)
        .map(|(i, _)| i.generation)
        .max()
        .unwrap_or(0)
        + 1;
    let (link, mac) = allocate(&rec, replica)?;
    let new = Instance {
        replica: replica.to_string(),
        generation,
        mac,
        link,
        image: image.map(str::to_string).or_else(|| old.image.clone()),
    };
    let (nn, od, nd) = (new.name(), old.domain(group), new.domain(group));
    let r = spec
        .replica(replica)
        .ok_or_else(|| Failure::NotFound.error(format!("replica {replica} not in the spec")))?;
    ctx.dry_run(group, &nd, &render::replica_cfg(&spec, r, &new))?;
    let domid = ctx.nv_domid(&spec)?;
    let before = read_status(ctx.store, domid)?;
    let baseline = faults_of(&before);
    save_instance(ctx.store, group, &new, Role::Joining)?;
    rec.instances.push((new.clone(), Role::Joining));
    rec.sort();
    let side_by_side: Vec<Instance> = rec.instances.iter().map(|(i, _)| i.clone()).collect();
    ctx.say(&format!("{replica}: booting {nd} next to {od}"));
    ctx.push_config(&spec, domid, &side_by_side)?;
    let watch = format!("{}/{XS_BASE}", home(domid));
    let only = (mode == Mode::Repair).then_some(nn.as_str());
    let attempt = (|| -> Result<()> {
        let cfg = render::replica_cfg(&spec, r, &new);
        ctx.create(&mut owned, DomainRole::Replica, group, &nd, &cfg)?;
        ctx.wait_for(&format!("{nn} to be live"), &watch, || {
            let st = read_status(ctx.store, domid)?;
            let f = new_faults(&baseline, &st, only);
            if !f.is_empty() {
                bail!("fault while {nn} joined: {}", describe(&f));
            }
            Ok((health(&st, &nn) == Some(ReplicaHealth::Live)).then_some(()))
        })?;
        ctx.say(&format!("{replica}: {nn} is live"));
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
        let st = read_status(ctx.store, domid)?;
        let live = side_by_side
            .iter()
            .filter(|i| **i != old && health(&st, &i.name()) == Some(ReplicaHealth::Live))
            .count();
        let q = quorum(&spec);
        if live < q {
            bail!(
                "retiring {} would leave {live} live replicas, fewer than the quorum {q}",
                old.name()
            );
        }
        Ok(())
    })();
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
            .filter(|i| health(&st, &i.name()) == Some(ReplicaHealth::Live))
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

/// What `nvctl status` shows of one instance.
#[derive(Debug, Clone)]
pub struct InstanceView {
    /// The instance.
    pub instance: Instance,
    /// Member or joining.
    pub role: Role,
    /// Its domain, if running.
    pub domain: Option<xl::Domain>,
    /// What the NV domain reports about it.
    pub status: Option<ReplicaStatus>,
}

/// What `nvctl status` shows of one group.
#[derive(Debug, Clone)]
pub struct GroupView {
    /// Group name.
    pub group: String,
    /// NV domain name.
    pub nv_name: String,
    /// The NV domain, if running.
    pub nv: Option<xl::Domain>,
    /// Its status, if published.
    pub status: Option<Status>,
    /// The instances.
    pub instances: Vec<InstanceView>,
}

/// Names of every recorded group.
pub fn groups(store: &dyn Store) -> Result<Vec<String>> {
    store.directory(GROUPS)
}

/// Gather the status of a group from `xl list` and the NV domain's xenstore keys.
pub fn status(ctx: &Ctx, group: &str) -> Result<GroupView> {
    let rec = load(ctx.store, group)?;
    let running = xl::list(ctx.xl)?;
    let owned = ctx.owned(group)?;
    let nv_name = rec.spec.nv_name();
    let nv = owned.running(&nv_name, &running);
    let st = match &nv {
        Some(d) => read_status(ctx.store, d.id)?,
        None => None,
    };
    let instances = rec
        .instances
        .iter()
        .map(|(i, role)| InstanceView {
            instance: i.clone(),
            role: *role,
            domain: owned.running(&i.domain(group), &running),
            status: st
                .as_ref()
                .and_then(|s| s.replicas.iter().find(|r| r.name == i.name()).cloned()),
        })
        .collect();
    Ok(GroupView {
        group: group.to_string(),
        nv_name,
        nv,
        status: st,
        instances,
    })
}

/// Unix time in ms as UTC `YYYY-MM-DDTHH:MM:SS.mmmZ` (proleptic Gregorian calendar).
pub fn utc(ms: u64) -> String {
    let (days, rem) = ((ms / 86_400_000) as i64, ms % 86_400_000);
    // civil_from_days (H. Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, mi, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

fn word<T: serde::Serialize>(v: &T) -> String {
    serde_yaml::to_string(v)
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The table `nvctl status` prints (columns like `xl list`).
pub fn format_table(views: &[GroupView]) -> String {
    let mut o = String::new();
    for v in views {
        if !o.is_empty() {
            o.push('\n');
        }
        let nv = match (&v.nv, &v.status) {
            (None, _) => "not running".to_string(),
            (Some(d), None) => format!("id {} {}, no status yet", d.id, d.state),
            (Some(d), Some(s)) => format!(
                "id {} {}, {}",
                d.id,
                d.state,
                if s.ready { "ready" } else { "not ready" }
            ),
        };
        o.push_str(&format!(
            "Group {}   NV domain {} ({nv})\n",
            v.group, v.nv_name
        ));
        for s in v.status.iter().flat_map(|s| &s.services) {
            o.push_str(&format!(
                "  service {} on {}: {} active, {} total\n",
                printable(&s.name),
                printable(&s.listen),
                s.active,
                s.total
            ));
        }
        o.push_str(&format!(
            "{:<12} {:<22} {:>5} {:<7} {:<8} {:<5} {:>5} {:>12} {:>6}  {}\n",
            "Replica",
            "Domain",
            "ID",
            "State",
            "Health",
            "Link",
            "Conns",
            "Bytes-voted",
            "Faults",
            "Last fault"
        ));
        for i in &v.instances {
            let name = if i.role == Role::Joining {
                format!("{}*", i.instance.name())
            } else {
                i.instance.name()
            };
            let (id, state) = match &i.domain {
                Some(d) => (d.id.to_string(), d.state.clone()),
                None => ("-".to_string(), "gone".to_string()),
            };
            let (health, link, conns, bytes, nf, last) = match &i.status {
                Some(r) => (
                    word(&r.state),
                    word(&r.link),
                    r.connections.to_string(),
                    r.bytes_voted.to_string(),
                    r.faults.len().to_string(),
                    r.faults.last().map(fault_line).unwrap_or_default(),
                ),
                None => (
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    String::new(),
                ),
            };
            let row = format!(
                "{:<12} {:<22} {:>5} {:<7} {:<8} {:<5} {:>5} {:>12} {:>6}  {}",
                name,
                i.instance.domain(&v.group),
                id,
                state,
                health,
                link,
                conns,
                bytes,
                nf,
                last
            );
            o.push_str(row.trim_end());
            o.push('\n');
        }
        let faulty: Vec<&ReplicaStatus> = v
            .instances
            .iter()
            .filter_map(|i| i.status.as_ref())
            .filter(|r| r.faults.len() > 1)
            .collect();
        if !faulty.is_empty() {
            o.push_str(&format!(
                "Recent faults (last {SHOWN_FAULTS} per replica; all with --json):\n"
            ));
        }
        for r in faulty {
            for f in r.faults.iter().rev().take(SHOWN_FAULTS) {
                o.push_str(&format!("  {:<10} {}\n", printable(&r.name), fault_line(f)));
            }
        }
    }
    o
}

/// How many faults per replica the status table lists below the rows.
const SHOWN_FAULTS: usize = 5;

/// A fault as the status table shows it: time, kind, service#connection, detail (control
/// characters escaped).
fn fault_line(f: &FaultRecord) -> String {
    let line = format!(
        "{} {} {}#{} {}",
        utc(f.time_ms),
        f.kind,
        f.service,
        f.connection,
        f.detail
    );
    printable(line.trim_end())
}

/// One group in `nvctl status --json`.
#[derive(Serialize)]
struct GroupJson<'a> {
    group: &'a str,
    nv_domain: NvDomainJson<'a>,
    instances: Vec<InstanceJson<'a>>,
    status: Option<&'a Status>,
}

/// The NV domain of a [`GroupJson`].
#[derive(Serialize)]
struct NvDomainJson<'a> {
    name: &'a str,
    domain: Option<&'a xl::Domain>,
}

/// One instance of a [`GroupJson`].
#[derive(Serialize)]
struct InstanceJson<'a> {
    name: String,
    replica: &'a str,
    generation: u32,
    role: &'static str,
    domain_name: String,
    domain: Option<&'a xl::Domain>,
    mac: &'a str,
    address: String,
    image: Option<&'a str>,
}

/// The JSON `nvctl status --json` prints: an array of groups; `status` is the NV domain's
/// status in the encoding of [`Status::to_json`] (or null).
pub fn format_json(views: &[GroupView]) -> String {
    let groups: Vec<GroupJson> = views
        .iter()
        .map(|v| GroupJson {
            group: &v.group,
            nv_domain: NvDomainJson {
                name: &v.nv_name,
                domain: v.nv.as_ref(),
            },
            instances: v
                .instances
                .iter()
                .map(|i| InstanceJson {
                    name: i.instance.name(),
                    replica: &i.instance.replica,
                    generation: i.instance.generation,
                    role: match i.role {
                        Role::Joining => "joining",
                        Role::Member => "member",
                    },
                    domain_name: i.instance.domain(&v.group),
                    domain: i.domain.as_ref(),
                    mac: &i.instance.mac,
                    address: format!("{}/{}", i.instance.link.replica, i.instance.link.prefix),
                    image: i.instance.image.as_deref(),
                })
                .collect(),
            status: v.status.as_ref(),
        })
        .collect();
    // Strings, numbers and sequences only: serializing cannot fail.
    serde_json::to_string(&groups).expect("the status view serializes to JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = include_str!("../../xl-configs/example-group.yaml");

    #[test]
    fn status_is_read_with_the_nv_schema_status() {
        let s = crate::store::MemStore::new();
        assert!(read_status(&s, 7).unwrap().is_none());
        for (k, v) in [
            ("version", "1"),
            ("ready", "1"),
            ("updated-ms", "5"),
            ("replicas/r0/state", "live"),
            ("replicas/r0/link", "up"),
            ("replicas/r0/connections", "1"),
            ("replicas/r0/bytes-voted", "9"),
        ] {
            s.write(&format!("/local/domain/7/{XS_BASE}/{k}"), v)
                .unwrap();
        }
        let st = read_status(&s, 7).unwrap().unwrap();
        assert!(
            st.ready
                && st.replicas[0].state == ReplicaHealth::Live
                && st.replicas[0].bytes_voted == 9
        );
        s.write(
            &format!("/local/domain/7/{XS_BASE}/replicas/r0/state"),
            "sleepy",
        )
        .unwrap();
        let e = format!("{:#}", read_status(&s, 7).unwrap_err());
        assert!(
            e.contains("status of domain 7")
                && e.contains("replicas/r0/state")
                && e.contains("sleepy"),
            "{e}"
        );
    }

    #[test]
    fn status_text_from_the_nv_domain_is_printed_without_control_characters() {
        let spec = GroupSpec::parse(SPEC).unwrap();
        let evil = "\u{1b}[2J\u{1b}]0;owned\u{7}\r\u{9b}31m";
        let fault = FaultRecord {
            time_ms: 0,
            kind: format!("value-mismatch{evil}"),
            service: format!("redis{evil}"),
            connection: 3,
            detail: format!("offset 120\n{evil}"),
        };
        let replica = |name: &str| ReplicaStatus {
            name: name.to_string(),
            state: ReplicaHealth::Faulty,
            link: nv_schema::status::LinkState::Up,
            connections: 1,
            bytes_voted: 2,
            faults: vec![fault.clone(), fault.clone()],
        };
        let status = Status {
            version: nv_schema::status::SCHEMA_VERSION,
            ready: true,
            updated_ms: 0,
            services: vec![nv_schema::status::ServiceStatus {
                name: format!("redis{evil}"),
                listen: format!("192.0.2.10:6379{evil}"),
                active: 1,
                total: 1,
            }],
            replicas: vec![replica("r0"), replica(&format!("r0{evil}"))],
        };
        let view = GroupView {
            group: "web".into(),
            nv_name: "web-nv".into(),
            nv: None,
            status: Some(status.clone()),
            instances: render::initial_instances(&spec)
                .into_iter()
                .map(|i| InstanceView {
                    status: Some(replica(&i.name())),
                    instance: i,
                    role: Role::Member,
                    domain: None,
                })
                .collect(),
        };
        let table = format_table(&[view]);
        assert!(
            !table.chars().any(|c| c.is_control() && c != '\n'),
            "{table:?}"
        );
        assert!(table.contains("offset 120"), "{table}");
        let faults = new_faults(&Faults::new(), &Some(status), None);
        let text = describe(&faults);
        assert!(!text.chars().any(char::is_control), "{text:?}");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(utc(1_790_000_000_100), "2026-09-21T14:13:20.100Z");
    }

    #[test]
    fn quorum_per_policy() {
        let spec = GroupSpec::parse(SPEC).unwrap();
        assert_eq!(quorum(&spec), 2);
        let u =
            GroupSpec::parse(&SPEC.replacen("policy: majority", "policy: unanimous", 1)).unwrap();
        assert_eq!(quorum(&u), 3);
        let pb = GroupSpec::parse(&SPEC.replacen(
            "policy: majority",
            "policy: primary-backup\n  primary: r1",
            1,
        ))
        .unwrap();
        assert_eq!(quorum(&pb), 1);
    }

    #[test]
    fn allocation_skips_links_in_use_and_the_external_subnet() {
        let spec = GroupSpec::parse(
            &SPEC.replacen("192.0.2.10/24", "10.77.5.10/24", 1).replacen(
                "192.0.2.1\n",
                "10.77.5.1\n",
                1,
            ),
        )
        .unwrap();
        let mut rec = Record {
            instances: render::initial_instances(&spec)
                .into_iter()
                .map(|i| (i, Role::Member))
                .collect(),
            spec,
        };
        let (l, mac) = allocate(&rec, "r0").unwrap();
        assert_eq!(
            (l.replica.to_string(), l.nv.to_string(), mac.as_str()),
            ("10.77.4.2".into(), "10.77.4.1".into(), "00:16:3e:4d:04:02")
        );
        rec.instances.push((
            Instance {
                replica: "r0".into(),
                generation: 1,
                mac,
                link: l,
                image: None,
            },
            Role::Joining,
        ));
        // 10.77.4 is taken now, 10.77.5 is the external subnet
        let (l, _) = allocate(&rec, "r2").unwrap();
        assert_eq!(
            (l.replica.to_string(), l.nv.to_string()),
            ("10.77.6.2".into(), "10.77.6.254".into())
        );
    }
}
