//! The protocol layer a service's connections get, from the service's config
//! (`protocol`, `ordering`, `mask_headers`):
//!
//! | config                        | client side ([`Gate`])          | replica side ([`ReplyPath`]) |
//! |-------------------------------|---------------------------------|------------------------------|
//! | `bytes` (default)             | none: straight into the voter   | none: straight into the voter |
//! | `bytes`, `ordering: serial`   | the whole stream is one request | none                         |
//! | `redis`                       | RESP commands                   | RESP replies, masked         |
//! | `http`                        | HTTP/1.x requests               | HTTP/1.x replies, masked     |

use super::gate::Gate;
use super::reply_path::ReplyPath;
use crate::config::{InputOrdering, Protocol, ServiceConfig};
use crate::protocol::http::{HeaderMasks, HttpReplies, HttpRequests};
use crate::protocol::redis::{RespReplies, RespRequests};
use crate::protocol::serial::WholeStream;
use crate::protocol::ReplyFramer;

/// The gate of connection `conn` of service `svc`, if its requests are ordered.
pub(super) fn gate(conn: u64, svc: &ServiceConfig) -> Option<Gate> {
    match (svc.protocol, svc.ordering) {
        (Protocol::Bytes, InputOrdering::None) => None,
        (Protocol::Bytes, InputOrdering::Serial) => {
            Some(Gate::new(conn, Box::new(WholeStream::default())))
        }
        (Protocol::Redis, _) => Some(Gate::new(conn, Box::new(RespRequests::new()))),
        (Protocol::Http, _) => Some(Gate::new(conn, Box::new(HttpRequests::new()))),
        // DNS is voted per datagram; the config refuses it for TCP services.
        (Protocol::Dns, _) => None,
    }
}

/// The reply path of a connection of service `svc` with `replicas` replica sides, if its
/// replies are framed.
pub(super) fn reply_path(svc: &ServiceConfig, replicas: usize) -> Option<ReplyPath> {
    let framers = match svc.protocol {
        Protocol::Bytes | Protocol::Dns => return None,
        Protocol::Redis => (0..replicas)
            .map(|_| Box::new(RespReplies::new()) as Box<dyn ReplyFramer>)
            .collect(),
        Protocol::Http => (0..replicas)
            .map(|_| Box::new(HttpReplies::new(header_masks(svc))) as Box<dyn ReplyFramer>)
            .collect(),
    };
    Some(ReplyPath::new(framers))
}

/// The `mask_headers` of an `http` service (checked when the config was read).
fn header_masks(svc: &ServiceConfig) -> HeaderMasks {
    HeaderMasks::new(&svc.mask_headers).unwrap_or_else(|e| {
        log::warn!("service {}: {e}: no header masked but Date", svc.name);
        HeaderMasks::default()
    })
}
