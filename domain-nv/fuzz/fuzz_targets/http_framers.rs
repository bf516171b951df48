#![no_main]
//! libFuzzer target: the HTTP request and reply framers on arbitrary client and replica bytes.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    domain_nv_fuzz::check_http(data);
});
