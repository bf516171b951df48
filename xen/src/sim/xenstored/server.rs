//! The socket server around the [`Store`]: one listening unix socket per domain (so that a
//! connection knows which domain it serves), a reader and a writer thread per connection.
//! Requests go through the store under one lock, and what it answers is queued to the
//! connections' writers under that same lock, so every connection sees messages in the order
//! the store produced them.

use std::collections::HashMap;
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

use crate::xs_wire::Message;
use crate::{DomId, Result};

use super::store::{ConnId, Outgoing, Store};

/// The store and the writer queue of each open connection.
struct Daemon {
    store: Store,
    writers: HashMap<ConnId, Sender<Vec<u8>>>,
}

impl Daemon {
    /// Queues each message to its connection's writer (a closed connection's are dropped).
    fn send(&self, out: Vec<Outgoing>) {
        for o in out {
            if let (Some(tx), Ok(bytes)) = (self.writers.get(&o.conn), o.msg.encode()) {
                // A closed connection's writer is gone: nothing to deliver to.
                let _ = tx.send(bytes);
            }
        }
    }
}

struct Shared {
    daemon: Mutex<Daemon>,
    /// Open connections and their domains, shut down when the daemon (or domain) stops.
    streams: Mutex<HashMap<ConnId, (DomId, UnixStream)>>,
    next_conn: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
            daemon: Mutex::new(Daemon {
                store: Store::new(),
                writers: HashMap::new(),
            }),
            streams: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
        });
        Ok(Xenstored {
            shared,
            dir,
            listeners: HashMap::new(),
        })
    }

    /// The socket whose connections act as domain `domid`.
    pub(crate) fn socket_path(&self, domid: DomId) -> PathBuf {
        self.dir.join(format!("xenstored-d{domid}.sock"))
    }

    /// Introduces a domain: its home nodes (as libxl makes them) and its listening socket.
    pub(crate) fn add_domain(&mut self, domid: DomId) -> Result<()> {
        {
            let mut d = lock(&self.shared.daemon);
            let events = d.store.introduce_domain(domid);
            d.send(events);
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
            let streams = lock(&self.shared.streams);
            for (_, s) in streams.values().filter(|(d, _)| *d == domid) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        let mut d = lock(&self.shared.daemon);
        let events = d.store.release_domain(domid);
        d.send(events);
    }
}

impl Drop for Xenstored {
    fn drop(&mut self) {
        for (_, (h, stop)) in self.listeners.drain() {
            let _ = stop.write(1);
            let _ = h.join();
        }
        let streams = lock(&self.shared.streams);
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
    lock(&shared.streams).insert(conn, (domid, stream.try_clone()?));
    lock(&shared.daemon).writers.insert(conn, tx);
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
            {
                let mut d = lock(&shared.daemon);
                d.writers.remove(&conn);
                d.store.drop_conn(conn);
            }
            if let Some((_, s)) = lock(&shared.streams).remove(&conn) {
                let _ = s.shutdown(Shutdown::Both);
            }
        })?;
    Ok(())
}

/// Frames requests off the connection and hands each to the store, until the client closes
/// or breaks framing.
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
                    let mut d = lock(&shared.daemon);
                    let out = d.store.request(conn, domid, &msg);
                    d.send(out);
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
