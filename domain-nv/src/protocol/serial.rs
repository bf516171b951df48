//! [`WholeStream`]: the request framer of a `bytes` service with `ordering: serial`. A
//! connection's whole input is one request that touches everything and never ends, so the
//! sequencer admits one connection's input at a time (the next waits until it is over).

use super::{Access, ReplyRule, RequestEvent, RequestFramer};

/// Frames a connection's byte stream as one request ([`Access::All`]) from its first byte on.
#[derive(Debug, Default)]
pub struct WholeStream {
    /// Whether the request has begun (the first byte arrived).
    begun: bool,
}

impl RequestFramer for WholeStream {
    fn feed(&mut self, bytes: &[u8], events: &mut Vec<RequestEvent>) {
        if !self.begun && !bytes.is_empty() {
            self.begun = true;
            events.push(RequestEvent::Begin {
                at: 0,
                access: Access::All,
                reply: ReplyRule::Exact,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_from_the_first_byte_that_never_ends() {
        let mut f = WholeStream::default();
        let mut events = Vec::new();
        f.feed(b"", &mut events);
        assert!(events.is_empty(), "no byte, no request");
        f.feed(b"GET /", &mut events);
        f.feed(b" HTTP/1.1\r\n\r\n", &mut events);
        assert_eq!(
            events,
            vec![RequestEvent::Begin {
                at: 0,
                access: Access::All,
                reply: ReplyRule::Exact
            }]
        );
    }
}
