//! The formats domain-nv and nvctl share, each declared once:
//!
//! - [`config`]: the domain-nv configuration (YAML), its types, parsing and validation; nvctl
//!   and the test labs build a [`config::Config`] and write it with [`config::Config::to_yaml`];
//! - [`status`]: the status domain-nv publishes (JSON file and xenstore keys) and nvctl reads;
//! - [`handoff`]: how nvctl hands the config to the NV domain through xenstore (chunked);
//! - [`net`] and [`name`]: the address and name checks the config and nvctl's group spec share.

pub mod config;
pub mod handoff;
pub mod name;
pub mod net;
pub mod status;
