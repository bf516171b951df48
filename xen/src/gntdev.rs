//! `/dev/xen/gntdev`: mapping other domains' grants and grant copy, via raw ioctls.

use std::fs::OpenOptions;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};

use crate::sys::{self, GntdevCopyPtr, GntdevForeign, GntdevGrantCopySegment};
use crate::{
    run_copy, CopySegment, DomId, Error, GrantMapping, GrantRef, GrantStatus, GrantTable, Result,
    UnmapNotify, PAGE_SIZE,
};

/// The device path.
pub const GNTDEV_PATH: &str = "/dev/xen/gntdev";

/// An open `/dev/xen/gntdev`.
#[derive(Debug)]
pub struct Gntdev {
    fd: Arc<OwnedFd>,
    copy_calls: AtomicU64,
}

impl Gntdev {
    /// Opens [`GNTDEV_PATH`].
    pub fn open() -> Result<Gntdev> {
        Gntdev::open_path(GNTDEV_PATH)
    }

    /// Opens a gntdev device at `path`.
    pub fn open_path(path: impl AsRef<Path>) -> Result<Gntdev> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)?;
        Ok(Gntdev {
            fd: Arc::new(OwnedFd::from(f)),
            copy_calls: AtomicU64::new(0),
        })
    }

    fn unmap_refs(fd: &OwnedFd, index: u64, count: u32) -> Result<()> {
        let arg = sys::GntdevUnmapGrantRef {
            index,
            count,
            pad: 0,
        };
        // SAFETY: `arg` is a valid `ioctl_gntdev_unmap_grant_ref` that the kernel only reads.
        unsafe { sys::gntdev_unmap_grant_ref(fd.as_raw_fd(), &arg) }?;
        Ok(())
    }
}

impl GrantTable for Gntdev {
    type Mapping = GntdevMapping;

    fn map(&self, domid: DomId, refs: &[GrantRef], writable: bool) -> Result<GntdevMapping> {
        let count = u32::try_from(refs.len())
            .map_err(|_| Error::InvalidArgument("too many refs".into()))?;
        let len = refs
            .len()
            .checked_mul(PAGE_SIZE)
            .and_then(NonZeroUsize::new);
        let len = len.ok_or_else(|| Error::InvalidArgument("no grant references to map".into()))?;
        let mut buf = map_request(domid, refs, count);
        let req = buf.as_mut_ptr().cast::<sys::GntdevMapGrantRef>();
        // SAFETY: `buf` holds a complete header plus `count` refs (at least the one the C
        // struct declares), is 8-byte aligned, and lives across the call; the kernel reads the
        // refs and writes `index`.
        unsafe { sys::gntdev_map_grant_ref(self.fd.as_raw_fd(), req) }?;
        // SAFETY: `req` points into `buf`, which the kernel has finished with.
        let index = unsafe { (*req).index };
        let prot = if writable {
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE
        } else {
            ProtFlags::PROT_READ
        };
        let offset = i64::try_from(index).map_err(|_| Error::Sys(nix::errno::Errno::EOVERFLOW))?;
        // SAFETY: a fresh shared mapping of the gntdev fd at the offset the kernel assigned to
        // exactly `count` pages.
        let mapped = unsafe {
            mmap(
                None,
                len,
                prot,
                MapFlags::MAP_SHARED,
                self.fd.as_fd(),
                offset,
            )
        };
        match mapped {
            Ok(ptr) => Ok(GntdevMapping {
                fd: self.fd.clone(),
                ptr,
                len: len.get(),
                index,
                count,
            }),
            Err(e) => {
                let _ = Gntdev::unmap_refs(&self.fd, index, count);
                Err(e.into())
            }
        }
    }

