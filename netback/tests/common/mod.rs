//! The simulated host of netback's integration tests, shared with domain-nv's and the
//! benchmark: [`netback::testhost::NetbackHost`] (dom0, the NV driver domain running netback,
//! guests running the Linux-like test netfront).

#[allow(dead_code)] // only the hostile-frontend test binaries (hostile.rs, audit.rs) use it
pub mod hostile;

pub use netback::testhost::NetbackHost as World;
