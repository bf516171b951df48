//! Where an HTTP/1.x message body ends (RFC 9112 sections 6 and 7): a counted length, the
//! chunked transfer coding (extensions and trailer fields included), or the end of the
//! connection. Streaming: body bytes are counted, never stored.

use super::wire::{WireError, MAX_HEAD};

/// Longest chunk-size line (size, extensions, CRLF), in bytes.
const MAX_CHUNK_LINE: usize = 4096;

/// The rest of one message body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// This many more bytes.
    Length(u64),
    /// Chunked transfer coding, at this point of it.
    Chunked(Chunked),
    /// Everything until the connection closes (a response without length).
    UntilClose,
}

impl Body {
    /// Takes the next bytes; returns how many belong to the body and whether it ended with
    /// them (it then ends just after the bytes taken).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(usize, bool), WireError> {
        match self {
            Body::Length(left) => {
                let n = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                *left -= n as u64;
                Ok((n, *left == 0))
            }
            Body::Chunked(chunked) => chunked.feed(bytes),
            Body::UntilClose => Ok((bytes.len(), false)),
        }
    }
}

/// The position in a chunked body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chunked {
    state: State,
    /// The chunk size read so far (in `Size`), or the bytes left of the chunk (in `Data`).
    size: u64,
    /// Bytes of the current chunk-size line, or of the trailer section.
    line: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// In the chunk size's hex digits (`line` counts them, 0 = none yet).
    #[default]
    Size,
    /// After the size: whitespace and chunk extensions up to the line end.
    Extension,
    /// The chunk size line's LF after its CR.
    SizeLf,
    /// In chunk data.
    Data,
    /// The CR (or LF) after chunk data.
    DataEnd,
    /// The LF after chunk data's CR.
    DataLf,
    /// At the start of a trailer line (or of the blank line that ends the body).
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    /// The LF of the blank line that ends the body.
    EndLf,
}

impl Chunked {
    /// Takes the next bytes; returns how many belong to the body and whether it ended.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(usize, bool), WireError> {
        let mut i = 0;
        while i < bytes.len() {
            if self.state == State::Data {
                let n = usize::try_from(self.size)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len() - i);
                self.size -= n as u64;
                i += n;
                if self.size == 0 {
                    self.state = State::DataEnd;
                }
                continue;
            }
            let b = bytes[i];
            let err = |reason| Err(WireError { at: i, reason });
            self.state = match self.state {
                State::Size => match (b, hex_digit(b)) {
                    (_, Some(d)) if self.line < 16 => {
                        self.size = self.size << 4 | u64::from(d);
                        self.line += 1;
                        State::Size
                    }
                    (_, Some(_)) => return err("chunk size has more than 16 hex digits"),
                    _ if self.line == 0 => return err("chunk size is not hexadecimal"),
                    (b';' | b' ' | b'\t', _) => State::Extension,
                    (b'\r', _) => State::SizeLf,
                    (b'\n', _) => self.after_size_line(),
                    _ => return err("bad byte after chunk size"),
                },
                State::Extension => match b {
                    b'\r' => State::SizeLf,
                    b'\n' => self.after_size_line(),
                    _ if b < 0x20 && b != b'\t' => return err("control byte in chunk extension"),
                    _ if self.line >= MAX_CHUNK_LINE => return err("chunk size line too long"),
                    _ => {
                        self.line += 1;
                        State::Extension
                    }
                },
                State::SizeLf if b == b'\n' => self.after_size_line(),
                State::SizeLf => return err("chunk size line has CR without LF"),
                State::DataEnd | State::DataLf if b == b'\n' => State::Size,
                State::DataEnd if b == b'\r' => State::DataLf,
                State::DataEnd | State::DataLf => return err("chunk data not followed by CRLF"),
                State::TrailerStart => match b {
                    b'\r' => State::EndLf,
                    b'\n' => return Ok((i + 1, true)),
                    _ => self.trailer_byte(b, i)?,
                },
                State::Trailer => self.trailer_byte(b, i)?,
                State::EndLf if b == b'\n' => return Ok((i + 1, true)),
                State::EndLf => return err("trailer section not ended by CRLF"),
                State::Data => unreachable!("handled above"),
            };
            i += 1;
        }
        Ok((bytes.len(), false))
    }

    /// The state after a chunk-size line: data, or the trailer section after the last chunk.
    fn after_size_line(&mut self) -> State {
        self.line = 0;
        if self.size == 0 {
            State::TrailerStart
        } else {
            State::Data
        }
    }

    /// One byte of a trailer line (trailer fields are counted, not parsed).
    fn trailer_byte(&mut self, b: u8, at: usize) -> Result<State, WireError> {
        self.line += 1;
        if self.line > MAX_HEAD {
            return Err(WireError {
                at,
                reason: "trailer section longer than 64 KiB",
            });
        }
        Ok(if b == b'\n' {
            State::TrailerStart
        } else {
            State::Trailer
        })
    }
}

/// The value of a hexadecimal digit.
fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(bytes: &[u8]) -> Result<(usize, bool), WireError> {
        Body::Chunked(Chunked::default()).feed(bytes)
    }

    #[test]
    fn length_counts_down() {
        let mut body = Body::Length(5);
        assert_eq!(body.feed(b"abc"), Ok((3, false)));
        assert_eq!(body.feed(b"defgh"), Ok((2, true)));
    }

    #[test]
    fn chunked_ends_after_last_chunk_and_trailers() {
        let msg = b"5\r\nhello\r\n1a;ext=\"x y\"\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\nNEXT";
        assert_eq!(chunked(msg), Ok((msg.len() - 4, true)));
        let trailers = b"0\r\nX-Sum: 1\r\nX-B: 2\r\n\r\nNEXT";
        assert_eq!(chunked(trailers), Ok((trailers.len() - 4, true)));
        assert_eq!(chunked(b"3\nabc\n0\n\nX"), Ok((9, true)));
        assert_eq!(chunked(b"3\r\nabc\r\n"), Ok((8, false)));
    }

    #[test]
    fn chunked_in_any_pieces() {
        let msg = b"A\r\n0123456789\r\n0\r\nT: v\r\n\r\n";
        for cut in 0..msg.len() {
            let mut body = Body::Chunked(Chunked::default());
            let first = body.feed(&msg[..cut]).unwrap();
            assert_eq!(first, (cut, false));
            assert_eq!(body.feed(&msg[cut..]), Ok((msg.len() - cut, true)));
        }
    }

    #[test]
    fn bad_chunked_is_an_error() {
        for (msg, at) in [
            (&b"x\r\n"[..], 0),
            (b"\r\n", 0),
            (b"11111111111111111\r\n", 16),
            (b"3\r\nabcX", 6),
            (b"3\rX", 2),
            (b"3;a\x00\r\n", 3),
            (b"0\r\n\rX", 4),
        ] {
            assert_eq!(chunked(msg).map_err(|e| e.at), Err(at), "{msg:?}");
        }
        let long_ext: Vec<u8> = b"1;"
            .iter()
            .chain(&[b'e'; MAX_CHUNK_LINE + 1])
            .copied()
            .collect();
        assert!(chunked(&long_ext).is_err());
    }

    #[test]
    fn until_close_never_ends() {
        assert_eq!(Body::UntilClose.feed(b"anything"), Ok((8, false)));
    }
}
