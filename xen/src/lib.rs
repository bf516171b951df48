//! Thin, safe layer over Linux's Xen devices, and a simulated Xen for machines without one.
//!
//! * [`gntdev`]: `/dev/xen/gntdev` (map foreign grants, grant copy) behind the [`GrantTable`] trait.
//! * [`evtchn`]: `/dev/xen/evtchn` (interdomain event channels) behind the [`EventChannel`] trait.
//! * [`xs_wire`]: the xenstore wire format (pure encode/decode, never panics on hostile bytes).
//! * [`xenstore`]: a synchronous xenstore client with watches and transactions.
//! * [`sim`]: a simulated Xen (domains, grant tables, event channels, xenstored) that the same
//!   traits and the same [`xenstore::Xenstore`] client run against.

use std::os::fd::AsFd;

pub mod evtchn;
pub mod gntdev;
pub mod hostnet;
pub mod sim;
mod sys;
pub mod xenstore;
mod xs_errno;
pub mod xs_wire;

pub use sys::layout;
pub use xs_errno::XsErrno;

/// A Xen domain id (`domid_t`).
pub type DomId = u16;
/// A grant reference (`grant_ref_t`).
pub type GrantRef = u32;
/// An event channel port (`evtchn_port_t`).
pub type Port = u32;
/// The Xen page size: grants are whole pages.
pub const PAGE_SIZE: usize = 4096;
/// The largest number of copy segments handed to the kernel (or the simulator) in one batch;
/// [`GrantTable::copy`] splits longer lists into batches of at most this many segments.
pub const COPY_BATCH_MAX: usize = 256;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a device or socket.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A system call (ioctl, mmap, ...) failed.
    #[error("system call failed: {0}")]
    Sys(#[from] nix::errno::Errno),
    /// xenstored answered with an error such as [`XsErrno::Enoent`] or [`XsErrno::Eagain`].
    #[error("xenstore error {0}")]
    Xenstore(XsErrno),
    /// The peer broke the protocol (malformed, truncated or unexpected message).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A caller-supplied argument is invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A bounded wait ran out.
    #[error("timed out")]
    Timeout,
    /// The connection (or device) was closed.
    #[error("connection closed")]
    Closed,
    /// A transaction kept conflicting (EAGAIN) for this many attempts.
    #[error("transaction still conflicting after {0} attempts")]
    TooManyRetries(u32),
    /// A grant operation failed with this Xen status.
    #[error("grant operation failed: {0:?}")]
    Grant(GrantStatus),
    /// The resource is in use (e.g. ending a grant that is still mapped).
    #[error("busy: {0}")]
    Busy(String),
}

impl Error {
    /// The xenstore error if this is a xenstore error reply.
    pub fn xenstore_errno(&self) -> Option<XsErrno> {
        match self {
            Error::Xenstore(e) => Some(*e),
            _ => None,
        }
    }

    /// True if xenstored reported that the node does not exist ([`XsErrno::Enoent`]).
    pub fn is_enoent(&self) -> bool {
        self.xenstore_errno() == Some(XsErrno::Enoent)
    }
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Grant operation status (`GNTST_*` of Xen's `grant_table.h`).
#[repr(i16)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantStatus {
    /// Normal return.
    Okay = 0,
    /// General undefined error (also: grant not for this domain, write to a read-only grant).
    GeneralError = -1,
    /// Unrecognised or nonexistent domain.
    BadDomain = -2,
    /// Grant reference out of the granting domain's table.
    BadGntref = -3,
    /// Invalid mapping handle.
    BadHandle = -4,
    /// Invalid virtual address.
    BadVirtAddr = -5,
    /// Invalid device address.
    BadDevAddr = -6,
    /// No spare translation slot in the I/O MMU.
    NoDeviceSpace = -7,
    /// Permission denied.
    PermissionDenied = -8,
    /// Bad page.
    BadPage = -9,
    /// Copy arguments cross a page boundary.
    BadCopyArg = -10,
    /// Page address size too large.
    AddressTooBig = -11,
    /// Operation not done; try again.
    Eagain = -12,
}

impl GrantStatus {
    /// Converts a raw `GNTST_*` value; unknown values become [`GrantStatus::GeneralError`].
    pub fn from_raw(v: i16) -> GrantStatus {
        use GrantStatus::*;
        match v {
            0 => Okay,
            -2 => BadDomain,
            -3 => BadGntref,
            -4 => BadHandle,
            -5 => BadVirtAddr,
            -6 => BadDevAddr,
            -7 => NoDeviceSpace,
            -8 => PermissionDenied,
            -9 => BadPage,
            -10 => BadCopyArg,
            -11 => AddressTooBig,
            -12 => Eagain,
            _ => GeneralError,
        }
    }

    /// True for [`GrantStatus::Okay`].
    pub fn is_ok(self) -> bool {
        self == GrantStatus::Okay
    }
}

/// A byte range inside a page that another domain granted to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestBuf {
    /// The granting domain.
    pub domid: DomId,
    /// The grant reference in the granting domain's table.
    pub gref: GrantRef,
    /// Byte offset inside the granted page.
    pub offset: u16,
}

/// One grant-copy segment; its length is the length of the local slice, and the guest side
/// (offset + length) must stay within one page.
#[derive(Debug)]
pub enum CopySegment<'a> {
    /// Copy from a granted guest page into local memory.
    FromGuest {
        /// Guest source.
        src: GuestBuf,
        /// Local destination; its length is the copy length.
        dst: &'a mut [u8],
    },
    /// Copy local memory into a granted guest page (needs a writable grant).
    ToGuest {
        /// Local source; its length is the copy length.
        src: &'a [u8],
        /// Guest destination.
        dst: GuestBuf,
    },
}

