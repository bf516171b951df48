//! The virtio-net header (`struct virtio_net_hdr`, `linux/virtio_net.h`) that a TAP device
//! opened with `IFF_VNET_HDR` puts before every frame, and the work a sender does for it.
//!
//! With checksum and segmentation offload the host's TCP hands over segments of up to 64 KiB
//! whose TCP checksum is partial (`NEEDS_CSUM`: only the pseudo-header sum is filled in), and
//! accepts the same from us: the kernel segments a frame marked `TCPV4`/`TCPV6` into
//! `gso_size`-byte segments (or delivers it whole to a local socket). The header is
//! little-endian (the TAP is switched to little-endian headers when it is opened).
//!
//! Pure functions over byte slices: bounds-checked, no panics on any input.

/// Length of the header as the TAP is configured (`TUNSETVNETHDRSZ`): the plain 10-byte header
/// without `num_buffers`.
pub const VNET_HDR_LEN: usize = xen::hostnet::TAP_VNET_HDR_LEN;
const _: () = assert!(
    VNET_HDR_LEN == 10,
    "the codec reads and writes struct virtio_net_hdr (10 bytes)"
);

/// `flags`: the L4 checksum is partial; the sum of `csum_start..` goes to
/// `csum_start + csum_offset`.
pub const FLAG_NEEDS_CSUM: u8 = 1;
/// `gso_type`: not a segmentation-offload frame.
pub const GSO_NONE: u8 = 0;
/// `gso_type`: TCP over IPv4, to be segmented into `gso_size`-byte payloads.
pub const GSO_TCPV4: u8 = 1;
/// `gso_type`: TCP over IPv6, to be segmented into `gso_size`-byte payloads.
pub const GSO_TCPV6: u8 = 4;
/// `gso_type` bit: the TCP segment had ECN's CWR set.
pub const GSO_ECN: u8 = 0x80;

use netback::csum::{fold, sum16};

const ETH_HEADER: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const PROTO_TCP: u8 = 6;
/// Offset of the checksum field in the TCP header.
const TCP_CSUM_OFFSET: usize = 16;
const TCP_MIN_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;

/// Why a received header was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VnetError {
    /// Fewer bytes than a header.
    #[error("frame shorter than the virtio-net header")]
    Truncated,
    /// A `gso_type` this side never enabled (UDP fragmentation or segmentation, unknown).
    #[error("unsupported gso_type {0:#04x}")]
    UnsupportedGso(u8),
}

/// One virtio-net header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHeader {
    /// `FLAG_*` bits.
    pub flags: u8,
    /// `GSO_*` type, possibly with [`GSO_ECN`].
    pub gso_type: u8,
    /// Length of the headers to replicate in every segment (Ethernet + IP + TCP).
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Where the checksummed part starts (from the start of the Ethernet frame).
    pub csum_start: u16,
    /// Where in the checksummed part the checksum goes.
    pub csum_offset: u16,
}

