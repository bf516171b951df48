//! A synchronous xenstore client over xenstored's unix socket or `/dev/xen/xenbus`.
//!
//! A reader thread owns the receiving side: replies go to the one request in flight (requests
//! are serialised by a lock, so the client is `Sync`), watch events go to a queue that is never
//! dropped from and that signals an eventfd, so the client's fd (see [`AsFd`]) is readable
//! exactly while watch events are queued. A malformed or truncated message from the daemon
//! fails the request in flight (and all later ones) with [`Error::Protocol`]; nothing panics.

use std::collections::VecDeque;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::xs_wire::{self, Message, MsgType, Reply};
use crate::{DomId, Error, Result, XsErrno};

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

/// The access a [`Perm`] grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// `n`: no access.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: read and write.
    Both,
}

impl Access {
    /// True if reading is allowed.
    pub fn can_read(self) -> bool {
        matches!(self, Access::Read | Access::Both)
    }
    /// True if writing is allowed.
    pub fn can_write(self) -> bool {
        matches!(self, Access::Write | Access::Both)
    }
}

/// One node permission as xenstored spells it: a letter then a domid (`"n0"`, `"r1"`, `"b2"`).
/// In a node's permission list the first entry names the owner (full access) and the access of
/// every domain not listed; later entries give specific domains their access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Perm {
    /// The domain.
    pub domid: DomId,
    /// Its access.
    pub access: Access,
}

impl Perm {
    /// A permission entry.
    pub fn new(domid: DomId, access: Access) -> Perm {
        Perm { domid, access }
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = match self.access {
            Access::None => 'n',
            Access::Read => 'r',
            Access::Write => 'w',
            Access::Both => 'b',
        };
        write!(f, "{c}{}", self.domid)
    }
}

impl FromStr for Perm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Perm> {
        let bad = || Error::InvalidArgument(format!("bad permission {s:?}"));
        let mut chars = s.chars();
        let access = match chars.next() {
            Some('n') => Access::None,
            Some('r') => Access::Read,
            Some('w') => Access::Write,
            Some('b') => Access::Both,
            _ => return Err(bad()),
        };
        let rest = chars.as_str();
        if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let domid = rest.parse::<DomId>().map_err(|_| bad())?;
        Ok(Perm { domid, access })
    }
}

/// Watch events received and not yet taken, plus the eventfd that mirrors "queue non-empty".
struct WatchQueue {
    state: Mutex<QueueState>,
    cond: Condvar,
    ready: EventFd,
}

struct QueueState {
    events: VecDeque<WatchEvent>,
    /// Set once the connection is gone (why), so waiters stop waiting.
    dead: Option<String>,
}

impl WatchQueue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, ev: WatchEvent) {
        let mut st = self.lock();
        st.events.push_back(ev);
        // An eventfd counter only fails to add at u64::MAX - 1, far beyond any queue length.
        let _ = self.ready.write(1);
        self.cond.notify_all();
    }

    fn set_dead(&self, why: String) {
        let mut st = self.lock();
        st.dead.get_or_insert(why);
        self.cond.notify_all();
    }

    fn pop(&self, st: &mut QueueState) -> Option<WatchEvent> {
        let ev = st.events.pop_front();
        if ev.is_some() && st.events.is_empty() {
            // Drain the counter (nonblocking) so the fd stops being readable.
            let _ = self.ready.read();
        }
        ev
    }
}

