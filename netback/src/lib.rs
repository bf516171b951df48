//! User-space Xen PV network backend serving unmodified Linux `xen-netfront` guests.
//!
//! # Use from the appliance (domain-nv)
//!
//! ```text
//! let mut nb = Netback::new(xenstore, grant_table, event_channel, my_domid)?;
//! loop {
//!     poll([nb.xenstore_fd(), nb.evtchn_fd(), ...],
//!          timeout = if nb.has_pending_work() { 0 } else { ... until nb.next_deadline() });
//!     nb.handle_xenstore_events(now)?;   // discovery, handshake, teardown
//!     nb.handle_evtchn(now)?;            // guest TX -> per-vif queues, queued RX -> guests
//!     for vif in nb.vifs_mut() {         // each Vif is a smoltcp phy::Device
//!         iface_for(vif.name()).poll(smol_now, vif, &mut sockets);
//!     }
//!     nb.flush(now)?;                    // deliver what the stacks transmitted
//! }
//! ```
//!
//! # Layers, bottom up
//!
//! * [`wire`]: the netif format (`xen/io/netif.h`, `ring.h`).
//! * [`ring`]: shared ring accessors; the only `unsafe` code. Slots are copied out once.
//! * [`tx`], [`rx`], [`csum`], [`offload`]: pure datapath logic (chain validation, bounded RX
//!   queue, checksum completion for `csum_blank`, partial checksums and GSO towards the guest).
//! * [`handshake`]: the xenbus state machine, observations in, actions out.
//! * [`credit`]: TX rate limiting from the toolstack's `rate` key (Linux's credit scheduler).
//! * [`guestlog`]: rate-limited logging of guest-caused errors (one line per vif per interval).
//! * [`rules`]: the violations that disable a rogue frontend's vif (rule and XSA in each).
//! * [`throttle`]: how long a vif's port stays masked after notifications without work.
//! * [`vif`]: one vif's rings, batched grant copies, smoltcp `Device`.
//! * [`store`]: the xenstore connection, counting its requests.
//! * [`backend`]: [`Netback`], which owns xenstore, grant table and event channel.
//! * [`testfront`]: a Linux-netfront-like frontend over `xen::sim` for tests and benchmarks.
//! * [`testhost`]: the simulated host with netback in its driver domain, for tests and benchmarks.
#![deny(unsafe_code)]

pub mod backend;
pub mod credit;
pub mod csum;
pub mod guestlog;
pub mod handshake;
pub mod offload;
#[allow(unsafe_code)] // the shared-ring accessors: the one place with `unsafe`
pub mod ring;
pub mod rules;
pub mod rx;
pub mod store;
pub mod testfront;
pub mod testhost;
pub mod throttle;
pub mod tx;
pub mod vif;
pub mod wire;

pub use backend::{Netback, RoundStats};
pub use rules::Violation;
pub use vif::{Vif, VifStats};
