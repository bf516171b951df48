//! An in-memory xenstored speaking [`crate::xs_wire`] on unix sockets, one listening socket per
//! domain so that a connection knows which domain it serves (dom0 is privileged).
//!
//! Semantics follow C xenstored: permissions (owner first, then per-domain entries; new nodes
//! inherit the parent's and are owned by an unprivileged creator), relative paths under
//! `/local/domain/<id>`, watches that fire on registration and for changes at or below their
//! path (a removed ancestor fires watches below it), and transactions on a snapshot whose
//! commit fails with `EAGAIN` if any node the transaction looked at changed meanwhile.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crossbeam::channel::{self, Sender};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::xenstore::{Access, Perm};
use crate::xs_wire::{self, Message, MsgType};
use crate::{DomId, Result, XsErrno};

type Tree = BTreeMap<String, Node>;
type ConnId = u64;
/// A request's outcome: its result, or the error for the `XS_ERROR` reply.
type XsResult<T> = std::result::Result<T, XsErrno>;

#[derive(Clone, Debug)]
struct Node {
    value: Vec<u8>,
    perms: Vec<Perm>,
    /// Store generation of the last change to this node (value, perms or children).
    gen: u64,
}

/// A change that may fire watches.
#[derive(Clone, Debug)]
struct Change {
    path: String,
    /// The node's permissions (before removal, for a removal): who may see the event.
    perms: Vec<Perm>,
    removed: bool,
}

struct Tx {
    conn: ConnId,
    domid: DomId,
    base: Tree,
    work: Tree,
    touched: BTreeSet<String>,
    written: BTreeSet<String>,
    changes: Vec<Change>,
}

struct Watch {
    conn: ConnId,
    domid: DomId,
    /// Absolute path, or a special `@...` name.
    path: String,
    token: String,
    /// The path was given relative to the domain's home: events are reported relative too.
    relative: bool,
}

struct Store {
    tree: Tree,
    gen: u64,
    next_tx: u32,
    txs: HashMap<u32, Tx>,
    watches: Vec<Watch>,
    conns: HashMap<ConnId, Sender<Vec<u8>>>,
}

fn home(domid: DomId) -> String {
    format!("/local/domain/{domid}")
}

fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

fn is_at_or_below(path: &str, base: &str) -> bool {
    base == "/"
        || path == base
        || (path.starts_with(base) && path.as_bytes().get(base.len()) == Some(&b'/'))
}

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

fn direct_children<'t>(tree: &'t Tree, path: &str) -> Vec<&'t str> {
    let skip = if path == "/" { 1 } else { path.len() + 1 };
    children(tree, path)
        .map(|k| &k[skip..])
        .filter(|rest| !rest.contains('/'))
        .collect()
}

