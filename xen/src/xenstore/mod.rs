//! A synchronous xenstore client over xenstored's unix socket or `/dev/xen/xenbus`.
//!
//! A reader thread owns the receiving side: replies go to the one request in flight (requests
//! are serialised by a lock, so the client is `Sync`), watch events go to a queue that is never
//! dropped from and that signals an eventfd, so the client's fd (see [`AsFd`]) is readable
//! exactly while watch events are queued. A malformed or truncated message from the daemon
//! fails the request in flight (and all later ones) with [`Error::Protocol`]; nothing panics.
//!
//! One file per concern: this one holds [`Xenstore`], its connection and its requests; `watch`
//! the queue of watch events and the watch calls, `transaction` [`Transaction`] and the retry
//! loop, `reader` the reader thread, `perm` the permissions ([`Perm`]).

mod perm;
mod reader;
mod transaction;
mod watch;

pub use perm::{Access, Perm};
pub use transaction::Transaction;

use std::collections::VecDeque;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, RecvTimeoutError};
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::xs_wire::{self, Message, MsgType, Reply};
use crate::{DomId, Error, Result};
use reader::{reader_loop, ReplyMsg};
use watch::{QueueState, WatchQueue};

/// Default xenstored unix socket.
pub const DEFAULT_SOCKET: &str = "/run/xenstored/socket";

/// The xenbus device (guests, and dom0 without a local xenstored).
pub const XENBUS_DEVICE: &str = "/dev/xen/xenbus";

/// How many times [`Xenstore::transaction`] runs the closure before giving up on EAGAIN.
pub const TRANSACTION_RETRIES: u32 = 64;

/// Default bound on the wait for one reply.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// A watch firing: `path` changed (at or below the watched path); `token` is the caller's tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// The path that changed.
    pub path: String,
    /// The token given to [`Xenstore::watch`].
    pub token: String,
}

struct Sending {
    conn: File,
    next_req_id: u32,
}

/// A synchronous xenstore connection. `Send + Sync`: requests from several threads are
/// serialised. Implements [`AsFd`]: the fd is readable while watch events are queued.
pub struct Xenstore {
    sending: Mutex<Sending>,
    replies: Receiver<ReplyMsg>,
    watches: Arc<WatchQueue>,
    stop: Arc<EventFd>,
    reader: Option<JoinHandle<()>>,
    timeout: Duration,
}

impl fmt::Debug for Xenstore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Xenstore")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Whether an operation runs inside a transaction.
#[derive(Clone, Copy)]
struct TxId(u32);

const NO_TX: TxId = TxId(0);

impl Xenstore {
    /// Connects like libxenstore: to `$XENSTORED_PATH` if set (a socket, or the xenbus
    /// device), else to the local xenstored socket if present, else to `/dev/xen/xenbus`.
    pub fn open() -> Result<Xenstore> {
        if let Some(p) = std::env::var_os("XENSTORED_PATH") {
            let p = Path::new(&p);
            return if p.starts_with("/dev") {
                Xenstore::open_xenbus(p)
            } else {
                Xenstore::connect_unix(p)
            };
        }
        if Path::new(DEFAULT_SOCKET).exists() {
            Xenstore::connect_unix(DEFAULT_SOCKET)
        } else {
            Xenstore::open_xenbus(XENBUS_DEVICE)
        }
    }

    /// Connects to a xenstored unix socket.
    pub fn connect_unix(path: impl AsRef<Path>) -> Result<Xenstore> {
        let s = UnixStream::connect(path)?;
        Xenstore::from_fd(OwnedFd::from(s))
    }

    /// Opens the xenbus device (each write carries one whole message).
    pub fn open_xenbus(path: impl AsRef<Path>) -> Result<Xenstore> {
        let f = OpenOptions::new().read(true).write(true).open(path)?;
        Xenstore::from_fd(OwnedFd::from(f))
    }

    /// Runs the client over an already connected stream (socket, device, or a test's fake).
    pub fn from_fd(fd: OwnedFd) -> Result<Xenstore> {
        let conn = File::from(fd);
        let rx_conn = conn.try_clone()?;
        let (tx, rx) = channel::unbounded();
        let watches = Arc::new(WatchQueue {
            state: Mutex::new(QueueState {
                events: VecDeque::new(),
                dead: None,
            }),
            cond: Condvar::new(),
            ready: EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?,
        });
        let stop = Arc::new(EventFd::from_flags(
            EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC,
        )?);
        let reader = {
            let (watches, stop) = (watches.clone(), stop.clone());
            std::thread::Builder::new()
                .name("xenstore-reader".into())
                .spawn(move || reader_loop(rx_conn, &tx, &watches, &stop))?
        };
        Ok(Xenstore {
            sending: Mutex::new(Sending {
                conn,
                next_req_id: 1,
            }),
            replies: rx,
            watches,
            stop,
            reader: Some(reader),
            timeout: DEFAULT_REPLY_TIMEOUT,
        })
    }

