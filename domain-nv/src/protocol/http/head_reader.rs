//! [`HeadReader`]: finds where an HTTP/1.x message head ends, within [`MAX_HEAD`],
//! [`MAX_LINE`] and [`MAX_FIELDS`], holding the head's bytes for the parsers in [`super::wire`].

use super::wire::{WireError, MAX_FIELDS, MAX_HEAD, MAX_LINE};

/// Collects one message head, byte by byte, until the blank line that ends it, within
/// [`MAX_HEAD`], [`MAX_LINE`] and [`MAX_FIELDS`].
#[derive(Debug)]
pub struct HeadReader {
    buf: Vec<u8>,
    line_start: usize,
    lines: usize,
    leading_blank_lines: bool,
}

impl HeadReader {
    /// A reader for one head; `leading_blank_lines` allows empty lines before the start line
    /// (a request may be preceded by a stray CRLF, RFC 9112 section 2.2; a response may not).
    pub fn new(leading_blank_lines: bool) -> Self {
        Self {
            buf: Vec::new(),
            line_start: 0,
            lines: 0,
            leading_blank_lines,
        }
    }

    /// Takes the next bytes; returns how many belong to the head (all of them unless it
    /// completed) and whether it is now complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(usize, bool), WireError> {
        for (i, &b) in bytes.iter().enumerate() {
            if self.buf.len() == MAX_HEAD {
                return Err(WireError::new(self.buf.len(), "head longer than 64 KiB"));
            }
            self.buf.push(b);
            if b != b'\n' {
                if self.buf.len() - self.line_start > MAX_LINE {
                    return Err(WireError::new(
                        self.line_start,
                        "head line longer than 16 KiB",
                    ));
                }
                continue;
            }
            let line = &self.buf[self.line_start..];
            let blank = line == b"\n" || line == b"\r\n";
            self.line_start = self.buf.len();
            if blank && self.lines == 0 {
                if !self.leading_blank_lines {
                    return Err(WireError::new(
                        self.buf.len() - 1,
                        "blank line before start line",
                    ));
                }
            } else if blank {
                return Ok((i + 1, true));
            } else {
                self.lines += 1;
                if self.lines > MAX_FIELDS + 1 {
                    return Err(WireError::new(
                        self.buf.len() - 1,
                        "more than 256 header fields",
                    ));
                }
            }
        }
        Ok((bytes.len(), false))
    }

    /// The head read so far (all of it once complete), leading blank lines included.
    pub fn head(&self) -> &[u8] {
        &self.buf
    }

    /// Forgets the head, keeping a small buffer, to read the next one.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.buf.shrink_to(4096);
        self.line_start = 0;
        self.lines = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8], leading: bool) -> Result<(usize, bool), WireError> {
        HeadReader::new(leading).feed(bytes)
    }

    #[test]
    fn head_ends_at_the_first_blank_line() {
        let msg = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next";
        assert_eq!(read_all(msg, false), Ok((27, true)));
        assert_eq!(
            read_all(b"GET / HTTP/1.1\nHost: a\n\nrest", false),
            Ok((24, true))
        );
        assert_eq!(
            read_all(b"GET / HTTP/1.1\r\nHost: a\r\n", false),
            Ok((25, false))
        );
    }

    #[test]
    fn leading_blank_lines_only_where_allowed() {
        assert_eq!(
            read_all(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n", true),
            Ok((22, true))
        );
        assert!(read_all(b"\r\nHTTP/1.1 200 OK\r\n\r\n", false).is_err());
    }

    #[test]
    fn limits_are_errors() {
        let long_line = [b'a'; MAX_LINE + 1];
        assert_eq!(
            read_all(&long_line, false).unwrap_err().reason,
            "head line longer than 16 KiB"
        );
        let many: Vec<u8> = b"GET / HTTP/1.1\r\n"
            .iter()
            .chain(&b"a: b\r\n".repeat(300))
            .copied()
            .collect();
        assert_eq!(
            read_all(&many, false).unwrap_err().reason,
            "more than 256 header fields"
        );
        let big: Vec<u8> = b"x: "
            .iter()
            .chain(&[b'y'; 8000])
            .chain(b"\r\n")
            .copied()
            .collect();
        let big = big.repeat(10);
        assert_eq!(
            read_all(&big, false).unwrap_err().reason,
            "head longer than 64 KiB"
        );
    }
}
