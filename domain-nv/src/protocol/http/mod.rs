//! HTTP/1.x (RFC 9112) framers: [`HttpRequests`] orders requests by method and path,
//! [`HttpReplies`] counts responses and masks the headers that differ between healthy replicas.
//!
//! Ordering (details on [`HttpRequests`]): safe methods read the request's path, the usual
//! unsafe ones write it, anything else (unknown methods, `COPY`/`MOVE`, `CONNECT`, `Upgrade`,
//! input that does not frame) conflicts with everything. Bodies stream through; a request
//! begins once its head (at most 64 KiB) is complete.
//!
//! Masking rules (the comparison form keeps every byte's position; see [`mask`]):
//! - `Date` in IMF-fixdate format compares as a fixed date: presence and format are compared,
//!   the time is not. A `Date` in any other format compares byte for byte.
//! - Each header of the service's `mask_headers` compares by shape (letters and digits as `x`,
//!   every other byte as itself), e.g. `Expires` where nginx's `expires` directive derives it
//!   from the clock. `Content-Length` and `Transfer-Encoding` cannot be masked.
//! - Everything else (status lines, header names, other values, bodies, chunk framing,
//!   trailers) compares byte for byte.
//!
//! Two nginx processes serving the same files differ in `Date` only; if the copies of the
//! files have different modification times, also in `ETag` and `Last-Modified`. Masking those
//! two is possible but not the default: replicas whose files differ in mtime still diverge on
//! conditional requests (`If-None-Match` with one replica's `ETag` gets `304` from it and `200`
//! from the others) and in directory listings; giving the files one mtime is the fix.
//!
//! Limits (past them a request stream is ordered as a whole, a reply stream is an error): a
//! head of at most 64 KiB, 256 header fields and 16 KiB per line; a chunk-size line of at most
//! 4 KiB; a trailer section of at most 64 KiB.
//!
//! Layout: `head_reader` finds where heads end, `wire` parses them, `body` finds where bodies
//! end, [`mask`] holds the masking rules, `request` and `response` are the two framers.

mod body;
mod head_reader;
pub mod mask;
mod request;
mod response;
mod wire;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use mask::{HeaderMasks, MaskError};
pub use request::{resource_key, HttpRequests};
pub use response::HttpReplies;
