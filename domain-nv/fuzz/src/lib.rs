//! The checks shared by the libFuzzer targets and the stable drivers.

mod http;
mod resp;
pub mod stable;

pub use http::check_http;
pub use resp::check_resp;
