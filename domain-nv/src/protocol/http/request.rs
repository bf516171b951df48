//! [`HttpRequests`]: the [`RequestFramer`] for HTTP/1.x clients (keep-alive, pipelining,
//! bodies of any length streamed through).

use super::body::{Body, Chunked};
use super::head_reader::HeadReader;
use super::wire::{self, BodyHeaders};
use crate::protocol::{Access, ReplyRule, RequestEvent, RequestFramer};

/// Frames one client connection's HTTP/1.x requests.
///
/// A request begins once its head is complete (at most 64 KiB are held back for it) and ends
/// after its body (`Content-Length` or chunked; none without either). Its [`Access`]:
/// - `GET`, `HEAD`, `OPTIONS`, `TRACE`, `PROPFIND`: `Read` of the resource key;
/// - `POST`, `PUT`, `DELETE`, `PATCH`, `PROPPATCH`, `MKCOL`, `LOCK`, `UNLOCK`: `Write` of it;
/// - every other method (`COPY`/`MOVE` touch a second path, an unknown method may touch
///   anything): `All`, which only costs waiting for the requests in flight.
///
/// The resource key is the target's path, percent-decoded, without query, with empty and dot
/// segments resolved and no trailing slash (`/a//b/./c/../?x` is `/a/b`); `*` stays `*`; the
/// host (of the `Host` header or an absolute target) is left out. Mapping
/// paths the server may treat as one to one key only adds conflicts, which is always safe. What
/// it cannot see: a request that changes a resource under another path (an index file, a
/// rewrite, a directory listing, an application whose `POST /x` changes `/y`).
///
/// The stream becomes one never-ending `All` request (ordered as a whole) from a head that
/// does not parse or exceeds a limit, a body whose chunked coding is broken, a request with both
/// `Transfer-Encoding` and `Content-Length` (a request-smuggling shape that servers frame
/// differently), a transfer coding other than a final `chunked`, and from a `CONNECT` or a
/// request with `Upgrade` (what follows may not be HTTP/1.x).
#[derive(Debug)]
pub struct HttpRequests {
    /// Client-stream offset of the next byte.
    at: u64,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Reading a head that starts at `start`.
    Head { reader: HeadReader, start: u64 },
    /// In a request's body.
    Body(Body),
    /// In the request that never ends.
    Opaque,
}

impl Default for HttpRequests {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpRequests {
    /// A framer for a new connection.
    pub fn new() -> Self {
        Self {
            at: 0,
            state: State::Head {
                reader: HeadReader::new(true),
                start: 0,
            },
        }
    }

    /// From client-stream offset `at` on, the stream is one request that never ends.
    fn become_opaque(&mut self, at: u64, events: &mut Vec<RequestEvent>) {
        events.push(RequestEvent::Begin {
            at,
            access: Access::All,
            reply: ReplyRule::Exact,
        });
        self.state = State::Opaque;
    }

    /// The request starting at `start` has a complete head: begin it and go to its body.
    fn head_complete(&mut self, start: u64, events: &mut Vec<RequestEvent>) {
        let State::Head { reader, .. } = &mut self.state else {
            return;
        };
        let Some(request) = classify(reader.head()) else {
            return self.become_opaque(start, events);
        };
        reader.clear();
        events.push(RequestEvent::Begin {
            at: start,
            access: request.access,
            reply: request.reply,
        });
        match request.body {
            None => self.state = State::Opaque,
            Some(Body::Length(0)) => self.end(events),
            Some(body) => self.state = State::Body(body),
        }
    }

