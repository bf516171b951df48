//! The netif wire format (`xen/io/netif.h`, `xen/io/ring.h`).
//!
//! Every message is decoded from a local copy of its ring slot, taken once from shared memory
//! (see [`crate::ring`]); nothing here touches shared memory. Multi-byte fields are little-endian
//! (x86 and Arm guests both are).

/// Size of a Xen page, and of every shared ring.
pub const PAGE_SIZE: usize = 4096;
/// Size of the shared ring header (`req_prod, req_event, rsp_prod, rsp_event`, `pvt`, `__pad[44]`).
pub const SRING_HEADER: usize = 64;
/// Entries in a TX ring: `(4096 - 64) / 12` rounded down to a power of two.
pub const TX_RING_SIZE: u32 = 256;
/// Entries in an RX ring: `(4096 - 64) / 8` rounded down to a power of two.
pub const RX_RING_SIZE: u32 = 256;
/// Bytes per TX ring entry (`union { netif_tx_request; netif_tx_response }`).
pub const TX_ENTRY_SIZE: usize = 12;
/// Bytes per RX ring entry (`union { netif_rx_request; netif_rx_response }`).
pub const RX_ENTRY_SIZE: usize = 8;

/// Slots a frontend may always use for one packet (`XEN_NETIF_NR_SLOTS_MIN`).
pub const NR_SLOTS_MIN: usize = 18;
/// A packet using this many slots or more is fatal for the vif (Linux `fatal_skb_slots`).
pub const FATAL_SLOTS: usize = 20;
/// Largest packet a TX chain may describe (`XEN_NETIF_MAX_TX_SIZE`).
pub const MAX_TX_SIZE: usize = 0xFFFF;
/// Smallest first slot: an Ethernet header (`ETH_HLEN`).
pub const ETH_HLEN: usize = 14;
/// An 802.1Q VLAN tag (`VLAN_HLEN`), allowed on top of the MTU.
pub const VLAN_HLEN: usize = 4;

/// TX flag: the L4 checksum is blank (partial) and must be filled in by the backend.
pub const NETTXF_CSUM_BLANK: u16 = 1 << 0;
/// TX flag: the packet's checksums are known good.
pub const NETTXF_DATA_VALIDATED: u16 = 1 << 1;
/// TX flag: the packet continues in the next slot.
pub const NETTXF_MORE_DATA: u16 = 1 << 2;
/// TX flag: the next slot holds a `netif_extra_info`.
pub const NETTXF_EXTRA_INFO: u16 = 1 << 3;

/// RX flag: the packet's checksums are known good.
pub const NETRXF_DATA_VALIDATED: u16 = 1 << 0;
/// RX flag: the L4 checksum is blank.
pub const NETRXF_CSUM_BLANK: u16 = 1 << 1;
/// RX flag: the packet continues in the next slot.
pub const NETRXF_MORE_DATA: u16 = 1 << 2;
/// RX flag: the next slot holds a `netif_extra_info`.
pub const NETRXF_EXTRA_INFO: u16 = 1 << 3;
/// RX flag: a GSO prefix slot.
pub const NETRXF_GSO_PREFIX: u16 = 1 << 4;

/// Response status: packet dropped.
pub const NETIF_RSP_DROPPED: i16 = -2;
/// Response status: error.
pub const NETIF_RSP_ERROR: i16 = -1;
/// Response status: okay.
pub const NETIF_RSP_OKAY: i16 = 0;
/// Response status of a slot that held an extra-info segment.
pub const NETIF_RSP_NULL: i16 = 1;