impl VnetHeader {
    /// Parses the header at the start of `buf` (what a TAP read returns before the frame).
    /// Accepts the types a TAP with `TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6` can produce.
    pub fn parse(buf: &[u8]) -> Result<VnetHeader, VnetError> {
        let b: &[u8; VNET_HDR_LEN] = buf
            .get(..VNET_HDR_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(VnetError::Truncated)?;
        let hdr = VnetHeader {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16::from_le_bytes([b[2], b[3]]),
            gso_size: u16::from_le_bytes([b[4], b[5]]),
            csum_start: u16::from_le_bytes([b[6], b[7]]),
            csum_offset: u16::from_le_bytes([b[8], b[9]]),
        };
        match hdr.gso_type & !GSO_ECN {
            GSO_NONE | GSO_TCPV4 | GSO_TCPV6 => Ok(hdr),
            _ => Err(VnetError::UnsupportedGso(hdr.gso_type)),
        }
    }

    /// The header's bytes, as written before a frame.
    pub fn emit(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        b
    }
}

/// Where a frame's TCP segment lies and its pseudo-header sum.
struct TcpLayout {
    /// Offset of the TCP header in the frame.
    start: usize,
    /// Length of the TCP header with options.
    header_len: usize,
    /// Length of the TCP segment (header and payload).
    segment_len: usize,
    /// Folded pseudo-header sum (addresses, protocol, segment length).
    pseudo: u16,
    /// `GSO_TCPV4` or `GSO_TCPV6`.
    gso_type: u8,
}

/// Finds the TCP segment of an untagged Ethernet frame (IPv4 without fragmentation, or IPv6
/// with TCP as the first next header); `None` for anything else or anything inconsistent.
fn tcp_layout(frame: &[u8]) -> Option<TcpLayout> {
    let ethertype = u16::from_be_bytes(frame.get(12..14)?.try_into().ok()?);
    let ip = frame.get(ETH_HEADER..)?;
    let (l4, segment_len, pseudo, gso_type) = match ethertype {
        ETHERTYPE_IPV4 => {
            let h = ip.get(..20)?;
            let ihl = usize::from(h[0] & 0xf) * 4;
            let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
            let fragmented = u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0;
            if h[0] >> 4 != 4
                || h[9] != PROTO_TCP
                || fragmented
                || ihl < 20
                || total < ihl
                || total > ip.len()
            {
                return None;
            }
            let segment_len = total - ihl;
            (
                ihl,
                segment_len,
                fold(sum16(&h[12..20], u64::from(PROTO_TCP) + segment_len as u64)),
                GSO_TCPV4,
            )
        }
        ETHERTYPE_IPV6 => {
            let h = ip.get(..IPV6_HEADER)?;
            let segment_len = usize::from(u16::from_be_bytes([h[4], h[5]]));
            if h[0] >> 4 != 6 || h[6] != PROTO_TCP || IPV6_HEADER + segment_len > ip.len() {
                return None;
            }
            (
                IPV6_HEADER,
                segment_len,
                fold(sum16(&h[8..40], u64::from(PROTO_TCP) + segment_len as u64)),
                GSO_TCPV6,
            )
        }
        _ => return None,
    };
    let tcp = ip.get(l4..l4 + segment_len)?;
    let header_len = usize::from(tcp.get(12)? >> 4) * 4;
    if header_len < TCP_MIN_HEADER || header_len > segment_len {
        return None;
    }
    Some(TcpLayout {
        start: ETH_HEADER + l4,
        header_len,
        segment_len,
        pseudo,
        gso_type,
    })
}

/// Prepares an outgoing Ethernet frame for a TAP with offload and returns its header.
///
/// A TCP segment (whose checksum smoltcp left out) gets the pseudo-header sum in its checksum
/// field and `NEEDS_CSUM`; if `segment_size` is given and the payload is larger, it is marked
/// for segmentation into `segment_size`-byte payloads. Anything else (ARP, ICMP: checksummed by
/// smoltcp) goes out as it is, with an empty header.
pub fn prepare_tx(frame: &mut [u8], segment_size: Option<u16>) -> VnetHeader {
    let Some(tcp) = tcp_layout(frame) else {
        return VnetHeader::default();
    };
    let (Ok(csum_start), Ok(hdr_len)) = (
        u16::try_from(tcp.start),
        u16::try_from(tcp.start + tcp.header_len),
    ) else {
        return VnetHeader::default();
    };
    let field = tcp.start + TCP_CSUM_OFFSET;
    frame[field..field + 2].copy_from_slice(&tcp.pseudo.to_be_bytes());
    let mut hdr = VnetHeader {
        flags: FLAG_NEEDS_CSUM,
        csum_start,
        csum_offset: TCP_CSUM_OFFSET as u16,
        ..VnetHeader::default()
    };
    let payload = tcp.segment_len - tcp.header_len;
    if let Some(size) = segment_size.filter(|&s| s > 0 && payload > usize::from(s)) {
        let cwr = frame[tcp.start + 13] & 0x80 != 0;
        hdr.gso_type = tcp.gso_type | if cwr { GSO_ECN } else { 0 };
        hdr.gso_size = size;
        hdr.hdr_len = hdr_len;
    }
    hdr
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{
        EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, IpProtocol,
        Ipv4Address, Ipv4Packet, Ipv4Repr, Ipv6Address, Ipv6Packet, Ipv6Repr, TcpControl,
        TcpPacket, TcpRepr, TcpSeqNumber,
    };

    /// What the kernel does with `NEEDS_CSUM`: sums from `csum_start` to the end (the field
    /// holds the pseudo-header sum) and stores the complement.
    fn complete_checksum(frame: &mut [u8], hdr: &VnetHeader) {
        let start = usize::from(hdr.csum_start);
        let field = start + usize::from(hdr.csum_offset);
        let sum = !fold(sum16(&frame[start..], 0));
        frame[field..field + 2].copy_from_slice(&sum.to_be_bytes());
    }

    fn tcp_repr(payload: &[u8], mss: Option<u16>) -> TcpRepr<'_> {
        TcpRepr {
            src_port: 80,
            dst_port: 49152,
            control: TcpControl::Psh,
            seq_number: TcpSeqNumber(0x1234_5678),
            ack_number: Some(TcpSeqNumber(0x0abc_def0)),
            window_len: 512,
            window_scale: None,
            max_seg_size: mss,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload,
        }
    }