/// The access `domid` has to a node with `perms`.
fn access(perms: &[Perm], domid: DomId) -> Access {
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
fn canonical(domid: DomId, path: &str) -> XsResult<String> {
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
struct Op<'a> {
    tree: &'a mut Tree,
    domid: DomId,
    gen: u64,
    touched: &'a mut BTreeSet<String>,
    written: &'a mut BTreeSet<String>,
    changes: &'a mut Vec<Change>,
}

impl Op<'_> {
    fn node(&mut self, path: &str) -> XsResult<&Node> {
        self.touched.insert(path.to_string());
        self.tree.get(path).ok_or(XsErrno::Enoent)
    }

    fn readable(&mut self, path: &str) -> XsResult<&Node> {
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

    fn write(&mut self, path: &str, value: Option<&[u8]>) -> XsResult<()> {
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

    fn rm(&mut self, path: &str) -> XsResult<()> {
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

    fn set_perms(&mut self, path: &str, perms: Vec<Perm>) -> XsResult<()> {
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

/// Splits `path\0rest` (the path must be NUL-terminated).
fn split_path(p: &[u8]) -> XsResult<(&str, &[u8])> {
    let nul = p.iter().position(|&b| b == 0).ok_or(XsErrno::Einval)?;
    let path = std::str::from_utf8(&p[..nul]).map_err(|_| XsErrno::Einval)?;
    Ok((path, &p[nul + 1..]))
}

/// A payload that is exactly one NUL-terminated string.
fn one_arg(p: &[u8]) -> XsResult<&str> {
    match split_path(p)? {
        (s, []) => Ok(s),
        _ => Err(XsErrno::Einval),
    }
}

impl Store {
    fn new() -> Store {
        let mut tree = Tree::new();
        let root = vec![Perm::new(0, Access::None)];
        for p in ["/", "/local", "/local/domain", "/tool"] {
            tree.insert(
                p.into(),
                Node {
                    value: Vec::new(),
                    perms: root.clone(),
                    gen: 0,
                },
            );
        }
        Store {
            tree,
            gen: 0,
            next_tx: 1,
            txs: HashMap::new(),
            watches: Vec::new(),
            conns: HashMap::new(),
        }
    }

    fn send(&self, conn: ConnId, msg: Message) {
        if let (Some(tx), Ok(bytes)) = (self.conns.get(&conn), msg.encode()) {
            // A closed connection's writer is gone: nothing to deliver to.
            let _ = tx.send(bytes);
        }
    }

    fn send_event(&self, w: &Watch, path: &str) {
        let prefix = format!("{}/", home(w.domid));
        let shown = if w.relative {
            path.strip_prefix(&prefix).unwrap_or(path)
        } else {
            path
        };
        let payload = xs_wire::join_strings(&[shown, w.token.as_str()]);
        self.send(w.conn, Message::new(MsgType::WatchEvent, 0, 0, payload));
    }

    fn fire(&self, changes: &[Change]) {
        for c in changes {
            for w in &self.watches {
                let path = if is_at_or_below(&c.path, &w.path) {
                    c.path.as_str()
                } else if c.removed && is_at_or_below(&w.path, &c.path) {
                    w.path.as_str()
                } else {
                    continue;
                };
                if access(&c.perms, w.domid).can_read() {
                    self.send_event(w, path);
                }
            }
        }
    }

    /// Fires watches on a special path such as `@introduceDomain`.
    fn fire_special(&self, name: &str) {
        for w in self.watches.iter().filter(|w| w.path == name) {
            self.send_event(w, name);
        }
    }

    /// Runs a tree operation in the store or in transaction `tx_id`.
    fn with_op<T>(
        &mut self,
        domid: DomId,
        conn: ConnId,
        tx_id: u32,
        f: impl FnOnce(&mut Op<'_>) -> XsResult<T>,
    ) -> XsResult<T> {
        if tx_id == 0 {
            self.gen += 1;
            let (mut touched, mut written, mut changes) = Default::default();
            let mut op = Op {
                tree: &mut self.tree,
                domid,
                gen: self.gen,
                touched: &mut touched,
                written: &mut written,
                changes: &mut changes,
            };
            let r = f(&mut op)?;
            self.fire(&changes);
            return Ok(r);
        }
        let tx = self
            .txs
            .get_mut(&tx_id)
            .filter(|t| t.conn == conn)
            .ok_or(XsErrno::Enoent)?;
        let mut op = Op {
            tree: &mut tx.work,
            domid,
            gen: 0,
            touched: &mut tx.touched,
            written: &mut tx.written,
            changes: &mut tx.changes,
        };
        f(&mut op)
    }

    fn end_transaction(&mut self, conn: ConnId, tx_id: u32, commit: bool) -> XsResult<()> {
        if self.txs.get(&tx_id).is_none_or(|t| t.conn != conn) {
            return Err(XsErrno::Enoent);
        }
        let tx = self.txs.remove(&tx_id).ok_or(XsErrno::Enoent)?;
        if !commit {
            return Ok(());
        }
        let gen_of = |t: &Tree, p: &String| t.get(p).map(|n| n.gen);
        if tx
            .touched
            .iter()
            .any(|p| gen_of(&tx.base, p) != gen_of(&self.tree, p))
        {
            return Err(XsErrno::Eagain);
        }
        self.gen += 1;
        for p in &tx.written {
            match tx.work.get(p) {
                Some(n) => {
                    self.tree.insert(
                        p.clone(),
                        Node {
                            gen: self.gen,
                            ..n.clone()
                        },
                    );
                }
                None => {
                    self.tree.remove(p);
                }
            }
        }
        self.fire(&tx.changes);
        Ok(())
    }

    /// Handles one request; returns the reply payload and whether to send a watch event
    /// (path, token) right after the reply (fire-on-registration).
    fn handle(
        &mut self,
        conn: ConnId,
        domid: DomId,
        msg: &Message,
    ) -> XsResult<(Vec<u8>, Option<usize>)> {
        let ok = || b"OK\0".to_vec();
        let p = &msg.payload[..];
        let tx = msg.tx_id;
        let r = match msg.ty {
            MsgType::Read => {
                let path = canonical(domid, one_arg(p)?)?;
                self.with_op(domid, conn, tx, |op| Ok(op.readable(&path)?.value.clone()))?
            }
            MsgType::Directory => {
                let path = canonical(domid, one_arg(p)?)?;
                self.with_op(domid, conn, tx, |op| {
                    op.readable(&path)?;
                    Ok(xs_wire::join_strings(&direct_children(op.tree, &path)))
                })?
            }
            MsgType::GetPerms => {
                let path = canonical(domid, one_arg(p)?)?;
                self.with_op(domid, conn, tx, |op| {
                    let perms = op
                        .readable(&path)?
                        .perms
                        .iter()
                        .map(Perm::to_string)
                        .collect::<Vec<_>>();
                    Ok(xs_wire::join_strings(&perms))
                })?
            }
            MsgType::Write => {
                let (path, value) = split_path(p)?;
                let path = canonical(domid, path)?;
                self.with_op(domid, conn, tx, |op| op.write(&path, Some(value)))?;
                ok()
            }
            MsgType::Mkdir => {
                let path = canonical(domid, one_arg(p)?)?;
                self.with_op(domid, conn, tx, |op| op.write(&path, None))?;
                ok()
            }
            MsgType::Rm => {
                let path = canonical(domid, one_arg(p)?)?;
                self.with_op(domid, conn, tx, |op| op.rm(&path))?;
                ok()
            }
            MsgType::SetPerms => {
                let parts = xs_wire::string_list(p).map_err(|_| XsErrno::Einval)?;
                let (path, perms) = parts.split_first().ok_or(XsErrno::Einval)?;
                let path = canonical(domid, path)?;
                let perms = perms
                    .iter()
                    .map(|s| s.parse::<Perm>())
                    .collect::<Result<Vec<_>>>()
                    .map_err(|_| XsErrno::Einval)?;
                if perms.is_empty() {
                    return Err(XsErrno::Einval);
                }
                self.with_op(domid, conn, tx, |op| op.set_perms(&path, perms))?;
                ok()
            }
            MsgType::GetDomainPath => {
                let id = one_arg(p)?.parse::<DomId>().map_err(|_| XsErrno::Einval)?;
                xs_wire::join_strings(&[home(id)])
            }
            MsgType::Watch => {
                let (path, token) = xs_wire::watch_event_payload(p).map_err(|_| XsErrno::Einval)?;
                let relative = !path.starts_with('/') && !path.starts_with('@');
                let abs = if path.starts_with('@') {
                    path.clone()
                } else {
                    canonical(domid, &path)?
                };
                if self
                    .watches
                    .iter()
                    .any(|w| w.conn == conn && w.path == abs && w.token == token)
                {
                    return Err(XsErrno::Eexist);
                }
                self.watches.push(Watch {
                    conn,
                    domid,
                    path: abs,
                    token,
                    relative,
                });
                return Ok((ok(), Some(self.watches.len() - 1)));
            }
            MsgType::Unwatch => {
                let (path, token) = xs_wire::watch_event_payload(p).map_err(|_| XsErrno::Einval)?;
                let abs = if path.starts_with('@') {
                    path
                } else {
                    canonical(domid, &path)?
                };
                let i = self
                    .watches
                    .iter()
                    .position(|w| w.conn == conn && w.path == abs && w.token == token)
                    .ok_or(XsErrno::Enoent)?;
                self.watches.remove(i);
                ok()
            }
            MsgType::TransactionStart => {
                if tx != 0 {
                    return Err(XsErrno::Ebusy);
                }
                let id = self.next_tx;
                self.next_tx = self.next_tx.checked_add(1).unwrap_or(1);
                let snapshot = self.tree.clone();
                self.txs.insert(
                    id,
                    Tx {
                        conn,
                        domid,
                        base: snapshot.clone(),
                        work: snapshot,
                        touched: BTreeSet::new(),
                        written: BTreeSet::new(),
                        changes: Vec::new(),
                    },
                );
                xs_wire::join_strings(&[id.to_string()])
            }
            MsgType::TransactionEnd => {
                let commit = match one_arg(p)? {
                    "T" => true,
                    "F" => false,
                    _ => return Err(XsErrno::Einval),
                };
                self.end_transaction(conn, tx, commit)?;
                ok()
            }
            _ => return Err(XsErrno::Enosys),
        };
        Ok((r, None))
    }

    fn request(&mut self, conn: ConnId, domid: DomId, msg: &Message) {
        match self.handle(conn, domid, msg) {
            Ok((payload, fire)) => {
                self.send(conn, Message::new(msg.ty, msg.req_id, msg.tx_id, payload));
                if let Some(w) = fire.and_then(|i| self.watches.get(i)) {
                    let shown = xs_wire::watch_event_payload(&msg.payload)
                        .map(|(p, _)| p)
                        .unwrap_or_default();
                    let payload = xs_wire::join_strings(&[shown.as_str(), w.token.as_str()]);
                    self.send(conn, Message::new(MsgType::WatchEvent, 0, 0, payload));
                }
            }
            Err(e) => {
                let payload = xs_wire::join_strings(&[e.as_str()]);
                self.send(
                    conn,
                    Message::new(MsgType::Error, msg.req_id, msg.tx_id, payload),
                );
            }
        }
    }

    fn drop_conn(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
        self.watches.retain(|w| w.conn != conn);
        self.txs.retain(|_, t| t.conn != conn);
    }
}

struct Shared {
    store: Mutex<Store>,
    /// Open connections and their domains, shut down when the daemon (or domain) stops.
    streams: Mutex<HashMap<ConnId, (DomId, UnixStream)>>,
    next_conn: AtomicU64,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The simulated xenstored: one listening socket per domain in `dir`.
pub(crate) struct Xenstored {
    shared: Arc<Shared>,
    dir: PathBuf,
    /// Per domain: the listener thread and the eventfd that stops it.
    listeners: HashMap<DomId, (JoinHandle<()>, Arc<EventFd>)>,
}

impl Xenstored {
    /// A daemon whose sockets live in `dir` (created now, removed on drop).
    pub(crate) fn new(dir: PathBuf) -> Result<Xenstored> {
        std::fs::create_dir_all(&dir)?;
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new()),
            streams: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
        });
        Ok(Xenstored {
            shared,
            dir,
            listeners: HashMap::new(),
        })
    }

    pub(crate) fn socket_path(&self, domid: DomId) -> PathBuf {
        self.dir.join(format!("xenstored-d{domid}.sock"))
    }

    /// Introduces a domain: its home nodes (as libxl makes them) and its listening socket.
    pub(crate) fn add_domain(&mut self, domid: DomId) -> Result<()> {
        {
            let mut st = self.shared.store();
            st.gen += 1;
            let gen = st.gen;
            let ro = if domid == 0 {
                vec![Perm::new(0, Access::None)]
            } else {
                vec![Perm::new(0, Access::None), Perm::new(domid, Access::Read)]
            };
            let rw = vec![Perm::new(domid, Access::None)];
            let h = home(domid);
            let nodes = [
                (h.clone(), ro.clone(), String::new()),
                (format!("{h}/domid"), ro.clone(), domid.to_string()),
                (
                    format!("{h}/name"),
                    ro.clone(),
                    if domid == 0 {
                        "Domain-0".into()
                    } else {
                        format!("sim{domid}")
                    },
                ),
                (format!("{h}/device"), ro.clone(), String::new()),
                (format!("{h}/control"), ro, String::new()),
                (format!("{h}/data"), rw, String::new()),
            ];
            for (path, perms, value) in nodes {
                st.tree.insert(
                    path,
                    Node {
                        value: value.into_bytes(),
                        perms,
                        gen,
                    },
                );
            }
            if let Some(n) = st.tree.get_mut("/local/domain") {
                n.gen = gen;
            }
            st.fire(&[Change {
                path: h,
                perms: vec![Perm::new(0, Access::None)],
                removed: false,
            }]);
            st.fire_special("@introduceDomain");
        }
        let listener = UnixListener::bind(self.socket_path(domid))?;
        let shared = self.shared.clone();
        let stop = Arc::new(EventFd::from_flags(
            EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC,
        )?);
        let stop2 = stop.clone();
        let h = std::thread::Builder::new()
            .name(format!("sim-xenstored-d{domid}"))
            .spawn(move || accept_loop(&listener, &shared, &stop2, domid))?;
        self.listeners.insert(domid, (h, stop));
        Ok(())
    }

    /// Releases a domain: closes its socket and connections, removes its home (firing
    /// watches) and fires `@releaseDomain`.
    pub(crate) fn remove_domain(&mut self, domid: DomId) {
        if let Some((h, stop)) = self.listeners.remove(&domid) {
            let _ = stop.write(1);
            let _ = h.join();
        }
        let _ = std::fs::remove_file(self.socket_path(domid));
        {
            let streams = self
                .shared
                .streams
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for (_, s) in streams.values().filter(|(d, _)| *d == domid) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        let mut st = self.shared.store();
        st.watches.retain(|w| w.domid != domid);
        st.txs.retain(|_, t| t.domid != domid);
        let (mut touched, mut written, mut changes) = Default::default();
        st.gen += 1;
        let gen = st.gen;
        let mut op = Op {
            tree: &mut st.tree,
            domid: 0,
            gen,
            touched: &mut touched,
            written: &mut written,
            changes: &mut changes,
        };
        let _ = op.rm(&home(domid));
        st.fire(&changes);
        st.fire_special("@releaseDomain");
    }
}

impl Drop for Xenstored {
    fn drop(&mut self) {
        for (_, (h, stop)) in self.listeners.drain() {
            let _ = stop.write(1);
            let _ = h.join();
        }
        let streams = self
            .shared
            .streams
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for (_, s) in streams.values() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn accept_loop(listener: &UnixListener, shared: &Arc<Shared>, stop: &EventFd, domid: DomId) {
    loop {
        let mut fds = [
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        if poll(&mut fds, PollTimeout::NONE).is_err() {
            continue;
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            return;
        }
        let Ok((stream, _)) = listener.accept() else {
            continue;
        };
        if let Err(e) = serve(stream, shared, domid) {
            log::warn!("sim xenstored: cannot serve a connection: {e}");
        }
    }
}

/// Starts the reader and writer threads of one connection.
fn serve(stream: UnixStream, shared: &Arc<Shared>, domid: DomId) -> std::io::Result<()> {
    let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let mut writer = stream.try_clone()?;
    let (tx, rx) = channel::unbounded::<Vec<u8>>();
    shared
        .streams
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(conn, (domid, stream.try_clone()?));
    shared.store().conns.insert(conn, tx);
    std::thread::Builder::new()
        .name("sim-xenstored-w".into())
        .spawn(move || {
            for bytes in rx {
                if writer.write_all(&bytes).is_err() {
                    break;
                }
            }
        })?;
    let shared = shared.clone();
    std::thread::Builder::new()
        .name("sim-xenstored-r".into())
        .spawn(move || {
            read_requests(stream, &shared, conn, domid);
            shared.store().drop_conn(conn);
            if let Some((_, s)) = shared
                .streams
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&conn)
            {
                let _ = s.shutdown(Shutdown::Both);
            }
        })?;
    Ok(())
}

fn read_requests(mut stream: UnixStream, shared: &Shared, conn: ConnId, domid: DomId) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 8192];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut used_total = 0;
        loop {
            match Message::parse_stream(&buf[used_total..]) {
                Ok(Some((msg, used))) => {
                    used_total += used;
                    shared.store().request(conn, domid, &msg);
                }
                Ok(None) => break,
                Err(e) => {
                    // Like xenstored: a client that breaks framing loses its connection.
                    log::warn!("sim xenstored: dropping d{domid} connection: {e}");
                    return;
                }
            }
        }
        buf.drain(..used_total);
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
