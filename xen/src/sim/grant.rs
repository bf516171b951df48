//! Simulated grant tables: the guests' entries, and the backend's [`SimGrantTable`] device.
//!
//! Status codes follow Xen's `grant_table.c`: an unknown domain is `BadDomain`, a reference
//! beyond the table is `BadGntref`, and an entry that is unused, granted to another domain, or
//! read-only when write access is asked is `GeneralError` (Xen's "Bad flags or dom" and
//! "Attempt to write-pin a r/o grant entry"); a copy leaving its page is `BadCopyArg`.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroUsize;
use std::os::fd::AsFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use nix::sys::mman::{mmap, mmap_anonymous, munmap, MapFlags, ProtFlags};

use super::{lock, Memory, SimInner};
use crate::{
    run_copy, CopySegment, DomId, Error, GrantMapping, GrantRef, GrantStatus, GrantTable, Result,
    UnmapNotify, PAGE_SIZE,
};

/// Entries in each simulated grant table (32 frames of 512 v1 entries, Xen's default maximum).
pub const SIM_GRANT_ENTRIES: GrantRef = 32 * 512;
/// The first references are reserved for the toolstack (`GNTTAB_NR_RESERVED_ENTRIES`).
const FIRST_FREE_REF: GrantRef = 8;

#[derive(Debug)]
struct Entry {
    frame: u64,
    grantee: DomId,
    readonly: bool,
    /// Live mappings of this entry.
    maps: u32,
}

/// Every domain's grant table.
#[derive(Default)]
pub(crate) struct Grants {
    tables: HashMap<DomId, BTreeMap<GrantRef, Entry>>,
}

impl Grants {
    pub(crate) fn grant(
        &mut self,
        domid: DomId,
        frame: u64,
        to: DomId,
        readonly: bool,
    ) -> Result<GrantRef> {
        let table = self.tables.entry(domid).or_default();
        let mut gref = FIRST_FREE_REF;
        for &used in table.keys() {
            if used == gref {
                gref += 1;
            } else if used > gref {
                break;
            }
        }
        if gref >= SIM_GRANT_ENTRIES {
            return Err(Error::Grant(GrantStatus::NoDeviceSpace));
        }
        table.insert(
            gref,
            Entry {
                frame,
                grantee: to,
                readonly,
                maps: 0,
            },
        );
        Ok(gref)
    }

    pub(crate) fn end(&mut self, domid: DomId, gref: GrantRef) -> Result<()> {
        let table = self.tables.entry(domid).or_default();
        match table.get(&gref) {
            None => Err(Error::InvalidArgument(format!(
                "grant {gref} of domain {domid} is not in use"
            ))),
            Some(e) if e.maps > 0 => Err(Error::Busy(format!("grant {gref} is still mapped"))),
            Some(_) => {
                table.remove(&gref);
                Ok(())
            }
        }
    }

    /// Checks that `mapper` may use `gref` of `granter` (for writing if `write`); its frame.
    fn check(
        &mut self,
        inner: &SimInner,
        mapper: DomId,
        granter: DomId,
        gref: GrantRef,
        write: bool,
    ) -> std::result::Result<&mut Entry, GrantStatus> {
        if !inner.domain_exists(granter) {
            return Err(GrantStatus::BadDomain);
        }
        if gref >= SIM_GRANT_ENTRIES {
            return Err(GrantStatus::BadGntref);
        }
        match self.tables.entry(granter).or_default().get_mut(&gref) {
            Some(e) if e.grantee == mapper && !(write && e.readonly) => Ok(e),
            _ => Err(GrantStatus::GeneralError),
        }
    }
}

/// Domain `domid`'s grant device in the simulator (its `/dev/xen/gntdev`).
pub struct SimGrantTable {
    inner: Arc<SimInner>,
    domid: DomId,
    copy_calls: AtomicU64,
}

impl SimGrantTable {
    pub(crate) fn new(inner: Arc<SimInner>, domid: DomId) -> SimGrantTable {
        SimGrantTable {
            inner,
            domid,
            copy_calls: AtomicU64::new(0),
        }
    }

    /// The domain this device acts as.
    pub fn domid(&self) -> DomId {
        self.domid
    }

    fn copy_one(&self, grants: &mut Grants, seg: &mut CopySegment<'_>) -> GrantStatus {
        let g = seg.guest();
        let write = matches!(seg, CopySegment::ToGuest { .. });
        let frame = match grants.check(&self.inner, self.domid, g.domid, g.gref, write) {
            Ok(e) => e.frame,
            Err(st) => return st,
        };
        let mem: &Memory = &self.inner.mem;
        let r = match seg {
            CopySegment::FromGuest { dst, .. } => mem.read(frame, usize::from(g.offset), dst),
            CopySegment::ToGuest { src, .. } => mem.write(frame, usize::from(g.offset), src),
        };
        match r {
            Ok(()) => GrantStatus::Okay,
            Err(_) => GrantStatus::GeneralError,
        }
    }
}

impl GrantTable for SimGrantTable {
    type Mapping = SimMapping;

