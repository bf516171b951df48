//! Checksum and segmentation offload between the stack and a guest.
//!
//! The stack (smoltcp) leaves TCP checksums to the vif and hands over TCP segments of up to
//! 64 KiB ([`crate::vif::Vif`]'s capabilities, as a TAP link with offload does). What the guest
//! gets depends on what its frontend wrote at connect ([`GuestOffload`]): a partial checksum with
//! `NETRXF_csum_blank | NETRXF_data_validated` (Linux netfront takes it as `CHECKSUM_PARTIAL`),
//! a whole 64 KiB segment with a GSO extra-info slot, or, for a frontend without
//! `feature-gso-tcpv4`/`-tcpv6`, MTU-sized frames cut here with full checksums.
//!
//! Pure functions over byte slices: bounds-checked, no panics on any input.

use crate::csum::{fold, sum16};
use crate::wire::*;

const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const ETHERTYPE_IPV6: [u8; 2] = [0x86, 0xdd];
const PROTO_TCP: u8 = 6;
const IPV6_HEADER: usize = 40;
const TCP_MIN_HEADER: usize = 20;
/// Offset of the checksum in the TCP header.
const TCP_CSUM: usize = 16;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// What a connected frontend accepts on its RX ring (from its xenstore keys).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestOffload {
    /// Partial IPv4 TCP checksums (`NETRXF_csum_blank`): unless `feature-no-csum-offload`.
    pub csum_v4: bool,
    /// Partial IPv6 TCP checksums: `feature-ipv6-csum-offload`.
    pub csum_v6: bool,
    /// IPv4 TCP segments with a GSO extra: `feature-gso-tcpv4` (with `feature-sg` and csum).
    pub gso_v4: bool,
    /// IPv6 TCP segments with a GSO extra: `feature-gso-tcpv6` (with `feature-sg` and csum).
    pub gso_v6: bool,
}

impl GuestOffload {
    fn csum(&self, ipv6: bool) -> bool {
        if ipv6 {
            self.csum_v6
        } else {
            self.csum_v4
        }
    }

    fn gso(&self, ipv6: bool) -> bool {
        if ipv6 {
            self.gso_v6
        } else {
            self.gso_v4
        }
    }
}

/// How one frame is announced on the guest's RX ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxMeta {
    /// `NETRXF_csum_blank | NETRXF_data_validated`, or 0.
    pub flags: u16,
    /// The GSO extra-info segment (it takes one RX slot after the first data slot).
    pub gso: Option<ExtraInfo>,
}

impl ExtraInfo {
    /// A GSO extra: `mss` payload bytes per segment, `XEN_NETIF_GSO_TYPE_*` `ty`.
    pub fn gso(mss: u16, ty: u8) -> ExtraInfo {
        let s = mss.to_le_bytes();
        ExtraInfo {
            ty: XEN_NETIF_EXTRA_TYPE_GSO,
            flags: 0,
            data: [s[0], s[1], ty, 0, 0, 0],
        }
    }
}

/// Where the TCP segment of an untagged Ethernet frame lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpFrame {
    /// IPv6 (else IPv4).
    pub ipv6: bool,
    /// Offset of the TCP header.
    pub l4: usize,
    /// End of the TCP header (start of the payload).
    pub payload: usize,
    /// End of the IP packet (bytes after it are Ethernet padding).
    pub end: usize,
}

impl TcpFrame {
    /// Finds the TCP segment of an untagged IPv4 (unfragmented) or IPv6 (TCP as the first next
    /// header) frame; `None` for anything else or anything inconsistent.
    pub fn parse(frame: &[u8]) -> Option<TcpFrame> {
        let ethertype = frame.get(12..14)?;
        let (ipv6, l4, end) = if ethertype == ETHERTYPE_IPV4 {
            let h = frame.get(ETH_HLEN..ETH_HLEN + 20)?;
            let ihl = usize::from(h[0] & 0xf) * 4;
            let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
            let fragmented = u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0;
            if h[0] >> 4 != 4 || h[9] != PROTO_TCP || fragmented || ihl < 20 || total < ihl {
                return None;
            }
            (false, ETH_HLEN + ihl, ETH_HLEN + total)
        } else if ethertype == ETHERTYPE_IPV6 {
            let h = frame.get(ETH_HLEN..ETH_HLEN + IPV6_HEADER)?;
            let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
            if h[0] >> 4 != 6 || h[6] != PROTO_TCP {
                return None;
            }
            (true, ETH_HLEN + IPV6_HEADER, ETH_HLEN + IPV6_HEADER + plen)
        } else {
            return None;
        };
        let header = usize::from(frame.get(l4 + 12)? >> 4) * 4;
        if end > frame.len() || header < TCP_MIN_HEADER || l4 + header > end {
            return None;
        }
        Some(TcpFrame {
            ipv6,
            l4,
            payload: l4 + header,
            end,
        })
    }

