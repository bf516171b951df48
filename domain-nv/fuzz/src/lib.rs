//! The checks shared by the libFuzzer targets and the stable drivers.

mod resp;

pub use resp::check_resp;
