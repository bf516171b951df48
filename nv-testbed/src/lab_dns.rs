//! The answers of `nv-lab-dnsd`, the Xen lab replicas' UDP service: a tiny authoritative DNS
//! responder with a fixed table of A records, one deterministic answer per question (the same
//! bytes on every replica with the same table), sans I/O.
//!
//! A question is a standard query (QR 0, opcode 0) with one question of uncompressed labels.
//! The answer echoes its ID, RD bit and question, sets QR and AA, and holds:
//! - for a name in the table (any case): NOERROR, and its A record (TTL [`TTL`]) if the
//!   question is for class IN (or ANY) and type A (or ANY), else no record (NODATA);
//! - for any other name: NXDOMAIN.
//!
//! A datagram that is no such question gets no answer (a responder that answers garbage
//! would amplify it). EDNS is not spoken: an OPT record in the question is not answered.

use std::net::Ipv4Addr;

/// TTL of every answered record, in seconds.
pub const TTL: u32 = 300;

const HEADER: usize = 12;
const TYPE_A: u16 = 1;
const TYPE_ANY: u16 = 255;
const CLASS_IN: u16 = 1;
const CLASS_ANY: u16 = 255;
const RCODE_NXDOMAIN: u8 = 3;

/// The A records the responder knows: lowercase names without the final dot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Records {
    entries: Vec<(String, Ipv4Addr)>,
}

impl Records {
    /// Reads `NAME=ADDR` words (`www.lab.test=192.0.2.80`); a bad word is an error naming it.
    pub fn parse<'a>(words: impl IntoIterator<Item = &'a str>) -> Result<Records, String> {
        let mut records = Records::default();
        for w in words {
            let (name, addr) = w
                .split_once('=')
                .ok_or_else(|| format!("{w:?} is not NAME=ADDR"))?;
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            let valid_label = |l: &str| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            };
            if name.len() > 253 || !name.split('.').all(valid_label) {
                return Err(format!("{name:?} in {w:?} is not a DNS name"));
            }
            let addr = addr
                .parse()
                .map_err(|_| format!("{addr:?} in {w:?} is not an IPv4 address"))?;
            records.entries.push((name, addr));
        }
        Ok(records)
    }

    /// The address of `name` (lowercase, no final dot), if known.
    fn lookup(&self, name: &str) -> Option<Ipv4Addr> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
    }
}

/// The one question of a query, as it sits in the datagram.
struct Question {
    /// Its name, lowercase, labels joined by `.`.
    name: String,
    qtype: u16,
    qclass: u16,
    /// Where the question section ends in the datagram.
    end: usize,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// The question of a standard query with exactly one question, or None.
fn question(query: &[u8]) -> Option<Question> {
    let flags = be16(query, 2)?;
    let is_query = flags & 0x8000 == 0;
    let opcode = (flags >> 11) & 0xf;
    if !is_query || opcode != 0 || be16(query, 4)? != 1 {
        return None;
    }
    let mut at = HEADER;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        // a compression pointer (or reserved label type) has no place in a question
        if len > 63 {
            return None;
        }
        let label = query.get(at..at + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += len;
        if at - HEADER > 255 {
            return None;
        }
    }
    Some(Question {
        name: labels.join("."),
        qtype: be16(query, at)?,
        qclass: be16(query, at + 2)?,
        end: at + 4,
    })
}

/// The answer to `query` (a whole UDP payload), or None if it is no question to answer.
pub fn answer(query: &[u8], records: &Records) -> Option<Vec<u8>> {
    let q = question(query)?;
    let addr = records.lookup(&q.name);
    let with_record = addr.is_some()
        && matches!(q.qtype, TYPE_A | TYPE_ANY)
        && matches!(q.qclass, CLASS_IN | CLASS_ANY);
    let rd = query[2] & 0x01;
    let rcode = if addr.is_some() { 0 } else { RCODE_NXDOMAIN };
    let mut out = Vec::with_capacity(q.end + 16);
    out.extend_from_slice(&query[..2]); // ID
    out.push(0x80 | 0x04 | rd); // QR, opcode 0, AA, RD as asked
    out.push(rcode); // RA 0
    out.extend_from_slice(&[0, 1, 0, u8::from(with_record), 0, 0, 0, 0]);
    out.extend_from_slice(&query[HEADER..q.end]);
    if let (true, Some(a)) = (with_record, addr) {
        out.extend_from_slice(&[0xc0, HEADER as u8]); // the question's name
        out.extend_from_slice(&TYPE_A.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&a.octets());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query with ID 0x1234, RD set, for `name` of `qtype`, class IN, optionally with an
    /// EDNS OPT record after the question.
    fn query(name: &str, qtype: u16, opt: bool) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(opt)];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        if opt {
            q.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
        }
        q
    }