/// Extra-info type 0: never valid.
pub const XEN_NETIF_EXTRA_TYPE_NONE: u8 = 0;
/// Extra-info type: GSO parameters.
pub const XEN_NETIF_EXTRA_TYPE_GSO: u8 = 1;
/// Extra-info type: add a multicast address.
pub const XEN_NETIF_EXTRA_TYPE_MCAST_ADD: u8 = 2;
/// Extra-info type: delete a multicast address.
pub const XEN_NETIF_EXTRA_TYPE_MCAST_DEL: u8 = 3;
/// Extra-info type: hash value.
pub const XEN_NETIF_EXTRA_TYPE_HASH: u8 = 4;
/// One past the last valid extra-info type.
pub const XEN_NETIF_EXTRA_TYPE_MAX: u8 = 5;
/// Extra-info flag: another extra-info slot follows.
pub const XEN_NETIF_EXTRA_FLAG_MORE: u8 = 1 << 0;
/// GSO type: TCP over IPv4.
pub const XEN_NETIF_GSO_TYPE_TCPV4: u8 = 1;
/// GSO type: TCP over IPv6.
pub const XEN_NETIF_GSO_TYPE_TCPV6: u8 = 2;

/// `struct netif_tx_request` (12 bytes): one slot of a packet the guest transmits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxRequest {
    /// Grant reference of the page holding the data.
    pub gref: u32,
    /// Offset of the data within that page.
    pub offset: u16,
    /// `NETTXF_*` flags.
    pub flags: u16,
    /// Guest's identifier, echoed in the response.
    pub id: u16,
    /// Bytes in this slot; in the first slot of a packet, the whole packet's length.
    pub size: u16,
}

impl TxRequest {
    /// Decodes a request from the three words of its ring slot.
    pub fn from_words(w: [u32; 3]) -> Self {
        TxRequest {
            gref: w[0],
            offset: w[1] as u16,
            flags: (w[1] >> 16) as u16,
            id: w[2] as u16,
            size: (w[2] >> 16) as u16,
        }
    }

    /// Encodes the request into the three words of a ring slot (used by frontends).
    pub fn to_words(self) -> [u32; 3] {
        [
            self.gref,
            u32::from(self.offset) | u32::from(self.flags) << 16,
            u32::from(self.id) | u32::from(self.size) << 16,
        ]
    }
}

/// `struct netif_extra_info` (8 bytes), carried in a TX or RX slot after a slot with the
/// extra-info flag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtraInfo {
    /// `XEN_NETIF_EXTRA_TYPE_*`.
    pub ty: u8,
    /// `XEN_NETIF_EXTRA_FLAG_*`.
    pub flags: u8,
    /// The type-specific union, raw.
    pub data: [u8; 6],
}

impl ExtraInfo {
    /// Decodes an extra-info segment from the first two words of a slot.
    pub fn from_words(w0: u32, w1: u32) -> Self {
        let a = w0.to_le_bytes();
        let b = w1.to_le_bytes();
        ExtraInfo {
            ty: a[0],
            flags: a[1],
            data: [a[2], a[3], b[0], b[1], b[2], b[3]],
        }
    }

    /// Encodes the segment into two words.
    pub fn to_words(self) -> [u32; 2] {
        let d = self.data;
        [
            u32::from_le_bytes([self.ty, self.flags, d[0], d[1]]),
            u32::from_le_bytes([d[2], d[3], d[4], d[5]]),
        ]
    }

    /// `u.gso.size`: the MSS of a GSO packet.
    pub fn gso_size(&self) -> u16 {
        u16::from_le_bytes([self.data[0], self.data[1]])
    }

    /// `u.gso.type`: `XEN_NETIF_GSO_TYPE_*`.
    pub fn gso_type(&self) -> u8 {
        self.data[2]
    }

    /// Whether another extra-info slot follows this one.
    pub fn more(&self) -> bool {
        self.flags & XEN_NETIF_EXTRA_FLAG_MORE != 0
    }
}

/// `struct netif_tx_response` (4 bytes, in a 12-byte slot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxResponse {
    /// The request's `id`.
    pub id: u16,
    /// `NETIF_RSP_*`.
    pub status: i16,
}

impl TxResponse {
    /// Encodes the response into the first word of a slot.
    pub fn to_word(self) -> u32 {
        u32::from(self.id) | u32::from(self.status as u16) << 16
    }