    /// Changes the bound on the wait for each reply (default [`DEFAULT_REPLY_TIMEOUT`]).
    pub fn set_reply_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Sends one request and waits for its reply (watch events meanwhile are queued).
    fn request(&self, ty: MsgType, tx: TxId, payload: Vec<u8>) -> Result<Reply> {
        let mut s = self.sending.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(why) = self.watches.lock().dead.clone() {
            return Err(Error::Protocol(why));
        }
        let req_id = s.next_req_id;
        s.next_req_id = s.next_req_id.wrapping_add(1);
        let bytes = Message::new(ty, req_id, tx.0, payload).encode()?;
        s.conn.write_all(&bytes)?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = match self.replies.recv_timeout(left) {
                Ok(Ok(m)) => m,
                Ok(Err(why)) => return Err(Error::Protocol(why)),
                Err(RecvTimeoutError::Timeout) => return Err(Error::Timeout),
                Err(RecvTimeoutError::Disconnected) => return Err(Error::Closed),
            };
            if msg.req_id != req_id {
                // The late reply of a request that timed out earlier.
                log::warn!("xenstore: dropping reply to stale request {}", msg.req_id);
                continue;
            }
            return match xs_wire::interpret_reply(&msg, ty)? {
                Reply::Error(e) => Err(Error::Xenstore(e)),
                r => Ok(r),
            };
        }
    }

    fn expect_ok(&self, ty: MsgType, tx: TxId, payload: Vec<u8>) -> Result<()> {
        match self.request(ty, tx, payload)? {
            Reply::Ok => Ok(()),
            r => Err(unexpected(r)),
        }
    }

    fn op_read(&self, tx: TxId, path: &str) -> Result<Vec<u8>> {
        match self.request(MsgType::Read, tx, xs_wire::join_strings(&[path]))? {
            Reply::Value(v) => Ok(v),
            r => Err(unexpected(r)),
        }
    }

    fn op_try_read(&self, tx: TxId, path: &str) -> Result<Option<Vec<u8>>> {
        match self.op_read(tx, path) {
            Err(e) if e.is_enoent() => Ok(None),
            r => r.map(Some),
        }
    }

    fn op_write(&self, tx: TxId, path: &str, value: &[u8]) -> Result<()> {
        let mut p = xs_wire::join_strings(&[path]);
        p.extend_from_slice(value);
        self.expect_ok(MsgType::Write, tx, p)
    }

    fn op_list(&self, ty: MsgType, tx: TxId, path: &str) -> Result<Vec<String>> {
        match self.request(ty, tx, xs_wire::join_strings(&[path]))? {
            Reply::List(v) => Ok(v),
            r => Err(unexpected(r)),
        }
    }

    fn op_get_perms(&self, tx: TxId, path: &str) -> Result<Vec<Perm>> {
        self.op_list(MsgType::GetPerms, tx, path)?
            .iter()
            .map(|s| {
                s.parse::<Perm>()
                    .map_err(|_| Error::Protocol(format!("bad perm {s:?}")))
            })
            .collect()
    }

    fn op_set_perms(&self, tx: TxId, path: &str, perms: &[Perm]) -> Result<()> {
        if perms.is_empty() {
            return Err(Error::InvalidArgument("empty permission list".into()));
        }
        let mut parts = vec![path.to_string()];
        parts.extend(perms.iter().map(Perm::to_string));
        self.expect_ok(MsgType::SetPerms, tx, xs_wire::join_strings(&parts))
    }

    /// Reads a node's value; a missing node is `Err(Error::Xenstore(XsErrno::Enoent))`.
    pub fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.op_read(NO_TX, path)
    }

    /// Reads a node's value as UTF-8 text.
    pub fn read_string(&self, path: &str) -> Result<String> {
        to_string(self.read(path)?)
    }

    /// Reads a node's value; `Ok(None)` if it does not exist.
    pub fn try_read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        self.op_try_read(NO_TX, path)
    }

    /// Writes a value, creating the node and missing parents.
    pub fn write(&self, path: &str, value: impl AsRef<[u8]>) -> Result<()> {
        self.op_write(NO_TX, path, value.as_ref())
    }

    /// Creates a node with an empty value (no error if it exists).
    pub fn mkdir(&self, path: &str) -> Result<()> {
        self.expect_ok(MsgType::Mkdir, NO_TX, xs_wire::join_strings(&[path]))
    }

    /// Removes a node and everything below it.
    pub fn rm(&self, path: &str) -> Result<()> {
        self.expect_ok(MsgType::Rm, NO_TX, xs_wire::join_strings(&[path]))
    }

    /// Lists the names of a node's children.
    pub fn directory(&self, path: &str) -> Result<Vec<String>> {
        self.op_list(MsgType::Directory, NO_TX, path)
    }

    /// Reads a node's permissions (owner first).
    pub fn get_perms(&self, path: &str) -> Result<Vec<Perm>> {
        self.op_get_perms(NO_TX, path)
    }

    /// Sets a node's permissions (owner first); needs ownership or dom0.
    pub fn set_perms(&self, path: &str, perms: &[Perm]) -> Result<()> {
        self.op_set_perms(NO_TX, path, perms)
    }

    /// The home path of a domain, `/local/domain/<domid>`.
    pub fn get_domain_path(&self, domid: DomId) -> Result<String> {
        let p = xs_wire::join_strings(&[domid.to_string()]);
        match self.request(MsgType::GetDomainPath, NO_TX, p)? {
            Reply::Text(s) => Ok(s),
            r => Err(unexpected(r)),
        }
    }
}

fn to_string(v: Vec<u8>) -> Result<String> {
    String::from_utf8(v).map_err(|_| Error::Protocol("value is not UTF-8".into()))
}

fn unexpected(r: Reply) -> Error {
    Error::Protocol(format!("unexpected reply {r:?}"))
}

impl AsFd for Xenstore {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.watches.ready.as_fd()
    }
}

impl AsRawFd for Xenstore {
    fn as_raw_fd(&self) -> RawFd {
        self.watches.ready.as_raw_fd()
    }
}

impl Drop for Xenstore {
    fn drop(&mut self) {
        let _ = self.stop.write(1);
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
    }
}
