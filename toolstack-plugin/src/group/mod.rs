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
//!
//! One file per concern: `ctx` (what a command works with: dry runs, creating and destroying
//! owned domains, bounded waits), `record` (the group record in xenstore), `names` (the
//! ownership and name checks before `up`), `nv_status` (reading the NV domain's status and its
//! faults), `up`, `down`, `replace`, `clone` (state transfer by VM clone for `replace`),
//! `patch`, `watch` (auto-repair), `status` (gathering what
//! `nvctl status` shows), `format` (its table and JSON), `plan` (what `up` would change, and
//! the drift it cannot change live, computed without I/O) and `diff` (observing a group for it).

mod clone;
mod ctx;
mod diff;
mod down;
mod format;
mod names;
mod nv_status;
mod patch;
mod plan;
mod record;
mod replace;
mod status;
mod up;
mod watch;

pub use clone::StateFrom;
pub use ctx::Ctx;
pub use diff::diff;
pub use down::{down, down_plan};
pub use format::{format_json, format_table, utc};
pub use nv_status::read_status;
pub use patch::patch;
pub use plan::{plan, Action, Observed, Plan, Step};
pub use record::{groups, load, Record};
pub use replace::{replace, replace_plan, Mode};
pub use status::{status, GroupView, InstanceView};
pub use up::up;
pub use watch::{trouble, watch, Trouble, WatchOptions, Watcher};

use crate::spec::{majority_quorum, GroupSpec, Policy};

/// Root of nvctl's group records in xenstore.
pub const GROUPS: &str = "/tool/nvctl/groups";

/// Role of an instance in its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Part of the group's voting set.
    Member,
    /// Booted by `replace`/`patch`, not yet confirmed live.
    Joining,
}

impl Role {
    /// The word recorded in xenstore and shown by `nvctl status --json`.
    fn word(self) -> &'static str {
        match self {
            Role::Joining => "joining",
            Role::Member => "member",
        }
    }
}

/// The xenstore home of a domain.
pub fn home(domid: u32) -> String {
    format!("/local/domain/{domid}")
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// The example group spec, for the tests of every part of `group`.
    pub(super) const SPEC: &str = include_str!("../../../xl-configs/example-group.yaml");

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
}
