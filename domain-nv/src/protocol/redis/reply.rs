//! [`RespReplies`]: the [`ReplyFramer`] of one replica's redis replies on one connection.
//!
//! It checks that the stream is RESP (RESP2 or RESP3), counts replies (a top-level value; an
//! attribute belongs to the value after it; a push is out of band and answers no request; a
//! value no request expects, like a pub/sub message, is compared byte for byte and not counted)
//! and passes bytes through unchanged, except for replies whose rule is unordered: those are
//! held whole, up to [`HOLD_MAX`], and emitted in comparison form (see `canon.rs`) with the real
//! bytes as one [`Masked`] record. (HTTP's [`ReplyRule::NoBody`] is taken as
//! [`ReplyRule::Exact`].) Memory: one header line of at most [`LINE_MAX`], nesting at most
//! [`DEPTH_MAX`] deep, one held reply.

use super::canon::canonical;
use super::wire::{parse_header, Aggregate, Header, Line};
use crate::protocol::{Masked, ReplyError, ReplyFramer, ReplyOutput, ReplyRule};
use std::collections::VecDeque;

/// Longest reply held for masking; a longer one is compared byte for byte.
pub const HOLD_MAX: usize = 1024 * 1024;
/// Longest header or simple-value line.
pub const LINE_MAX: usize = 64 * 1024;
/// Deepest nesting of aggregates.
pub const DEPTH_MAX: usize = 128;

/// What is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A value's header line.
    Header,
    /// A blob's payload: this many bytes left.
    Blob(u64),
    /// The CRLF after a blob: this many bytes left.
    Trailer(u8),
}

/// What the current top-level value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Top {
    /// No top-level value begun.
    None,
    /// A value (attributes before it included) answering the next expected request.
    Reply,
    /// A push, or a value no request expects.
    Unsolicited,
}

/// Frames one replica's redis reply stream on one connection.
#[derive(Debug)]
pub struct RespReplies {
    rules: VecDeque<ReplyRule>,
    state: State,
    line: Line,
    /// Values still to come in each open aggregate, innermost last, and whether it is an
    /// attribute.
    open: Vec<(u64, bool)>,
    top: Top,
    /// Reply-stream offset of the next byte.
    offset: u64,
    /// Offset of the current reply's first byte.
    start: u64,
    /// The current reply's bytes, while held for masking.
    held: Option<Vec<u8>>,
    /// The error the stream failed with: every later call returns it again.
    failed: Option<ReplyError>,
}

impl Default for RespReplies {
    fn default() -> Self {
        Self::new()
    }
}

impl RespReplies {
    /// A framer at the start of a connection.
    pub fn new() -> Self {
        Self {
            rules: VecDeque::new(),
            state: State::Header,
            line: Line::new(LINE_MAX),
            open: Vec::new(),
            top: Top::None,
            offset: 0,
            start: 0,
            held: None,
            failed: None,
        }
    }

    fn error(&self, reason: &'static str) -> ReplyError {
        ReplyError {
            offset: self.offset,
            reason,
        }
    }

    /// Passes `bytes` on: into the held reply, or to the comparison stream. A held reply that
    /// outgrows [`HOLD_MAX`] is released as it is, to be compared byte for byte.
    fn pass(&mut self, bytes: &[u8], out: &mut ReplyOutput) {
        self.offset += bytes.len() as u64;
        match &mut self.held {
            Some(held) if held.len() + bytes.len() <= HOLD_MAX => held.extend_from_slice(bytes),
            Some(held) => {
                out.compare.append(held);
                out.compare.extend_from_slice(bytes);
                self.held = None;
            }
            None => out.compare.extend_from_slice(bytes),
        }
    }

