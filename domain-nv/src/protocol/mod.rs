//! The protocol layer of a service whose `protocol` is not `bytes`: it frames each client's
//! requests and each replica's replies, so that
//! - requests that conflict are processed in the same order by every replica (the sequencer
//!   admits a request to the voter only when no conflicting request of another connection is in
//!   flight), and
//! - benign differences between replicas' replies (an HTTP `Date`, the order of a redis set
//!   listing) are masked before the byte voter compares them.
//!
//! CONTRACT between the framers (one module per protocol, sans-IO, no allocation beyond bounded
//! buffers) and the appliance (which owns the sockets, the voter and the sequencer):
//! - A [`RequestFramer`] reads one client connection's byte stream, every byte once and in order,
//!   and reports each request's beginning (as soon as its [`Access`] and [`ReplyRule`] are known,
//!   which may be before its body has arrived: large bodies stream through) and its end. It never
//!   fails: a stream it cannot frame becomes, from that byte on, one request with [`Access::All`]
//!   that never ends (the connection is then ordered as a whole, like `ordering: serial`).
//! - A [`ReplyFramer`] reads one replica's reply stream on one connection. The appliance tells it
//!   each request's [`ReplyRule`] in request order ([`ReplyFramer::expect`]) before that request
//!   is sent to the replica. For each byte it receives, it eventually emits exactly one comparison
//!   byte: the comparison stream has the same length as the real stream, byte for byte, and
//!   differs from it only inside masked fields, whose real bytes it hands back as [`Masked`]
//!   records. The voter votes on comparison bytes; the appliance releases to the client the real
//!   bytes of one replica that agreed, so a client only ever receives one real replica's reply.
//!   A framer may hold bytes back until a masked unit is complete (e.g. a header block or a whole
//!   unordered array), within its own documented bound; past the bound the unit is compared
//!   exactly. A reply stream that does not frame is an error: the appliance cuts that replica off
//!   (a fault of the replica, like a value mismatch).
//! - Every mask keeps a changed byte outside the masked field visible: a masked field compares
//!   by its format (and presence), an unordered listing by its multiset of elements.

pub mod redis;

/// A request's footprint on the service's state, for ordering across connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Touches no shared state (e.g. redis `PING`, `ECHO`): conflicts with nothing.
    Nothing,
    /// Only reads these keys: conflicts with writes to any of them.
    Read(Vec<Vec<u8>>),
    /// Writes (and may read) these keys: conflicts with reads and writes of any of them.
    Write(Vec<Vec<u8>>),
    /// May touch anything (unknown commands, transactions, scripts, blocking commands, admin
    /// commands, unframeable input): conflicts with every request that touches state.
    All,
}

/// How replicas' replies to one request are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyRule {
    /// Byte for byte, apart from the protocol's fixed masks (e.g. HTTP's `Date` header).
    Exact,
    /// The reply is a listing whose element order is unspecified (redis `SMEMBERS`, `HGETALL`,
    /// `KEYS`, `COMMAND DOCS`, ...): compared as a multiset of its elements.
    Unordered,
    /// The reply is a listing of key-value pairs whose pair order is unspecified (redis
    /// `HGETALL`, `CONFIG GET`, `COMMAND DOCS`; needed because RESP2 sends a map as a flat
    /// array, whose pairs no framer could tell from a listing's elements): compared as a multiset
    /// of its pairs. (Added by the redis framers, compatibly: nothing else produces it.)
    UnorderedPairs,
    /// HTTP: the response to a `HEAD` request (it has no body, whatever its headers say).
    NoBody,
}

/// What a [`RequestFramer`] found in the client's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestEvent {
    /// A request begins at client-stream offset `at`.
    Begin {
        /// Client-stream offset of the request's first byte.
        at: u64,
        /// What it touches.
        access: Access,
        /// How its replies are compared.
        reply: ReplyRule,
    },
    /// The request begun last ends just before client-stream offset `at`.
    End {
        /// Client-stream offset just past the request's last byte.
        at: u64,
    },
}

/// Frames one client connection's byte stream into requests (sans-IO, incremental).
pub trait RequestFramer {
    /// Takes the client's next bytes (every byte once, in order) and appends the events they
    /// complete to `events`.
    fn feed(&mut self, bytes: &[u8], events: &mut Vec<RequestEvent>);
}

/// The real bytes of one masked field of a replica's reply stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masked {
    /// Reply-stream offset of the field's first byte (the same in the comparison stream).
    pub at: u64,
    /// The replica's real bytes of the field (as long as their comparison form).
    pub real: Vec<u8>,
}

/// What a [`ReplyFramer`] emitted for the bytes it was fed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplyOutput {
    /// Comparison bytes for the voter, continuing the comparison stream.
    pub compare: Vec<u8>,
    /// The real bytes of the masked fields inside `compare`, in stream order.
    pub masked: Vec<Masked>,
    /// How many replies were completed (their last byte is in `compare`).
    pub replies_done: usize,
}

/// A replica's reply stream that does not frame as the protocol's replies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reply stream does not frame at offset {offset}: {reason}")]
pub struct ReplyError {
    /// Reply-stream offset where framing failed.
    pub offset: u64,
    /// What was wrong there.
    pub reason: &'static str,
}

/// Frames one replica's reply stream on one connection and masks benign differences.
pub trait ReplyFramer {
    /// The rule for the next request's reply, told in request order before the request is sent.
    fn expect(&mut self, rule: ReplyRule);
    /// Takes the replica's next bytes (every byte once, in order) and appends to `out` what they
    /// complete.
    fn feed(&mut self, bytes: &[u8], out: &mut ReplyOutput) -> Result<(), ReplyError>;
}

pub mod http;
pub mod sequencer;
pub mod serial;
