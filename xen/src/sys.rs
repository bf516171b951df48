//! The raw kernel ABI: ioctl numbers and `#[repr(C)]` argument structs of `<xen/gntdev.h>` and
//! `<xen/evtchn.h>`, declared once here and wrapped by [`crate::gntdev`] and [`crate::evtchn`].

use std::mem::{offset_of, size_of};

// The request builders pack little-endian words; every Xen host (x86, Arm) is little-endian.
#[cfg(target_endian = "big")]
compile_error!("the xen crate assumes a little-endian host");

/// `_IOC(_IOC_NONE, ty, nr, size)`: the Xen device ioctls are declared with no direction bits.
const fn ioc_none(ty: u8, nr: u8, size: usize) -> libc::c_ulong {
    ((size as libc::c_ulong) << 16) | ((ty as libc::c_ulong) << 8) | nr as libc::c_ulong
}

/// `struct ioctl_gntdev_grant_ref`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GntdevGrantRef {
    pub domid: u32,
    pub gref: u32,
}

/// `struct ioctl_gntdev_map_grant_ref` with its one-element trailing array (the C declaration);
/// longer requests append further `GntdevGrantRef`s right after it.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GntdevMapGrantRef {
    pub count: u32,
    pub pad: u32,
    pub index: u64,
    pub refs: [GntdevGrantRef; 1],
}

/// `struct ioctl_gntdev_unmap_grant_ref`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GntdevUnmapGrantRef {
    pub index: u64,
    pub count: u32,
    pub pad: u32,
}

/// `struct ioctl_gntdev_unmap_notify`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GntdevUnmapNotify {
    pub index: u64,
    pub action: u32,
    pub event_channel_port: u32,
}

/// `UNMAP_NOTIFY_CLEAR_BYTE`.
pub(crate) const UNMAP_NOTIFY_CLEAR_BYTE: u32 = 0x1;
/// `UNMAP_NOTIFY_SEND_EVENT`.
pub(crate) const UNMAP_NOTIFY_SEND_EVENT: u32 = 0x2;

/// The `foreign` member of the source/dest union of `struct gntdev_grant_copy_segment`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GntdevForeign {
    pub gref: u32,
    pub offset: u16,
    pub domid: u16,
}

/// The source/dest union of `struct gntdev_grant_copy_segment`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) union GntdevCopyPtr {
    pub virt: *mut libc::c_void,
    pub foreign: GntdevForeign,
}

/// `struct gntdev_grant_copy_segment`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct GntdevGrantCopySegment {
    pub source: GntdevCopyPtr,
    pub dest: GntdevCopyPtr,
    pub len: u16,
    pub flags: u16,
    pub status: i16,
}

/// `GNTCOPY_source_gref`.
pub(crate) const GNTCOPY_SOURCE_GREF: u16 = 1 << 0;
/// `GNTCOPY_dest_gref`.
pub(crate) const GNTCOPY_DEST_GREF: u16 = 1 << 1;

/// `struct ioctl_gntdev_grant_copy`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct GntdevGrantCopy {
    pub count: libc::c_uint,
    pub segments: *mut GntdevGrantCopySegment,
}

/// `struct ioctl_evtchn_bind_interdomain`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EvtchnBindInterdomain {
    pub remote_domain: libc::c_uint,
    pub remote_port: libc::c_uint,
}

/// `struct ioctl_evtchn_bind_unbound_port`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EvtchnBindUnboundPort {
    pub remote_domain: libc::c_uint,
}

/// `struct ioctl_evtchn_unbind` and `struct ioctl_evtchn_notify` (both one port).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EvtchnPort {
    pub port: libc::c_uint,
}

pub(crate) const IOCTL_GNTDEV_MAP_GRANT_REF: libc::c_ulong =
    ioc_none(b'G', 0, size_of::<GntdevMapGrantRef>());
pub(crate) const IOCTL_GNTDEV_UNMAP_GRANT_REF: libc::c_ulong =
    ioc_none(b'G', 1, size_of::<GntdevUnmapGrantRef>());
