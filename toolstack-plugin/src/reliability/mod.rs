//! The reliability model of Ramasamy & Schunter ("Architecting Dependable Systems Using
//! Virtualization", seed 002), extended to domain-nv: voting policies, the NV domain and Dom0
//! as series terms, failure rates over a mission time, and the condition for moving the voter
//! out of the replicas.
//!
//! Notation: `R_vm` reliability of one replica (guest OS + service, no voter; the seed's R_M),
//! `R_hv` of the hypervisor (the seed's R_V), `R_node` of the hardware (the seed's R_H),
//! `R_nv` of the NV domain (network stack + voter, the seed's R_F of a function moved out of
//! the VMs), `R_dom0` of Dom0, `R_f` of the voting function run inside each replica. A
//! component given a failure rate λ (per hour) has `R = exp(−λt)` over the mission time t.
//! Failures are assumed independent, so every R_sys is an upper bound.
//!
//! - plain node `R_node·R_vm`; one VM on Xen `R_node·R_hv·R_dom0·R_vm`;
//! - a domain-nv group of n replicas `R_node·R_hv·R_dom0·R_nv·P_n(R_vm)`, where `P_n` is the
//!   probability that at least m of n replicas are correct,
//!   `P_n = Σ_{k ≥ m} C(n,k) R^k (1 − R)^(n−k)`: m = 1 for 1-out-of-n (the seed's model,
//!   fail-stop crashes), ⌊n/2⌋+1 for majority voting, n for unanimous voting;
//! - the seed's in-VM voting `R_node·R_hv·R_dom0·P_n(R_f·R_vm)`.
//!
//! Conditions, per policy: (A) the group beats the plain node iff
//! `R_hv > R_vm / (P_n·R_dom0·R_nv)`; the group beats one VM iff `R_nv > R_vm / P_n`; (B)
//! voting in the NV domain beats in-VM voting iff `R_nv > P_n(R_f·R_vm) / P_n(R_vm)`.
//! Majority voting is not monotone in n (n = 4 needs 3 correct of 4, worse than 2 of 3), so
//! every condition lists all n in 1..=[`MAX_N`] for which it holds.
//!
//! Comparisons are decided in f64 only beyond a bound of their rounding error
//! ([`model::compare`]); otherwise the two systems count as equal, which is no gain.
//!
//! - [`prob`]: one component's reliability with its unreliability and error bounds;
//! - [`model`]: the replica layer and the comparison of two systems;
//! - [`report`]: every system and condition for given inputs ([`report::evaluate`]);
//! - [`text`]: the report as `nvctl reliability` prints it (`--json` serialises the report).

pub mod model;
pub mod prob;
pub mod report;
pub mod text;

/// The most replicas the model evaluates (and the end of every scan over n).
pub const MAX_N: u32 = 99;

pub use model::{Verdict, Voting};
pub use prob::{InputError, Reliability};
pub use report::{evaluate, Component, Inputs, Report};
pub use text::format_text;
