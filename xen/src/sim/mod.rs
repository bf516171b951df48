//! A simulated Xen host, so that backends run unchanged on machines without Xen.
//!
//! * Domains: dom0 exists from the start; [`SimXen::create_domain`] adds guests.
//! * Memory: guest pages are pages of one shared memfd, so a backend's grant mapping aliases the
//!   guest's page for real (writes through one are visible through the other).
//! * Grant tables: a guest grants pages ([`SimXen::grant_access`]); backends map or copy them
//!   through [`SimGrantTable`], which implements the same [`crate::GrantTable`] trait as
//!   [`crate::gntdev::Gntdev`] and reports real Xen's `GNTST_*` statuses.
//! * Event channels: [`SimEventChannel`] implements [`crate::EventChannel`] with the Linux
//!   evtchn device's semantics (a fired port is masked until unmasked; the fd is an eventfd).
//! * xenstored: an in-memory daemon on unix sockets, one per domain
//!   ([`SimXen::xenstore_socket`]); the ordinary [`Xenstore`] client talks to it.
//! * [`SimHost`]: the host layout the tests share (dom0's xenstore and a driver domain).

mod evtchn;
mod grant;
mod host;
mod xenstored;

use std::collections::BTreeSet;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};

use crate::xenstore::Xenstore;
use crate::{DomId, Error, GrantRef, Result, PAGE_SIZE};

pub use evtchn::SimEventChannel;
pub use grant::{SimGrantTable, SimMapping, SIM_GRANT_ENTRIES};
pub use host::SimHost;

/// All simulated guest memory: one memfd, one page per frame number.
struct Memory {
    fd: OwnedFd,
    /// Next frame to hand out; frames are never reused, so a stale grant can never alias a
    /// newer page.
    next_frame: AtomicU64,
    /// Frames the memfd currently holds.
    size_frames: Mutex<u64>,
}

impl Memory {
    fn new() -> Result<Memory> {
        let fd = memfd_create("xen-sim-memory", MFdFlags::MFD_CLOEXEC)?;
        Ok(Memory {
            fd,
            next_frame: AtomicU64::new(0),
            size_frames: Mutex::new(0),
        })
    }

    fn alloc_frame(&self) -> Result<u64> {
        let frame = self.next_frame.fetch_add(1, Ordering::Relaxed);
        let mut size = self.size_frames.lock().unwrap_or_else(|p| p.into_inner());
        if frame >= *size {
            let want = (frame + 1).next_power_of_two().max(64);
            let bytes = i64::try_from(want * PAGE_SIZE as u64)
                .map_err(|_| Error::Sys(nix::errno::Errno::ENOMEM))?;
            nix::unistd::ftruncate(&self.fd, bytes)?;
            *size = want;
        }
        Ok(frame)
    }

    fn offset(frame: u64, within: usize) -> Result<i64> {
        i64::try_from(frame * PAGE_SIZE as u64 + within as u64)
            .map_err(|_| Error::Sys(nix::errno::Errno::EOVERFLOW))
    }

    /// Reads from a frame (bounds: `within + buf.len() <= PAGE_SIZE`, checked by callers).
    fn read(&self, frame: u64, within: usize, buf: &mut [u8]) -> Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let n = nix::sys::uio::pread(
                &self.fd,
                &mut buf[done..],
                Memory::offset(frame, within + done)?,
            )?;
            if n == 0 {
                return Err(Error::Sys(nix::errno::Errno::EIO));
            }
            done += n;
        }
        Ok(())
    }

    /// Writes into a frame (bounds checked by callers).
    fn write(&self, frame: u64, within: usize, data: &[u8]) -> Result<()> {
        let mut done = 0;
        while done < data.len() {
            done += nix::sys::uio::pwrite(
                &self.fd,
                &data[done..],
                Memory::offset(frame, within + done)?,
            )?;
        }
        Ok(())
    }
}