impl CopySegment<'_> {
    /// The guest side of the segment.
    pub fn guest(&self) -> GuestBuf {
        match self {
            CopySegment::FromGuest { src, .. } => *src,
            CopySegment::ToGuest { dst, .. } => *dst,
        }
    }

    /// Number of bytes to copy.
    pub fn len(&self) -> usize {
        match self {
            CopySegment::FromGuest { dst, .. } => dst.len(),
            CopySegment::ToGuest { src, .. } => src.len(),
        }
    }

    /// True if the segment copies nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks what real Xen checks before copying: the guest range stays within one page.
    /// Returns `Some(BadCopyArg)` for a segment that must not be handed to the hypervisor.
    pub(crate) fn precheck(&self) -> Option<GrantStatus> {
        let g = self.guest();
        if usize::from(g.offset) + self.len() > PAGE_SIZE {
            Some(GrantStatus::BadCopyArg)
        } else {
            None
        }
    }
}

/// Shared driver of [`GrantTable::copy`]: clears `status` to one `Okay` per segment, marks
/// cross-page segments `BadCopyArg`, and hands the others to `batch` as index lists of at most
/// [`COPY_BATCH_MAX`]; `batch` copies them and writes their statuses.
pub(crate) fn run_copy(
    segs: &mut [CopySegment<'_>],
    status: &mut Vec<GrantStatus>,
    mut batch: impl FnMut(&mut [CopySegment<'_>], &[usize], &mut [GrantStatus]) -> Result<()>,
) -> Result<()> {
    status.clear();
    status.resize(segs.len(), GrantStatus::Okay);
    let mut valid = Vec::with_capacity(segs.len());
    for (i, seg) in segs.iter().enumerate() {
        match seg.precheck() {
            Some(bad) => status[i] = bad,
            None => valid.push(i),
        }
    }
    for chunk in valid.chunks(COPY_BATCH_MAX) {
        batch(segs, chunk, status)?;
    }
    Ok(())
}

/// What happens when a grant mapping goes away (`IOCTL_GNTDEV_SET_UNMAP_NOTIFY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UnmapNotify {
    /// Byte offset inside the mapping that is set to zero on unmap.
    pub clear_byte: Option<usize>,
    /// Local event channel port that is notified on unmap.
    pub send_event: Option<Port>,
}

/// A set of foreign pages mapped contiguously into our address space; unmapped on drop.
pub trait GrantMapping {
    /// The first byte of the mapping.
    fn as_ptr(&self) -> *mut u8;
    /// Length of the mapping in bytes (a multiple of [`PAGE_SIZE`]).
    fn len(&self) -> usize;
    /// True for a zero-length mapping (never produced by `map`).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Arranges for a byte to be cleared and/or an event to be sent when the mapping is torn
    /// down (also if this process dies), so the granting domain learns that we are gone.
    /// The default refuses: an implementation that cannot notify must say so.
    fn set_unmap_notify(&self, notify: UnmapNotify) -> Result<()> {
        let _ = notify;
        Err(Error::InvalidArgument("unmap notify not supported".into()))
    }
}

/// Access to other domains' grants: the real `/dev/xen/gntdev` or the simulator.
pub trait GrantTable {
    /// The RAII mapping type.
    type Mapping: GrantMapping;
    /// Maps the grant references `refs` of domain `domid` contiguously, writable or read-only.
    fn map(&self, domid: DomId, refs: &[GrantRef], writable: bool) -> Result<Self::Mapping>;
    /// Copies every segment; `status` is cleared, then receives one status per segment.
    /// A segment crossing a page gets [`GrantStatus::BadCopyArg`] without reaching the
    /// hypervisor; any number of segments is accepted (split into [`COPY_BATCH_MAX`] batches).
    /// `Err` only for a failure of the whole call (device error), never for a bad segment.
    fn copy(&self, segs: &mut [CopySegment<'_>], status: &mut Vec<GrantStatus>) -> Result<()>;
    /// Number of copy batches (ioctls, or simulated hypercalls) issued so far; for benchmarks.
    /// The default (for implementations that do not count) is 0.
    fn copy_calls(&self) -> u64 {
        0
    }
}

/// Interdomain event channels: the real `/dev/xen/evtchn` or the simulator.
/// The fd is readable when [`EventChannel::pending`] has ports to return.
pub trait EventChannel: AsFd {
    /// Binds a local port to `remote_port` of domain `remote` (which must have allocated it as
    /// unbound for us). Like real Xen, the new local port starts with an event pending.
    fn bind_interdomain(&mut self, remote: DomId, remote_port: Port) -> Result<Port>;
    /// Closes a local port bound through this handle.
    fn unbind(&mut self, port: Port) -> Result<()>;
    /// Sends an event to the peer of local `port`.
    fn notify(&self, port: Port) -> Result<()>;
    /// Appends the ports that fired (nonblocking; appends nothing if none). Each returned port
    /// stays masked until [`EventChannel::unmask`] is called for it.
    fn pending(&mut self, out: &mut Vec<Port>) -> Result<()>;
    /// Re-enables delivery for `port`; an event that arrived while masked is delivered now.
    fn unmask(&mut self, port: Port) -> Result<()>;
}
