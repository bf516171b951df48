//! State transfer by VM clone: a new instance of a replica made as a memory copy of a live member
//! of another replica, with Xen's own tools. `xl save -c` writes a checkpoint of the source (which
//! keeps running), `xl restore` starts the copy from it under the new instance's name, with a
//! UUID of its own, on the new instance's link. Every replica link is addressed the same
//! (`replica-link`), so the copy's addresses and neighbour cache are right on its link; its
//! open TCP connections are unknown to domain-nv there and get reset, and it joins on probation.
//!
//! The checkpoint file is `<state-dir>/<group>/checkpoints/<new domain>.save` and is removed once
//! the restore is done or failed ([`Checkpoint`]).

use super::nv_status::{health_word, is_live};
use super::record::Record;
use crate::failure::Failure;
use crate::render::Instance;
use crate::spec::StateTransfer;
use anyhow::Result;
use nv_schema::status::Status;
use std::path::{Path, PathBuf};

/// Where the state of the new instance `replace` makes comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateFrom {
    /// As the spec's `state` says: with `clone` a copy of the first live member of another
    /// replica, else fresh. A new `--image` is always fresh (a copy runs its source's disk).
    Spec,
    /// Booted from its image, with no state of its own.
    Fresh,
    /// A copy of the member instance of this replica, which must be live.
    CloneOf(String),
}

/// Which source a clone is wanted from, before the status is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Wanted {
    /// The member of this replica.
    Named(String),
    /// The first live member of another replica (spec order).
    AnyLive,
}

/// Whether the new instance of `replica` is a clone, and of what; an error for a request that
/// cannot be met (a clone with a new image, a replica cloned from itself).
pub(super) fn wanted(
    spec_state: StateTransfer,
    replica: &str,
    state: &StateFrom,
    image: Option<&str>,
) -> Result<Option<Wanted>> {
    match state {
        StateFrom::Fresh => Ok(None),
        StateFrom::Spec if spec_state == StateTransfer::Fresh || image.is_some() => Ok(None),
        StateFrom::Spec => Ok(Some(Wanted::AnyLive)),
        StateFrom::CloneOf(_) if image.is_some() => Err(Failure::Invalid.error(
            "--image and --clone-from exclude each other: a clone runs the disk image of its source",
        )),
        StateFrom::CloneOf(from) if from == replica => Err(Failure::Invalid.error(format!(
            "--clone-from {from}: a replica cannot be cloned from itself"
        ))),
        StateFrom::CloneOf(from) => Ok(Some(Wanted::Named(from.clone()))),
    }
}

/// The member instance to copy: the named replica's, which must be live (it agrees with the
/// quorum), or the first live member of a replica other than `replica`.
pub(super) fn source(
    rec: &Record,
    st: &Option<Status>,
    replica: &str,
    wanted: &Wanted,
) -> Result<Instance> {
    match wanted {
        Wanted::Named(from) => {
            let src = rec.member_of(from)?;
            if !is_live(st, &src.name()) {
                return Err(Failure::Invalid.error(format!(
                    "--clone-from {from}: domain-nv reports {} {}; clone only from a live replica \
                     (one that agrees with the quorum)",
                    src.name(),
                    health_word(st, &src.name())
                )));
            }
            Ok(src)
        }
        Wanted::AnyLive => rec
            .members()
            .into_iter()
            .find(|i| i.replica != replica && is_live(st, &i.name()))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "the spec says `state: clone`, but no other replica is live to clone {replica} \
                     from (use --fresh to boot it empty)"
                )
            }),
    }
}

/// The checkpoint file of a clone in the making; removed when dropped.
pub(super) struct Checkpoint {
    path: PathBuf,
}

