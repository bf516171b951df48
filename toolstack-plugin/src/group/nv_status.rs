//! The NV domain's status as nvctl reads it from xenstore, and what commands make of it: the
//! health of an instance and the faults that appeared since a baseline.

use super::home;
use crate::printable::printable;
use crate::store::Store;
use anyhow::{Context, Result};
use nv_schema::status::{FaultRecord, ReplicaHealth, Status, XS_BASE};
use std::cell::RefCell;
use std::collections::BTreeMap;

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

/// Health of instance `name` in a status, if reported.
pub(super) fn health(st: &Option<Status>, name: &str) -> Option<ReplicaHealth> {
    st.as_ref()?
        .replicas
        .iter()
        .find(|r| r.name == name)
        .map(|r| r.state)
}

/// True if instance `name` is reported live.
pub(super) fn is_live(st: &Option<Status>, name: &str) -> bool {
    health(st, name) == Some(ReplicaHealth::Live)
}

/// True if domain-nv reports `name` joining: serving, compared, on probation.
pub(super) fn is_joining(st: &Option<Status>, name: &str) -> bool {
    health(st, name) == Some(ReplicaHealth::Joining)
}

/// domain-nv's word for `name`'s health, or "unknown".
pub(super) fn health_word(st: &Option<Status>, name: &str) -> String {
    health(st, name).map_or_else(|| "unknown".to_string(), |h| super::format::word(&h))
}

/// What domain-nv reports for `name`, in words for a message: its health, and how far its
/// probation got (agreed bytes, open connections) while `joining`, or its faults while `faulty`.
pub(super) fn report(st: &Option<Status>, name: &str) -> String {
    let Some(r) = st.iter().flat_map(|s| &s.replicas).find(|r| r.name == name) else {
        return "not reported".to_string();
    };
    let word = super::format::word(&r.state);
    match r.state {
        ReplicaHealth::Joining => format!(
            "{word} (on probation: {} bytes agreed with the quorum so far, {} open connections)",
            r.bytes_voted, r.connections
        ),
        ReplicaHealth::Faulty if !r.faults.is_empty() => {
            let f: Vec<String> = r.faults.iter().map(fault_text).collect();
            format!("{word} ({})", f.join("; "))
        }
        _ => word,
    }
}

/// Each instance's faults, by instance name.
pub(super) type Faults = BTreeMap<String, Vec<FaultRecord>>;

/// The faults domain-nv reports in `st`, by instance (empty without a status).
pub(super) fn faults_of(st: &Option<Status>) -> Faults {
    st.iter()
        .flat_map(|s| &s.replicas)
        .map(|r| (r.name.clone(), r.faults.clone()))
        .collect()
}

/// Faults in `now` not in `base` (per instance), restricted to instances `only` (all if None).
pub(super) fn new_faults(
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

/// One fault in words: kind, service, connection and detail.
fn fault_text(f: &FaultRecord) -> String {
    let text = format!(
        "{} on {} connection {} {}",
        f.kind, f.service, f.connection, f.detail
    );
    printable(text.trim_end())
}

/// Faults as one line for an error message (instance names escaped for a terminal).
pub(super) fn describe(faults: &[(String, FaultRecord)]) -> String {
    faults
        .iter()
        .map(|(n, f)| format!("{}: {}", printable(n), fault_text(f)))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
