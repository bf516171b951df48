//! `/dev/xen/evtchn`: interdomain event channels via raw ioctls; the fd is pollable.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::sys;
use crate::{DomId, Error, EventChannel, Port, Result};

/// The device path.
pub const EVTCHN_PATH: &str = "/dev/xen/evtchn";

/// An open `/dev/xen/evtchn` (nonblocking). Closing it unbinds every port bound through it.
#[derive(Debug)]
pub struct Evtchn {
    dev: File,
}

impl Evtchn {
    /// Opens [`EVTCHN_PATH`].
    pub fn open() -> Result<Evtchn> {
        Evtchn::open_path(EVTCHN_PATH)
    }

    /// Opens an evtchn device at `path`.
    pub fn open_path(path: impl AsRef<Path>) -> Result<Evtchn> {
        let dev = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(path)?;
        Ok(Evtchn { dev })
    }

    /// Allocates a local port that domain `remote` may bind to (the frontend side;
    /// `IOCTL_EVTCHN_BIND_UNBOUND_PORT`, named like [`crate::sim::SimEventChannel::alloc_unbound`]).
    pub fn alloc_unbound(&mut self, remote: DomId) -> Result<Port> {
        let arg = sys::EvtchnBindUnboundPort {
            remote_domain: remote.into(),
        };
        // SAFETY: `arg` is a valid `ioctl_evtchn_bind_unbound_port` that the kernel only reads.
        let port = unsafe { sys::evtchn_bind_unbound_port(self.dev.as_raw_fd(), &arg) }?;
        port_from(port)
    }
}

fn port_from(rc: libc::c_int) -> Result<Port> {
    Port::try_from(rc).map_err(|_| Error::Protocol(format!("kernel returned port {rc}")))
}

impl EventChannel for Evtchn {
    fn bind_interdomain(&mut self, remote: DomId, remote_port: Port) -> Result<Port> {
        let arg = sys::EvtchnBindInterdomain {
            remote_domain: remote.into(),
            remote_port,
        };
        // SAFETY: `arg` is a valid `ioctl_evtchn_bind_interdomain` that the kernel only reads;
        // the return value is the new local port.
        let port = unsafe { sys::evtchn_bind_interdomain(self.dev.as_raw_fd(), &arg) }?;
        port_from(port)
    }

    fn unbind(&mut self, port: Port) -> Result<()> {
        let arg = sys::EvtchnPort { port };
        // SAFETY: `arg` is a valid `ioctl_evtchn_unbind` that the kernel only reads.
        unsafe { sys::evtchn_unbind(self.dev.as_raw_fd(), &arg) }?;
        Ok(())
    }

    fn notify(&self, port: Port) -> Result<()> {
        let arg = sys::EvtchnPort { port };
        // SAFETY: `arg` is a valid `ioctl_evtchn_notify` that the kernel only reads.
        unsafe { sys::evtchn_notify(self.dev.as_raw_fd(), &arg) }?;
        Ok(())
    }

    fn pending(&mut self, out: &mut Vec<Port>) -> Result<()> {
        let mut buf = [0u8; 4 * 64];
        loop {
            let n = match self.dev.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            out.extend(
                buf[..n]
                    .chunks_exact(4)
                    .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]])),
            );
            if n < buf.len() {
                return Ok(());
            }
        }
    }

    fn unmask(&mut self, port: Port) -> Result<()> {
        let n = self.dev.write(&port.to_ne_bytes())?;
        if n == 4 {
            Ok(())
        } else {
            Err(Error::Protocol(format!("short unmask write ({n} bytes)")))
        }
    }
}

impl AsFd for Evtchn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.dev.as_fd()
    }
}

impl AsRawFd for Evtchn {
    fn as_raw_fd(&self) -> RawFd {
        self.dev.as_raw_fd()
    }
}
