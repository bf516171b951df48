//! Watches: who watches which path, and which events a change fires (C xenstored's
//! `watch.c`). Events are appended to an outbox; nothing here sends.

use crate::xs_wire::{self, Message, MsgType};
use crate::{DomId, XsErrno};

use super::store::{ConnId, Outgoing};
use super::tree::{access, home, is_at_or_below, Change, XsResult};

/// One registered watch.
struct Watch {
    conn: ConnId,
    domid: DomId,
    /// Absolute path, or a special `@...` name.
    path: String,
    token: String,
    /// The path was given relative to the domain's home: events are reported relative too.
    relative: bool,
}

impl Watch {
    /// The `XS_WATCH_EVENT` telling this watch that `path` changed.
    fn event(&self, path: &str) -> Outgoing {
        let prefix = format!("{}/", home(self.domid));
        let shown = if self.relative {
            path.strip_prefix(&prefix).unwrap_or(path)
        } else {
            path
        };
        let payload = xs_wire::join_strings(&[shown, self.token.as_str()]);
        Outgoing {
            conn: self.conn,
            msg: Message::new(MsgType::WatchEvent, 0, 0, payload),
        }
    }
}

/// Every registered watch, in registration order.
#[derive(Default)]
pub(super) struct Watches {
    list: Vec<Watch>,
}

impl Watches {
    /// Registers a watch of connection `conn` (domain `domid`) on `abs` (a canonical path or
    /// an `@...` name); `EEXIST` if the connection has the same path and token already.
    pub(super) fn add(
        &mut self,
        conn: ConnId,
        domid: DomId,
        abs: String,
        token: String,
        relative: bool,
    ) -> XsResult<()> {
        if self
            .list
            .iter()
            .any(|w| w.conn == conn && w.path == abs && w.token == token)
        {
            return Err(XsErrno::Eexist);
        }
        self.list.push(Watch {
            conn,
            domid,
            path: abs,
            token,
            relative,
        });
        Ok(())
    }

    /// Removes the watch of `conn` with this path and token; `ENOENT` if there is none.
    pub(super) fn remove(&mut self, conn: ConnId, abs: &str, token: &str) -> XsResult<()> {
        let i = self
            .list
            .iter()
            .position(|w| w.conn == conn && w.path == abs && w.token == token)
            .ok_or(XsErrno::Enoent)?;
        self.list.remove(i);
        Ok(())
    }

    /// Forgets the watches of a closed connection.
    pub(super) fn drop_conn(&mut self, conn: ConnId) {
        self.list.retain(|w| w.conn != conn);
    }

    /// Forgets the watches of a released domain.
    pub(super) fn drop_domain(&mut self, domid: DomId) {
        self.list.retain(|w| w.domid != domid);
    }

    /// Appends the events `changes` fire: a watch sees a change at or below its path, and the
    /// removal of an ancestor; only if its domain may read the node.
    pub(super) fn fire(&self, changes: &[Change], out: &mut Vec<Outgoing>) {
        for c in changes {
            for w in &self.list {
                let path = if is_at_or_below(&c.path, &w.path) {
                    c.path.as_str()
                } else if c.removed && is_at_or_below(&w.path, &c.path) {
                    w.path.as_str()
                } else {
                    continue;
                };
                if access(&c.perms, w.domid).can_read() {
                    out.push(w.event(path));
                }
            }
        }
    }

    /// Appends the events of a special path such as `@introduceDomain`.
    pub(super) fn fire_special(&self, name: &str, out: &mut Vec<Outgoing>) {
        for w in self.list.iter().filter(|w| w.path == name) {
            out.push(w.event(name));
        }
    }
}