    /// Decodes a response from the first word of a slot (used by frontends).
    pub fn from_word(w: u32) -> Self {
        TxResponse {
            id: w as u16,
            status: (w >> 16) as u16 as i16,
        }
    }
}

/// `struct netif_rx_request` (8 bytes): an empty page the guest offers for a received packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxRequest {
    /// Guest's identifier, echoed in the response.
    pub id: u16,
    /// Grant reference of the page to fill.
    pub gref: u32,
}

impl RxRequest {
    /// Decodes a request from the two words of its ring slot.
    pub fn from_words(w: [u32; 2]) -> Self {
        RxRequest {
            id: w[0] as u16,
            gref: w[1],
        }
    }

    /// Encodes the request into two words (used by frontends).
    pub fn to_words(self) -> [u32; 2] {
        [u32::from(self.id), self.gref]
    }
}

/// `struct netif_rx_response` (8 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxResponse {
    /// The request's `id`.
    pub id: u16,
    /// Offset of the data in the page.
    pub offset: u16,
    /// `NETRXF_*` flags.
    pub flags: u16,
    /// Bytes of data in this slot if non-negative, else `NETIF_RSP_*`.
    pub status: i16,
}

impl RxResponse {
    /// Encodes the response into two words.
    pub fn to_words(self) -> [u32; 2] {
        [
            u32::from(self.id) | u32::from(self.offset) << 16,
            u32::from(self.flags) | u32::from(self.status as u16) << 16,
        ]
    }

    /// Decodes a response from two words (used by frontends).
    pub fn from_words(w: [u32; 2]) -> Self {
        RxResponse {
            id: w[0] as u16,
            offset: (w[0] >> 16) as u16,
            flags: w[1] as u16,
            status: (w[1] >> 16) as u16 as i16,
        }
    }
}

/// Xenbus states (`xen/io/xenbus.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XenbusState {
    /// 0: unknown.
    Unknown,
    /// 1.
    Initialising,
    /// 2: backend ready for the frontend's details.
    InitWait,
    /// 3.
    Initialised,
    /// 4.
    Connected,
    /// 5.
    Closing,
    /// 6.
    Closed,
    /// 7.
    Reconfiguring,
    /// 8.
    Reconfigured,
}