impl Checkpoint {
    /// The checkpoint file of `domain`, a new domain of `group`, below the state directory
    /// `dir` (its directory is created).
    pub(super) fn new(dir: &Path, group: &str, domain: &str) -> Result<Checkpoint> {
        let path = Checkpoint::file(dir, group, domain);
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)
                .map_err(|e| anyhow::anyhow!("creating {}: {e}", d.display()))?;
        }
        Ok(Checkpoint { path })
    }

    /// The path of the checkpoint file of `domain` below the state directory `dir`.
    pub(super) fn file(dir: &Path, group: &str, domain: &str) -> PathBuf {
        dir.join(group)
            .join("checkpoints")
            .join(format!("{domain}.save"))
    }

    /// Where the checkpoint is written.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Checkpoint {
    fn drop(&mut self) {
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("removing {}: {e}", self.path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::SPEC;
    use super::super::Role;
    use super::*;
    use crate::render::initial_instances;
    use crate::spec::GroupSpec;
    use nv_schema::status::{LinkState, ReplicaHealth, ReplicaStatus, SCHEMA_VERSION};

    fn record() -> Record {
        let spec = GroupSpec::parse(SPEC).unwrap();
        Record {
            instances: initial_instances(&spec)
                .into_iter()
                .map(|i| (i, Role::Member))
                .collect(),
            spec,
        }
    }

    fn status(states: &[(&str, ReplicaHealth)]) -> Option<Status> {
        let replicas = states
            .iter()
            .map(|&(name, state)| ReplicaStatus {
                name: name.into(),
                state,
                link: LinkState::Up,
                connections: 0,
                bytes_voted: 0,
                faults: Vec::new(),
                overloaded: 0,
            })
            .collect();
        Some(Status {
            version: SCHEMA_VERSION,
            ready: true,
            draining: false,
            updated_ms: 0,
            services: Vec::new(),
            replicas,
            vifs: Vec::new(),
            links: Vec::new(),
        })
    }

    #[test]
    fn a_clone_is_wanted_when_asked_or_when_the_spec_says_so() {
        use StateTransfer::{Clone, Fresh};
        let r2 = StateFrom::CloneOf("r2".into());
        assert_eq!(wanted(Fresh, "r1", &StateFrom::Spec, None).unwrap(), None);
        assert_eq!(
            wanted(Clone, "r1", &StateFrom::Spec, None).unwrap(),
            Some(Wanted::AnyLive)
        );
        assert_eq!(
            wanted(Clone, "r1", &StateFrom::Spec, Some("/i")).unwrap(),
            None
        );
        assert_eq!(wanted(Clone, "r1", &StateFrom::Fresh, None).unwrap(), None);
        assert_eq!(
            wanted(Fresh, "r1", &r2, None).unwrap(),
            Some(Wanted::Named("r2".into()))
        );
        for (replica, image, says) in [("r1", Some("/i"), "exclude"), ("r2", None, "itself")] {
            let e = wanted(Fresh, replica, &r2, image).unwrap_err();
            assert_eq!(Failure::of(&e), Some(Failure::Invalid));
            assert!(e.to_string().contains(says), "{e}");
        }
    }

    #[test]
    fn only_a_live_member_of_another_replica_is_copied() {
        use ReplicaHealth::{Faulty, Joining, Live};
        let rec = record();
        let st = status(&[("r0", Faulty), ("r1", Live), ("r2", Live)]);
        let any = source(&rec, &st, "r0", &Wanted::AnyLive).unwrap();
        assert_eq!(any.name(), "r1");
        let any = source(&rec, &st, "r1", &Wanted::AnyLive).unwrap();
        assert_eq!(any.name(), "r2", "not itself, not the faulty r0");
        let named = source(&rec, &st, "r1", &Wanted::Named("r2".into())).unwrap();
        assert_eq!(named.name(), "r2");
        let e = source(&rec, &st, "r1", &Wanted::Named("r0".into())).unwrap_err();
        assert!(e.to_string().contains("reports r0 faulty"), "{e}");
        let e = source(&rec, &st, "r1", &Wanted::Named("r9".into())).unwrap_err();
        assert_eq!(Failure::of(&e), Some(Failure::NotFound));
        let st = status(&[("r0", Joining), ("r1", Live), ("r2", Faulty)]);
        let e = source(&rec, &st, "r1", &Wanted::AnyLive).unwrap_err();
        assert!(e.to_string().contains("no other replica is live"), "{e}");
    }

    #[test]
    fn the_checkpoint_file_is_removed_when_dropped() {
        let dir = std::env::temp_dir().join(format!("nvctl-cp-{}", std::process::id()));
        let cp = Checkpoint::new(&dir, "web", "web-r1-g1").unwrap();
        assert_eq!(cp.path(), dir.join("web/checkpoints/web-r1-g1.save"));
        std::fs::write(cp.path(), b"image").unwrap();
        let p = cp.path().to_path_buf();
        drop(cp);
        assert!(!p.exists());
        drop(Checkpoint::new(&dir, "web", "web-r2-g1").unwrap()); // never written: no error
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
