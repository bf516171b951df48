//! `nvctl status`: what it shows of a group, gathered from `xl list`, the group record and the
//! NV domain's status.

use super::nv_status::read_status;
use super::record::load;
use super::{Ctx, Role};
use crate::render::Instance;
use crate::xl;
use anyhow::Result;
use nv_schema::status::{ReplicaStatus, Status};

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
