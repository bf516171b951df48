//! The xenstore wire format (`<xen/io/xs_wire.h>`): a 16-byte little-endian header
//! (`struct xsd_sockmsg { type, req_id, tx_id, len }`) followed by `len` payload bytes.
//!
//! Pure encode/decode with no I/O. Every parser checks lengths before reading and returns a
//! [`WireError`] on malformed or truncated input; none of them panics.

use std::fmt;

use crate::XsErrno;

/// Size of `struct xsd_sockmsg`.
pub const HEADER_LEN: usize = 16;
/// `XENSTORE_PAYLOAD_MAX`: the largest payload of one message.
pub const PAYLOAD_MAX: usize = 4096;
/// `XENSTORE_ABS_PATH_MAX`: the longest absolute path.
pub const ABS_PATH_MAX: usize = 3072;
/// `XENSTORE_REL_PATH_MAX`: the longest relative path.
pub const REL_PATH_MAX: usize = 2048;

/// `enum xsd_sockmsg_type`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MsgType {
    /// `XS_CONTROL` (alias `XS_DEBUG`).
    Control = 0,
    /// `XS_DIRECTORY`: list children.
    Directory = 1,
    /// `XS_READ`: read a value.
    Read = 2,
    /// `XS_GET_PERMS`: read a node's permissions.
    GetPerms = 3,
    /// `XS_WATCH`: register a watch.
    Watch = 4,
    /// `XS_UNWATCH`: remove a watch.
    Unwatch = 5,
    /// `XS_TRANSACTION_START`.
    TransactionStart = 6,
    /// `XS_TRANSACTION_END` (payload `"T"` commit, `"F"` abort).
    TransactionEnd = 7,
    /// `XS_INTRODUCE`.
    Introduce = 8,
    /// `XS_RELEASE`.
    Release = 9,
    /// `XS_GET_DOMAIN_PATH`.
    GetDomainPath = 10,
    /// `XS_WRITE`.
    Write = 11,
    /// `XS_MKDIR`.
    Mkdir = 12,
    /// `XS_RM`.
    Rm = 13,
    /// `XS_SET_PERMS`.
    SetPerms = 14,
    /// `XS_WATCH_EVENT`: asynchronous watch firing (path, token).
    WatchEvent = 15,
    /// `XS_ERROR`: error reply carrying an errno name.
    Error = 16,
    /// `XS_IS_DOMAIN_INTRODUCED`.
    IsDomainIntroduced = 17,
    /// `XS_RESUME`.
    Resume = 18,
    /// `XS_SET_TARGET`.
    SetTarget = 19,
    /// `XS_RESET_WATCHES` (20 was the removed `XS_RESTRICT`).
    ResetWatches = 21,
    /// `XS_DIRECTORY_PART`.
    DirectoryPart = 22,
}

impl MsgType {
    /// The message type for a raw header value, if it is a known one.
    pub fn from_u32(v: u32) -> Option<MsgType> {
        use MsgType::*;
        Some(match v {
            0 => Control,
            1 => Directory,
            2 => Read,
            3 => GetPerms,
            4 => Watch,
            5 => Unwatch,
            6 => TransactionStart,
            7 => TransactionEnd,
            8 => Introduce,
            9 => Release,
            10 => GetDomainPath,
            11 => Write,
            12 => Mkdir,
            13 => Rm,
            14 => SetPerms,
            15 => WatchEvent,
            16 => Error,
            17 => IsDomainIntroduced,
            18 => Resume,
            19 => SetTarget,
            21 => ResetWatches,
            22 => DirectoryPart,
            _ => return None,
        })
    }
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The buffer ends before the message does.
    Truncated {
        /// Bytes needed for the whole message (or header).
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The header announces a payload above [`PAYLOAD_MAX`].
    TooLong(u32),
    /// Unknown message type number.
    UnknownType(u32),
    /// The payload does not have the shape its type requires.
    BadPayload(&'static str),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated { need, have } => {
                write!(f, "truncated message: need {need} bytes, have {have}")
            }
            WireError::TooLong(n) => write!(f, "payload length {n} above {PAYLOAD_MAX}"),
            WireError::UnknownType(t) => write!(f, "unknown message type {t}"),
            WireError::BadPayload(why) => write!(f, "malformed payload: {why}"),
        }
    }
}

