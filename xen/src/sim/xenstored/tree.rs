//! The node tree and the operations on it: paths, permissions, and write / mkdir / rm /
//! set-perms as C xenstored does them, each recording what it looked at and what it changed
//! (for transaction conflicts and for watches).

use std::collections::{BTreeMap, BTreeSet};

use crate::xenstore::{Access, Perm};
use crate::xs_wire;
use crate::{DomId, XsErrno};

/// A request's outcome: its result, or the error for the `XS_ERROR` reply.
pub(super) type XsResult<T> = std::result::Result<T, XsErrno>;

/// Every node by absolute path.
pub(super) type Tree = BTreeMap<String, Node>;

/// One node.
#[derive(Clone, Debug)]
pub(super) struct Node {
    pub(super) value: Vec<u8>,
    pub(super) perms: Vec<Perm>,
    /// Store generation of the last change to this node (value, perms or children).
    pub(super) gen: u64,
}

/// A change that may fire watches.
#[derive(Clone, Debug)]
pub(super) struct Change {
    pub(super) path: String,
    /// The node's permissions (before removal, for a removal): who may see the event.
    pub(super) perms: Vec<Perm>,
    pub(super) removed: bool,
}

/// The home of a domain, `/local/domain/<domid>`.
pub(super) fn home(domid: DomId) -> String {
    format!("/local/domain/{domid}")
}

/// The parent path; `None` for `/`.
pub(super) fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// True if `path` is `base` or lies below it.
pub(super) fn is_at_or_below(path: &str, base: &str) -> bool {
    base == "/"
        || path == base
        || (path.starts_with(base) && path.as_bytes().get(base.len()) == Some(&b'/'))
}

/// Every path below `path` (not `path` itself).
fn children<'t>(tree: &'t Tree, path: &str) -> impl Iterator<Item = &'t str> + 't {
    let prefix = if path == "/" {
        "/".to_string()
    } else {
        format!("{path}/")
    };
    tree.range(prefix.clone()..)
        .take_while(move |(k, _)| k.starts_with(&prefix))
        .map(|(k, _)| k.as_str())
        .filter(|k| *k != "/")
}

/// The names of the children of `path`.
pub(super) fn direct_children<'t>(tree: &'t Tree, path: &str) -> Vec<&'t str> {
    let skip = if path == "/" { 1 } else { path.len() + 1 };
    children(tree, path)
        .map(|k| &k[skip..])
        .filter(|rest| !rest.contains('/'))
        .collect()
}

/// The access `domid` has to a node with `perms`.
pub(super) fn access(perms: &[Perm], domid: DomId) -> Access {
    if domid == 0 {
        return Access::Both;
    }
    match perms.split_first() {
        None => Access::None,
        Some((owner, _)) if owner.domid == domid => Access::Both,
        Some((owner, rest)) => rest
            .iter()
            .find(|p| p.domid == domid)
            .map_or(owner.access, |p| p.access),
    }
}

/// Resolves and checks a path as xenstored does: relative paths live under the domain's home.
pub(super) fn canonical(domid: DomId, path: &str) -> XsResult<String> {
    let abs = if path.starts_with('/') {
        if path.len() > xs_wire::ABS_PATH_MAX {
            return Err(XsErrno::Einval);
        }
        path.to_string()
    } else {
        if path.is_empty() || path.len() > xs_wire::REL_PATH_MAX {
            return Err(XsErrno::Einval);
        }
        format!("{}/{path}", home(domid))
    };
    let ok_chars = abs
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/_-@".contains(&b));
    if !ok_chars || abs.contains("//") || (abs.len() > 1 && abs.ends_with('/')) {
        return Err(XsErrno::Einval);
    }
    Ok(abs)
}

/// One operation's view: the tree it works on (the store's, or a transaction's copy) and the
/// record of what it looked at and changed.
pub(super) struct Op<'a> {
    pub(super) tree: &'a mut Tree,
    pub(super) domid: DomId,
    pub(super) gen: u64,
    pub(super) touched: &'a mut BTreeSet<String>,
    pub(super) written: &'a mut BTreeSet<String>,
    pub(super) changes: &'a mut Vec<Change>,
}