impl XenbusState {
    /// Parses the decimal string stored in a `state` node; `None` if it is not a state.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim_end_matches('\0').trim() {
            "0" => XenbusState::Unknown,
            "1" => XenbusState::Initialising,
            "2" => XenbusState::InitWait,
            "3" => XenbusState::Initialised,
            "4" => XenbusState::Connected,
            "5" => XenbusState::Closing,
            "6" => XenbusState::Closed,
            "7" => XenbusState::Reconfiguring,
            "8" => XenbusState::Reconfigured,
            _ => return None,
        })
    }

    /// The decimal string written to a `state` node.
    pub fn as_str(self) -> &'static str {
        match self {
            XenbusState::Unknown => "0",
            XenbusState::Initialising => "1",
            XenbusState::InitWait => "2",
            XenbusState::Initialised => "3",
            XenbusState::Connected => "4",
            XenbusState::Closing => "5",
            XenbusState::Closed => "6",
            XenbusState::Reconfiguring => "7",
            XenbusState::Reconfigured => "8",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn ring_sizes_match_ring_h() {
        // __RD32((4096 - 64) / entry) as in __CONST_RING_SIZE.
        let rd = |n: usize| 1usize << (usize::BITS - 1 - n.leading_zeros());
        assert_eq!(
            rd((PAGE_SIZE - SRING_HEADER) / TX_ENTRY_SIZE),
            TX_RING_SIZE as usize
        );
        assert_eq!(
            rd((PAGE_SIZE - SRING_HEADER) / RX_ENTRY_SIZE),
            RX_RING_SIZE as usize
        );
        assert!(SRING_HEADER + TX_RING_SIZE as usize * TX_ENTRY_SIZE <= PAGE_SIZE);
    }

    #[test]
    fn tx_request_layout_matches_netif_h() {
        // struct netif_tx_request { grant_ref_t gref; uint16_t offset, flags, id, size; }
        let r = TxRequest {
            gref: 0x0403_0201,
            offset: 0x0605,
            flags: 0x0807,
            id: 0x0a09,
            size: 0x0c0b,
        };
        assert_eq!(bytes_of(&r.to_words()), (1..=12).collect::<Vec<u8>>());
        assert_eq!(TxRequest::from_words(r.to_words()), r);
    }

    #[test]
    fn responses_layout_matches_netif_h() {
        let t = TxResponse {
            id: 0x0201,
            status: NETIF_RSP_NULL,
        };
        assert_eq!(t.to_word().to_le_bytes(), [1, 2, 1, 0]);
        assert_eq!(
            TxResponse::from_word(TxResponse { id: 7, status: -2 }.to_word()).status,
            -2
        );
        // struct netif_rx_response { uint16_t id, offset, flags; int16_t status; }
        let r = RxResponse {
            id: 0x0201,
            offset: 0x0403,
            flags: 0x0605,
            status: -1,
        };
        assert_eq!(bytes_of(&r.to_words()), vec![1, 2, 3, 4, 5, 6, 0xff, 0xff]);
        assert_eq!(RxResponse::from_words(r.to_words()), r);
        // struct netif_rx_request { uint16_t id, pad; grant_ref_t gref; }
        let q = RxRequest {
            id: 0x0201,
            gref: 0x0807_0605,
        };
        assert_eq!(bytes_of(&q.to_words()), vec![1, 2, 0, 0, 5, 6, 7, 8]);
    }

    #[test]
    fn extra_info_layout_matches_netif_h() {
        // { uint8_t type, flags; union { struct { uint16_t size; uint8_t type, pad; uint16_t features; } gso; } }
        let e = ExtraInfo::from_words(
            u32::from_le_bytes([1, 1, 0xb4, 0x05]),
            u32::from_le_bytes([2, 0, 0, 0]),
        );
        assert_eq!(e.ty, XEN_NETIF_EXTRA_TYPE_GSO);
        assert!(e.more());
        assert_eq!(e.gso_size(), 1460);
        assert_eq!(e.gso_type(), XEN_NETIF_GSO_TYPE_TCPV6);
        assert_eq!(ExtraInfo::from_words(e.to_words()[0], e.to_words()[1]), e);
    }

    #[test]
    fn xenbus_state_round_trips_and_rejects_garbage() {
        for n in 0..=8u8 {
            let s = n.to_string();
            assert_eq!(XenbusState::parse(&s).unwrap().as_str(), s);
        }
        assert_eq!(XenbusState::parse("4\0"), Some(XenbusState::Connected));
        assert_eq!(XenbusState::parse("9"), None);
        assert_eq!(XenbusState::parse("-1"), None);
        assert_eq!(XenbusState::parse(""), None);
    }

    /// Checks constants and field order against Xen's own `netif.h` when it is installed
    /// (`apt-get install libxen-dev`); prints a note and passes when it is not.
    #[test]
    fn constants_and_fields_match_installed_netif_h() {
        let Ok(h) = std::fs::read_to_string("/usr/include/xen/io/netif.h") else {
            eprintln!("netif.h not installed; header cross-check skipped");
            return;
        };
        let define = |name: &str| -> i64 {
            let line = h
                .lines()
                .find(|l| l.split_whitespace().take(2).eq(["#define", name]))
                .unwrap_or_else(|| panic!("{name} not in netif.h"));
            let v = line
                .split_whitespace()
                .nth(2)
                .unwrap()
                .trim_matches(|c| c == '(' || c == ')');
            match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
                Some(hex) => i64::from_str_radix(hex, 16).unwrap(),
                None => v.parse().unwrap_or_else(|_| panic!("{name} = {v:?}")),
            }
        };
        let bit = |name: &str| 1i64 << define(name);
        assert_eq!(define("XEN_NETIF_NR_SLOTS_MIN"), NR_SLOTS_MIN as i64);
        assert_eq!(bit("_NETTXF_csum_blank"), i64::from(NETTXF_CSUM_BLANK));
        assert_eq!(
            bit("_NETTXF_data_validated"),
            i64::from(NETTXF_DATA_VALIDATED)
        );
        assert_eq!(bit("_NETTXF_more_data"), i64::from(NETTXF_MORE_DATA));
        assert_eq!(bit("_NETTXF_extra_info"), i64::from(NETTXF_EXTRA_INFO));
        assert_eq!(
            bit("_NETRXF_data_validated"),
            i64::from(NETRXF_DATA_VALIDATED)
        );
        assert_eq!(bit("_NETRXF_csum_blank"), i64::from(NETRXF_CSUM_BLANK));
        assert_eq!(bit("_NETRXF_more_data"), i64::from(NETRXF_MORE_DATA));
        assert_eq!(bit("_NETRXF_extra_info"), i64::from(NETRXF_EXTRA_INFO));
        assert_eq!(bit("_NETRXF_gso_prefix"), i64::from(NETRXF_GSO_PREFIX));
        assert_eq!(define("NETIF_RSP_DROPPED"), i64::from(NETIF_RSP_DROPPED));
        assert_eq!(define("NETIF_RSP_ERROR"), i64::from(NETIF_RSP_ERROR));
        assert_eq!(define("NETIF_RSP_OKAY"), i64::from(NETIF_RSP_OKAY));
        assert_eq!(define("NETIF_RSP_NULL"), i64::from(NETIF_RSP_NULL));
        assert_eq!(
            define("XEN_NETIF_EXTRA_TYPE_GSO"),
            i64::from(XEN_NETIF_EXTRA_TYPE_GSO)
        );
        assert_eq!(
            define("XEN_NETIF_EXTRA_TYPE_MAX"),
            i64::from(XEN_NETIF_EXTRA_TYPE_MAX)
        );
        assert_eq!(
            define("XEN_NETIF_GSO_TYPE_TCPV4"),
            i64::from(XEN_NETIF_GSO_TYPE_TCPV4)
        );
        assert_eq!(
            define("XEN_NETIF_GSO_TYPE_TCPV6"),
            i64::from(XEN_NETIF_GSO_TYPE_TCPV6)
        );
        assert_eq!(define("XEN_NETIF_MAX_TX_SIZE"), MAX_TX_SIZE as i64);
        // Field order (and types) of the structs our encoders assume.
        let fields = |st: &str| -> Vec<String> {
            let start = h
                .find(&format!("struct {st} {{"))
                .unwrap_or_else(|| panic!("struct {st}"));
            let body = &h[start..start + h[start..].find("};").unwrap()];
            body.lines()
                .skip(1)
                .filter_map(|l| l.split("/*").next())
                .map(str::trim)
                .filter(|l| l.ends_with(';') && !l.starts_with('#'))
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect()
        };
        assert_eq!(
            fields("netif_tx_request"),
            [
                "grant_ref_t gref;",
                "uint16_t offset;",
                "uint16_t flags;",
                "uint16_t id;",
                "uint16_t size;"
            ]
        );
        assert_eq!(
            fields("netif_tx_response"),
            ["uint16_t id;", "int16_t status;"]
        );
        assert_eq!(
            fields("netif_rx_request"),
            ["uint16_t id;", "uint16_t pad;", "grant_ref_t gref;"]
        );
        assert_eq!(
            fields("netif_rx_response"),
            [
                "uint16_t id;",
                "uint16_t offset;",
                "uint16_t flags;",
                "int16_t status;"
            ]
        );
    }
}