    /// An Ethernet frame with IPv4 and TCP as smoltcp emits it on a link without TCP checksum
    /// offload in the send direction (checksum field zero).
    fn ipv4_tcp_frame(payload: &[u8], mss: Option<u16>) -> Vec<u8> {
        let src = Ipv4Address::new(10, 77, 1, 1);
        let dst = Ipv4Address::new(10, 77, 1, 2);
        let tcp = tcp_repr(payload, mss);
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        };
        let mut buf = vec![0; ETH_HEADER + ip.buffer_len() + tcp.buffer_len()];
        let mut eth = EthernetFrame::new_unchecked(&mut buf);
        EthernetRepr {
            src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
            ethertype: EthernetProtocol::Ipv4,
        }
        .emit(&mut eth);
        let caps = smoltcp::phy::ChecksumCapabilities::ignored();
        let mut ipp = Ipv4Packet::new_unchecked(eth.payload_mut());
        ip.emit(&mut ipp, &caps);
        ipp.fill_checksum();
        tcp.emit(
            &mut TcpPacket::new_unchecked(ipp.payload_mut()),
            &IpAddress::Ipv4(src),
            &IpAddress::Ipv4(dst),
            &caps,
        );
        buf
    }

    fn ipv4_tcp_checksum_is_valid(frame: &[u8]) -> bool {
        let ip = Ipv4Packet::new_checked(&frame[ETH_HEADER..]).unwrap();
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        tcp.verify_checksum(
            &IpAddress::Ipv4(ip.src_addr()),
            &IpAddress::Ipv4(ip.dst_addr()),
        )
    }

    #[test]
    fn header_round_trips_and_is_little_endian() {
        let hdr = VnetHeader {
            flags: FLAG_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let bytes = hdr.emit();
        assert_eq!(bytes, [1, 1, 66, 0, 0xa8, 0x05, 34, 0, 16, 0]);
        assert_eq!(VnetHeader::parse(&bytes), Ok(hdr));
    }

    #[test]
    fn short_or_unsupported_headers_are_refused() {
        assert_eq!(VnetHeader::parse(&[]), Err(VnetError::Truncated));
        assert_eq!(
            VnetHeader::parse(&[0; VNET_HDR_LEN - 1]),
            Err(VnetError::Truncated)
        );
        let udp = VnetHeader {
            gso_type: 3,
            ..VnetHeader::default()
        }
        .emit();
        assert_eq!(VnetHeader::parse(&udp), Err(VnetError::UnsupportedGso(3)));
        let ecn = VnetHeader {
            gso_type: GSO_TCPV4 | GSO_ECN,
            ..VnetHeader::default()
        }
        .emit();
        assert!(VnetHeader::parse(&ecn).is_ok());
    }

    #[test]
    fn small_tcp_frame_gets_a_partial_checksum_that_completes_correctly() {
        let mut frame = ipv4_tcp_frame(b"hello, replica", Some(1460));
        assert!(
            !ipv4_tcp_checksum_is_valid(&frame),
            "smoltcp left the checksum out"
        );
        let hdr = prepare_tx(&mut frame, None);
        assert_eq!(
            (hdr.flags, hdr.gso_type, hdr.gso_size),
            (FLAG_NEEDS_CSUM, GSO_NONE, 0)
        );
        assert_eq!((hdr.csum_start, hdr.csum_offset), (34, 16));
        complete_checksum(&mut frame, &hdr);
        assert!(ipv4_tcp_checksum_is_valid(&frame));
    }

    #[test]
    fn partial_checksum_matches_a_from_scratch_checksum() {
        // Odd payload length: the last byte is summed as a padded word.
        let payload: Vec<u8> = (0..40_001u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut ours = ipv4_tcp_frame(&payload, None);
        let mut reference = ours.clone();
        netback::csum::fill_l4_checksum(&mut reference).unwrap();
        let hdr = prepare_tx(&mut ours, Some(1448));
        complete_checksum(&mut ours, &hdr);
        assert_eq!(ours, reference);
    }

    #[test]
    fn large_tcp_frame_is_marked_for_segmentation() {
        let payload = vec![0x5a; 3000];
        let mut frame = ipv4_tcp_frame(&payload, None);
        let hdr = prepare_tx(&mut frame, Some(1448));
        assert_eq!(hdr.gso_type, GSO_TCPV4);
        assert_eq!(hdr.gso_size, 1448);
        assert_eq!(hdr.hdr_len, 14 + 20 + 20);
        // A payload that fits one segment is not marked.
        let mut frame = ipv4_tcp_frame(&payload[..1448], None);
        assert_eq!(prepare_tx(&mut frame, Some(1448)).gso_type, GSO_NONE);
    }

    #[test]
    fn tcp_options_count_in_the_replicated_headers() {
        let mut frame = ipv4_tcp_frame(&[1; 5000], Some(1460));
        let hdr = prepare_tx(&mut frame, Some(1000));
        assert_eq!(hdr.hdr_len, 14 + 20 + 24);
    }

    #[test]
    fn ipv6_tcp_frame_gets_a_partial_checksum_that_completes_correctly() {
        let src = Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
        let dst = Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
        let payload = vec![0xa5; 4001];
        let tcp = tcp_repr(&payload, None);
        let ip = Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        };
        let mut frame = vec![0; ETH_HEADER + ip.buffer_len() + tcp.buffer_len()];
        frame[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        let mut ipp = Ipv6Packet::new_unchecked(&mut frame[ETH_HEADER..]);
        ip.emit(&mut ipp);
        tcp.emit(
            &mut TcpPacket::new_unchecked(ipp.payload_mut()),
            &IpAddress::Ipv6(src),
            &IpAddress::Ipv6(dst),
            &smoltcp::phy::ChecksumCapabilities::ignored(),
        );
        let hdr = prepare_tx(&mut frame, Some(1428));
        assert_eq!(
            (hdr.gso_type, hdr.gso_size, hdr.csum_start),
            (GSO_TCPV6, 1428, 54)
        );
        complete_checksum(&mut frame, &hdr);
        let ipp = Ipv6Packet::new_checked(&frame[ETH_HEADER..]).unwrap();
        assert!(TcpPacket::new_checked(ipp.payload())
            .unwrap()
            .verify_checksum(&IpAddress::Ipv6(src), &IpAddress::Ipv6(dst)));
    }

    #[test]
    fn non_tcp_and_garbled_frames_are_left_alone() {
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        let before = arp.clone();
        assert_eq!(prepare_tx(&mut arp, Some(1448)), VnetHeader::default());
        assert_eq!(arp, before);
        let good = ipv4_tcp_frame(&[7; 100], None);
        for cut in 0..good.len() {
            let mut short = good[..cut].to_vec();
            assert_eq!(
                prepare_tx(&mut short, Some(1448)),
                VnetHeader::default(),
                "cut at {cut}"
            );
        }
        // IPv4 header length below 20.
        let mut bad_ihl = good.clone();
        bad_ihl[ETH_HEADER] = 0x44;
        assert_eq!(prepare_tx(&mut bad_ihl, None), VnetHeader::default());
        // TCP data offset beyond the segment: 24-byte header in a 20-byte segment.
        let mut bad_doff = ipv4_tcp_frame(&[], None);
        bad_doff[ETH_HEADER + 20 + 12] = 0x60;
        assert_eq!(prepare_tx(&mut bad_doff, None), VnetHeader::default());
        // An IPv4 fragment is not a TCP segment of its own.
        let mut fragment = good.clone();
        fragment[ETH_HEADER + 6] = 0x20;
        assert_eq!(prepare_tx(&mut fragment, None), VnetHeader::default());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(mut frame in proptest::collection::vec(proptest::num::u8::ANY, 0..200), size in proptest::option::of(proptest::num::u16::ANY)) {
            let _ = VnetHeader::parse(&frame);
            let _ = prepare_tx(&mut frame, size);
        }
    }
}
