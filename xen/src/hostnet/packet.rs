//! A NIC read and written whole through an `AF_PACKET` raw socket, optionally with a
//! virtio-net header before every frame (`PACKET_VNET_HDR`).
//!
//! With the header (`net/packet/af_packet.c`): a sent frame marked `GSO_TCPV4`/`TCPV6` with
//! `NEEDS_CSUM` may be up to 64 KiB; the kernel builds one GSO skb of it (only a frame without
//! a GSO type is held to the MTU) that a TSO-capable NIC (veth, Xen netfront) sends whole and
//! any other gets segmented by the kernel. Received frames are the skbs as the stack holds them,
//! GRO'd up to 64 KiB, each with the header describing its partial checksum and GSO type; a
//! frame the kernel cannot describe (a GSO type without a virtio-net equivalent) is consumed
//! with `EINVAL`. The header is in host byte order (little-endian on x86), the layout a TAP
//! has with `TUNSETVNETLE`.
//!
//! A sent skb counts against the socket's send buffer until the NIC is done with it (netfront:
//! until the backend answered the request), and a full buffer refuses the next frame. The
//! default buffer (`wmem_default`, 208 KiB) holds three 64 KiB segments, so a socket with the
//! header asks for [`OFFLOAD_SNDBUF`].
//!
//! Frames this socket sends never come back to it (the kernel skips the sending socket);
//! frames other senders on the host transmit arrive as `PACKET_OUTGOING` and are skipped.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::check_ifname;

/// Send buffer a socket with the virtio-net header asks for: 32 segments of 64 KiB in flight.
pub const OFFLOAD_SNDBUF: usize = 2 << 20;

/// An `AF_PACKET` raw socket bound to one NIC: every frame the NIC receives, none it sends
/// (frames sent by the host itself are filtered out), non-blocking.
///
/// Opened with [`PacketSocket::open_with_offload`], every frame read or written is preceded by
/// a virtio-net header (`struct virtio_net_hdr`, 10 bytes, little-endian), as on a TAP opened
/// with offload.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: i32,
    name: String,
    vnet_header: bool,
}

impl PacketSocket {
    /// Opens a raw socket on the interface `name` of the calling thread's network namespace;
    /// frames come and go without a header and at most MTU-sized.
    pub fn open(name: &str) -> io::Result<PacketSocket> {
        PacketSocket::bind(name, false)
    }

    /// Opens like [`PacketSocket::open`] with a virtio-net header before every frame
    /// (`PACKET_VNET_HDR`): TCP segments of up to 64 KiB with partial checksums both ways.
    /// Fails if the kernel refuses the option.
    pub fn open_with_offload(name: &str) -> io::Result<PacketSocket> {
        PacketSocket::bind(name, true)
    }

    fn bind(name: &str, vnet_header: bool) -> io::Result<PacketSocket> {
        let cname = check_ifname(name)?;
        // SAFETY: if_nametoindex reads the NUL-terminated string, valid for the call.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                proto as i32,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        if vnet_header {
            // Before bind: no frame is queued without its header.
            let on: libc::c_int = 1;
            // SAFETY: the pointer and length describe `on`, valid for the call.
            let rc = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_PACKET,
                    libc::PACKET_VNET_HDR,
                    &on as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
            set_sndbuf(&fd, OFFLOAD_SNDBUF);
        }
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = proto;
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: the pointer and length describe `addr`, valid for the call.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PacketSocket {
            fd,
            ifindex: ifindex as i32,
            name: name.to_owned(),
            vnet_header,
        })
    }

    /// True if every frame carries a virtio-net header
    /// ([`PacketSocket::open_with_offload`]).
    pub fn has_vnet_header(&self) -> bool {
        self.vnet_header
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one received frame (with its virtio-net header if enabled) into `buf`, skipping
    /// frames the host sent and frames larger than `buf`; `WouldBlock` when none. A frame the
    /// kernel could not describe in a virtio-net header is consumed and reported as
    /// `InvalidData` (the caller counts it and reads on).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: buf and from are valid writable buffers of the given lengths for the call.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    libc::MSG_TRUNC,
                    &mut from as *mut libc::sockaddr_ll as *mut libc::sockaddr,
                    &mut len,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if self.vnet_header && e.raw_os_error() == Some(libc::EINVAL) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "frame without a virtio-net header equivalent (dropped by the kernel)",
                    ));
                }
                return Err(e);
            }
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            let n = n as usize;
            if n > buf.len() {
                // Larger than the frames we serve: drop it like a NIC would.
                continue;
            }
            return Ok(n);
        }
    }

    /// Sends one frame (with its virtio-net header if enabled) out of the interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<usize> {
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        to.sll_family = libc::AF_PACKET as u16;
        to.sll_ifindex = self.ifindex;
        to.sll_halen = 6;
        // SAFETY: frame and `to` are valid for reads of the given lengths for the call.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                0,
                &to as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

/// Asks for a send buffer of `bytes`: beyond `wmem_max` if allowed (`SO_SNDBUFFORCE`, needs
/// CAP_NET_ADMIN), else as far as `wmem_max` lets `SO_SNDBUF` go. Best effort: a smaller buffer
/// only drops frames sooner when the NIC is busy.
fn set_sndbuf(fd: &OwnedFd, bytes: usize) {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    for option in [libc::SO_SNDBUFFORCE, libc::SO_SNDBUF] {
        // SAFETY: the pointer and length describe `value`, valid for the call.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                &value as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_interface_is_an_error() {
        assert!(PacketSocket::open("nonexistent0").is_err());
        assert!(PacketSocket::open_with_offload("nonexistent0").is_err());
    }

    #[test]
    #[ignore = "needs root: AF_PACKET (cargo test -p xen -- --ignored)"]
    fn offload_socket_holds_many_large_segments() {
        let sndbuf = |s: &PacketSocket| {
            let mut v: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: the pointers describe `v` and `len`, valid for the call.
            let rc = unsafe {
                libc::getsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_SNDBUF,
                    &mut v as *mut libc::c_int as *mut libc::c_void,
                    &mut len,
                )
            };
            assert_eq!(rc, 0);
            v as usize
        };
        let offload = PacketSocket::open_with_offload("lo").unwrap();
        assert!(offload.has_vnet_header());
        assert!(sndbuf(&offload) >= OFFLOAD_SNDBUF, "{}", sndbuf(&offload));
        let plain = PacketSocket::open("lo").unwrap();
        assert!(!plain.has_vnet_header());
        assert!(sndbuf(&plain) < OFFLOAD_SNDBUF);
    }
}