/// State shared by the simulator's handles.
pub(crate) struct SimInner {
    mem: Memory,
    domains: Mutex<BTreeSet<DomId>>,
    grants: Mutex<grant::Grants>,
    evtchn: Mutex<evtchn::EvtState>,
}

impl SimInner {
    fn domain_exists(&self, domid: DomId) -> bool {
        lock(&self.domains).contains(&domid)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A simulated Xen host. Dropping it stops its xenstored and removes its socket directory
/// (handles already given out keep working for grants and event channels).
pub struct SimXen {
    inner: Arc<SimInner>,
    xenstored: Mutex<xenstored::Xenstored>,
    next_domid: Mutex<DomId>,
}

static INSTANCE: AtomicU64 = AtomicU64::new(0);

impl SimXen {
    /// A host with only dom0, and its xenstored listening.
    pub fn new() -> Result<SimXen> {
        let n = INSTANCE.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("xen-sim-{}-{n}", std::process::id()));
        let inner = Arc::new(SimInner {
            mem: Memory::new()?,
            domains: Mutex::new(BTreeSet::new()),
            grants: Mutex::new(grant::Grants::default()),
            evtchn: Mutex::new(evtchn::EvtState::default()),
        });
        let sim = SimXen {
            inner,
            xenstored: Mutex::new(xenstored::Xenstored::new(dir)?),
            next_domid: Mutex::new(1),
        };
        sim.introduce(0)?;
        Ok(sim)
    }

    fn introduce(&self, domid: DomId) -> Result<()> {
        lock(&self.inner.domains).insert(domid);
        lock(&self.xenstored).add_domain(domid)
    }

    /// Creates a guest domain (ids count up from 1) with its xenstore home
    /// `/local/domain/<id>` (owned by dom0, readable by the guest; `data` writable by it).
    pub fn create_domain(&self) -> Result<DomId> {
        let domid = {
            let mut next = lock(&self.next_domid);
            let id = *next;
            *next = next
                .checked_add(1)
                .ok_or_else(|| Error::InvalidArgument("out of domain ids".into()))?;
            id
        };
        self.introduce(domid)?;
        Ok(domid)
    }

    /// Destroys guest `domid`: its xenstore home goes (watches fire, `@releaseDomain` fires),
    /// its xenstore connections are closed, its event channel ports are closed (peers'
    /// ports become unbound, as in Xen) and its grants can no longer be mapped or copied
    /// (`BadDomain`). Existing mappings stay valid until unmapped, as Xen keeps the pages.
    /// Domain ids are not reused.
    pub fn destroy_domain(&self, domid: DomId) -> Result<()> {
        if domid == 0 {
            return Err(Error::InvalidArgument("dom0 cannot be destroyed".into()));
        }
        if !lock(&self.inner.domains).remove(&domid) {
            return Err(Error::InvalidArgument(format!("no domain {domid}")));
        }
        lock(&self.inner.evtchn).destroy_domain(domid);
        lock(&self.xenstored).remove_domain(domid);
        Ok(())
    }

    /// The domains that exist, dom0 included.
    pub fn domains(&self) -> Vec<DomId> {
        lock(&self.inner.domains).iter().copied().collect()
    }

    /// The xenstored socket serving `domid` (connections there act as that domain).
    pub fn xenstore_socket(&self, domid: DomId) -> PathBuf {
        lock(&self.xenstored).socket_path(domid)
    }

    /// Connects the ordinary [`Xenstore`] client as domain `domid`.
    pub fn connect_xenstore(&self, domid: DomId) -> Result<Xenstore> {
        self.check_domain(domid)?;
        Xenstore::connect_unix(self.xenstore_socket(domid))
    }

    fn check_domain(&self, domid: DomId) -> Result<()> {
        if self.inner.domain_exists(domid) {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!("no domain {domid}")))
        }
    }

    /// The grant device of domain `domid` (what `/dev/xen/gntdev` is for a real backend).
    pub fn grant_table(&self, domid: DomId) -> Result<SimGrantTable> {
        self.check_domain(domid)?;
        Ok(SimGrantTable::new(self.inner.clone(), domid))
    }

    /// An event channel handle of domain `domid` (an open `/dev/xen/evtchn`).
    pub fn event_channel(&self, domid: DomId) -> Result<SimEventChannel> {
        self.check_domain(domid)?;
        SimEventChannel::new(self.inner.clone(), domid)
    }

    /// Guest side: allocates a zeroed page of domain `domid`'s memory.
    pub fn alloc_page(&self, domid: DomId) -> Result<GuestPage> {
        self.check_domain(domid)?;
        let frame = self.inner.mem.alloc_frame()?;
        // SAFETY: maps one page of our own memfd at a fresh address chosen by the kernel; the
        // file is at least (frame + 1) pages long (alloc_frame grew it).
        let ptr = unsafe {
            mmap(
                None,
                std::num::NonZeroUsize::new(PAGE_SIZE)
                    .ok_or(Error::Sys(nix::errno::Errno::EINVAL))?,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                self.inner.mem.fd.as_fd(),
                Memory::offset(frame, 0)?,
            )?
        };
        Ok(GuestPage {
            domid,
            frame,
            ptr,
            _inner: self.inner.clone(),
        })
    }

    /// Guest side: grants `page` (of domain `domid`) to domain `to`; returns the grant
    /// reference the guest would publish in xenstore.
    pub fn grant_access(
        &self,
        domid: DomId,
        page: &GuestPage,
        to: DomId,
        readonly: bool,
    ) -> Result<GrantRef> {
        if page.domid != domid {
            return Err(Error::InvalidArgument(format!(
                "page belongs to domain {}",
                page.domid
            )));
        }
        lock(&self.inner.grants).grant(domid, page.frame, to, readonly)
    }

    /// Guest side: revokes a grant. Like `gnttab_end_foreign_access_ref`, this fails
    /// ([`Error::Busy`]) while the grantee still has it mapped.
    pub fn end_access(&self, domid: DomId, gref: GrantRef) -> Result<()> {
        lock(&self.inner.grants).end(domid, gref)
    }
}