    /// `XEN_NETIF_GSO_TYPE_TCPV4` or `_TCPV6`.
    pub fn gso_type(&self) -> u8 {
        if self.ipv6 {
            XEN_NETIF_GSO_TYPE_TCPV6
        } else {
            XEN_NETIF_GSO_TYPE_TCPV4
        }
    }

    /// The unfolded pseudo-header sum of the segment (addresses, protocol, TCP length).
    fn pseudo(&self, frame: &[u8]) -> u64 {
        let addrs = if self.ipv6 {
            &frame[ETH_HLEN + 8..ETH_HLEN + 40]
        } else {
            &frame[ETH_HLEN + 12..ETH_HLEN + 20]
        };
        sum16(addrs, u64::from(PROTO_TCP) + (self.end - self.l4) as u64)
    }

    /// Stores the folded pseudo-header sum in the checksum field: a partial checksum, as Linux
    /// expects with `NETRXF_csum_blank`.
    pub fn write_partial_csum(&self, frame: &mut [u8]) {
        let p = fold(self.pseudo(frame));
        frame[self.l4 + TCP_CSUM..self.l4 + TCP_CSUM + 2].copy_from_slice(&p.to_be_bytes());
    }

    /// Computes and stores the full TCP checksum.
    pub fn write_full_csum(&self, frame: &mut [u8]) {
        let field = self.l4 + TCP_CSUM;
        frame[field..field + 2].fill(0);
        let c = !fold(sum16(&frame[self.l4..self.end], self.pseudo(frame)));
        frame[field..field + 2].copy_from_slice(&c.to_be_bytes());
    }
}

/// Cuts a TCP segment into frames of at most `mss` payload bytes, each with its own IP length,
/// IPv4 identification and header checksum, sequence number and full TCP checksum; FIN and PSH
/// stay on the last frame, CWR on the first.
pub fn segment(frame: &[u8], t: &TcpFrame, mss: usize) -> Vec<Vec<u8>> {
    let headers = &frame[..t.payload];
    let payload = &frame[t.payload..t.end];
    let mss = mss.max(1);
    let count = payload.len().div_ceil(mss).max(1);
    let seq0 = u32::from_be_bytes(frame[t.l4 + 4..t.l4 + 8].try_into().expect("4 bytes"));
    let flags0 = frame[t.l4 + 13];
    let id0 = u16::from_be_bytes([frame[ETH_HLEN + 4], frame[ETH_HLEN + 5]]);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let chunk = payload
            .get(i * mss..((i + 1) * mss).min(payload.len()))
            .unwrap_or(&[]);
        let mut f = Vec::with_capacity(headers.len() + chunk.len());
        f.extend_from_slice(headers);
        f.extend_from_slice(chunk);
        let ip_len = f.len() - ETH_HLEN;
        if t.ipv6 {
            let plen = (ip_len - IPV6_HEADER) as u16;
            f[ETH_HLEN + 4..ETH_HLEN + 6].copy_from_slice(&plen.to_be_bytes());
        } else {
            let ihl = t.l4 - ETH_HLEN;
            f[ETH_HLEN + 2..ETH_HLEN + 4].copy_from_slice(&(ip_len as u16).to_be_bytes());
            let id = id0.wrapping_add(i as u16);
            f[ETH_HLEN + 4..ETH_HLEN + 6].copy_from_slice(&id.to_be_bytes());
            f[ETH_HLEN + 10..ETH_HLEN + 12].fill(0);
            let c = !fold(sum16(&f[ETH_HLEN..ETH_HLEN + ihl], 0));
            f[ETH_HLEN + 10..ETH_HLEN + 12].copy_from_slice(&c.to_be_bytes());
        }
        let seq = seq0.wrapping_add((i * mss) as u32);
        f[t.l4 + 4..t.l4 + 8].copy_from_slice(&seq.to_be_bytes());
        let mut flags = flags0;
        if i + 1 < count {
            flags &= !(TCP_FIN | TCP_PSH);
        }
        if i > 0 {
            flags &= !TCP_CWR;
        }
        f[t.l4 + 13] = flags;
        let seg = TcpFrame { end: f.len(), ..*t };
        seg.write_full_csum(&mut f);
        out.push(f);
    }
    out
}

