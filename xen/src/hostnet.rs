//! Host network frame devices: the stand-ins for a netback vif on machines without Xen.
//!
//! A replica link outside Xen is a Linux TAP device (the replica's end lives in a network
//! namespace); an external link can also be a NIC read through an `AF_PACKET` socket
//! ([`PacketSocket`]). Both give whole Ethernet frames through `recv` / `send`, are non-blocking
//! and pollable, and report errors instead of panicking: a link that goes away is the caller's
//! event, not a crash.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

mod packet;
pub use packet::PacketSocket;

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
const MAX_IFNAME: usize = libc::IFNAMSIZ - 1;

fn check_ifname(name: &str) -> io::Result<CString> {
    if name.is_empty() || name.len() > MAX_IFNAME || name.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("interface name {name:?} must be 1..={MAX_IFNAME} bytes without '/'"),
        ));
    }
    CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))
}

/// An attached Linux TAP device (Ethernet frames, no packet-information header), non-blocking.
///
/// Opened with [`Tap::open_with_offload`], every frame read or written is preceded by a
/// virtio-net header (`struct virtio_net_hdr`, 10 bytes, little-endian) and the host may hand
/// over TCP segments of up to 64 KiB with partial checksums (and accepts the same).
#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
    vnet_header: bool,
}

/// Length of the virtio-net header a TAP or raw socket opened with offload carries before each
/// frame.
pub const TAP_VNET_HDR_LEN: usize = 10;

impl Tap {
    /// Attaches to the TAP device `name` in the calling thread's network namespace (creating a
    /// non-persistent one if it does not exist). Frames come and go without a header; offloads
    /// an earlier reader of a persistent device enabled are switched off (its host side must
    /// not send frames larger than the MTU).
    pub fn open(name: &str) -> io::Result<Tap> {
        let tap = Tap::attach(name, libc::IFF_TAP | libc::IFF_NO_PI)?;
        // Best effort: a kernel that refuses TUNSETOFFLOAD cannot have offloads switched on
        // either, and this is the fallback when `open_with_offload` fails.
        let _ = tap.set_offload(0);
        Ok(tap)
    }

    /// Attaches like [`Tap::open`] with a virtio-net header before every frame and with
    /// checksum and TCP segmentation offload (IPv4 and IPv6) enabled on the host side. Fails if
    /// the kernel refuses any of it.
    pub fn open_with_offload(name: &str) -> io::Result<Tap> {
        let mut tap = Tap::attach(name, libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR)?;
        tap.vnet_header = true;
        let len = TAP_VNET_HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer, valid for the call.
        if unsafe {
            libc::ioctl(
                tap.file.as_raw_fd(),
                libc::TUNSETVNETHDRSZ,
                &len as *const libc::c_int,
            )
        } < 0
        {
            return Err(io::Error::last_os_error());
        }
        let little_endian: libc::c_int = 1;
        // SAFETY: TUNSETVNETLE reads one int through the pointer, valid for the call.
        if unsafe {
            libc::ioctl(
                tap.file.as_raw_fd(),
                libc::TUNSETVNETLE,
                &little_endian as *const libc::c_int,
            )
        } < 0
        {
            return Err(io::Error::last_os_error());
        }
        tap.set_offload(libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6)?;
        Ok(tap)
    }

    fn attach(name: &str, flags: libc::c_int) -> io::Result<Tap> {
        let cname = check_ifname(name)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")?;
        // SAFETY: ifreq is plain old data; all-zero is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(cname.as_bytes()) {
            *dst = *src as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = flags as libc::c_short;
        // SAFETY: TUNSETIFF reads a struct ifreq through the pointer, which is valid for the call.
        let rc = unsafe {
            libc::ioctl(
                file.as_raw_fd(),
                libc::TUNSETIFF,
                &mut req as *mut libc::ifreq,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Tap {
            file,
            name: name.to_owned(),
            vnet_header: false,
        })
    }

    /// Sets the host side's offload features (`TUN_F_*`).
    fn set_offload(&self, features: libc::c_uint) -> io::Result<()> {
        // SAFETY: TUNSETOFFLOAD takes its argument by value; no memory is passed.
        if unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                libc::TUNSETOFFLOAD,
                libc::c_ulong::from(features),
            )
        } < 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// True if every frame carries a virtio-net header ([`Tap::open_with_offload`]).
    pub fn has_vnet_header(&self) -> bool {
        self.vnet_header
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one frame (with its virtio-net header if enabled) into `buf`; `WouldBlock` when
    /// none is queued.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        nix::unistd::read(&self.file, buf).map_err(io::Error::from)
    }

    /// Writes one frame (with its virtio-net header if enabled).
    pub fn send(&self, frame: &[u8]) -> io::Result<usize> {
        nix::unistd::write(&self.file, frame).map_err(io::Error::from)
    }
}

impl AsFd for Tap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// Brings interface `name` up (`IFF_UP`), as `ip link set NAME up` does; needs CAP_NET_ADMIN.
pub fn set_link_up(name: &str) -> io::Result<()> {
    let cname = check_ifname(name)?;
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(cname.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills the ifreq behind the pointer, valid for the call.
    if unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCGIFFLAGS as _,
            &mut req as *mut libc::ifreq,
        )
    } < 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS set the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads the ifreq behind the pointer, valid for the call.
    if unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCSIFFLAGS as _,
            &mut req as *mut libc::ifreq,
        )
    } < 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `f` in a new thread that has entered the network namespace `netns` (a name under
/// `/run/netns`, as `ip netns` creates, or an absolute path); descriptors opened there (TAP, raw
/// sockets) keep working in the caller's namespace. The calling thread's namespace is unchanged.
pub fn in_netns<T: Send + 'static>(
    netns: &str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let path = if netns.starts_with('/') {
        netns.to_owned()
    } else {
        format!("/run/netns/{netns}")
    };
    let ns = File::open(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("network namespace {path}: {e}")))?;
    std::thread::spawn(move || {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        f()
    })
    .join()
    .map_err(|_| io::Error::other("namespace thread panicked"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_checked() {
        assert!(check_ifname("").is_err());
        assert!(check_ifname("a/b").is_err());
        assert!(check_ifname("0123456789abcdef").is_err());
        assert!(check_ifname("0123456789abcde").is_ok());
    }

    #[test]
    fn missing_namespace_is_an_error_naming_it() {
        let err = in_netns("no-such-ns-domain-nv-test", || Ok(())).unwrap_err();
        assert!(
            err.to_string()
                .contains("/run/netns/no-such-ns-domain-nv-test"),
            "{err}"
        );
    }
}
