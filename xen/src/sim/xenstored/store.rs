//! The store: requests in, replies and watch events out, with no sockets and no threads.
//! [`Store::request`] dispatches one message to one function per message type, as C
//! xenstored's `core.c` does; transactions work on a snapshot and commit only if nothing they
//! looked at changed meanwhile (`EAGAIN` otherwise).

use std::collections::{BTreeSet, HashMap};

use crate::xenstore::{Access, Perm};
use crate::xs_wire::{self, Message, MsgType};
use crate::{DomId, Result, XsErrno};

use super::tree::{canonical, direct_children, home, Change, Node, Op, Tree, XsResult};
use super::watch::Watches;

/// A client connection, numbered by the server.
pub(crate) type ConnId = u64;

/// A message for one connection: a reply or a watch event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outgoing {
    /// The connection to send it on.
    pub(crate) conn: ConnId,
    /// The message.
    pub(crate) msg: Message,
}

/// An open transaction: a private copy of the tree and what the transaction did with it.
struct Tx {
    conn: ConnId,
    domid: DomId,
    base: Tree,
    work: Tree,
    touched: BTreeSet<String>,
    written: BTreeSet<String>,
    changes: Vec<Change>,
}

/// Who sent a request.
#[derive(Clone, Copy)]
struct Client {
    conn: ConnId,
    domid: DomId,
}

/// What a request handler answers: the reply payload, and for `XS_WATCH` the watch event that
/// follows the reply (fire-on-registration).
type Handled = XsResult<(Vec<u8>, Option<Outgoing>)>;

/// The node tree, open transactions and watches of the simulated xenstored.
pub(crate) struct Store {
    tree: Tree,
    gen: u64,
    next_tx: u32,
    txs: HashMap<u32, Tx>,
    watches: Watches,
    /// Messages produced by the call in progress, in the order they must be sent.
    out: Vec<Outgoing>,
}

