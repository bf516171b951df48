//! The checks shared by the libFuzzer targets and the stable drivers.

mod http;

pub use http::check_http;
