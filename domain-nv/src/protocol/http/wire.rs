//! HTTP/1.x message heads (RFC 9112): the limits on a head, the parsers of a request line or
//! status line and of header fields, and what the framing headers say about the body.
//! Panic-free on hostile bytes; no state (`head_reader` collects a head, `body` follows one).

use std::ops::Range;

/// Largest head (start line, header fields and the blank line that ends them), in bytes.
pub const MAX_HEAD: usize = 64 * 1024;
/// Longest single line of a head, in bytes (CRLF included).
pub const MAX_LINE: usize = 16 * 1024;
/// Most header fields in one head.
pub const MAX_FIELDS: usize = 256;

/// Why bytes do not frame as HTTP/1.x.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireError {
    /// Offset of the offending byte (or of the start of its line), from the start of the unit
    /// being read (a head, or the bytes handed to a body decoder).
    pub at: usize,
    /// What was wrong there.
    pub reason: &'static str,
}

impl WireError {
    /// An error at `at`.
    pub fn new(at: usize, reason: &'static str) -> Self {
        Self { at, reason }
    }
}

/// One header field of a head, as positions in the head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field name.
    pub name: Range<usize>,
    /// The field value, without the optional whitespace around it.
    pub value: Range<usize>,
}

/// A parsed head: its start line split into its three parts, and its header fields.
#[derive(Debug)]
pub struct Head<'a> {
    bytes: &'a [u8],
    /// Request: the method; response: the protocol version.
    pub first: &'a [u8],
    /// Request: the request target; response: the status code.
    pub second: &'a [u8],
    /// The header fields in order.
    pub fields: Vec<Field>,
}

/// What the framing header fields say about a message's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyHeaders {
    /// Neither `Transfer-Encoding` nor `Content-Length`.
    Neither,
    /// `Content-Length` only, with this value.
    Length(u64),
    /// `Transfer-Encoding` (whatever `Content-Length` says): is `chunked` the final coding?
    Coded {
        /// The final transfer coding is `chunked`.
        chunked: bool,
        /// A `Content-Length` was present too.
        with_length: bool,
    },
}

/// Parses a complete request head: `method SP request-target SP HTTP/1.x`, then fields.
pub fn parse_request(bytes: &[u8]) -> Result<Head<'_>, WireError> {
    let start = bytes
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(bytes.len());
    let (line, rest) = split_line(bytes, start);
    let mut parts = line.splitn(3, |&b| b == b' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v)) => (m, t, v),
        _ => {
            return Err(WireError::new(
                start,
                "request line is not `method target version`",
            ))
        }
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(WireError::new(start, "method is not a token"));
    }
    if target.is_empty() || !target.iter().all(|&b| b.is_ascii_graphic()) {
        return Err(WireError::new(
            start,
            "request target is empty or not visible ASCII",
        ));
    }
    if !is_http1(version) {
        return Err(WireError::new(start, "version is not HTTP/1.x"));
    }
    let fields = parse_fields(bytes, rest)?;
    Ok(Head {
        bytes,
        first: method,
        second: target,
        fields,
    })
}

/// Parses a complete response head: `HTTP/1.x SP 3DIGIT SP [reason]`, then fields.
pub fn parse_response(bytes: &[u8]) -> Result<Head<'_>, WireError> {
    let (line, rest) = split_line(bytes, 0);
    let version = line
        .get(..8)
        .ok_or(WireError::new(0, "status line too short"))?;
    if !is_http1(version) {
        return Err(WireError::new(0, "version is not HTTP/1.x"));
    }
    let status = line
        .get(9..12)
        .ok_or(WireError::new(0, "status line too short"))?;
    if line[8] != b' ' || !status.iter().all(u8::is_ascii_digit) {
        return Err(WireError::new(0, "status line has no 3-digit status code"));
    }
    match line.get(12) {
        None | Some(b' ') => {}
        Some(_) => return Err(WireError::new(0, "status code not followed by a space")),
    }
    let reason = line.get(13..).unwrap_or_default();
    if reason.iter().any(|&b| is_ctl(b)) {
        return Err(WireError::new(0, "control byte in reason phrase"));
    }
    let fields = parse_fields(bytes, rest)?;
    Ok(Head {
        bytes,
        first: version,
        second: status,
        fields,
    })
}

impl Head<'_> {
    /// The response's status code (only meaningful for a response head).
    pub fn status(&self) -> u16 {
        self.second
            .iter()
            .fold(0, |n, &d| n * 10 + u16::from(d - b'0'))
    }

    /// The field's name.
    pub fn name(&self, field: &Field) -> &[u8] {
        &self.bytes[field.name.clone()]
    }

    /// The field's value.
    pub fn value(&self, field: &Field) -> &[u8] {
        &self.bytes[field.value.clone()]
    }

    /// Whether a field of this (lowercase) name is present.
    pub fn has(&self, name: &[u8]) -> bool {
        self.fields
            .iter()
            .any(|f| self.name(f).eq_ignore_ascii_case(name))
    }

    /// What `Transfer-Encoding` and `Content-Length` say; `Content-Length` values that are not
    /// a number, or that disagree, are an error.
    pub fn body_headers(&self) -> Result<BodyHeaders, WireError> {
        let mut length: Option<u64> = None;
        let mut coded = false;
        let mut chunked = false;
        for field in &self.fields {
            let name = self.name(field);
            if name.eq_ignore_ascii_case(b"transfer-encoding") {
                for coding in list_items(self.value(field)) {
                    coded = true;
                    chunked = coding.eq_ignore_ascii_case(b"chunked");
                }
            } else if name.eq_ignore_ascii_case(b"content-length") {
                for item in list_items(self.value(field)) {
                    let n = parse_decimal(item)
                        .ok_or(WireError::new(field.value.start, "bad Content-Length"))?;
                    if length.is_some_and(|l| l != n) {
                        return Err(WireError::new(field.value.start, "Content-Length differs"));
                    }
                    length = Some(n);
                }
            }
        }
        Ok(match (coded, length) {
            (true, _) => BodyHeaders::Coded {
                chunked,
                with_length: length.is_some(),
            },
            (false, Some(n)) => BodyHeaders::Length(n),
            (false, None) => BodyHeaders::Neither,
        })
    }
}