/// What the reader thread hands to the request in flight.
type ReplyMsg = std::result::Result<Message, String>;

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

    /// Registers a watch on `path` (and everything below it). xenstored fires it once right
    /// away, then on every change.
    pub fn watch(&self, path: &str, token: &str) -> Result<()> {
        self.expect_ok(MsgType::Watch, NO_TX, xs_wire::join_strings(&[path, token]))
    }

    /// Removes a watch registered with the same path and token.
    pub fn unwatch(&self, path: &str, token: &str) -> Result<()> {
        self.expect_ok(
            MsgType::Unwatch,
            NO_TX,
            xs_wire::join_strings(&[path, token]),
        )
    }

    /// Takes the oldest queued watch event, if any (never blocks).
    pub fn try_next_watch_event(&self) -> Result<Option<WatchEvent>> {
        let mut st = self.watches.lock();
        match self.watches.pop(&mut st) {
            Some(ev) => Ok(Some(ev)),
            None => match &st.dead {
                Some(why) => Err(Error::Protocol(why.clone())),
                None => Ok(None),
            },
        }
    }

    /// Waits up to `timeout` for a watch event; `Ok(None)` if none came.
    pub fn wait_watch_event(&self, timeout: Duration) -> Result<Option<WatchEvent>> {
        let deadline = Instant::now() + timeout;
        let mut st = self.watches.lock();
        loop {
            if let Some(ev) = self.watches.pop(&mut st) {
                return Ok(Some(ev));
            }
            if let Some(why) = &st.dead {
                return Err(Error::Protocol(why.clone()));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            st = self
                .watches
                .cond
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Starts a transaction by hand; prefer [`Xenstore::transaction`], which retries.
    pub fn transaction_start(&self) -> Result<Transaction<'_>> {
        let id = match self.request(MsgType::TransactionStart, NO_TX, b"\0".to_vec())? {
            Reply::Text(s) => s
                .parse::<u32>()
                .map_err(|_| Error::Protocol(format!("bad tx id {s:?}")))?,
            r => return Err(unexpected(r)),
        };
        if id == 0 {
            return Err(Error::Protocol("transaction id 0".into()));
        }
        Ok(Transaction {
            xs: self,
            id: TxId(id),
        })
    }

    /// Runs `f` inside a transaction and commits; on a conflict (`EAGAIN` at commit or from any
    /// operation inside) runs `f` again, at most [`TRANSACTION_RETRIES`] times. An error from
    /// `f` aborts the transaction and is returned.
    pub fn transaction<T>(&self, mut f: impl FnMut(&Transaction<'_>) -> Result<T>) -> Result<T> {
        for attempt in 0..TRANSACTION_RETRIES {
            let tx = self.transaction_start()?;
            let outcome = f(&tx);
            let end = match outcome {
                Ok(v) => tx.commit().map(|()| v),
                Err(e) => {
                    // Abort; the conflict (if any) is reported by `e` itself.
                    let _ = tx.abort();
                    Err(e)
                }
            };
            match end {
                Err(e) if e.xenstore_errno() == Some(XsErrno::Eagain) => backoff(attempt),
                other => return other,
            }
        }
        Err(Error::TooManyRetries(TRANSACTION_RETRIES))
    }
}

/// Short randomised pause between transaction attempts, so contending writers spread out.
fn backoff(attempt: u32) {
    // The clock's nanoseconds are jitter enough to separate two contending clients.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let nanos = now.subsec_nanos() ^ std::process::id().rotate_left(attempt);
    let cap_us = 50u64 << attempt.min(6);
    std::thread::sleep(Duration::from_micros(u64::from(nanos) % cap_us));
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

/// An open transaction; operations see a private snapshot until commit.
pub struct Transaction<'a> {
    xs: &'a Xenstore,
    id: TxId,
}

impl Transaction<'_> {
    /// The transaction id xenstored assigned.
    pub fn id(&self) -> u32 {
        self.id.0
    }
    /// [`Xenstore::read`] inside the transaction.
    pub fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.xs.op_read(self.id, path)
    }
    /// [`Xenstore::read_string`] inside the transaction.
    pub fn read_string(&self, path: &str) -> Result<String> {
        to_string(self.read(path)?)
    }
    /// [`Xenstore::try_read`] inside the transaction.
    pub fn try_read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        self.xs.op_try_read(self.id, path)
    }
    /// [`Xenstore::write`] inside the transaction.
    pub fn write(&self, path: &str, value: impl AsRef<[u8]>) -> Result<()> {
        self.xs.op_write(self.id, path, value.as_ref())
    }
    /// [`Xenstore::mkdir`] inside the transaction.
    pub fn mkdir(&self, path: &str) -> Result<()> {
        self.xs
            .expect_ok(MsgType::Mkdir, self.id, xs_wire::join_strings(&[path]))
    }
    /// [`Xenstore::rm`] inside the transaction.
    pub fn rm(&self, path: &str) -> Result<()> {
        self.xs
            .expect_ok(MsgType::Rm, self.id, xs_wire::join_strings(&[path]))
    }
    /// [`Xenstore::directory`] inside the transaction.
    pub fn directory(&self, path: &str) -> Result<Vec<String>> {
        self.xs.op_list(MsgType::Directory, self.id, path)
    }
    /// [`Xenstore::get_perms`] inside the transaction.
    pub fn get_perms(&self, path: &str) -> Result<Vec<Perm>> {
        self.xs.op_get_perms(self.id, path)
    }
    /// [`Xenstore::set_perms`] inside the transaction.
    pub fn set_perms(&self, path: &str, perms: &[Perm]) -> Result<()> {
        self.xs.op_set_perms(self.id, path, perms)
    }
    /// Commits; `Err(Error::Xenstore(XsErrno::Eagain))` on a conflict.
    pub fn commit(self) -> Result<()> {
        self.xs
            .expect_ok(MsgType::TransactionEnd, self.id, b"T\0".to_vec())
    }
    /// Abandons the transaction's changes.
    pub fn abort(self) -> Result<()> {
        self.xs
            .expect_ok(MsgType::TransactionEnd, self.id, b"F\0".to_vec())
    }
}