    fn map(&self, domid: DomId, refs: &[GrantRef], writable: bool) -> Result<SimMapping> {
        let len = refs
            .len()
            .checked_mul(PAGE_SIZE)
            .and_then(NonZeroUsize::new);
        let len = len.ok_or_else(|| Error::InvalidArgument("no grant references to map".into()))?;
        let mut frames = Vec::with_capacity(refs.len());
        {
            let mut grants = lock(&self.inner.grants);
            for &gref in refs {
                match grants.check(&self.inner, self.domid, domid, gref, writable) {
                    Ok(e) => frames.push(e.frame),
                    Err(st) => return Err(Error::Grant(st)),
                }
            }
            for &gref in refs {
                if let Ok(e) = grants.check(&self.inner, self.domid, domid, gref, writable) {
                    e.maps += 1;
                }
            }
        }
        let mapping = SimMapping {
            inner: self.inner.clone(),
            mapper: self.domid,
            granter: domid,
            refs: refs.to_vec(),
            ptr: None,
            len: len.get(),
            writable,
            notify: Mutex::new(UnmapNotify::default()),
        };
        mapping.place(len, &frames)
    }

    fn copy(&self, segs: &mut [CopySegment<'_>], status: &mut Vec<GrantStatus>) -> Result<()> {
        run_copy(segs, status, |segs, batch, status| {
            self.copy_calls.fetch_add(1, Ordering::Relaxed);
            let mut grants = lock(&self.inner.grants);
            for &i in batch {
                status[i] = self.copy_one(&mut grants, &mut segs[i]);
            }
            Ok(())
        })
    }

    fn copy_calls(&self) -> u64 {
        self.copy_calls.load(Ordering::Relaxed)
    }
}

/// Grant pages of another domain mapped contiguously by the simulator; unmapped on drop
/// (after the unmap notification's byte clear, before its event, as Linux does).
pub struct SimMapping {
    inner: Arc<SimInner>,
    mapper: DomId,
    granter: DomId,
    refs: Vec<GrantRef>,
    ptr: Option<NonNull<libc::c_void>>,
    len: usize,
    writable: bool,
    notify: Mutex<UnmapNotify>,
}

// SAFETY: the mapping is shared memory accessed only through raw pointers by its users.
unsafe impl Send for SimMapping {}
// SAFETY: as above; the only interior state (`notify`) is behind a mutex.
unsafe impl Sync for SimMapping {}

impl SimMapping {
    /// Reserves address space and maps each frame of the memfd into it, in order.
    fn place(mut self, len: NonZeroUsize, frames: &[u64]) -> Result<SimMapping> {
        // SAFETY: a fresh private reservation chosen by the kernel; nothing else uses it.
        let base =
            unsafe { mmap_anonymous(None, len, ProtFlags::PROT_NONE, MapFlags::MAP_PRIVATE)? };
        self.ptr = Some(base);
        let prot = if self.writable {
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE
        } else {
            ProtFlags::PROT_READ
        };
        let page = NonZeroUsize::new(PAGE_SIZE).ok_or(Error::Sys(nix::errno::Errno::EINVAL))?;
        for (i, &frame) in frames.iter().enumerate() {
            let at = NonZeroUsize::new(base.as_ptr() as usize + i * PAGE_SIZE);
            // SAFETY: MAP_FIXED replaces page i of our own reservation (inside `len`) with a
            // page of the memfd, which is long enough to hold `frame`.
            unsafe {
                mmap(
                    at,
                    page,
                    prot,
                    MapFlags::MAP_SHARED | MapFlags::MAP_FIXED,
                    self.inner.mem.fd.as_fd(),
                    Memory::offset(frame, 0)?,
                )?
            };
        }
        Ok(self)
    }

    /// The domain whose grants these are.
    pub fn granter(&self) -> DomId {
        self.granter
    }
}

impl GrantMapping for SimMapping {
    fn as_ptr(&self) -> *mut u8 {
        self.ptr.map_or(std::ptr::null_mut(), |p| p.as_ptr().cast())
    }

    fn len(&self) -> usize {
        self.len
    }

    fn set_unmap_notify(&self, notify: UnmapNotify) -> Result<()> {
        if let Some(off) = notify.clear_byte {
            if off >= self.len || !self.writable {
                return Err(Error::Sys(nix::errno::Errno::EINVAL));
            }
        }
        *lock(&self.notify) = notify;
        Ok(())
    }
}

impl Drop for SimMapping {
    fn drop(&mut self) {
        let notify = *lock(&self.notify);
        if let Some(base) = self.ptr {
            if let Some(off) = notify.clear_byte {
                // SAFETY: `off < len` and the mapping is writable (set_unmap_notify checked).
                unsafe { base.as_ptr().cast::<u8>().add(off).write_volatile(0) };
            }
            // SAFETY: `base`/`len` is the reservation made in `place`, unmapped only here.
            if let Err(e) = unsafe { munmap(base, self.len) } {
                log::warn!("sim: munmap of a grant mapping failed: {e}");
            }
        }
        let mut grants = lock(&self.inner.grants);
        for &gref in &self.refs {
            if let Ok(e) = grants.check(&self.inner, self.mapper, self.granter, gref, false) {
                e.maps = e.maps.saturating_sub(1);
            }
        }
        drop(grants);
        if let Some(port) = notify.send_event {
            lock(&self.inner.evtchn).notify_from(self.mapper, port);
        }
    }
}
