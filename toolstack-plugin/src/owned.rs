//! The domains nvctl created for a group, by identity: every `xl create` of nvctl is followed
//! by a line in `<state-dir>/<group>/domains` with the new domain's UUID, domid, role and name.
//! nvctl acts (keeps, destroys, hands a config to) only on running domains whose UUID is
//! listed there, never on a domain merely named like one of the group's; `down` destroys
//! exactly the listed domains that still run.
//!
//! The file has one line per domain, `<uuid> <domid> <nv|replica> <name>`, and is replaced
//! atomically (written next to it, then renamed) on every change.

use crate::xl::Domain;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a created domain is to its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainRole {
    /// The NV (network/voting) domain.
    Nv,
    /// A replica instance.
    Replica,
}

impl DomainRole {
    fn as_str(self) -> &'static str {
        match self {
            DomainRole::Nv => "nv",
            DomainRole::Replica => "replica",
        }
    }
}

/// One domain nvctl created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedDomain {
    /// Its UUID as `xl list -v` prints it: its identity.
    pub uuid: String,
    /// Its domid when it was created.
    pub domid: u32,
    /// NV domain or replica.
    pub role: DomainRole,
    /// Its name when it was created.
    pub name: String,
}

/// The domains nvctl created for one group, as recorded in its state directory.
#[derive(Debug, Clone)]
pub struct Owned {
    path: PathBuf,
    /// The recorded domains, in creation order.
    pub domains: Vec<OwnedDomain>,
}

impl Owned {
    /// The record of `group` below the state directory `dir` (empty if there is none).
    pub fn load(dir: &Path, group: &str) -> Result<Owned> {
        let path = dir.join(group).join("domains");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut domains = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let f: Vec<&str> = line.split(' ').collect();
            let role = match f.get(2) {
                Some(&"nv") => DomainRole::Nv,
                Some(&"replica") => DomainRole::Replica,
                _ => bail!("{}: line {}: bad entry {line:?}", path.display(), i + 1),
            };
            let (Some(uuid), Some(Ok(domid)), Some(name), 4) =
                (f.first(), f.get(1).map(|d| d.parse()), f.get(3), f.len())
            else {
                bail!("{}: line {}: bad entry {line:?}", path.display(), i + 1);
            };
            domains.push(OwnedDomain {
                uuid: uuid.to_string(),
                domid,
                role,
                name: name.to_string(),
            });
        }
        Ok(Owned { path, domains })
    }

    /// Record a domain nvctl just created.
    pub fn add(&mut self, d: OwnedDomain) -> Result<()> {
        self.domains.push(d);
        self.save()
    }

    /// Forget a domain (destroyed, or no longer running).
    pub fn forget(&mut self, uuid: &str) -> Result<()> {
        self.domains.retain(|d| d.uuid != uuid);
        self.save()
    }

    /// Forget every recorded domain that `running` (`xl list -v`) no longer shows.
    pub fn forget_gone(&mut self, running: &BTreeMap<String, Domain>) -> Result<()> {
        let before = self.domains.len();
        self.domains
            .retain(|d| running.values().any(|r| r.uuid == d.uuid));
        if self.domains.len() == before {
            return Ok(());
        }
        self.save()
    }

    /// True if the domain with this UUID is one nvctl created for the group.
    pub fn owns(&self, uuid: &str) -> bool {
        !uuid.is_empty() && self.domains.iter().any(|d| d.uuid == uuid)
    }

    /// The running domain called `name`, if nvctl created it for this group; an error if a
    /// domain of that name runs that nvctl did not create (it is left alone).
    pub fn find(&self, name: &str, running: &BTreeMap<String, Domain>) -> Result<Option<Domain>> {
        match running.get(name) {
            None => Ok(None),
            Some(d) if self.owns(&d.uuid) => Ok(Some(d.clone())),
            Some(d) => bail!(
                "domain {name} (id {}, uuid {}) was not created by nvctl for this group: not touching it (destroy or rename it, or choose other names)",
                d.id,
                if d.uuid.is_empty() { "unknown" } else { &d.uuid }
            ),
        }
    }

    /// The running domain called `name` if nvctl created it for this group, else None (also
    /// when another domain has the name).
    pub fn running(&self, name: &str, running: &BTreeMap<String, Domain>) -> Option<Domain> {
        running.get(name).filter(|d| self.owns(&d.uuid)).cloned()
    }

    /// Every recorded domain that runs, as (current name, record), in creation order.
    pub fn alive<'a>(
        &'a self,
        running: &'a BTreeMap<String, Domain>,
    ) -> Vec<(&'a str, &'a OwnedDomain)> {
        self.domains
            .iter()
            .filter_map(|o| {
                running
                    .iter()
                    .find(|(_, d)| d.uuid == o.uuid)
                    .map(|(n, _)| (n.as_str(), o))
            })
            .collect()
    }

    fn save(&self) -> Result<()> {
        if let Some(d) = self.path.parent() {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        let text: String = self
            .domains
            .iter()
            .map(|d| format!("{} {} {} {}\n", d.uuid, d.domid, d.role.as_str(), d.name))
            .collect();
        let tmp = self.path.with_extension("new");
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("replacing {}", self.path.display()))
    }
}