impl std::error::Error for WireError {}

impl From<WireError> for crate::Error {
    fn from(e: WireError) -> crate::Error {
        crate::Error::Protocol(e.to_string())
    }
}

/// `struct xsd_sockmsg`, the message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Raw message type (see [`MsgType`]).
    pub ty: u32,
    /// Request id, echoed in the reply.
    pub req_id: u32,
    /// Transaction id, 0 outside transactions.
    pub tx_id: u32,
    /// Payload length.
    pub len: u32,
}

impl Header {
    /// Encodes the header (little-endian, as on x86 and Arm Xen hosts).
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&self.ty.to_le_bytes());
        b[4..8].copy_from_slice(&self.req_id.to_le_bytes());
        b[8..12].copy_from_slice(&self.tx_id.to_le_bytes());
        b[12..16].copy_from_slice(&self.len.to_le_bytes());
        b
    }

    /// Decodes a header from the first [`HEADER_LEN`] bytes of `buf`; checks the length bound.
    pub fn decode(buf: &[u8]) -> Result<Header, WireError> {
        let h: &[u8; HEADER_LEN] = buf
            .get(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(WireError::Truncated {
                need: HEADER_LEN,
                have: buf.len(),
            })?;
        let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let hdr = Header {
            ty: word(0),
            req_id: word(4),
            tx_id: word(8),
            len: word(12),
        };
        if hdr.len as usize > PAYLOAD_MAX {
            return Err(WireError::TooLong(hdr.len));
        }
        Ok(hdr)
    }
}

/// A whole message: a known type, ids and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Message type.
    pub ty: MsgType,
    /// Request id.
    pub req_id: u32,
    /// Transaction id.
    pub tx_id: u32,
    /// Payload bytes (at most [`PAYLOAD_MAX`]).
    pub payload: Vec<u8>,
}

impl Message {
    /// A message with the given parts.
    pub fn new(ty: MsgType, req_id: u32, tx_id: u32, payload: Vec<u8>) -> Message {
        Message {
            ty,
            req_id,
            tx_id,
            payload,
        }
    }

