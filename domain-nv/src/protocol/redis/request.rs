//! [`RespRequests`]: the [`RequestFramer`] of a redis client connection.
//!
//! It frames requests exactly as redis 7.0 does (`processMultibulkBuffer`,
//! `processInlineBuffer`), and where it could not be sure to, it stops framing: the rest of the
//! stream becomes one [`Access::All`] request that never ends. So it is stricter than redis:
//! header lines must end in a lone CRLF without NUL, a bulk argument must be followed by CRLF
//! (redis skips any two bytes), an inline command must fit in 16 KiB (redis: 64 KiB), a request
//! may have at most 1 Mi arguments of at most 512 MiB each. Empty requests (`*0`, `*-1`, a blank
//! inline line), which redis skips without a reply, belong to the request that follows them.
//!
//! Every request begins (its [`RequestEvent::Begin`] is out) before [`BEGIN_WITHIN`] bytes of
//! it have been fed, so a caller that holds a request's bytes until it begins needs to hold no
//! more than that.

use super::classify::{Classifier, Decision, KEY_MAX};
use super::wire::{parse_i64, Line};
use crate::protocol::{Access, ReplyRule, RequestEvent, RequestFramer};

/// Longest inline command, and longest header line.
const INLINE_MAX: usize = 16 * 1024;
/// Most arguments of one request framed.
const ARGS_MAX: i64 = 1024 * 1024;
/// Longest argument (redis's default `proto-max-bulk-len`).
const ARG_MAX: i64 = 512 * 1024 * 1024;
/// A request not classified within this many bytes (a huge value before its last key, as in
/// `MSET k1 <big> k2 v2`) is [`Access::All`], so its bytes need not be held back; a stream of
/// empty requests longer than this is not framed.
const DECIDE_WITHIN: u64 = 16 * 1024;
/// The most bytes of a request fed before it begins: 16 KiB to classify it, and one line.
pub const BEGIN_WITHIN: usize = DECIDE_WITHIN as usize + INLINE_MAX;

/// Where the framer is in the client's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before a request's first byte.
    Idle,
    /// Reading an inline command's line.
    Inline,
    /// Reading a multibulk request's `*<count>` line.
    Count,
    /// Reading an argument's `$<length>` line.
    ArgHeader,
    /// Reading an argument's payload: this many bytes left.
    ArgData(u64),
    /// Reading the CRLF after an argument: this many bytes left.
    ArgTrailer(u8),
    /// Not framing any more: the rest is one request that never ends.
    Detached,
}

/// Frames one redis client connection's requests (RESP multibulk and inline commands,
/// pipelined), classifying each by the command table. Memory: one line of at most 16 KiB, and
/// while a request is classified, its name, subcommand and at most 256 keys of at most 4 KiB.
#[derive(Debug)]
pub struct RespRequests {
    state: State,
    /// Client-stream offset of the next byte.
    offset: u64,
    /// Client-stream offset of the current request's first byte.
    start: u64,
    begun: bool,
    line: Line,
    in_multi: bool,
    args: u64,
    index: u64,
    classifier: Classifier,
    /// The current argument's bytes, when the classifier wants it.
    capture: Option<Vec<u8>>,
}

impl Default for RespRequests {
    fn default() -> Self {
        Self::new()
    }
}

impl RespRequests {
    /// A framer at the start of a connection.
    pub fn new() -> Self {
        Self {
            state: State::Idle,
            offset: 0,
            start: 0,
            begun: false,
            line: Line::new(INLINE_MAX),
            in_multi: false,
            args: 0,
            index: 0,
            classifier: Classifier::new(1, false),
            capture: None,
        }
    }