    fn table() -> Records {
        Records::parse(["www.lab.test=192.0.2.80", "Mail.Lab.Test.=192.0.2.25"]).unwrap()
    }

    #[test]
    fn a_known_name_gets_its_a_record() {
        let q = query("WWW.lab.test", TYPE_A, false);
        let a = answer(&q, &table()).unwrap();
        let qlen = q.len() - HEADER;
        assert_eq!(a[..4], [0x12, 0x34, 0x85, 0x00], "ID, QR+AA+RD, NOERROR");
        assert_eq!(
            a[4..12],
            [0, 1, 0, 1, 0, 0, 0, 0],
            "one question, one answer"
        );
        assert_eq!(
            a[HEADER..HEADER + qlen],
            q[HEADER..],
            "the question as asked"
        );
        assert_eq!(
            a[HEADER + qlen..],
            [0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 80]
        );
        // the table's names are case-insensitive and may end in a dot
        let a = answer(&query("mail.lab.test", TYPE_A, false), &table()).unwrap();
        assert_eq!(a[a.len() - 4..], [192, 0, 2, 25]);
    }

    #[test]
    fn other_types_get_nodata_and_unknown_names_nxdomain() {
        let a = answer(&query("www.lab.test", 28, false), &table()).unwrap();
        assert_eq!(
            (a[3], &a[6..8]),
            (0, &[0u8, 0][..]),
            "AAAA: NOERROR, no record"
        );
        let a = answer(&query("nope.lab.test", TYPE_A, false), &table()).unwrap();
        assert_eq!((a[3], &a[6..8]), (RCODE_NXDOMAIN, &[0u8, 0][..]));
    }

    #[test]
    fn edns_is_not_answered_and_answers_are_deterministic() {
        let q = query("www.lab.test", TYPE_A, true);
        let a = answer(&q, &table()).unwrap();
        assert_eq!(a[10..12], [0, 0], "no OPT record in the answer");
        assert_eq!(a.len(), q.len() - 11 + 16);
        assert_eq!(Some(a), answer(&q, &table()));
    }

    #[test]
    fn datagrams_that_are_no_question_get_no_answer() {
        let good = query("www.lab.test", TYPE_A, false);
        let mut response = good.clone();
        response[2] |= 0x80;
        let mut notify = good.clone();
        notify[2] |= 4 << 3;
        let mut two = good.clone();
        two[5] = 2;
        let mut pointer = good.clone();
        pointer[HEADER] = 0xc0;
        for (what, d) in [
            ("empty", vec![]),
            ("header only", good[..HEADER].to_vec()),
            ("cut in the name", good[..HEADER + 3].to_vec()),
            ("cut in the type", good[..good.len() - 3].to_vec()),
            ("a response", response),
            ("another opcode", notify),
            ("two questions", two),
            ("a compression pointer", pointer),
        ] {
            assert_eq!(answer(&d, &table()), None, "{what}");
        }
        // a name longer than 255 bytes
        let long = vec!["a".repeat(63); 5].join(".");
        assert_eq!(answer(&query(&long, TYPE_A, false), &table()), None);
    }

    #[test]
    fn bad_table_words_are_errors_naming_them() {
        for (word, want) in [
            ("www", "not NAME=ADDR"),
            ("w w=1.2.3.4", "not a DNS name"),
            ("a..b=1.2.3.4", "not a DNS name"),
            ("www=1.2.3", "not an IPv4 address"),
        ] {
            let e = Records::parse([word]).unwrap_err();
            assert!(e.contains(want) && e.contains(word), "{e}");
        }
    }
}
