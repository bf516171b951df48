//! nvctl: the Dom0 admin CLI for domain-nv replica groups (library part, used by the binary and
//! the tests).
//!
//! - [`spec`]: the group spec (YAML) and its validation;
//! - [`render`]: xl configs from the `xl-configs/` templates and the domain-nv config;
//! - [`xl_value`]: the grammars of values that reach an xl config;
//! - [`dom0`]: the Dom0 files, bridge and PCI devices a config names, checked before creating;
//! - [`xl_extra`]: the other xl.cfg keys a spec may pass through, with their grammars;
//! - [`xl`]: running `xl` behind [`xl::XlRunner`];
//! - [`store`]: xenstore behind [`store::Store`] (real client, in-memory), chunked values;
//! - [`owned`]: the domains nvctl created for a group, by UUID;
//! - [`failure`]: kinds of failure with their own exit status;
//! - [`outcome`]: what a command did, as the JSON result object of `--json`;
//! - [`group`]: the lifecycle (`up`, `down`, `status`, `replace`, `patch`, `watch`);
//! - [`printable`]: text from other domains made safe for a terminal;
//! - [`reliability`]: the reliability model of seed 002, with voting policies, the NV domain and
//!   Dom0, failure rates, and float-safe comparisons.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod dom0;
pub mod failure;
pub mod group;
pub mod outcome;
pub mod owned;
pub mod printable;
pub mod reliability;
pub mod render;
pub mod spec;
pub mod store;
pub mod xl;
pub mod xl_extra;
pub mod xl_value;