fn ok() -> Vec<u8> {
    b"OK\0".to_vec()
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

/// The canonical path of a payload that is one path.
fn path_arg(domid: DomId, p: &[u8]) -> XsResult<String> {
    canonical(domid, one_arg(p)?)
}

/// A watch path: an `@...` name as is, anything else canonical.
fn watch_path(domid: DomId, path: &str) -> XsResult<String> {
    if path.starts_with('@') {
        Ok(path.to_string())
    } else {
        canonical(domid, path)
    }
}

impl Store {
    /// The store of a fresh host: `/`, `/local`, `/local/domain` and `/tool`, owned by dom0.
    pub(crate) fn new() -> Store {
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
            watches: Watches::default(),
            out: Vec::new(),
        }
    }

    /// Handles one request of connection `conn` (serving domain `domid`); returns what to send,
    /// in order: watch events the request fired, its reply, then a new watch's first event.
    pub(crate) fn request(&mut self, conn: ConnId, domid: DomId, msg: &Message) -> Vec<Outgoing> {
        let from = Client { conn, domid };
        let after_reply = match self.dispatch(from, msg) {
            Ok((payload, first_event)) => {
                let reply = Message::new(msg.ty, msg.req_id, msg.tx_id, payload);
                self.out.push(Outgoing { conn, msg: reply });
                first_event
            }
            Err(e) => {
                let payload = xs_wire::join_strings(&[e.as_str()]);
                let error = Message::new(MsgType::Error, msg.req_id, msg.tx_id, payload);
                self.out.push(Outgoing { conn, msg: error });
                None
            }
        };
        self.out.extend(after_reply);
        std::mem::take(&mut self.out)
    }

    /// One handler per message type; unknown and unsupported types are `ENOSYS`.
    fn dispatch(&mut self, from: Client, msg: &Message) -> Handled {
        let (p, tx) = (&msg.payload[..], msg.tx_id);
        let reply = match msg.ty {
            MsgType::Read => self.do_read(from, tx, p),
            MsgType::Directory => self.do_directory(from, tx, p),
            MsgType::GetPerms => self.do_get_perms(from, tx, p),
            MsgType::Write => self.do_write(from, tx, p),
            MsgType::Mkdir => self.do_mkdir(from, tx, p),
            MsgType::Rm => self.do_rm(from, tx, p),
            MsgType::SetPerms => self.do_set_perms(from, tx, p),
            MsgType::GetDomainPath => do_get_domain_path(p),
            MsgType::Watch => return self.do_watch(from, p),
            MsgType::Unwatch => self.do_unwatch(from, p),
            MsgType::TransactionStart => self.do_transaction_start(from, tx),
            MsgType::TransactionEnd => self.do_transaction_end(from, tx, p),
            _ => Err(XsErrno::Enosys),
        };
        Ok((reply?, None))
    }

    fn do_read(&mut self, from: Client, tx: u32, p: &[u8]) -> XsResult<Vec<u8>> {
        let path = path_arg(from.domid, p)?;
        self.with_op(from, tx, |op| Ok(op.readable(&path)?.value.clone()))
    }

    fn do_directory(&mut self, from: Client, tx: u32, p: &[u8]) -> XsResult<Vec<u8>> {
        let path = path_arg(from.domid, p)?;
        self.with_op(from, tx, |op| {
            op.readable(&path)?;
            Ok(xs_wire::join_strings(&direct_children(op.tree, &path)))
        })
    }

    fn do_get_perms(&mut self, from: Client, tx: u32, p: &[u8]) -> XsResult<Vec<u8>> {
        let path = path_arg(from.domid, p)?;
        self.with_op(from, tx, |op| {
            let node = op.readable(&path)?;
            let perms: Vec<String> = node.perms.iter().map(Perm::to_string).collect();
            Ok(xs_wire::join_strings(&perms))
        })
    }

    fn do_write(&mut self, from: Client, tx: u32, p: &[u8]) -> XsResult<Vec<u8>> {
        let (path, value) = split_path(p)?;
        let path = canonical(from.domid, path)?;
        self.with_op(from, tx, |op| op.write(&path, Some(value)))?;
        Ok(ok())
    }

    fn do_mkdir(&mut self, from: Client, tx: u32, p: &[u8]) -> XsResult<Vec<u8>> {
        let path = path_arg(from.domid, p)?;
        self.with_op(from, tx, |op| op.write(&path, None))?;
        Ok(ok())
    }

    fn do_rm(&mut self, from: Client, tx: u32, p: &[u8]) -> XsResult<Vec<u8>> {
        let path = path_arg(from.domid, p)?;
        self.with_op(from, tx, |op| op.rm(&path))?;
        Ok(ok())
    }

    fn do_set_perms(&mut self, from: Client, tx: u32, p: &[u8]) -> XsResult<Vec<u8>> {
        let parts = xs_wire::string_list(p).map_err(|_| XsErrno::Einval)?;
        let (path, perms) = parts.split_first().ok_or(XsErrno::Einval)?;
        let path = canonical(from.domid, path)?;
        let perms = perms
            .iter()
            .map(|s| s.parse::<Perm>())
            .collect::<Result<Vec<_>>>()
            .map_err(|_| XsErrno::Einval)?;
        if perms.is_empty() {
            return Err(XsErrno::Einval);
        }
        self.with_op(from, tx, |op| op.set_perms(&path, perms))?;
        Ok(ok())
    }

    fn do_watch(&mut self, from: Client, p: &[u8]) -> Handled {
        let (path, token) = xs_wire::watch_event_payload(p).map_err(|_| XsErrno::Einval)?;
        let relative = !path.starts_with('/') && !path.starts_with('@');
        let abs = watch_path(from.domid, &path)?;
        self.watches
            .add(from.conn, from.domid, abs, token.clone(), relative)?;
        // Fires once right away, showing the path as the client gave it.
        let payload = xs_wire::join_strings(&[path, token]);
        let first = Outgoing {
            conn: from.conn,
            msg: Message::new(MsgType::WatchEvent, 0, 0, payload),
        };
        Ok((ok(), Some(first)))
    }

    fn do_unwatch(&mut self, from: Client, p: &[u8]) -> XsResult<Vec<u8>> {
        let (path, token) = xs_wire::watch_event_payload(p).map_err(|_| XsErrno::Einval)?;
        let abs = watch_path(from.domid, &path)?;
        self.watches.remove(from.conn, &abs, &token)?;
        Ok(ok())
    }

    fn do_transaction_start(&mut self, from: Client, tx: u32) -> XsResult<Vec<u8>> {
        if tx != 0 {
            return Err(XsErrno::Ebusy);
        }
        let id = self.next_tx;
        self.next_tx = self.next_tx.checked_add(1).unwrap_or(1);
        let snapshot = self.tree.clone();
        self.txs.insert(
            id,
            Tx {
                conn: from.conn,
                domid: from.domid,
                base: snapshot.clone(),
                work: snapshot,
                touched: BTreeSet::new(),
                written: BTreeSet::new(),
                changes: Vec::new(),
            },
        );
        Ok(xs_wire::join_strings(&[id.to_string()]))
    }

    fn do_transaction_end(&mut self, from: Client, tx: u32, p: &[u8]) -> XsResult<Vec<u8>> {
        let commit = match one_arg(p)? {
            "T" => true,
            "F" => false,
            _ => return Err(XsErrno::Einval),
        };
        if self.txs.get(&tx).is_none_or(|t| t.conn != from.conn) {
            return Err(XsErrno::Enoent);
        }
        let tx = self.txs.remove(&tx).ok_or(XsErrno::Enoent)?;
        if commit {
            self.commit(tx)?;
        }
        Ok(ok())
    }

    /// Applies a transaction's writes; `EAGAIN` if a node it looked at changed since its start.
    fn commit(&mut self, tx: Tx) -> XsResult<()> {
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
                    let node = Node {
                        gen: self.gen,
                        ..n.clone()
                    };
                    self.tree.insert(p.clone(), node);
                }
                None => {
                    self.tree.remove(p);
                }
            }
        }
        self.watches.fire(&tx.changes, &mut self.out);
        Ok(())
    }

    /// Runs a tree operation in the store (firing watches) or in transaction `tx_id`.
    fn with_op<T>(
        &mut self,
        from: Client,
        tx_id: u32,
        f: impl FnOnce(&mut Op<'_>) -> XsResult<T>,
    ) -> XsResult<T> {
        if tx_id == 0 {
            return self.change(from.domid, f);
        }
        let tx = self
            .txs
            .get_mut(&tx_id)
            .filter(|t| t.conn == from.conn)
            .ok_or(XsErrno::Enoent)?;
        let mut op = Op {
            tree: &mut tx.work,
            domid: from.domid,
            gen: 0,
            touched: &mut tx.touched,
            written: &mut tx.written,
            changes: &mut tx.changes,
        };
        f(&mut op)
    }

    /// Runs a tree operation as `domid` directly on the store's tree, as a new generation,
    /// and fires the watches its changes concern.
    fn change<T>(
        &mut self,
        domid: DomId,
        f: impl FnOnce(&mut Op<'_>) -> XsResult<T>,
    ) -> XsResult<T> {
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
        self.watches.fire(&changes, &mut self.out);
        Ok(r)
    }

    /// Introduces a domain: its home nodes as libxl makes them (`/local/domain/<id>` owned by
    /// dom0 and readable by the domain, `data` writable by it); fires the home's watches and
    /// `@introduceDomain`. Returns the watch events.
    pub(crate) fn introduce_domain(&mut self, domid: DomId) -> Vec<Outgoing> {
        self.gen += 1;
        let gen = self.gen;
        let ro = if domid == 0 {
            vec![Perm::new(0, Access::None)]
        } else {
            vec![Perm::new(0, Access::None), Perm::new(domid, Access::Read)]
        };
        let rw = vec![Perm::new(domid, Access::None)];
        let h = home(domid);
        let name = if domid == 0 {
            "Domain-0".to_string()
        } else {
            format!("sim{domid}")
        };
        let nodes = [
            (h.clone(), ro.clone(), String::new()),
            (format!("{h}/domid"), ro.clone(), domid.to_string()),
            (format!("{h}/name"), ro.clone(), name),
            (format!("{h}/device"), ro.clone(), String::new()),
            (format!("{h}/control"), ro, String::new()),
            (format!("{h}/data"), rw, String::new()),
        ];
        for (path, perms, value) in nodes {
            let value = value.into_bytes();
            self.tree.insert(path, Node { value, perms, gen });
        }
        if let Some(n) = self.tree.get_mut("/local/domain") {
            n.gen = gen;
        }
        let home_created = Change {
            path: h,
            perms: vec![Perm::new(0, Access::None)],
            removed: false,
        };
        self.watches.fire(&[home_created], &mut self.out);
        self.watches.fire_special("@introduceDomain", &mut self.out);
        std::mem::take(&mut self.out)
    }

    /// Releases a domain: drops its watches and transactions, removes its home (firing
    /// watches) and fires `@releaseDomain`. Returns the watch events.
    pub(crate) fn release_domain(&mut self, domid: DomId) -> Vec<Outgoing> {
        self.watches.drop_domain(domid);
        self.txs.retain(|_, t| t.domid != domid);
        // Dom0 removes the home; a missing home is nothing to remove.
        let _ = self.change(0, |op| op.rm(&home(domid)));
        self.watches.fire_special("@releaseDomain", &mut self.out);
        std::mem::take(&mut self.out)
    }

    /// Forgets a closed connection's watches and transactions.
    pub(crate) fn drop_conn(&mut self, conn: ConnId) {
        self.watches.drop_conn(conn);
        self.txs.retain(|_, t| t.conn != conn);
    }
}

fn do_get_domain_path(p: &[u8]) -> XsResult<Vec<u8>> {
    let id = one_arg(p)?.parse::<DomId>().map_err(|_| XsErrno::Einval)?;
    Ok(xs_wire::join_strings(&[home(id)]))
}