    /// Takes what it can of `input` in the current state; returns how many bytes it took.
    fn step(&mut self, input: &[u8], events: &mut Vec<RequestEvent>) -> usize {
        match self.state {
            State::Idle => {
                self.state = if input[0] == b'*' {
                    State::Count
                } else {
                    State::Inline
                };
                0
            }
            State::Inline | State::Count | State::ArgHeader => {
                let Ok(used) = self.line.feed(input) else {
                    self.detach(events);
                    return 0;
                };
                self.offset += used as u64;
                if self.line.complete() {
                    match self.state {
                        State::Inline => self.inline_line(events),
                        State::Count => self.count_line(events),
                        _ => self.arg_header_line(events),
                    }
                    self.line.clear();
                }
                used
            }
            State::ArgData(left) => {
                let used = left.min(input.len() as u64) as usize;
                if let Some(capture) = &mut self.capture {
                    capture.extend_from_slice(&input[..used]);
                }
                self.offset += used as u64;
                self.state = match left - used as u64 {
                    0 => State::ArgTrailer(2),
                    left => State::ArgData(left),
                };
                self.check_bound(events);
                used
            }
            State::ArgTrailer(left) => {
                if input[0] != b"\r\n"[2 - usize::from(left)] {
                    self.detach(events);
                    return 0;
                }
                self.offset += 1;
                if left == 2 {
                    self.state = State::ArgTrailer(1);
                } else {
                    self.arg_done(events);
                }
                1
            }
            State::Detached => {
                self.offset += input.len() as u64;
                input.len()
            }
        }
    }

    /// A complete inline command line.
    fn inline_line(&mut self, events: &mut Vec<RequestEvent>) {
        let raw = self.line.raw();
        let content = raw.strip_suffix(b"\n").unwrap_or(raw);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        let args = if content.contains(&0) {
            None
        } else {
            split_inline(content)
        };
        let Some(args) = args else {
            return self.detach(events);
        };
        self.state = State::Idle;
        if args.is_empty() {
            return self.check_empty(events);
        }
        self.classifier = super::classify::classify_args(&args, self.in_multi);
        self.begin(events);
        if self.state != State::Detached {
            self.end(events);
        }
    }

    /// A complete `*<count>` line.
    fn count_line(&mut self, events: &mut Vec<RequestEvent>) {
        let count = self.line.crlf_content().and_then(|c| parse_i64(&c[1..]));
        match count {
            Some(count) if count <= 0 => {
                self.state = State::Idle;
                self.check_empty(events);
            }
            Some(count) if count <= ARGS_MAX => {
                self.args = count as u64;
                self.index = 0;
                self.classifier = Classifier::new(self.args, self.in_multi);
                self.state = State::ArgHeader;
            }
            _ => self.detach(events),
        }
    }

    /// A complete `$<length>` line.
    fn arg_header_line(&mut self, events: &mut Vec<RequestEvent>) {
        let len = match self.line.crlf_content() {
            Some([b'$', digits @ ..]) => parse_i64(digits).filter(|n| (0..=ARG_MAX).contains(n)),
            _ => None,
        };
        let Some(len) = len else {
            return self.detach(events);
        };
        self.state = State::ArgData(len as u64);
        self.capture = None;
        if self.classifier.wants(self.index) {
            if len as usize > KEY_MAX {
                self.classifier.arg(self.index, None);
                self.begin(events);
            } else {
                self.capture = Some(Vec::with_capacity(len as usize));
            }
        }
        self.check_bound(events);
    }

    /// An argument and its CRLF have been read.
    fn arg_done(&mut self, events: &mut Vec<RequestEvent>) {
        if let Some(arg) = self.capture.take() {
            self.classifier.arg(self.index, Some(&arg));
        }
        self.index += 1;
        self.state = State::ArgHeader;
        self.begin(events);
        if self.state != State::Detached && self.index == self.args {
            self.end(events);
            self.state = State::Idle;
        }
    }

    /// Reports the request's beginning once it is classified (all arguments read means it is).
    fn begin(&mut self, events: &mut Vec<RequestEvent>) {
        if self.begun {
            return;
        }
        let (access, reply) = match self.classifier.decision() {
            Some(Decision::Request(access, rule)) => (access.clone(), *rule),
            Some(Decision::Unpaired) => return self.detach(events),
            None if self.index >= self.args => (Access::All, ReplyRule::Exact),
            None => return,
        };
        events.push(RequestEvent::Begin {
            at: self.start,
            access,
            reply,
        });
        self.begun = true;
    }