/// Splits off the line starting at `start`: its content (without CR LF) and where the next
/// line starts.
fn split_line(bytes: &[u8], start: usize) -> (&[u8], usize) {
    let rest = &bytes[start.min(bytes.len())..];
    let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let line = &rest[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    (line, start + end + 1)
}

/// Parses the header fields from `at` up to the blank line ending a complete head.
fn parse_fields(bytes: &[u8], mut at: usize) -> Result<Vec<Field>, WireError> {
    let mut fields = Vec::new();
    while at < bytes.len() {
        let (line, next) = split_line(bytes, at);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(WireError::new(at, "obsolete line folding"));
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(WireError::new(at, "field has no colon"))?;
        if colon == 0 || !line[..colon].iter().all(|&b| is_tchar(b)) {
            return Err(WireError::new(at, "field name is not a token"));
        }
        let value_start = colon + 1 + count_ows(&line[colon + 1..]);
        let value_end = line.len() - count_ows(line[value_start..].iter().rev());
        let value = &line[value_start..value_end.max(value_start)];
        if value.iter().any(|&b| is_ctl(b) && b != b'\t') {
            return Err(WireError::new(at, "control byte in field value"));
        }
        fields.push(Field {
            name: at..at + colon,
            value: at + value_start..at + value_start + value.len(),
        });
        at = next;
    }
    Ok(fields)
}

/// How many spaces and tabs the bytes start with.
fn count_ows<'a>(bytes: impl IntoIterator<Item = &'a u8>) -> usize {
    bytes
        .into_iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count()
}

/// The non-empty items of a comma-separated list, trimmed.
fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(|item| item.trim_ascii())
        .filter(|item| !item.is_empty())
}

/// A decimal number of at most 19 digits (so it fits a u64).
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// Whether `version` is `HTTP/1.x` (the framing rules are the same for every x).
fn is_http1(version: &[u8]) -> bool {
    matches!(version, [b'H', b'T', b'T', b'P', b'/', b'1', b'.', d] if d.is_ascii_digit())
}

/// A token character (RFC 9110 section 5.6.2).
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// An ASCII control byte.
fn is_ctl(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_head_parses() {
        let head =
            parse_request(b"\r\nPOST /a?b HTTP/1.1\r\nHost:  x \r\nContent-Length: 5\r\n\r\n")
                .unwrap();
        assert_eq!((head.first, head.second), (&b"POST"[..], &b"/a?b"[..]));
        assert_eq!(head.value(&head.fields[0]), b"x");
        assert_eq!(head.body_headers(), Ok(BodyHeaders::Length(5)));
    }

    #[test]
    fn bad_request_heads_are_errors() {
        for head in [
            &b"GET /\r\n\r\n"[..],
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTP/1.1\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nbad name: v\r\n\r\n",
            b"GET / HTTP/1.1\r\nx: a\x01b\r\n\r\n",
        ] {
            assert!(
                parse_request(head).is_err(),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn response_head_parses() {
        let head = parse_response(b"HTTP/1.1 204 No Content\r\nDate: now\r\n\r\n").unwrap();
        assert_eq!(head.status(), 204);
        assert!(head.has(b"date"));
        assert_eq!(
            parse_response(b"HTTP/1.0 200\r\n\r\n").unwrap().status(),
            200
        );
        assert!(parse_response(b"HTTP/1.1 20 OK\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 2000 OK\r\n\r\n").is_err());
        assert!(parse_response(b"ICY 200 OK\r\n\r\n").is_err());
    }

    #[test]
    fn framing_headers() {
        let te = |h: &[u8]| parse_response(h).unwrap().body_headers();
        assert_eq!(
            te(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\nContent-Length: 3\r\n\r\n"),
            Ok(BodyHeaders::Coded {
                chunked: true,
                with_length: true
            })
        );
        assert_eq!(
            te(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Ok(BodyHeaders::Coded {
                chunked: false,
                with_length: false
            })
        );
        assert_eq!(
            te(b"HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n"),
            Ok(BodyHeaders::Length(7))
        );
        assert!(te(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n").is_err());
        assert!(te(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").is_err());
        assert!(te(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n").is_err());
        assert_eq!(te(b"HTTP/1.1 200 OK\r\n\r\n"), Ok(BodyHeaders::Neither));
    }
}
