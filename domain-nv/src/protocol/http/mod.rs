//! HTTP/1.x (RFC 9112) framers: [`HttpRequests`] orders requests by method and path,
//! [`HttpReplies`] counts responses and masks the headers that differ between healthy replicas.
//!
//! Masking rules (the comparison form keeps every byte's position; see [`mask`]):
//! - `Date` in IMF-fixdate format compares as a fixed date: presence and format are compared,
//!   the time is not. A `Date` in any other format compares byte for byte.
//! - Each header of the service's `mask_headers` compares by shape (letters and digits as `x`,
//!   every other byte as itself), e.g. `ETag` and `Last-Modified` where replicas' files differ
//!   only in modification time. `Content-Length` and `Transfer-Encoding` cannot be masked.
//! - Everything else (status lines, header names, other values, bodies, chunk framing,
//!   trailers) compares byte for byte.
//!
//! Layout: `head_reader` finds where heads end, `wire` parses them, `body` finds where bodies end, [`mask`] holds the masking
//! rules, `request` and `response` are the two framers.

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
