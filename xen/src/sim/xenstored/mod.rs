//! An in-memory xenstored speaking [`crate::xs_wire`] on unix sockets, one listening socket per
//! domain so that a connection knows which domain it serves (dom0 is privileged).
//!
//! Semantics follow C xenstored: permissions (owner first, then per-domain entries; new nodes
//! inherit the parent's and are owned by an unprivileged creator), relative paths under
//! `/local/domain/<id>`, watches that fire on registration and for changes at or below their
//! path (a removed ancestor fires watches below it), and transactions on a snapshot whose
//! commit fails with `EAGAIN` if any node the transaction looked at changed meanwhile.
//!
//! * `tree`: nodes, paths, permissions and the operations on the tree.
//! * `watch`: registered watches and the events a change fires.
//! * `store`: the pure daemon, request in, replies and watch events out; one function per
//!   message type, as in C xenstored's `core.c`.
//! * `server`: the sockets and threads around the store.

mod server;
mod store;
mod tree;
mod watch;

pub(crate) use server::Xenstored;

#[cfg(test)]
mod tests;
