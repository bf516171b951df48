//! The DNS message format as the datagram voter needs it (RFC 1035 section 4): the query ID and
//! question that match an answer to its question, and a canonical form of a whole message in
//! which the order of the records inside each RRset does not count (servers may rotate them).
//!
//! Parsing never panics and never reads past the datagram; hostile input (compression loops,
//! pointers forward or out of range, counts larger than the message) is an error. Names are
//! expanded (compression pointers followed) in owner names and in the RDATA of the types whose
//! RDATA holds names, so that two answers that differ only in how one server compressed them
//! compare equal; every other byte (header flags and counts with the TC bit, TTLs, case of
//! names, the EDNS OPT record) compares exactly.

use std::fmt;

/// Length of the fixed header.
const HEADER_LEN: usize = 12;
/// Longest name in wire form (RFC 1035 2.3.4).
const MAX_NAME_LEN: usize = 255;
/// Most compression pointers followed in one name (each must point backwards, so this only
/// bounds the work).
const MAX_POINTERS: usize = 64;

/// Why a datagram is not a DNS message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsError {
    /// It ends before the part named.
    Truncated(&'static str),
    /// A name is malformed (label type, pointer, length).
    BadName,
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsError::Truncated(what) => write!(f, "DNS message truncated in its {what}"),
            DnsError::BadName => f.write_str("malformed DNS name"),
        }
    }
}

impl std::error::Error for DnsError {}

/// What matches an answer to its question: the query ID and the question section, names
/// expanded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueryKey {
    /// The query ID.
    pub id: u16,
    /// The question section (QDCOUNT entries), names expanded.
    pub question: Vec<u8>,
}

/// A cursor over one message.
struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DnsError> {
        let end = self.pos.checked_add(n).ok_or(DnsError::Truncated(what))?;
        let s = self
            .msg
            .get(self.pos..end)
            .ok_or(DnsError::Truncated(what))?;
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, DnsError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Reads the name at the cursor and appends it, expanded, to `out`.
    fn name(&mut self, out: &mut Vec<u8>) -> Result<(), DnsError> {
        self.pos = expand_name(self.msg, self.pos, out)?;
        Ok(())
    }
}