    /// A header line is complete.
    fn header(&mut self, out: &mut ReplyOutput) -> Result<(), ReplyError> {
        let content = self
            .line
            .crlf_content()
            .ok_or(self.error("line not ended by CRLF"))?;
        let header = parse_header(content).map_err(|reason| self.error(reason))?;
        let push = content[0] == b'>';
        if self.open.is_empty() && push && self.top == Top::Reply {
            // A push is never part of a reply: what was held (attributes) goes out as it is.
            if let Some(held) = self.held.take() {
                out.compare.extend_from_slice(&held);
            }
            self.top = Top::Unsolicited;
        }
        let line = std::mem::replace(&mut self.line, Line::new(LINE_MAX));
        self.pass(line.raw(), out);
        self.line = line;
        self.line.clear();
        match header {
            Header::Whole => self.value_done(false, out),
            Header::Blob(len) => self.state = State::Blob(len),
            Header::Aggregate { kind, values } => {
                if self.open.len() == DEPTH_MAX {
                    return Err(self.error("aggregates nested too deep"));
                }
                self.open.push((values, kind == Aggregate::Attribute));
                if values == 0 {
                    self.open.pop();
                    self.value_done(kind == Aggregate::Attribute, out);
                }
            }
        }
        Ok(())
    }

    /// A value is complete: it completes the aggregates it ends, then maybe the reply.
    fn value_done(&mut self, mut attribute: bool, out: &mut ReplyOutput) {
        while let Some((left, is_attribute)) = self.open.last_mut() {
            if !attribute {
                *left -= 1;
            }
            if *left > 0 {
                return;
            }
            attribute = *is_attribute;
            self.open.pop();
        }
        if attribute {
            return; // the value it describes follows
        }
        if self.top == Top::Reply {
            let rule = self.rules.pop_front();
            if let Some(held) = self.held.take() {
                let pairs = rule == Some(ReplyRule::UnorderedPairs);
                match canonical(&held, pairs) {
                    Some(form) => {
                        out.compare.extend_from_slice(&form);
                        out.masked.push(Masked {
                            at: self.start,
                            real: held,
                        });
                    }
                    None => out.compare.extend_from_slice(&held),
                }
            }
            out.replies_done += 1;
        }
        self.top = Top::None;
    }

    /// Takes what it can of `input` in the current state; returns how many bytes it took.
    fn step(&mut self, input: &[u8], out: &mut ReplyOutput) -> Result<usize, ReplyError> {
        match self.state {
            State::Header => {
                if self.top == Top::None {
                    self.start = self.offset;
                    let rule = self.rules.front();
                    self.top = if rule.is_some() {
                        Top::Reply
                    } else {
                        Top::Unsolicited
                    };
                    let unordered =
                        matches!(rule, Some(ReplyRule::Unordered | ReplyRule::UnorderedPairs));
                    self.held = unordered.then(Vec::new);
                }
                let used = self
                    .line
                    .feed(input)
                    .map_err(|_| self.error("line too long"))?;
                if !self.line.complete() {
                    // Only whole lines are passed on, so a header is checked before it goes out.
                    return Ok(used);
                }
                self.header(out)?;
                Ok(used)
            }
            State::Blob(left) => {
                let used = left.min(input.len() as u64) as usize;
                self.pass(&input[..used], out);
                self.state = match left - used as u64 {
                    0 => State::Trailer(2),
                    left => State::Blob(left),
                };
                Ok(used)
            }
            State::Trailer(left) => {
                if input[0] != b"\r\n"[2 - usize::from(left)] {
                    return Err(self.error("blob not followed by CRLF"));
                }
                self.pass(&input[..1], out);
                if left == 2 {
                    self.state = State::Trailer(1);
                } else {
                    self.state = State::Header;
                    self.value_done(false, out);
                }
                Ok(1)
            }
        }
    }
}

impl ReplyFramer for RespReplies {
    fn expect(&mut self, rule: ReplyRule) {
        self.rules.push_back(rule);
    }

    fn feed(&mut self, bytes: &[u8], out: &mut ReplyOutput) -> Result<(), ReplyError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            match self.step(rest, out) {
                Ok(used) => rest = &rest[used..],
                Err(error) => {
                    self.failed = Some(error.clone());
                    return Err(error);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "reply_tests.rs"]
mod tests;