    /// Encodes header and payload into one buffer (one `write` for `/dev/xen/xenbus`).
    /// Fails with [`WireError::TooLong`] if the payload exceeds [`PAYLOAD_MAX`].
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let len = u32::try_from(self.payload.len()).map_err(|_| WireError::TooLong(u32::MAX))?;
        if self.payload.len() > PAYLOAD_MAX {
            return Err(WireError::TooLong(len));
        }
        let hdr = Header {
            ty: self.ty as u32,
            req_id: self.req_id,
            tx_id: self.tx_id,
            len,
        };
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        out.extend_from_slice(&hdr.encode());
        out.extend_from_slice(&self.payload);
        Ok(out)
    }

    /// Parses the first message of a stream buffer. `Ok(None)` means more bytes are needed;
    /// on success returns the message and the number of bytes it used.
    pub fn parse_stream(buf: &[u8]) -> Result<Option<(Message, usize)>, WireError> {
        match Message::parse(buf) {
            Ok(v) => Ok(Some(v)),
            Err(WireError::Truncated { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Parses one complete message from the start of `buf`; a short buffer is an error.
    /// Returns the message and the number of bytes it used.
    pub fn parse(buf: &[u8]) -> Result<(Message, usize), WireError> {
        let hdr = Header::decode(buf)?;
        let total = HEADER_LEN + hdr.len as usize;
        let payload = buf.get(HEADER_LEN..total).ok_or(WireError::Truncated {
            need: total,
            have: buf.len(),
        })?;
        let ty = MsgType::from_u32(hdr.ty).ok_or(WireError::UnknownType(hdr.ty))?;
        Ok((
            Message::new(ty, hdr.req_id, hdr.tx_id, payload.to_vec()),
            total,
        ))
    }
}

/// A decoded reply, interpreted according to the request it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// xenstored's error (`XS_ERROR`), e.g. [`XsErrno::Enoent`].
    Error(XsErrno),
    /// The acknowledgement `"OK"`.
    Ok,
    /// A raw value (`XS_READ`).
    Value(Vec<u8>),
    /// A list of strings (`XS_DIRECTORY`, `XS_GET_PERMS`).
    List(Vec<String>),
    /// One string (`XS_GET_DOMAIN_PATH`, `XS_TRANSACTION_START`).
    Text(String),
    /// A watch event (`XS_WATCH_EVENT`).
    WatchEvent {
        /// The path that changed.
        path: String,
        /// The token given at registration.
        token: String,
    },
}

/// Parses a reply message from the start of `buf` and interprets it as the reply to a request
/// of type `request` (an `XS_ERROR` or `XS_WATCH_EVENT` is recognised whatever the request).
/// Returns the reply and the bytes used; malformed or truncated input is an error.
pub fn parse_reply(buf: &[u8], request: MsgType) -> Result<(Reply, usize), WireError> {
    let (msg, used) = Message::parse(buf)?;
    Ok((interpret_reply(&msg, request)?, used))
}

/// Interprets an already framed message as the reply to a request of type `request`.
pub fn interpret_reply(msg: &Message, request: MsgType) -> Result<Reply, WireError> {
    let p = &msg.payload[..];
    match msg.ty {
        MsgType::Error => return Ok(Reply::Error(XsErrno::from_wire(&single_string(p)?))),
        MsgType::WatchEvent => {
            let (path, token) = watch_event_payload(p)?;
            return Ok(Reply::WatchEvent { path, token });
        }
        t if t != request => return Err(WireError::BadPayload("reply type differs from request")),
        _ => {}
    }
    match request {
        MsgType::Read => Ok(Reply::Value(p.to_vec())),
        MsgType::Directory | MsgType::GetPerms => Ok(Reply::List(string_list(p)?)),
        MsgType::GetDomainPath | MsgType::TransactionStart => Ok(Reply::Text(single_string(p)?)),
        _ => {
            if single_string(p)? == "OK" {
                Ok(Reply::Ok)
            } else {
                Err(WireError::BadPayload("expected OK"))
            }
        }
    }
}

/// A payload holding one string, with or without its trailing NUL; no inner NUL allowed.
pub fn single_string(p: &[u8]) -> Result<String, WireError> {
    let p = p.strip_suffix(&[0]).unwrap_or(p);
    if p.contains(&0) {
        return Err(WireError::BadPayload("embedded NUL"));
    }
    String::from_utf8(p.to_vec()).map_err(|_| WireError::BadPayload("not UTF-8"))
}

/// A payload of NUL-terminated strings (every one terminated; an empty payload is no strings).
pub fn string_list(p: &[u8]) -> Result<Vec<String>, WireError> {
    if p.is_empty() {
        return Ok(Vec::new());
    }
    let body = p
        .strip_suffix(&[0])
        .ok_or(WireError::BadPayload("list not NUL-terminated"))?;
    body.split(|&b| b == 0)
        .map(|s| String::from_utf8(s.to_vec()).map_err(|_| WireError::BadPayload("not UTF-8")))
        .collect()
}

/// The payload of `XS_WATCH_EVENT` (and of `XS_WATCH` requests): `path\0token\0`.
pub fn watch_event_payload(p: &[u8]) -> Result<(String, String), WireError> {
    let parts = string_list(p)?;
    match <[String; 2]>::try_from(parts) {
        Ok([path, token]) => Ok((path, token)),
        Err(_) => Err(WireError::BadPayload("watch payload is not path and token")),
    }
}

/// Builds a payload of NUL-terminated strings.
pub fn join_strings<S: AsRef<[u8]>>(parts: &[S]) -> Vec<u8> {
    let mut v = Vec::new();
    for s in parts {
        v.extend_from_slice(s.as_ref());
        v.push(0);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrip_and_bounds() {
        let m = Message::new(MsgType::Write, 7, 3, b"/a\0b".to_vec());
        let bytes = m.encode().unwrap();
        assert_eq!(bytes.len(), HEADER_LEN + 4);
        assert_eq!(&bytes[0..4], &11u32.to_le_bytes());
        let (back, used) = Message::parse(&bytes).unwrap();
        assert_eq!((back, used), (m, bytes.len()));
        assert!(matches!(
            Message::parse(&bytes[..10]),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            Message::parse(&bytes[..18]),
            Err(WireError::Truncated { .. })
        ));
        assert_eq!(Message::parse_stream(&bytes[..18]).unwrap(), None);
        let mut big = Header {
            ty: 2,
            req_id: 0,
            tx_id: 0,
            len: 4097,
        }
        .encode()
        .to_vec();
        big.extend_from_slice(&[0; 10]);
        assert_eq!(Message::parse(&big), Err(WireError::TooLong(4097)));
        let unknown = Header {
            ty: 20,
            req_id: 0,
            tx_id: 0,
            len: 0,
        }
        .encode();
        assert_eq!(Message::parse(&unknown), Err(WireError::UnknownType(20)));
        let huge = Message::new(MsgType::Write, 0, 0, vec![1; PAYLOAD_MAX + 1]);
        assert!(huge.encode().is_err());
    }

    #[test]
    fn replies_are_interpreted_by_request() {
        let enc = |ty, p: &[u8]| Message::new(ty, 1, 0, p.to_vec()).encode().unwrap();
        let (r, _) = parse_reply(&enc(MsgType::Error, b"ENOENT\0"), MsgType::Read).unwrap();
        assert_eq!(r, Reply::Error(XsErrno::Enoent));
        let (r, _) = parse_reply(&enc(MsgType::Directory, b"a\0bb\0"), MsgType::Directory).unwrap();
        assert_eq!(r, Reply::List(vec!["a".into(), "bb".into()]));
        let (r, _) = parse_reply(&enc(MsgType::Write, b"OK\0"), MsgType::Write).unwrap();
        assert_eq!(r, Reply::Ok);
        assert!(parse_reply(&enc(MsgType::Write, b"NO\0"), MsgType::Write).is_err());
        assert!(parse_reply(&enc(MsgType::Read, b"x"), MsgType::Write).is_err());
        assert!(parse_reply(&enc(MsgType::Directory, b"a\0b"), MsgType::Directory).is_err());
        assert!(parse_reply(&enc(MsgType::WatchEvent, b"/a\0"), MsgType::Read).is_err());
        assert!(parse_reply(&enc(MsgType::Directory, b"\xff\0"), MsgType::Directory).is_err());
        let (r, _) = parse_reply(&enc(MsgType::WatchEvent, b"/a\0tok\0"), MsgType::Read).unwrap();
        assert_eq!(
            r,
            Reply::WatchEvent {
                path: "/a".into(),
                token: "tok".into()
            }
        );
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
                               ty in 0u32..24, len in 0u32..80) {
            let _ = parse_reply(&bytes, MsgType::Read);
            let mut framed = Header { ty, req_id: 1, tx_id: 0, len }.encode().to_vec();
            framed.extend_from_slice(&bytes);
            for req in [MsgType::Read, MsgType::Directory, MsgType::Write, MsgType::TransactionStart] {
                if let Ok((_, used)) = parse_reply(&framed, req) {
                    proptest::prop_assert_eq!(used, HEADER_LEN + len as usize);
                }
            }
        }
    }
}