    fn copy(&self, segs: &mut [CopySegment<'_>], status: &mut Vec<GrantStatus>) -> Result<()> {
        run_copy(segs, status, |segs, batch, status| {
            let mut raw: Vec<GntdevGrantCopySegment> =
                batch.iter().map(|&i| raw_segment(&mut segs[i])).collect();
            let mut arg = sys::GntdevGrantCopy {
                count: u32::try_from(raw.len())
                    .map_err(|_| Error::InvalidArgument("batch too big".into()))?,
                segments: raw.as_mut_ptr(),
            };
            self.copy_calls.fetch_add(1, Ordering::Relaxed);
            // SAFETY: `arg` points to `count` initialised segments whose local pointers are the
            // caller's live slices (borrowed mutably for `dst`), each within bounds of its own
            // length; the kernel writes only the status fields and the `dst` bytes.
            unsafe { sys::gntdev_grant_copy(self.fd.as_raw_fd(), &mut arg) }?;
            for (r, &i) in raw.iter().zip(batch) {
                status[i] = GrantStatus::from_raw(r.status);
            }
            Ok(())
        })
    }

    fn copy_calls(&self) -> u64 {
        self.copy_calls.load(Ordering::Relaxed)
    }
}

/// An `ioctl_gntdev_map_grant_ref` request for `refs`: the header (count, pad, index) then
/// `count` (domid, ref) pairs, the first of them inside the C struct. Built in u64 words so the
/// alignment is right; at least as long as the C struct.
fn map_request(domid: DomId, refs: &[GrantRef], count: u32) -> Vec<u64> {
    let mut buf = vec![0u64; (2 + refs.len()).max(3)];
    // Word 0 is `count` then `pad` (0); both little-endian halves of one u64 on x86 and Arm.
    buf[0] = u64::from(count);
    for (i, &gref) in refs.iter().enumerate() {
        buf[2 + i] = u64::from(domid) | (u64::from(gref) << 32);
    }
    buf
}

/// The kernel's form of one (prechecked, hence page-bounded) segment.
fn raw_segment(seg: &mut CopySegment<'_>) -> GntdevGrantCopySegment {
    let foreign = |g: crate::GuestBuf| GntdevCopyPtr {
        foreign: GntdevForeign {
            gref: g.gref,
            offset: g.offset,
            domid: g.domid,
        },
    };
    // Prechecked: offset + len <= PAGE_SIZE, so len fits in u16.
    let len = seg.len() as u16;
    match seg {
        CopySegment::FromGuest { src, dst } => GntdevGrantCopySegment {
            source: foreign(*src),
            dest: GntdevCopyPtr {
                virt: dst.as_mut_ptr().cast(),
            },
            len,
            flags: sys::GNTCOPY_SOURCE_GREF,
            status: 0,
        },
        CopySegment::ToGuest { src, dst } => GntdevGrantCopySegment {
            source: GntdevCopyPtr {
                virt: src.as_ptr().cast_mut().cast(),
            },
            dest: foreign(*dst),
            len,
            flags: sys::GNTCOPY_DEST_GREF,
            status: 0,
        },
    }
}

/// Foreign pages mapped through gntdev; `munmap` then `IOCTL_GNTDEV_UNMAP_GRANT_REF` on drop.
#[derive(Debug)]
pub struct GntdevMapping {
    fd: Arc<OwnedFd>,
    ptr: NonNull<libc::c_void>,
    len: usize,
    index: u64,
    count: u32,
}

// SAFETY: the mapping is shared memory reached only through raw pointers by its users; the fd
// is reference counted.
unsafe impl Send for GntdevMapping {}
// SAFETY: as above; the type has no interior mutability of its own.
unsafe impl Sync for GntdevMapping {}

impl GrantMapping for GntdevMapping {
    fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr().cast()
    }

    fn len(&self) -> usize {
        self.len
    }

    fn set_unmap_notify(&self, notify: UnmapNotify) -> Result<()> {
        let mut arg = sys::GntdevUnmapNotify {
            index: self.index,
            action: 0,
            event_channel_port: 0,
        };
        if let Some(off) = notify.clear_byte {
            if off >= self.len {
                return Err(Error::InvalidArgument(format!(
                    "clear byte {off} outside the mapping"
                )));
            }
            arg.index += off as u64;
            arg.action |= sys::UNMAP_NOTIFY_CLEAR_BYTE;
        }
        if let Some(port) = notify.send_event {
            arg.action |= sys::UNMAP_NOTIFY_SEND_EVENT;
            arg.event_channel_port = port;
        }
        // SAFETY: `arg` is a valid `ioctl_gntdev_unmap_notify` that the kernel only reads.
        unsafe { sys::gntdev_set_unmap_notify(self.fd.as_raw_fd(), &arg) }?;
        Ok(())
    }
}

impl Drop for GntdevMapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` is the mapping made in `map`, unmapped only here.
        if let Err(e) = unsafe { munmap(self.ptr, self.len) } {
            log::warn!("gntdev: munmap failed: {e}");
        }
        if let Err(e) = Gntdev::unmap_refs(&self.fd, self.index, self.count) {
            log::warn!("gntdev: unmap grant ref failed: {e}");
        }
    }
}

impl AsRawFd for Gntdev {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GuestBuf;

    #[test]
    fn map_request_matches_the_c_layout() {
        let buf = map_request(7, &[10, 11], 2);
        // SAFETY: `buf` is at least as long as the C struct and 8-byte aligned.
        let req = unsafe { &*buf.as_ptr().cast::<sys::GntdevMapGrantRef>() };
        assert_eq!((req.count, req.pad, req.index), (2, 0, 0));
        assert_eq!((req.refs[0].domid, req.refs[0].gref), (7, 10));
        assert_eq!(buf[3], 7 | (11 << 32));
        assert_eq!(map_request(1, &[5], 1).len(), 3);
    }

    #[test]
    fn raw_segments_point_at_the_caller_buffers() {
        let mut dst = [0u8; 12];
        let dst_ptr = dst.as_mut_ptr();
        let g = GuestBuf {
            domid: 3,
            gref: 42,
            offset: 100,
        };
        let r = raw_segment(&mut CopySegment::FromGuest {
            src: g,
            dst: &mut dst,
        });
        assert_eq!(
            (r.len, r.flags, r.status),
            (12, sys::GNTCOPY_SOURCE_GREF, 0)
        );
        // SAFETY: reading the union members this segment kind sets.
        unsafe {
            assert_eq!(
                (
                    r.source.foreign.gref,
                    r.source.foreign.offset,
                    r.source.foreign.domid
                ),
                (42, 100, 3)
            );
            assert_eq!(r.dest.virt.cast::<u8>(), dst_ptr);
        }
        let src = *b"abc";
        let r = raw_segment(&mut CopySegment::ToGuest { src: &src, dst: g });
        assert_eq!((r.len, r.flags), (3, sys::GNTCOPY_DEST_GREF));
        // SAFETY: as above.
        unsafe {
            assert_eq!(r.source.virt.cast::<u8>().cast_const(), src.as_ptr());
            assert_eq!(r.dest.foreign.gref, 42);
        }
    }

    #[test]
    fn missing_devices_are_errors() {
        assert!(Gntdev::open_path("/nonexistent/gntdev").is_err());
        assert!(crate::evtchn::Evtchn::open_path("/nonexistent/evtchn").is_err());
    }
}
