#![no_main]
//! libFuzzer target: the xenstore reply parser on arbitrary bytes.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xen_fuzz::check_reply(data);
});
