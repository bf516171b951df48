//! The Domain NV appliance: terminates client TCP with smoltcp, opens one connection per replica
//! per client connection, and releases to the client only the bytes a quorum of replicas agreed on.
//!
//! - [`voter`]: sans-IO byte-stream voting, one instance per client connection;
//! - [`datagram`]: sans-IO voting of UDP services, question by question (DNS-aware);
//! - [`config`]: the YAML configuration (declared in `nv_schema::config`, re-exported) and the
//!   voter settings it implies;
//! - [`link`]: links (TAP, `AF_PACKET`) as smoltcp devices;
//! - [`vnet`]: the virtio-net header of TAP links with checksum and segmentation offload;
//! - [`appliance`]: the poll(2)-driven event loop;
//! - [`membership`]: which replicas vote on new connections (Member, Joining, Excluded);
//! - [`protocol`]: request and reply framing per protocol (ordering and masking);
//! - [`status`]: health, counters and faults, published as `nv_schema::status::Status`;
//! - [`xenhost`]: driver-domain mode (config and status in xenstore, `/init` mounts).
#![forbid(unsafe_code)]

pub mod appliance;
pub mod config;
pub mod datagram;
pub mod link;
pub mod membership;
pub mod protocol;
pub mod status;
pub mod vnet;
pub mod voter;
pub mod xenhost;
