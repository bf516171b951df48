//! Simulated event channels with the Linux evtchn device's delivery rules: an event on an
//! enabled port masks it and queues the port for `read` (here [`EventChannel::pending`]); events
//! while masked only leave it pending; unmasking a pending port delivers it again.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;

use nix::errno::Errno;
use nix::sys::eventfd::{EfdFlags, EventFd};

use super::{lock, SimInner};
use crate::{DomId, Error, EventChannel, Port, Result};

/// Ports per simulated domain (the 2-level ABI's limit on 64-bit guests).
const MAX_PORTS: Port = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    /// Allocated for `remote` to bind to.
    Unbound(DomId),
    /// Connected to (domain, port).
    Interdomain(DomId, Port),
}

#[derive(Debug)]
struct PortState {
    /// The handle (open device) the port belongs to.
    chan: u64,
    peer: Peer,
    /// Not masked: the next event is delivered to the handle.
    enabled: bool,
    /// An event arrived while masked.
    pending: bool,
}

struct Handle {
    ring: VecDeque<Port>,
    ready: Arc<EventFd>,
}

/// All domains' ports and all open handles.
#[derive(Default)]
pub(crate) struct EvtState {
    ports: HashMap<DomId, BTreeMap<Port, PortState>>,
    handles: HashMap<u64, Handle>,
    next_handle: u64,
}

impl EvtState {
    fn alloc_port(&mut self, domid: DomId, chan: u64, peer: Peer) -> Result<Port> {
        let ports = self.ports.entry(domid).or_default();
        let mut port = 1;
        for &used in ports.keys() {
            if used == port {
                port += 1;
            } else if used > port {
                break;
            }
        }
        if port >= MAX_PORTS {
            return Err(Error::Sys(Errno::ENOSPC));
        }
        ports.insert(
            port,
            PortState {
                chan,
                peer,
                enabled: true,
                pending: false,
            },
        );
        Ok(port)
    }

    /// Marks `port` of `domid` pending and delivers it if it is not masked.
    fn raise(&mut self, domid: DomId, port: Port) {
        let Some(st) = self.ports.get_mut(&domid).and_then(|p| p.get_mut(&port)) else {
            return;
        };
        if !st.enabled {
            st.pending = true;
            return;
        }
        st.enabled = false;
        if let Some(h) = self.handles.get_mut(&st.chan) {
            h.ring.push_back(port);
            // An eventfd counter cannot overflow from one increment per delivered event.
            let _ = h.ready.write(1);
        }
    }

    /// Sends on local `port` of `domid` (as `notify_remote_via_evtchn` does in the kernel).
    pub(crate) fn notify_from(&mut self, domid: DomId, port: Port) {
        let peer = self
            .ports
            .get(&domid)
            .and_then(|p| p.get(&port))
            .map(|st| st.peer);
        if let Some(Peer::Interdomain(rd, rp)) = peer {
            self.raise(rd, rp);
        }
    }

    /// Closes every port of a destroyed domain.
    pub(crate) fn destroy_domain(&mut self, domid: DomId) {
        let ports: Vec<Port> = self
            .ports
            .get(&domid)
            .map(|p| p.keys().copied().collect())
            .unwrap_or_default();
        for port in ports {
            self.close(domid, port);
        }
    }

    fn owned(&mut self, domid: DomId, chan: u64, port: Port) -> Result<&mut PortState> {
        match self.ports.get_mut(&domid).and_then(|p| p.get_mut(&port)) {
            Some(st) if st.chan == chan => Ok(st),
            _ => Err(Error::Sys(Errno::ENOTCONN)),
        }
    }

    fn close(&mut self, domid: DomId, port: Port) {
        let Some(st) = self.ports.get_mut(&domid).and_then(|p| p.remove(&port)) else {
            return;
        };
        if let Peer::Interdomain(rd, rp) = st.peer {
            if let Some(remote) = self.ports.get_mut(&rd).and_then(|p| p.get_mut(&rp)) {
                if remote.peer == Peer::Interdomain(domid, port) {
                    remote.peer = Peer::Unbound(domid);
                }
            }
        }
    }
}

/// One open event channel handle of a simulated domain. Its fd (an eventfd) is readable while
/// fired ports wait to be collected by [`EventChannel::pending`].
pub struct SimEventChannel {
    inner: Arc<SimInner>,
    domid: DomId,
    chan: u64,
    ready: Arc<EventFd>,
}