impl Op<'_> {
    /// The node at `path` (recorded as looked at).
    pub(super) fn node(&mut self, path: &str) -> XsResult<&Node> {
        self.touched.insert(path.to_string());
        self.tree.get(path).ok_or(XsErrno::Enoent)
    }

    /// The node at `path` if the domain may read it.
    pub(super) fn readable(&mut self, path: &str) -> XsResult<&Node> {
        let domid = self.domid;
        let node = self.node(path)?;
        if access(&node.perms, domid).can_read() {
            Ok(node)
        } else {
            Err(XsErrno::Eacces)
        }
    }

    fn mark(&mut self, path: &str) {
        if let Some(n) = self.tree.get_mut(path) {
            n.gen = self.gen;
        }
        self.touched.insert(path.to_string());
        self.written.insert(path.to_string());
    }

    /// Writes `value` (`None`: mkdir, which keeps an existing value), creating missing parents
    /// with the nearest existing ancestor's permissions.
    pub(super) fn write(&mut self, path: &str, value: Option<&[u8]>) -> XsResult<()> {
        let domid = self.domid;
        if let Ok(node) = self.node(path) {
            if !access(&node.perms, domid).can_write() {
                return Err(XsErrno::Eacces);
            }
            let Some(value) = value else { return Ok(()) }; // mkdir of an existing node
            let node = self.tree.get_mut(path).ok_or(XsErrno::Enoent)?;
            node.value = value.to_vec();
            let perms = node.perms.clone();
            self.mark(path);
            self.changes.push(Change {
                path: path.to_string(),
                perms,
                removed: false,
            });
            return Ok(());
        }
        let mut missing = vec![path.to_string()];
        let mut anc = parent(path).ok_or(XsErrno::Einval)?.to_string();
        while self.node(&anc).is_err() {
            let up = parent(&anc).ok_or(XsErrno::Einval)?.to_string();
            missing.push(std::mem::replace(&mut anc, up));
        }
        let anc_node = self.tree.get(&anc).ok_or(XsErrno::Enoent)?;
        if !access(&anc_node.perms, domid).can_write() {
            return Err(XsErrno::Eacces);
        }
        let mut perms = anc_node.perms.clone();
        if domid != 0 {
            if let Some(owner) = perms.first_mut() {
                owner.domid = domid;
            }
        }
        self.mark(&anc);
        for p in missing.iter().rev() {
            let v = if p == path {
                value.unwrap_or_default().to_vec()
            } else {
                Vec::new()
            };
            self.tree.insert(
                p.clone(),
                Node {
                    value: v,
                    perms: perms.clone(),
                    gen: self.gen,
                },
            );
            self.mark(p);
        }
        self.changes.push(Change {
            path: path.to_string(),
            perms,
            removed: false,
        });
        Ok(())
    }

    /// Removes `path` and everything below it.
    pub(super) fn rm(&mut self, path: &str) -> XsResult<()> {
        if path == "/" {
            return Err(XsErrno::Einval);
        }
        let domid = self.domid;
        let perms = match self.node(path) {
            Ok(node) => node.perms.clone(),
            Err(_) => {
                // Like xenstored: removing a missing node is fine if its parent exists.
                let par = parent(path).ok_or(XsErrno::Einval)?;
                return self.node(par).map(|_| ());
            }
        };
        if !access(&perms, domid).can_write() {
            return Err(XsErrno::Eacces);
        }
        let doomed: Vec<String> = children(self.tree, path).map(str::to_string).collect();
        for p in doomed.iter().map(String::as_str).chain([path]) {
            self.tree.remove(p);
            self.touched.insert(p.to_string());
            self.written.insert(p.to_string());
        }
        if let Some(par) = parent(path) {
            self.mark(par);
        }
        self.changes.push(Change {
            path: path.to_string(),
            perms,
            removed: true,
        });
        Ok(())
    }

    /// Replaces the permissions of `path` (its owner or dom0 only).
    pub(super) fn set_perms(&mut self, path: &str, perms: Vec<Perm>) -> XsResult<()> {
        let domid = self.domid;
        let node = self.node(path)?;
        if domid != 0 && node.perms.first().map(|p| p.domid) != Some(domid) {
            return Err(XsErrno::Eacces);
        }
        let node = self.tree.get_mut(path).ok_or(XsErrno::Enoent)?;
        node.perms = perms.clone();
        self.mark(path);
        self.changes.push(Change {
            path: path.to_string(),
            perms,
            removed: false,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_rules() {
        assert_eq!(
            canonical(3, "device/vif").unwrap(),
            "/local/domain/3/device/vif"
        );
        assert_eq!(canonical(0, "/").unwrap(), "/");
        for bad in ["/a/", "/a//b", "/a b", "", "/a\u{e9}"] {
            assert!(canonical(0, bad).is_err(), "{bad:?}");
        }
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/a/b"), Some("/a"));
        assert!(
            is_at_or_below("/a/b", "/a")
                && !is_at_or_below("/ab", "/a")
                && is_at_or_below("/x", "/")
        );
    }

    #[test]
    fn access_rules() {
        let perms = vec![Perm::new(2, Access::None), Perm::new(3, Access::Read)];
        assert_eq!(access(&perms, 0), Access::Both);
        assert_eq!(access(&perms, 2), Access::Both);
        assert_eq!(access(&perms, 3), Access::Read);
        assert_eq!(access(&perms, 4), Access::None);
    }
}