/// The receiving side: frames messages from the connection and routes them.
fn reader_loop(mut conn: File, replies: &Sender<ReplyMsg>, watches: &WatchQueue, stop: &EventFd) {
    let why = match read_messages(&mut conn, replies, watches, stop) {
        Ok(()) => return,
        Err(why) => why,
    };
    log::debug!("xenstore reader stops: {why}");
    watches.set_dead(why.clone());
    let _ = replies.send(Err(why));
}

/// Returns `Ok(())` when asked to stop, `Err(reason)` when the connection broke.
fn read_messages(
    conn: &mut File,
    replies: &Sender<ReplyMsg>,
    watches: &WatchQueue,
    stop: &EventFd,
) -> std::result::Result<(), String> {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; xs_wire::HEADER_LEN + xs_wire::PAYLOAD_MAX];
    loop {
        let mut fds = [
            PollFd::new(conn.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("poll: {e}")),
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            return Ok(());
        }
        let n = match conn.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Err("connection closed by xenstored".into()),
            Ok(0) => {
                return Err(format!(
                    "truncated message: connection closed after {} bytes",
                    buf.len()
                ))
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("read: {e}")),
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut used_total = 0;
        while let Some((msg, used)) =
            Message::parse_stream(&buf[used_total..]).map_err(|e| e.to_string())?
        {
            used_total += used;
            if msg.ty == MsgType::WatchEvent {
                let (path, token) =
                    xs_wire::watch_event_payload(&msg.payload).map_err(|e| e.to_string())?;
                watches.push(WatchEvent { path, token });
            } else if replies.send(Ok(msg)).is_err() {
                return Ok(());
            }
        }
        buf.drain(..used_total);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perm_strings() {
        assert_eq!("r1".parse::<Perm>().unwrap(), Perm::new(1, Access::Read));
        assert_eq!("b65535".parse::<Perm>().unwrap().to_string(), "b65535");
        for bad in ["", "x1", "r", "r-1", "r65536", "rr1", "n 1"] {
            assert!(bad.parse::<Perm>().is_err(), "{bad}");
        }
    }
}