impl SimEventChannel {
    pub(crate) fn new(inner: Arc<SimInner>, domid: DomId) -> Result<SimEventChannel> {
        let ready = Arc::new(EventFd::from_flags(
            EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC,
        )?);
        let chan = {
            let mut st = lock(&inner.evtchn);
            st.next_handle += 1;
            let chan = st.next_handle;
            st.handles.insert(
                chan,
                Handle {
                    ring: VecDeque::new(),
                    ready: ready.clone(),
                },
            );
            chan
        };
        Ok(SimEventChannel {
            inner,
            domid,
            chan,
            ready,
        })
    }

    /// The domain this handle acts as.
    pub fn domid(&self) -> DomId {
        self.domid
    }

    /// Guest side: allocates a port that domain `remote` may bind to
    /// (`IOCTL_EVTCHN_BIND_UNBOUND_PORT`); the guest publishes it in xenstore.
    pub fn alloc_unbound(&mut self, remote: DomId) -> Result<Port> {
        if !self.inner.domain_exists(remote) {
            return Err(Error::Sys(Errno::ESRCH));
        }
        lock(&self.inner.evtchn).alloc_port(self.domid, self.chan, Peer::Unbound(remote))
    }
}

impl EventChannel for SimEventChannel {
    fn bind_interdomain(&mut self, remote: DomId, remote_port: Port) -> Result<Port> {
        if !self.inner.domain_exists(remote) {
            return Err(Error::Sys(Errno::ESRCH));
        }
        let mut st = lock(&self.inner.evtchn);
        let peer = st
            .ports
            .get(&remote)
            .and_then(|p| p.get(&remote_port))
            .map(|s| s.peer);
        if peer != Some(Peer::Unbound(self.domid)) {
            return Err(Error::Sys(Errno::EINVAL));
        }
        let local = st.alloc_port(
            self.domid,
            self.chan,
            Peer::Interdomain(remote, remote_port),
        )?;
        if let Some(r) = st
            .ports
            .get_mut(&remote)
            .and_then(|p| p.get_mut(&remote_port))
        {
            r.peer = Peer::Interdomain(self.domid, local);
        }
        // Xen leaves the new local port pending so that no event can be missed.
        st.raise(self.domid, local);
        Ok(local)
    }

    fn unbind(&mut self, port: Port) -> Result<()> {
        let mut st = lock(&self.inner.evtchn);
        st.owned(self.domid, self.chan, port)?;
        st.close(self.domid, port);
        Ok(())
    }

    fn notify(&self, port: Port) -> Result<()> {
        let mut st = lock(&self.inner.evtchn);
        st.owned(self.domid, self.chan, port)?;
        st.notify_from(self.domid, port);
        Ok(())
    }

    fn pending(&mut self, out: &mut Vec<Port>) -> Result<()> {
        let mut st = lock(&self.inner.evtchn);
        if let Some(h) = st.handles.get_mut(&self.chan) {
            out.extend(h.ring.drain(..));
            // Reset the counter; EAGAIN just means it was already zero.
            let _ = h.ready.read();
        }
        Ok(())
    }

    fn unmask(&mut self, port: Port) -> Result<()> {
        let mut st = lock(&self.inner.evtchn);
        let ps = st.owned(self.domid, self.chan, port)?;
        if !ps.enabled {
            ps.enabled = true;
            if std::mem::take(&mut ps.pending) {
                st.raise(self.domid, port);
            }
        }
        Ok(())
    }
}

impl AsFd for SimEventChannel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.ready.as_fd()
    }
}

impl AsRawFd for SimEventChannel {
    fn as_raw_fd(&self) -> RawFd {
        self.ready.as_raw_fd()
    }
}

impl Drop for SimEventChannel {
    fn drop(&mut self) {
        let mut st = lock(&self.inner.evtchn);
        let mine: Vec<Port> = st
            .ports
            .get(&self.domid)
            .map(|p| {
                p.iter()
                    .filter(|(_, s)| s.chan == self.chan)
                    .map(|(&port, _)| port)
                    .collect()
            })
            .unwrap_or_default();
        for port in mine {
            st.close(self.domid, port);
        }
        st.handles.remove(&self.chan);
    }
}