/// Appends the name at `at` in `msg`, expanded, to `out`; returns where the name ends in place
/// (after its terminating zero or its first pointer).
fn expand_name(msg: &[u8], at: usize, out: &mut Vec<u8>) -> Result<usize, DnsError> {
    let mut pos = at;
    let mut end = None;
    let mut pointers = 0;
    let mut len = 0usize;
    loop {
        let &b = msg.get(pos).ok_or(DnsError::Truncated("names"))?;
        match b & 0xc0 {
            0x00 => {
                let n = usize::from(b);
                let label = msg
                    .get(pos..pos + 1 + n)
                    .ok_or(DnsError::Truncated("names"))?;
                len += 1 + n;
                if len > MAX_NAME_LEN {
                    return Err(DnsError::BadName);
                }
                out.extend_from_slice(label);
                pos += 1 + n;
                if n == 0 {
                    return Ok(end.unwrap_or(pos));
                }
            }
            0xc0 => {
                let &lo = msg.get(pos + 1).ok_or(DnsError::Truncated("names"))?;
                let target = usize::from(b & 0x3f) << 8 | usize::from(lo);
                // Only backwards: no loops, and bounded work.
                pointers += 1;
                if target >= pos || pointers > MAX_POINTERS {
                    return Err(DnsError::BadName);
                }
                end.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return Err(DnsError::BadName),
        }
    }
}

/// The query ID and question of a message (a query or an answer).
pub fn query_key(msg: &[u8]) -> Result<QueryKey, DnsError> {
    let mut r = Reader { msg, pos: 0 };
    let header = r.take(HEADER_LEN, "header")?;
    let id = u16::from_be_bytes([header[0], header[1]]);
    let qdcount = u16::from_be_bytes([header[4], header[5]]);
    let mut question = Vec::new();
    for _ in 0..qdcount {
        r.name(&mut question)?;
        question.extend_from_slice(r.take(4, "question")?);
    }
    Ok(QueryKey { id, question })
}

/// Types whose RDATA holds names that a server may compress (RFC 3597 section 4: only the
/// RFC 1035 types), with the fixed bytes before each name: NS, CNAME, PTR, MB, MG, MR (a name),
/// MX (preference, name), SOA (two names, then 20 bytes). Others compare as raw bytes.
fn rdata_names(rtype: u16) -> Option<(&'static [usize], usize)> {
    match rtype {
        2 | 3 | 4 | 5 | 7 | 8 | 9 | 12 => Some((&[0], 0)),
        15 => Some((&[2], 0)),
        6 => Some((&[0, 0], 20)),
        _ => None,
    }
}

/// One resource record in canonical form: expanded owner, type, class, TTL, RDATA (names
/// expanded, length of the expanded RDATA first).
fn canonical_record(r: &mut Reader<'_>) -> Result<(Vec<u8>, usize), DnsError> {
    let mut rec = Vec::new();
    r.name(&mut rec)?;
    let owner_len = rec.len();
    let fixed = r.take(8, "records")?;
    rec.extend_from_slice(fixed);
    let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let rdlen = usize::from(r.u16("records")?);
    let start = r.pos;
    let rdata = r.take(rdlen, "records")?;
    let mut data = Vec::with_capacity(rdlen);
    match rdata_names(rtype) {
        Some((prefixes, tail)) => {
            let mut pos = start;
            for &p in prefixes {
                data.extend_from_slice(msg_slice(r.msg, pos, p, start + rdlen)?);
                pos = expand_name(r.msg, pos + p, &mut data)?;
            }
            data.extend_from_slice(msg_slice(r.msg, pos, tail, start + rdlen)?);
            if pos + tail != start + rdlen {
                return Err(DnsError::Truncated("records"));
            }
        }
        None => data.extend_from_slice(rdata),
    }
    rec.extend_from_slice(&(data.len() as u32).to_be_bytes());
    rec.extend_from_slice(&data);
    // The RRset is the owner, type and class: the first `owner_len + 4` bytes.
    Ok((rec, owner_len + 4))
}

/// `msg[pos..pos + n]` if it ends within `limit`.
fn msg_slice(msg: &[u8], pos: usize, n: usize, limit: usize) -> Result<&[u8], DnsError> {
    if pos + n > limit {
        return Err(DnsError::Truncated("records"));
    }
    msg.get(pos..pos + n).ok_or(DnsError::Truncated("records"))
}

/// The canonical form of a whole message: the header and question as sent (names expanded),
/// then each section's RRsets in the order they first appear, the records inside each RRset in
/// sorted order. Two answers compare equal exactly when they differ at most in the order of the
/// records inside RRsets and in name compression. Bytes after the last record are kept.
pub fn canonical(msg: &[u8]) -> Result<Vec<u8>, DnsError> {
    let mut r = Reader { msg, pos: 0 };
    let header = r.take(HEADER_LEN, "header")?;
    let count = |i: usize| usize::from(u16::from_be_bytes([header[i], header[i + 1]]));
    let mut out = Vec::with_capacity(msg.len() + 64);
    out.extend_from_slice(header);
    for _ in 0..count(4) {
        r.name(&mut out)?;
        out.extend_from_slice(r.take(4, "question")?);
    }
    for section in [6, 8, 10] {
        // (RRset key length, record) in order of appearance; then grouped and sorted.
        let mut records: Vec<(Vec<u8>, usize)> = Vec::new();
        for _ in 0..count(section) {
            records.push(canonical_record(&mut r)?);
        }
        let mut sets: Vec<Vec<Vec<u8>>> = Vec::new();
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for (rec, key_len) in records {
            let key = rec[..key_len].to_vec();
            match keys.iter().position(|k| *k == key) {
                Some(i) => sets[i].push(rec),
                None => {
                    keys.push(key);
                    sets.push(vec![rec]);
                }
            }
        }
        for mut set in sets {
            set.sort_unstable();
            for rec in set {
                out.extend_from_slice(&rec);
            }
        }
    }
    out.extend_from_slice(&msg[r.pos..]);
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A name in wire form, uncompressed.
    pub(crate) fn name(n: &str) -> Vec<u8> {
        let mut v = Vec::new();
        for l in n.split('.').filter(|l| !l.is_empty()) {
            v.push(l.len() as u8);
            v.extend_from_slice(l.as_bytes());
        }
        v.push(0);
        v
    }

    /// An answer with ID `id` to `qname` A with the given A records (owner: a pointer to the
    /// question's name) and one NS record in the authority section.
    pub(crate) fn answer(id: u16, qname: &str, addrs: &[[u8; 4]]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&[0x84, 0x00, 0, 1]);
        m.extend_from_slice(&(addrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0]);
        m.extend_from_slice(&name(qname));
        m.extend_from_slice(&[0, 1, 0, 1]);
        for a in addrs {
            m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4]);
            m.extend_from_slice(a);
        }
        let ns = name("ns1.example");
        m.extend_from_slice(&[0xc0, 12, 0, 2, 0, 1, 0, 0, 1, 0x2c]);
        m.extend_from_slice(&(ns.len() as u16).to_be_bytes());
        m.extend_from_slice(&ns);
        m
    }

    #[test]
    fn rotation_inside_an_rrset_is_the_same_answer() {
        let a = answer(
            7,
            "www.example",
            &[[1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3]],
        );
        let b = answer(
            7,
            "www.example",
            &[[3, 3, 3, 3], [1, 1, 1, 1], [2, 2, 2, 2]],
        );
        assert_ne!(a, b);
        assert_eq!(canonical(&a).unwrap(), canonical(&b).unwrap());
        let c = answer(
            7,
            "www.example",
            &[[3, 3, 3, 3], [1, 1, 1, 1], [2, 2, 2, 9]],
        );
        assert_ne!(canonical(&a).unwrap(), canonical(&c).unwrap());
        assert_eq!(query_key(&a).unwrap(), query_key(&b).unwrap());
        assert_eq!(query_key(&a).unwrap().id, 7);
    }

    #[test]
    fn compression_does_not_count_but_names_do() {
        let mut plain = answer(1, "a.example", &[[1, 2, 3, 4]]);
        // The A record's owner written out instead of the pointer.
        let at = 12 + name("a.example").len() + 4;
        assert_eq!(&plain[at..at + 2], &[0xc0, 12]);
        let mut expanded = plain.clone();
        expanded.splice(at..at + 2, name("a.example"));
        assert_eq!(canonical(&plain).unwrap(), canonical(&expanded).unwrap());
        plain[13] = b'A';
        assert_ne!(canonical(&plain).unwrap(), canonical(&expanded).unwrap());
    }

    #[test]
    fn hostile_messages_are_errors() {
        assert_eq!(query_key(&[0; 5]), Err(DnsError::Truncated("header")));
        let mut loop_ = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        loop_.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(query_key(&loop_), Err(DnsError::BadName));
        let mut counts = answer(1, "a.example", &[[1, 2, 3, 4]]);
        counts[7] = 200;
        assert!(canonical(&counts).is_err());
        let mut label = answer(1, "a.example", &[]);
        label[12] = 0x80;
        assert_eq!(query_key(&label), Err(DnsError::BadName));
    }
}