    /// A request still unclassified after [`DECIDE_WITHIN`] bytes is [`Access::All`].
    fn check_bound(&mut self, events: &mut Vec<RequestEvent>) {
        if !self.begun && self.offset - self.start > DECIDE_WITHIN {
            events.push(RequestEvent::Begin {
                at: self.start,
                access: Access::All,
                reply: ReplyRule::Exact,
            });
            self.begun = true;
        }
    }

    /// Empty requests that run on past [`DECIDE_WITHIN`] are not framed.
    fn check_empty(&mut self, events: &mut Vec<RequestEvent>) {
        if self.offset - self.start > DECIDE_WITHIN {
            self.detach(events);
        }
    }

    /// Reports the request's end at the current offset.
    fn end(&mut self, events: &mut Vec<RequestEvent>) {
        events.push(RequestEvent::End { at: self.offset });
        self.in_multi = self.classifier.in_multi_after();
        self.start = self.offset;
        self.begun = false;
    }

    /// Stops framing: from the current offset on (from the request's start if it has not been
    /// reported yet), the stream is one [`Access::All`] request that never ends.
    fn detach(&mut self, events: &mut Vec<RequestEvent>) {
        if self.begun {
            events.push(RequestEvent::End { at: self.offset });
            self.start = self.offset;
        }
        events.push(RequestEvent::Begin {
            at: self.start,
            access: Access::All,
            reply: ReplyRule::Exact,
        });
        self.begun = true;
        self.capture = None;
        self.state = State::Detached;
    }
}

impl RequestFramer for RespRequests {
    fn feed(&mut self, bytes: &[u8], events: &mut Vec<RequestEvent>) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let used = self.step(rest, events);
            rest = &rest[used..];
        }
    }
}

/// Splits an inline command into arguments as redis's `sdssplitargs` does (blanks between
/// arguments, `"..."` with `\n`, `\xHH`, ... escapes, `'...'` with `\'`); `None` for unbalanced
/// quotes or a closing quote not followed by a blank.
fn split_inline(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let blank = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let hex = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let at = |i: usize| line.get(i).copied();
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while at(i).is_some_and(blank) {
            i += 1;
        }
        if i == line.len() {
            return Some(args);
        }
        let mut arg = Vec::new();
        let (mut in_double, mut in_single) = (false, false);
        loop {
            let c = at(i);
            if in_double {
                match (c?, at(i + 1)) {
                    (b'\\', Some(b'x'))
                        if at(i + 2).and_then(hex).is_some()
                            && at(i + 3).and_then(hex).is_some() =>
                    {
                        arg.push(hex(line[i + 2])? * 16 + hex(line[i + 3])?);
                        i += 3;
                    }
                    (b'\\', Some(e)) => {
                        let map = [
                            (b'n', b'\n'),
                            (b'r', b'\r'),
                            (b't', b'\t'),
                            (b'b', 8),
                            (b'a', 7),
                        ];
                        arg.push(map.iter().find(|(k, _)| *k == e).map_or(e, |(_, v)| *v));
                        i += 1;
                    }
                    (b'"', next) => {
                        if next.is_some_and(|n| !blank(n)) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    (c, _) => arg.push(c),
                }
            } else if in_single {
                match (c?, at(i + 1)) {
                    (b'\\', Some(b'\'')) => {
                        arg.push(b'\'');
                        i += 1;
                    }
                    (b'\'', next) => {
                        if next.is_some_and(|n| !blank(n)) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    (c, _) => arg.push(c),
                }
            } else {
                match c {
                    None | Some(b' ' | b'\n' | b'\r' | b'\t') => {
                        i += usize::from(c.is_some());
                        break;
                    }
                    Some(b'"') => in_double = true,
                    Some(b'\'') => in_single = true,
                    Some(c) => arg.push(c),
                }
            }
            i += 1;
        }
        args.push(arg);
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