    /// The current request ends here; the next head starts.
    fn end(&mut self, events: &mut Vec<RequestEvent>) {
        events.push(RequestEvent::End { at: self.at });
        match &mut self.state {
            State::Head { start, .. } => *start = self.at,
            _ => {
                self.state = State::Head {
                    reader: HeadReader::new(true),
                    start: self.at,
                }
            }
        }
    }
}

impl RequestFramer for HttpRequests {
    fn feed(&mut self, mut bytes: &[u8], events: &mut Vec<RequestEvent>) {
        while !bytes.is_empty() {
            let (used, done) = match &mut self.state {
                State::Opaque => (bytes.len(), false),
                State::Head { reader, start } => {
                    let start = *start;
                    match reader.feed(bytes) {
                        Ok((used, true)) => {
                            self.at += used as u64;
                            bytes = &bytes[used..];
                            self.head_complete(start, events);
                            continue;
                        }
                        Ok(progress) => progress,
                        Err(_) => {
                            self.become_opaque(start, events);
                            (bytes.len(), false)
                        }
                    }
                }
                State::Body(body) => match body.feed(bytes) {
                    Ok(progress) => progress,
                    Err(e) => {
                        self.at += e.at as u64;
                        bytes = &bytes[e.at..];
                        events.push(RequestEvent::End { at: self.at });
                        self.become_opaque(self.at, events);
                        continue;
                    }
                },
            };
            self.at += used as u64;
            bytes = &bytes[used..];
            if done {
                self.end(events);
            }
        }
    }
}

/// What a request head means for ordering and framing.
struct Classified {
    access: Access,
    reply: ReplyRule,
    /// Its body; `None` if the stream after the head may not be HTTP/1.x.
    body: Option<Body>,
}

/// Classifies a complete request head; `None` if it does not parse or frames ambiguously.
fn classify(head: &[u8]) -> Option<Classified> {
    let head = wire::parse_request(head).ok()?;
    let body = match head.body_headers().ok()? {
        BodyHeaders::Neither => Body::Length(0),
        BodyHeaders::Length(n) => Body::Length(n),
        BodyHeaders::Coded {
            chunked: true,
            with_length: false,
        } => Body::Chunked(Chunked::default()),
        BodyHeaders::Coded { .. } => return None,
    };
    let tunnel = head.first == b"CONNECT" || head.has(b"upgrade");
    let key = resource_key(head.second);
    let access = match (head.first, key) {
        _ if tunnel => Access::All,
        (b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PROPFIND", Some(key)) => {
            Access::Read(vec![key])
        }
        (
            b"POST" | b"PUT" | b"DELETE" | b"PATCH" | b"PROPPATCH" | b"MKCOL" | b"LOCK" | b"UNLOCK",
            Some(key),
        ) => Access::Write(vec![key]),
        _ => Access::All,
    };
    let reply = if head.first == b"HEAD" {
        ReplyRule::NoBody
    } else {
        ReplyRule::Exact
    };
    Some(Classified {
        access,
        reply,
        body: (!tunnel).then_some(body),
    })
}

/// The resource key of a request target (origin form, absolute form or `*`); `None` for any
/// other form.
pub fn resource_key(target: &[u8]) -> Option<Vec<u8>> {
    if target == b"*" {
        return Some(b"*".to_vec());
    }
    let path = if target.starts_with(b"/") {
        target
    } else {
        let scheme_end = target.windows(3).position(|w| w == b"://")?;
        let after = &target[scheme_end + 3..];
        let path_start = after
            .iter()
            .position(|&b| b == b'/' || b == b'?' || b == b'#');
        &after[path_start.unwrap_or(after.len())..]
    };
    let path = &path[..path
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(path.len())];
    let decoded = percent_decode(path);
    let mut segments: Vec<&[u8]> = Vec::new();
    for segment in decoded.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            _ => segments.push(segment),
        }
    }
    let mut key = Vec::with_capacity(decoded.len() + 1);
    for segment in &segments {
        key.push(b'/');
        key.extend_from_slice(segment);
    }
    if key.is_empty() {
        key.push(b'/');
    }
    Some(key)
}

/// `%XX` sequences decoded; a `%` not followed by two hex digits stays as it is.
fn percent_decode(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let hex = |j: usize| path.get(j).and_then(|&b| (b as char).to_digit(16));
        match (path[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}