pub(crate) const IOCTL_GNTDEV_SET_UNMAP_NOTIFY: libc::c_ulong =
    ioc_none(b'G', 7, size_of::<GntdevUnmapNotify>());
pub(crate) const IOCTL_GNTDEV_GRANT_COPY: libc::c_ulong =
    ioc_none(b'G', 8, size_of::<GntdevGrantCopy>());
pub(crate) const IOCTL_EVTCHN_BIND_INTERDOMAIN: libc::c_ulong =
    ioc_none(b'E', 1, size_of::<EvtchnBindInterdomain>());
pub(crate) const IOCTL_EVTCHN_BIND_UNBOUND_PORT: libc::c_ulong =
    ioc_none(b'E', 2, size_of::<EvtchnBindUnboundPort>());
pub(crate) const IOCTL_EVTCHN_UNBIND: libc::c_ulong = ioc_none(b'E', 3, size_of::<EvtchnPort>());
pub(crate) const IOCTL_EVTCHN_NOTIFY: libc::c_ulong = ioc_none(b'E', 4, size_of::<EvtchnPort>());

nix::ioctl_readwrite_bad!(
    gntdev_map_grant_ref,
    IOCTL_GNTDEV_MAP_GRANT_REF,
    GntdevMapGrantRef
);
nix::ioctl_write_ptr_bad!(
    gntdev_unmap_grant_ref,
    IOCTL_GNTDEV_UNMAP_GRANT_REF,
    GntdevUnmapGrantRef
);
nix::ioctl_write_ptr_bad!(
    gntdev_set_unmap_notify,
    IOCTL_GNTDEV_SET_UNMAP_NOTIFY,
    GntdevUnmapNotify
);
nix::ioctl_readwrite_bad!(gntdev_grant_copy, IOCTL_GNTDEV_GRANT_COPY, GntdevGrantCopy);
nix::ioctl_write_ptr_bad!(
    evtchn_bind_interdomain,
    IOCTL_EVTCHN_BIND_INTERDOMAIN,
    EvtchnBindInterdomain
);
nix::ioctl_write_ptr_bad!(
    evtchn_bind_unbound_port,
    IOCTL_EVTCHN_BIND_UNBOUND_PORT,
    EvtchnBindUnboundPort
);
nix::ioctl_write_ptr_bad!(evtchn_unbind, IOCTL_EVTCHN_UNBIND, EvtchnPort);
nix::ioctl_write_ptr_bad!(evtchn_notify, IOCTL_EVTCHN_NOTIFY, EvtchnPort);

/// The ABI values this crate compiled in, for checking against the C headers.
pub mod layout {
    use super::*;
    use crate::{xs_wire, GrantStatus};

