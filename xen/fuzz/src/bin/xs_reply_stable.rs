//! Stable-toolchain driver for the same checks as the `xs_reply` fuzz target:
//! `cargo run --release --bin xs_reply_stable -- [ITERATIONS] [CORPUS_FILE...]` replays the
//! given files, then runs ITERATIONS (default 1,000,000) pseudo-random inputs, half of them
//! built around a valid header so the payload parsers are reached.

fn main() {
    let mut args = std::env::args().skip(1);
    let iterations: u64 = args
        .next()
        .map_or(1_000_000, |s| s.parse().expect("ITERATIONS is a number"));
    for file in args {
        let data = std::fs::read(&file).expect("readable corpus file");
        xen_fuzz::check_reply(&data);
    }
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut buf = Vec::with_capacity(64);
    for i in 0..iterations {
        buf.clear();
        let len = (next() % 48) as usize;
        if i % 2 == 0 {
            let ty = (next() % 24) as u32;
            let plen = (next() % 40) as u32;
            buf.extend_from_slice(&ty.to_le_bytes());
            buf.extend_from_slice(&1u32.to_le_bytes());
            buf.extend_from_slice(&0u32.to_le_bytes());
            buf.extend_from_slice(&plen.to_le_bytes());
        }
        for _ in 0..len {
            // Bias towards NULs and printable bytes, which the payload parsers care about.
            let b = next();
            buf.push(match b % 4 {
                0 => 0,
                1 => b'a' + (b >> 8) as u8 % 26,
                _ => (b >> 16) as u8,
            });
        }
        xen_fuzz::check_reply(&buf);
    }
    println!("xs_reply_stable: {iterations} inputs, no failure");
}