/// What a frame from the stack becomes on the guest's RX ring.
#[derive(Debug, PartialEq, Eq)]
pub enum ForGuest {
    /// One frame (possibly a GSO segment) and how to announce it.
    One(Vec<u8>, RxMeta),
    /// MTU-sized frames with full checksums, cut from a segment the frontend cannot take whole.
    Segmented(Vec<Vec<u8>>),
}

/// Prepares a frame the stack sent (its TCP checksum left out; `gso_size` the payload bytes per
/// segment if it is a larger-than-MTU segment) for a guest with `offload` and frames of at most
/// `max_frame` bytes (its MTU with the Ethernet header). Frames that are not TCP go as they are.
pub fn for_guest(
    mut frame: Vec<u8>,
    gso_size: Option<u16>,
    offload: &GuestOffload,
    max_frame: usize,
) -> ForGuest {
    let Some(t) = TcpFrame::parse(&frame) else {
        return ForGuest::One(frame, RxMeta::default());
    };
    let partial = RxMeta {
        flags: NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED,
        gso: None,
    };
    if frame.len() <= max_frame {
        if offload.csum(t.ipv6) {
            t.write_partial_csum(&mut frame);
            return ForGuest::One(frame, partial);
        }
        t.write_full_csum(&mut frame);
        return ForGuest::One(frame, RxMeta::default());
    }
    // Payload bytes per MTU-sized frame; the stack's segment size if it is smaller.
    let room = max_frame.saturating_sub(t.payload).max(1);
    let mss = gso_size.map_or(room, |g| usize::from(g).min(room));
    if gso_size.is_some() && offload.gso(t.ipv6) && offload.csum(t.ipv6) {
        t.write_partial_csum(&mut frame);
        let gso = ExtraInfo::gso(mss as u16, t.gso_type());
        return ForGuest::One(
            frame,
            RxMeta {
                gso: Some(gso),
                ..partial
            },
        );
    }
    ForGuest::Segmented(segment(&frame, &t, mss))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csum::fill_l4_checksum;

    /// An IPv4 or IPv6 TCP frame with `payload` bytes, flags FIN|PSH|ACK|CWR, checksum zero.
    fn tcp(v6: bool, payload: usize) -> Vec<u8> {
        let ip_hdr = if v6 { 40 } else { 20 };
        let mut f = vec![0u8; 14 + ip_hdr + 20 + payload];
        if v6 {
            f[12..14].copy_from_slice(&ETHERTYPE_IPV6);
            f[14] = 0x60;
            f[18..20].copy_from_slice(&((20 + payload) as u16).to_be_bytes());
            f[20] = PROTO_TCP;
            f[21] = 64;
            f[22..38].fill(0xfe);
            f[38..54].fill(0x11);
        } else {
            f[12..14].copy_from_slice(&ETHERTYPE_IPV4);
            f[14] = 0x45;
            f[16..18].copy_from_slice(&((40 + payload) as u16).to_be_bytes());
            f[18..20].copy_from_slice(&0x1234u16.to_be_bytes());
            f[22] = 64;
            f[23] = PROTO_TCP;
            f[26..30].copy_from_slice(&[10, 0, 0, 1]);
            f[30..34].copy_from_slice(&[10, 0, 0, 2]);
        }
        let l4 = 14 + ip_hdr;
        f[l4 + 4..l4 + 8].copy_from_slice(&0xffff_ff00u32.to_be_bytes());
        f[l4 + 12] = 5 << 4;
        f[l4 + 13] = TCP_FIN | TCP_PSH | 0x10 | TCP_CWR;
        for (i, b) in f[l4 + 20..].iter_mut().enumerate() {
            *b = (i * 7) as u8;
        }
        f
    }

    #[test]
    fn partial_checksum_completes_to_the_full_one() {
        for v6 in [false, true] {
            let mut f = tcp(v6, 1000);
            let t = TcpFrame::parse(&f).unwrap();
            t.write_partial_csum(&mut f);
            let mut full = f.clone();
            fill_l4_checksum(&mut full).unwrap();
            let mut mine = f.clone();
            t.write_full_csum(&mut mine);
            assert_eq!(mine, full, "v6={v6}");
        }
    }

    #[test]
    fn segments_carry_the_payload_in_order_with_valid_headers() {
        for v6 in [false, true] {
            let f = tcp(v6, 10_000);
            let t = TcpFrame::parse(&f).unwrap();
            let segs = segment(&f, &t, 1448);
            assert_eq!(segs.len(), 7);
            let mut payload = Vec::new();
            for (i, s) in segs.iter().enumerate() {
                let st = TcpFrame::parse(s).expect("each segment parses");
                assert!(s.len() <= 14 + 1500 + if v6 { 20 } else { 0 });
                let mut check = s.clone();
                fill_l4_checksum(&mut check).unwrap();
                assert_eq!(&check, s, "segment {i} has its full checksum");
                let seq = u32::from_be_bytes(s[st.l4 + 4..st.l4 + 8].try_into().unwrap());
                assert_eq!(seq, 0xffff_ff00u32.wrapping_add(i as u32 * 1448));
                let flags = s[st.l4 + 13];
                assert_eq!(
                    flags & (TCP_FIN | TCP_PSH) != 0,
                    i == 6,
                    "FIN/PSH on the last"
                );
                assert_eq!(flags & TCP_CWR != 0, i == 0, "CWR on the first");
                if !v6 {
                    assert_eq!(fold(sum16(&s[14..34], 0)), 0xffff, "IPv4 header checksum");
                }
                payload.extend_from_slice(&s[st.payload..st.end]);
            }
            assert_eq!(payload, f[t.payload..t.end]);
        }
    }

    #[test]
    fn for_guest_follows_what_the_frontend_negotiated() {
        let all = GuestOffload {
            csum_v4: true,
            csum_v6: true,
            gso_v4: true,
            gso_v6: true,
        };
        let big = tcp(false, 60_000);
        match for_guest(big.clone(), Some(1448), &all, 1514) {
            ForGuest::One(f, meta) => {
                assert_eq!(f.len(), big.len());
                assert_eq!(meta.flags, NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED);
                let gso = meta.gso.unwrap();
                assert_eq!((gso.gso_size(), gso.gso_type()), (1448, 1));
            }
            o => panic!("{o:?}"),
        }
        let plain = GuestOffload::default();
        match for_guest(big.clone(), Some(1448), &plain, 1514) {
            ForGuest::Segmented(s) => assert_eq!(s.len(), 60_000usize.div_ceil(1448)),
            o => panic!("{o:?}"),
        }
        // A guest MTU below the stack's segment size wins.
        match for_guest(big, Some(1448), &plain, 1014) {
            ForGuest::Segmented(s) => assert!(s.iter().all(|f| f.len() <= 1014)),
            o => panic!("{o:?}"),
        }
        let small = tcp(true, 100);
        let ForGuest::One(f, meta) = for_guest(small.clone(), None, &plain, 1514) else {
            panic!("one frame")
        };
        assert_eq!(meta, RxMeta::default());
        let mut full = small;
        fill_l4_checksum(&mut full).unwrap();
        assert_eq!(f, full, "full checksum for a frontend without csum offload");
        let arp = vec![0u8; 42];
        assert_eq!(
            for_guest(arp.clone(), None, &all, 1514),
            ForGuest::One(arp, RxMeta::default())
        );
    }

    #[test]
    fn hostile_frames_are_not_tcp_frames() {
        let good = tcp(false, 50);
        for cut in 0..good.len() {
            assert_eq!(TcpFrame::parse(&good[..cut]), None, "cut {cut}");
        }
        let mut bad_doff = good.clone();
        bad_doff[34 + 12] = 0x40;
        assert_eq!(TcpFrame::parse(&bad_doff), None, "header under 20 bytes");
        let mut bad_doff = tcp(false, 10);
        bad_doff[34 + 12] = 0xf0;
        assert_eq!(TcpFrame::parse(&bad_doff), None, "header past the packet");
        let mut frag = good;
        frag[20] = 0x20;
        assert_eq!(TcpFrame::parse(&frag), None);
    }
}