    /// Every ioctl number, struct size, field offset and wire constant this crate relies on,
    /// named as the C probe of the layout test prints them (`name value`); negative C values
    /// appear as their 64-bit two's complement.
    // `c_ulong` is u64 only on 64-bit hosts: the casts are not all no-ops.
    #[allow(clippy::unnecessary_cast)]
    pub fn rust_values() -> Vec<(&'static str, u64)> {
        vec![
            (
                "IOCTL_GNTDEV_MAP_GRANT_REF",
                IOCTL_GNTDEV_MAP_GRANT_REF as u64,
            ),
            (
                "IOCTL_GNTDEV_UNMAP_GRANT_REF",
                IOCTL_GNTDEV_UNMAP_GRANT_REF as u64,
            ),
            (
                "IOCTL_GNTDEV_SET_UNMAP_NOTIFY",
                IOCTL_GNTDEV_SET_UNMAP_NOTIFY as u64,
            ),
            ("IOCTL_GNTDEV_GRANT_COPY", IOCTL_GNTDEV_GRANT_COPY as u64),
            (
                "IOCTL_EVTCHN_BIND_INTERDOMAIN",
                IOCTL_EVTCHN_BIND_INTERDOMAIN as u64,
            ),
            (
                "IOCTL_EVTCHN_BIND_UNBOUND_PORT",
                IOCTL_EVTCHN_BIND_UNBOUND_PORT as u64,
            ),
            ("IOCTL_EVTCHN_UNBIND", IOCTL_EVTCHN_UNBIND as u64),
            ("IOCTL_EVTCHN_NOTIFY", IOCTL_EVTCHN_NOTIFY as u64),
            ("UNMAP_NOTIFY_CLEAR_BYTE", UNMAP_NOTIFY_CLEAR_BYTE as u64),
            ("UNMAP_NOTIFY_SEND_EVENT", UNMAP_NOTIFY_SEND_EVENT as u64),
            ("GNTCOPY_source_gref", GNTCOPY_SOURCE_GREF as u64),
            ("GNTCOPY_dest_gref", GNTCOPY_DEST_GREF as u64),
            (
                "sizeof_ioctl_gntdev_grant_ref",
                size_of::<GntdevGrantRef>() as u64,
            ),
            (
                "offsetof_ioctl_gntdev_grant_ref_ref",
                offset_of!(GntdevGrantRef, gref) as u64,
            ),
            (
                "sizeof_ioctl_gntdev_map_grant_ref",
                size_of::<GntdevMapGrantRef>() as u64,
            ),
            (
                "offsetof_ioctl_gntdev_map_grant_ref_index",
                offset_of!(GntdevMapGrantRef, index) as u64,
            ),
            (
                "offsetof_ioctl_gntdev_map_grant_ref_refs",
                offset_of!(GntdevMapGrantRef, refs) as u64,
            ),
            (
                "sizeof_ioctl_gntdev_unmap_grant_ref",
                size_of::<GntdevUnmapGrantRef>() as u64,
            ),
            (
                "offsetof_ioctl_gntdev_unmap_grant_ref_count",
                offset_of!(GntdevUnmapGrantRef, count) as u64,
            ),
            (
                "sizeof_ioctl_gntdev_unmap_notify",
                size_of::<GntdevUnmapNotify>() as u64,
            ),
            (
                "offsetof_ioctl_gntdev_unmap_notify_action",
                offset_of!(GntdevUnmapNotify, action) as u64,
            ),
            (
                "offsetof_ioctl_gntdev_unmap_notify_event_channel_port",
                offset_of!(GntdevUnmapNotify, event_channel_port) as u64,
            ),
            (
                "sizeof_gntdev_grant_copy_segment",
                size_of::<GntdevGrantCopySegment>() as u64,
            ),
            (
                "offsetof_gntdev_grant_copy_segment_dest",
                offset_of!(GntdevGrantCopySegment, dest) as u64,
            ),
            (
                "offsetof_gntdev_grant_copy_segment_len",
                offset_of!(GntdevGrantCopySegment, len) as u64,
            ),
            (
                "offsetof_gntdev_grant_copy_segment_flags",
                offset_of!(GntdevGrantCopySegment, flags) as u64,
            ),
            (
                "offsetof_gntdev_grant_copy_segment_status",
                offset_of!(GntdevGrantCopySegment, status) as u64,
            ),
            (
                "offsetof_foreign_offset",
                offset_of!(GntdevForeign, offset) as u64,
            ),
            (
                "offsetof_foreign_domid",
                offset_of!(GntdevForeign, domid) as u64,
            ),
            (
                "sizeof_ioctl_gntdev_grant_copy",
                size_of::<GntdevGrantCopy>() as u64,
            ),
            (
                "offsetof_ioctl_gntdev_grant_copy_segments",
                offset_of!(GntdevGrantCopy, segments) as u64,
            ),
            (
                "sizeof_ioctl_evtchn_bind_interdomain",
                size_of::<EvtchnBindInterdomain>() as u64,
            ),
            ("sizeof_ioctl_evtchn_notify", size_of::<EvtchnPort>() as u64),
            ("sizeof_xsd_sockmsg", xs_wire::HEADER_LEN as u64),
            ("GNTST_okay", GrantStatus::Okay as i16 as u64),
            (
                "GNTST_general_error",
                GrantStatus::GeneralError as i16 as u64,
            ),
            ("GNTST_bad_domain", GrantStatus::BadDomain as i16 as u64),
            ("GNTST_bad_gntref", GrantStatus::BadGntref as i16 as u64),
            ("GNTST_bad_handle", GrantStatus::BadHandle as i16 as u64),
            (
                "GNTST_bad_virt_addr",
                GrantStatus::BadVirtAddr as i16 as u64,
            ),
            ("GNTST_bad_dev_addr", GrantStatus::BadDevAddr as i16 as u64),
            (
                "GNTST_no_device_space",
                GrantStatus::NoDeviceSpace as i16 as u64,
            ),
            (
                "GNTST_permission_denied",
                GrantStatus::PermissionDenied as i16 as u64,
            ),
            ("GNTST_bad_page", GrantStatus::BadPage as i16 as u64),
            ("GNTST_bad_copy_arg", GrantStatus::BadCopyArg as i16 as u64),
            (
                "GNTST_address_too_big",
                GrantStatus::AddressTooBig as i16 as u64,
            ),
            ("GNTST_eagain", GrantStatus::Eagain as i16 as u64),
            ("XENSTORE_PAYLOAD_MAX", xs_wire::PAYLOAD_MAX as u64),
            ("XENSTORE_ABS_PATH_MAX", xs_wire::ABS_PATH_MAX as u64),
            ("XENSTORE_REL_PATH_MAX", xs_wire::REL_PATH_MAX as u64),
            ("XS_CONTROL", xs_wire::MsgType::Control as u64),
            ("XS_DIRECTORY", xs_wire::MsgType::Directory as u64),
            ("XS_READ", xs_wire::MsgType::Read as u64),
            ("XS_GET_PERMS", xs_wire::MsgType::GetPerms as u64),
            ("XS_WATCH", xs_wire::MsgType::Watch as u64),
            ("XS_UNWATCH", xs_wire::MsgType::Unwatch as u64),
            (
                "XS_TRANSACTION_START",
                xs_wire::MsgType::TransactionStart as u64,
            ),
            (
                "XS_TRANSACTION_END",
                xs_wire::MsgType::TransactionEnd as u64,
            ),
            ("XS_INTRODUCE", xs_wire::MsgType::Introduce as u64),
            ("XS_RELEASE", xs_wire::MsgType::Release as u64),
            ("XS_GET_DOMAIN_PATH", xs_wire::MsgType::GetDomainPath as u64),
            ("XS_WRITE", xs_wire::MsgType::Write as u64),
            ("XS_MKDIR", xs_wire::MsgType::Mkdir as u64),
            ("XS_RM", xs_wire::MsgType::Rm as u64),
            ("XS_SET_PERMS", xs_wire::MsgType::SetPerms as u64),
            ("XS_WATCH_EVENT", xs_wire::MsgType::WatchEvent as u64),
            ("XS_ERROR", xs_wire::MsgType::Error as u64),
            (
                "XS_IS_DOMAIN_INTRODUCED",
                xs_wire::MsgType::IsDomainIntroduced as u64,
            ),
            ("XS_RESUME", xs_wire::MsgType::Resume as u64),
            ("XS_SET_TARGET", xs_wire::MsgType::SetTarget as u64),
            ("XS_RESET_WATCHES", xs_wire::MsgType::ResetWatches as u64),
            ("XS_DIRECTORY_PART", xs_wire::MsgType::DirectoryPart as u64),
            // The TAP offload interface of `hostnet` (libc's constants, our header length).
            (
                "sizeof_virtio_net_hdr",
                crate::hostnet::TAP_VNET_HDR_LEN as u64,
            ),
            ("IFF_VNET_HDR", libc::IFF_VNET_HDR as u64),
            ("TUNSETVNETHDRSZ", libc::TUNSETVNETHDRSZ as u64),
            ("TUNSETVNETLE", libc::TUNSETVNETLE as u64),
            ("TUNSETOFFLOAD", libc::TUNSETOFFLOAD as u64),
            ("TUN_F_CSUM", u64::from(libc::TUN_F_CSUM)),
            ("TUN_F_TSO4", u64::from(libc::TUN_F_TSO4)),
            ("TUN_F_TSO6", u64::from(libc::TUN_F_TSO6)),
        ]
    }
}
