//! Filling in the TCP/UDP checksum of a frame the guest sent with `NETTXF_csum_blank`.
//!
//! A Linux guest with checksum offload leaves the L4 checksum partial (only the pseudo-header
//! sum); smoltcp verifies checksums, so the backend computes the full checksum before handing the
//! frame up. The whole checksum is recomputed from scratch, so whatever the guest left in the field
//! does not matter. Parsing is bounds-checked and returns an error on anything it cannot handle.

/// Why a checksum could not be filled in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CsumError {
    /// The frame is shorter than its headers say.
    #[error("truncated frame")]
    Truncated,
    /// Not IPv4/IPv6 carrying TCP or UDP (or an IPv4 fragment, or IPv6 extension headers).
    #[error("unsupported protocol for checksum offload")]
    Unsupported,
}

const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// One's-complement sum of `data` as big-endian 16-bit words (an odd last byte padded with
/// zero), added to `acc`, unfolded.
pub fn sum16(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        acc += u64::from(u16::from_be_bytes([*b, 0]));
    }
    acc
}

/// Folds an unfolded one's-complement sum to 16 bits (not inverted).
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Computes and stores the TCP or UDP checksum of an Ethernet frame (IPv4 or IPv6, optionally
/// one VLAN tag).
pub fn fill_l4_checksum(frame: &mut [u8]) -> Result<(), CsumError> {
    let get = |r: std::ops::Range<usize>| frame.get(r).ok_or(CsumError::Truncated);
    let mut l3 = 14;
    let mut ethertype =
        u16::from_be_bytes(get(12..14)?.try_into().map_err(|_| CsumError::Truncated)?);
    if ethertype == 0x8100 {
        ethertype = u16::from_be_bytes(get(16..18)?.try_into().map_err(|_| CsumError::Truncated)?);
        l3 = 18;
    }
    let (proto, l4, l4_end, pseudo) = match ethertype {
        0x0800 => {
            let h = get(l3..l3 + 20)?;
            if h[0] >> 4 != 4 {
                return Err(CsumError::Unsupported);
            }
            let ihl = usize::from(h[0] & 0xf) * 4;
            let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
            let frag = u16::from_be_bytes([h[6], h[7]]);
            if frag & 0x3fff != 0 {
                return Err(CsumError::Unsupported);
            }
            if ihl < 20 || total < ihl {
                return Err(CsumError::Truncated);
            }
            let proto = h[9];
            let l4_len = total - ihl;
            let pseudo = sum16(&h[12..20], u64::from(proto) + l4_len as u64);
            (proto, l3 + ihl, l3 + total, pseudo)
        }
        0x86dd => {
            let h = get(l3..l3 + 40)?;
            let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
            let proto = h[6];
            let pseudo = sum16(&h[8..40], u64::from(proto) + plen as u64);
            (proto, l3 + 40, l3 + 40 + plen, pseudo)
        }
        _ => return Err(CsumError::Unsupported),
    };
    let field = match proto {
        PROTO_TCP => 16,
        PROTO_UDP => 6,
        _ => return Err(CsumError::Unsupported),
    };
    let seg = frame.get_mut(l4..l4_end).ok_or(CsumError::Truncated)?;
    if seg.len() < field + 2 || (proto == PROTO_TCP && seg.len() < 20) {
        return Err(CsumError::Truncated);
    }
    seg[field] = 0;
    seg[field + 1] = 0;
    let mut c = !fold(sum16(seg, pseudo));
    if proto == PROTO_UDP && c == 0 {
        c = 0xffff;
    }
    seg[field..field + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::*;

    fn tcp_frame(v6: bool, payload: &[u8]) -> Vec<u8> {
        let caps = ChecksumCapabilities::default();
        let tcp = TcpRepr {
            src_port: 1234,
            dst_port: 80,
            control: TcpControl::Psh,
            seq_number: TcpSeqNumber(7),
            ack_number: Some(TcpSeqNumber(9)),
            window_len: 1000,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload,
        };
        let (src, dst): (IpAddress, IpAddress) = if v6 {
            (
                Ipv6Address::new(0xfe80, 0, 0, 0, 0, 0, 0, 1).into(),
                Ipv6Address::new(0xfe80, 0, 0, 0, 0, 0, 0, 2).into(),
            )
        } else {
            (
                Ipv4Address::new(10, 0, 0, 1).into(),
                Ipv4Address::new(10, 0, 0, 2).into(),
            )
        };
        let ip = IpRepr::new(src, dst, IpProtocol::Tcp, tcp.buffer_len(), 64);
        let eth = EthernetRepr {
            src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
            ethertype: if v6 {
                EthernetProtocol::Ipv6
            } else {
                EthernetProtocol::Ipv4
            },
        };
        let mut buf = vec![0u8; 14 + ip.buffer_len()];
        let mut f = EthernetFrame::new_unchecked(&mut buf);
        eth.emit(&mut f);
        ip.emit(f.payload_mut(), &caps);
        let hl = ip.header_len();
        let mut seg = TcpPacket::new_unchecked(&mut f.payload_mut()[hl..]);
        tcp.emit(&mut seg, &src, &dst, &caps);
        buf
    }

    #[test]
    fn blanked_tcp_checksums_are_restored_v4_and_v6() {
        for v6 in [false, true] {
            for len in [0usize, 1, 17, 1400] {
                let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
                let good = tcp_frame(v6, &payload);
                let mut blank = good.clone();
                let off = 14 + if v6 { 40 } else { 20 } + 16;
                blank[off] = 0x12;
                blank[off + 1] = 0x34;
                fill_l4_checksum(&mut blank).unwrap();
                assert_eq!(blank, good, "v6={v6} len={len}");
            }
        }
    }

    #[test]
    fn hostile_headers_are_errors_not_panics() {
        let good = tcp_frame(false, b"hello");
        for cut in 0..good.len() {
            let mut f = good[..cut].to_vec();
            assert!(fill_l4_checksum(&mut f).is_err(), "cut {cut}");
        }
        let mut bad_ihl = good.clone();
        bad_ihl[14] = 0x4f;
        assert!(fill_l4_checksum(&mut bad_ihl).is_err());
        let mut bad_total = good.clone();
        bad_total[16] = 0xff;
        assert_eq!(fill_l4_checksum(&mut bad_total), Err(CsumError::Truncated));
        let mut arp = good;
        arp[12] = 0x08;
        arp[13] = 0x06;
        assert_eq!(fill_l4_checksum(&mut arp), Err(CsumError::Unsupported));
    }
}
