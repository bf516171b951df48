//! The RESP wire format (RESP2 and RESP3), without state: CRLF-terminated lines read
//! incrementally within a bound, redis's strict integers, and the meaning of a reply's header line.
//!
//! Streamed RESP3 types (`$?`, `*?`, `;`, `.`) are not accepted: redis never sends them.

/// A line being read up to and including its `\n`, never longer than its bound.
#[derive(Debug)]
pub(super) struct Line {
    buf: Vec<u8>,
    max: usize,
    complete: bool,
}

/// Reading a [`Line`] went past its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LineTooLong;

impl Line {
    /// An empty line that may hold at most `max` bytes (its CRLF included).
    pub(super) fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            max,
            complete: false,
        }
    }

    /// Takes bytes from `input` up to and including the first `\n`; returns how many it took.
    /// The line is then [`complete`](Self::complete) if that `\n` was among them.
    pub(super) fn feed(&mut self, input: &[u8]) -> Result<usize, LineTooLong> {
        debug_assert!(!self.complete, "feed after the line is complete");
        let take = input
            .iter()
            .position(|&b| b == b'\n')
            .map_or(input.len(), |i| i + 1);
        if self.buf.len() + take > self.max {
            return Err(LineTooLong);
        }
        self.buf.extend_from_slice(&input[..take]);
        self.complete = self.buf.last() == Some(&b'\n');
        Ok(take)
    }

    /// Whether the line's `\n` has been read.
    pub(super) fn complete(&self) -> bool {
        self.complete
    }

    /// Every byte read so far, the `\n` included.
    pub(super) fn raw(&self) -> &[u8] {
        &self.buf
    }

    /// A complete line's content, when it ends with CRLF and holds no other CR and no NUL (what
    /// redis's request parser and every RESP reply line require); `None` otherwise.
    pub(super) fn crlf_content(&self) -> Option<&[u8]> {
        crlf_content(&self.buf)
    }

    /// Forgets the line, keeping its allocation.
    pub(super) fn clear(&mut self) {
        self.buf.clear();
        self.complete = false;
    }
}

/// `line` (ending in `\n`) without its CRLF, when it has exactly one CR, just before the `\n`,
/// and no NUL.
pub(super) fn crlf_content(line: &[u8]) -> Option<&[u8]> {
    let content = line.strip_suffix(b"\r\n")?;
    (!content.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0)).then_some(content)
}

/// A decimal integer as redis's `string2ll` reads it: an optional `-`, then digits without a
/// leading zero (`0` alone excepted, `-0` refused), within `i64`.
pub(super) fn parse_i64(digits: &[u8]) -> Option<i64> {
    let (negative, rest) = match digits {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, digits),
    };
    match rest {
        [b'0'] if !negative => return Some(0),
        [] | [b'0', ..] => return None,
        _ => {}
    }
    let mut value: i64 = 0;
    for &d in rest {
        if !d.is_ascii_digit() {
            return None;
        }
        let digit = i64::from(d - b'0');
        value = value.checked_mul(10)?;
        value = if negative {
            value.checked_sub(digit)?
        } else {
            value.checked_add(digit)?
        };
    }
    Some(value)
}

/// What a reply's header line announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Header {
    /// A value complete in its line: simple string, error, integer, null, boolean, double, big
    /// number, or a null bulk string or aggregate (`$-1`, `*-1`).
    Whole,
    /// A blob (bulk string, bulk error, verbatim string) of this many payload bytes, then CRLF.
    Blob(u64),
    /// An aggregate of this many values.
    Aggregate {
        /// Its kind (which decides how its values pair up).
        kind: Aggregate,
        /// How many values follow (for maps and attributes: twice the pairs).
        values: u64,
    },
}

/// The kinds of RESP aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Aggregate {
    /// `*`: an array (RESP2's only aggregate).
    Array,
    /// `~`: a set.
    Set,
    /// `%`: a map (its values are key, value, key, value, ...).
    Map,
    /// `|`: an attribute map, which precedes the value it describes and is not counted as one.
    Attribute,
    /// `>`: an out-of-band push (pub/sub message, invalidation), not a reply.
    Push,
}

impl Aggregate {
    /// Whether its values are key-value pairs.
    pub(super) fn is_map(self) -> bool {
        matches!(self, Aggregate::Map | Aggregate::Attribute)
    }
}

/// Reads a reply's header line (its content, CRLF removed).
pub(super) fn parse_header(content: &[u8]) -> Result<Header, &'static str> {
    let (&kind, rest) = content
        .split_first()
        .ok_or("empty line where a value begins")?;
    let count = |rest: &[u8]| -> Result<Option<u64>, &'static str> {
        match parse_i64(rest) {
            Some(-1) => Ok(None),
            Some(n) if n >= 0 => Ok(Some(n as u64)),
            _ => Err("bad length"),
        }
    };
    let aggregate = |kind: Aggregate, pairs: bool| -> Result<Header, &'static str> {
        Ok(match count(rest)? {
            None => Header::Whole,
            Some(n) if pairs => Header::Aggregate {
                kind,
                values: n.checked_mul(2).ok_or("bad length")?,
            },
            Some(n) => Header::Aggregate { kind, values: n },
        })
    };
    match kind {
        b'+' | b'-' | b'(' | b',' => Ok(Header::Whole),
        b':' => parse_i64(rest).map(|_| Header::Whole).ok_or("bad integer"),
        b'_' if rest.is_empty() => Ok(Header::Whole),
        b'#' if rest == b"t" || rest == b"f" => Ok(Header::Whole),
        b'$' | b'!' | b'=' => Ok(count(rest)?.map_or(Header::Whole, Header::Blob)),
        b'*' => aggregate(Aggregate::Array, false),
        b'~' => aggregate(Aggregate::Set, false),
        b'>' => aggregate(Aggregate::Push, false),
        b'%' => aggregate(Aggregate::Map, true),
        b'|' => aggregate(Aggregate::Attribute, true),
        _ => Err("unknown RESP type byte"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_read_like_redis_string2ll() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"01",
            b"+1",
            b"1 ",
            b"9223372036854775808",
            b"1a",
        ] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn headers_say_what_follows() {
        assert_eq!(parse_header(b"+OK"), Ok(Header::Whole));
        assert_eq!(parse_header(b"$5"), Ok(Header::Blob(5)));
        assert_eq!(parse_header(b"$-1"), Ok(Header::Whole));
        assert_eq!(parse_header(b"*-1"), Ok(Header::Whole));
        let map = Header::Aggregate {
            kind: Aggregate::Map,
            values: 6,
        };
        assert_eq!(parse_header(b"%3"), Ok(map));
        for bad in [
            &b""[..],
            b"$-2",
            b"*x",
            b"$?",
            b"*?",
            b";3",
            b"#x",
            b"_1",
            b":1.5",
            b"@",
        ] {
            assert!(parse_header(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_line_is_bounded_and_needs_a_lone_crlf() {
        let mut line = Line::new(8);
        assert_eq!(line.feed(b"+O"), Ok(2));
        assert!(!line.complete());
        assert_eq!(line.feed(b"K\r\n+next"), Ok(3));
        assert_eq!(line.crlf_content(), Some(&b"+OK"[..]));
        line.clear();
        assert_eq!(line.feed(b"+too long"), Err(LineTooLong));
        assert_eq!(crlf_content(b"+a\rb\r\n"), None);
        assert_eq!(crlf_content(b"+a\0\r\n"), None);
        assert_eq!(crlf_content(b"+a\n"), None);
    }
}
