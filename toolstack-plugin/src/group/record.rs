//! The group record in xenstore (below [`GROUPS`]): the spec, the NV domain's name and every
//! instance with its role; loading it, saving and removing instances.

use super::{Role, GROUPS};
use crate::failure::Failure;
use crate::owned::{DomainRole, Owned};
use crate::render::Instance;
use crate::spec::{GroupSpec, LinkAddrs};
use crate::store::{read_blob, Store};
use crate::xl;
use anyhow::{anyhow, Context, Result};
use std::collections::BTreeMap;

/// A group as recorded in xenstore.
#[derive(Debug, Clone)]
pub struct Record {
    /// The spec.
    pub spec: GroupSpec,
    /// Instances in config order (spec replica order, then generation).
    pub instances: Vec<(Instance, Role)>,
}

pub(super) fn gpath(group: &str) -> String {
    format!("{GROUPS}/{group}")
}

impl Record {
    pub(super) fn members(&self) -> Vec<Instance> {
        self.instances
            .iter()
            .filter(|(_, r)| *r == Role::Member)
            .map(|(i, _)| i.clone())
            .collect()
    }

    pub(super) fn member_of(&self, replica: &str) -> Result<Instance> {
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
    pub(super) fn orphans(
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

    pub(super) fn sort(&mut self) {
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

pub(super) fn save_instance(
    store: &dyn Store,
    group: &str,
    i: &Instance,
    role: Role,
) -> Result<()> {
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
    store.write(&format!("{p}/role"), role.word())
}

pub(super) fn remove_instance(store: &dyn Store, group: &str, i: &Instance) -> Result<()> {
    store.rm(&format!("{}/instances/{}", gpath(group), i.name()))
}

/// Names of every recorded group.
pub fn groups(store: &dyn Store) -> Result<Vec<String>> {
    store.directory(GROUPS)
}
