//! [`HttpReplies`]: the [`ReplyFramer`] for HTTP/1.x servers. It holds each response head until
//! it is complete, emits it with masked header values in their comparison form, and streams
//! bodies through unchanged.

use std::collections::VecDeque;

use super::body::{Body, Chunked};
use super::head_reader::HeadReader;
use super::mask::HeaderMasks;
use super::wire::{self, BodyHeaders, WireError};
use crate::protocol::{Masked, ReplyError, ReplyFramer, ReplyOutput, ReplyRule};

/// Frames one replica's HTTP/1.x responses on one connection and masks their headers (see
/// [`super::mask`]).
///
/// A reply is one final response; interim `1xx` responses before it (`100 Continue`,
/// `103 Early Hints`) do not end it. Its body: none after `HEAD` ([`ReplyRule::NoBody`]) and
/// for `204` and `304`; else chunked if that is the final transfer coding, else
/// `Content-Length`, else everything until the connection closes (that reply never completes;
/// so does a `2xx` to `CONNECT`, whose tunnel is compared as it is).
/// A `101 Switching Protocols` completes its reply and the rest of the stream is compared as it
/// is. A response that arrives when no request is expected (a `408` before the server closes an
/// idle connection) is framed and compared but completes no reply.
///
/// Every rule but [`ReplyRule::NoBody`] is taken as [`ReplyRule::Exact`] (the unordered rules
/// do not occur in HTTP).
///
/// Holds back at most one head (64 KiB) and remembers one [`ReplyRule`] per request sent and not
/// yet answered. Anything that does not frame is a [`ReplyError`], and stays one.
#[derive(Debug)]
pub struct HttpReplies {
    masks: HeaderMasks,
    /// Rules of the requests sent and not answered yet, oldest first.
    expected: VecDeque<ReplyRule>,
    /// Reply-stream offset of the next byte.
    at: u64,
    state: State,
    failed: Option<ReplyError>,
}

#[derive(Debug)]
enum State {
    /// Reading a response head that starts at reply-stream offset `start`.
    Head { reader: HeadReader, start: u64 },
    /// In a response body; `answers` whether the response answers a request.
    Body { body: Body, answers: bool },
    /// After `101 Switching Protocols`: not HTTP any more.
    Raw,
}

impl HttpReplies {
    /// A framer for one replica's side of a new connection, masking `Date` and `masks`.
    pub fn new(masks: HeaderMasks) -> Self {
        Self {
            masks,
            expected: VecDeque::new(),
            at: 0,
            state: State::Head {
                reader: HeadReader::new(false),
                start: 0,
            },
            failed: None,
        }
    }

    /// Frames the bytes, appending to `out`; an error leaves `out` with what came before it.
    fn frame(&mut self, mut bytes: &[u8], out: &mut ReplyOutput) -> Result<(), ReplyError> {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Raw => {
                    out.compare.extend_from_slice(bytes);
                    self.at += bytes.len() as u64;
                    return Ok(());
                }
                State::Head { reader, start } => {
                    let start = *start;
                    let (used, done) = reader.feed(bytes).map_err(|e| error(start, e))?;
                    self.at += used as u64;
                    bytes = &bytes[used..];
                    if done {
                        self.head_complete(start, out)?;
                    }
                }
                State::Body { body, answers } => {
                    let answers = *answers;
                    let (used, done) = body.feed(bytes).map_err(|e| error(self.at, e))?;
                    out.compare.extend_from_slice(&bytes[..used]);
                    self.at += used as u64;
                    bytes = &bytes[used..];
                    if done {
                        out.replies_done += usize::from(answers);
                        self.next_head();
                    }
                }
            }
        }
        Ok(())
    }

    /// The head starting at `start` is complete: emit it masked and go to its body.
    fn head_complete(&mut self, start: u64, out: &mut ReplyOutput) -> Result<(), ReplyError> {
        let State::Head { reader, .. } = &mut self.state else {
            return Ok(());
        };
        let head = wire::parse_response(reader.head()).map_err(|e| error(start, e))?;
        let status = head.status();
        let interim = (100..200).contains(&status) && status != 101;
        let rule = if interim {
            None
        } else {
            self.expected.pop_front()
        };
        let body = if interim || status == 101 {
            None
        } else if rule == Some(ReplyRule::NoBody) || status == 204 || status == 304 {
            Some(Body::Length(0))
        } else {
            Some(match head.body_headers().map_err(|e| error(start, e))? {
                BodyHeaders::Neither | BodyHeaders::Coded { chunked: false, .. } => {
                    Body::UntilClose
                }
                BodyHeaders::Length(n) => Body::Length(n),
                BodyHeaders::Coded { chunked: true, .. } => Body::Chunked(Chunked::default()),
            })
        };
        let base = out.compare.len();
        out.compare.extend_from_slice(reader.head());
        for field in &head.fields {
            let real = head.value(field);
            if let Some(form) = self.masks.mask(head.name(field), real) {
                let range = base + field.value.start..base + field.value.end;
                out.compare[range].copy_from_slice(&form);
                let at = start + field.value.start as u64;
                out.masked.push(Masked {
                    at,
                    real: real.to_vec(),
                });
            }
        }
        let answers = usize::from(rule.is_some());
        match body {
            None if interim => self.next_head(),
            None => {
                out.replies_done += answers;
                self.state = State::Raw;
            }
            Some(Body::Length(0)) => {
                out.replies_done += answers;
                self.next_head();
            }
            Some(body) => {
                self.state = State::Body {
                    body,
                    answers: answers == 1,
                }
            }
        }
        Ok(())
    }

    /// A response ended: read the next head (reusing the head buffer if there is one).
    fn next_head(&mut self) {
        match &mut self.state {
            State::Head { reader, start } => {
                reader.clear();
                *start = self.at;
            }
            _ => {
                self.state = State::Head {
                    reader: HeadReader::new(false),
                    start: self.at,
                }
            }
        }
    }
}

/// A wire error in the unit starting at reply-stream offset `base`.
fn error(base: u64, e: WireError) -> ReplyError {
    ReplyError {
        offset: base + e.at as u64,
        reason: e.reason,
    }
}

impl ReplyFramer for HttpReplies {
    fn expect(&mut self, rule: ReplyRule) {
        self.expected.push_back(rule);
    }

    fn feed(&mut self, bytes: &[u8], out: &mut ReplyOutput) -> Result<(), ReplyError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.frame(bytes, out);
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }
}
