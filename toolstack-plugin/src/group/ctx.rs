//! [`Ctx`]: what a lifecycle command works with, and the steps every command is made of:
//! writing and dry-running xl configs, creating and destroying the domains nvctl owns, handing
//! the domain-nv config to the NV domain, and bounded waits on xenstore.

use super::home;
use super::record::gpath;
use crate::dom0::{self, Dom0, Need};
use crate::failure::Failure;
use crate::owned::{DomainRole, Owned, OwnedDomain};
use crate::render::{self, Instance};
use crate::spec::GroupSpec;
use crate::store::{read_blob, write_blob, Store};
use crate::xl::{self, xl_ok, XlRunner};
use anyhow::{anyhow, bail, Context, Result};
use nv_schema::handoff::XS_CONFIG;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What a lifecycle command works with.
pub struct Ctx<'a> {
    /// How `xl` is run.
    pub xl: &'a dyn XlRunner,
    /// The xenstore.
    pub store: &'a dyn Store,
    /// Where the files, bridge and PCI devices a config names are looked up.
    pub dom0: &'a dyn Dom0,
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

impl Ctx<'_> {
    pub(super) fn say(&self, s: &str) {
        (self.progress)(s)
    }

    pub(super) fn cfg_path(&self, group: &str, domain: &str) -> PathBuf {
        self.dir.join(group).join(format!("{domain}.cfg"))
    }

    pub(super) fn write_cfg(&self, group: &str, domain: &str, text: &str) -> Result<PathBuf> {
        let p = self.cfg_path(group, domain);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
        Ok(p)
    }

    /// The domains nvctl created for `group`.
    pub(super) fn owned(&self, group: &str) -> Result<Owned> {
        Owned::load(&self.dir, group)
    }

    /// Write the config of `domain` and have xl parse it without creating anything
    /// (`xl create -n`, a dry run).
    pub(super) fn dry_run(&self, group: &str, domain: &str, text: &str) -> Result<()> {
        let p = self.write_cfg(group, domain, text)?;
        xl_ok(self.xl, &["create", "-n", &p.to_string_lossy()])
            .with_context(|| format!("xl rejects the config of {domain}"))
            .map(drop)
    }

    /// Check that Dom0 has every resource in `needs` (the group's recorded spec gives the
    /// lines); all that are missing in one error of kind invalid.
    pub(super) fn check_dom0(&self, group: &str, needs: &[Need]) -> Result<()> {
        let text = read_blob(self.store, &format!("{}/spec", gpath(group)))?.unwrap_or_default();
        dom0::check(self.dom0, needs, &text).map_err(|e| Failure::Invalid.error(e.to_string()))
    }

    /// `xl create` a domain from `text` and record its identity (UUID, domid) in `owned`.
    pub(super) fn create(
        &self,
        owned: &mut Owned,
        role: DomainRole,
        group: &str,
        domain: &str,
        text: &str,
    ) -> Result<u32> {
        let p = self.write_cfg(group, domain, text)?;
        xl_ok(self.xl, &["create", &p.to_string_lossy()])?;
        self.adopt(owned, role, domain, "xl create")
    }

    /// `xl save -c`: write a checkpoint of the running `domain` to `file`; the domain keeps
    /// running.
    pub(super) fn checkpoint(&self, domain: &str, file: &Path) -> Result<()> {
        xl_ok(self.xl, &["save", "-c", domain, &file.to_string_lossy()]).map(drop)
    }

    /// `xl restore` the checkpoint `file` as a new domain with the config `text` (its name,
    /// UUID and vif are the config's) and record its identity (UUID, domid) in `owned`.
    pub(super) fn restore(
        &self,
        owned: &mut Owned,
        role: DomainRole,
        group: &str,
        domain: &str,
        text: &str,
        file: &Path,
    ) -> Result<u32> {
        let p = self.write_cfg(group, domain, text)?;
        xl_ok(
            self.xl,
            &["restore", &p.to_string_lossy(), &file.to_string_lossy()],
        )?;
        self.adopt(owned, role, domain, "xl restore")
    }

    /// Record the identity of `domain`, which `how` just made, in `owned`.
    fn adopt(&self, owned: &mut Owned, role: DomainRole, domain: &str, how: &str) -> Result<u32> {
        let d = xl::list(self.xl)?
            .remove(domain)
            .ok_or_else(|| anyhow!("{domain} vanished right after `{how}`"))?;
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
    pub(super) fn destroy_if_running(&self, owned: &mut Owned, domain: &str) -> Result<()> {
        if let Some(d) = owned.find(domain, &xl::list(self.xl)?)? {
            self.destroy(owned, domain, &d.uuid)?;
        }
        Ok(())
    }

    /// `xl destroy` a domain nvctl created (checked by the caller), then forget it.
    pub(super) fn destroy(&self, owned: &mut Owned, domain: &str, uuid: &str) -> Result<()> {
        self.say(&format!("destroying {domain}"));
        xl_ok(self.xl, &["destroy", domain])?;
        owned.forget(uuid)
    }

    /// The domid of the group's NV domain, which must run and be one nvctl created.
    pub(super) fn nv_domid(&self, spec: &GroupSpec) -> Result<u32> {
        let nv = spec.nv_name();
        let owned = self.owned(&spec.group)?;
        owned
            .find(&nv, &xl::list(self.xl)?)?
            .map(|d| d.id)
            .ok_or_else(|| {
                Failure::NotFound.error(format!("NV domain {nv} is not running (run `nvctl up`)"))
            })
    }

    pub(super) fn push_config(
        &self,
        spec: &GroupSpec,
        domid: u32,
        instances: &[Instance],
    ) -> Result<()> {
        write_blob(
            self.store,
            &format!("{}/{XS_CONFIG}", home(domid)),
            &render::nv_config(spec, instances)?,
        )
    }

    /// Wait (bounded by `timeout`, progress every `report_every`) until `check` yields a value;
    /// re-checks on changes below `watch` and at least every `poll`.
    pub(super) fn wait_for<T>(
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