/// One page of a simulated guest's memory, mapped in the guest's view; unmapped on drop.
/// The page itself lives on (like a real guest's frame) so outstanding grants stay safe.
pub struct GuestPage {
    domid: DomId,
    frame: u64,
    ptr: std::ptr::NonNull<libc::c_void>,
    _inner: Arc<SimInner>,
}

// SAFETY: the page is plain shared memory; all access goes through raw-pointer copies.
unsafe impl Send for GuestPage {}
// SAFETY: as above; no method hands out references into the page.
unsafe impl Sync for GuestPage {}

impl GuestPage {
    /// The owning domain.
    pub fn domid(&self) -> DomId {
        self.domid
    }

    /// The guest's pointer to the page (shared memory: other mappings may change it).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr().cast()
    }

    fn check(offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= PAGE_SIZE => Ok(()),
            _ => Err(Error::InvalidArgument(format!(
                "{len} bytes at {offset} leave the page"
            ))),
        }
    }

    /// Copies bytes out of the page.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        GuestPage::check(offset, buf.len())?;
        // SAFETY: the range is inside our live one-page mapping (checked above); the source
        // cannot overlap `buf`, which is ordinary process memory.
        unsafe {
            std::ptr::copy_nonoverlapping(self.as_ptr().add(offset), buf.as_mut_ptr(), buf.len())
        };
        Ok(())
    }

    /// Copies bytes into the page.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<()> {
        GuestPage::check(offset, data.len())?;
        // SAFETY: as in `read`, with the roles swapped.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.as_ptr().add(offset), data.len())
        };
        Ok(())
    }
}

impl Drop for GuestPage {
    fn drop(&mut self) {
        // SAFETY: `ptr` is the one-page mapping made in `alloc_page`, unmapped only here.
        if let Err(e) = unsafe { munmap(self.ptr, PAGE_SIZE) } {
            log::warn!("sim: munmap of a guest page failed: {e}");
        }
    }
}
