//! The simulated host of netback's integration tests, shared with domain-nv's and the
//! benchmark: [`netback::testhost::NetbackHost`] (dom0, the NV driver domain running netback,
//! guests running the Linux-like test netfront).

pub use netback::testhost::NetbackHost as World;
