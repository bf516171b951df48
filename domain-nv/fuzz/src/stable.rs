//! What the stable-toolchain drivers share: their command line (`[ITERATIONS]
//! [CORPUS_FILE...]`), the replay of corpus files and the pseudo-random input loop.

/// Replays the corpus files named on the command line through `check`, then checks ITERATIONS
/// (default 1,000,000) inputs that `build` writes into an emptied buffer from a xorshift
/// generator (`next`), and prints how many inputs `name` checked.
pub fn run(
    name: &str,
    check: fn(&[u8]),
    mut build: impl FnMut(&mut Vec<u8>, &mut dyn FnMut() -> u64),
) {
    let mut args = std::env::args().skip(1);
    let iterations: u64 = args
        .next()
        .map_or(1_000_000, |s| s.parse().expect("ITERATIONS is a number"));
    for file in args {
        let data = std::fs::read(&file).expect("readable corpus file");
        check(&data);
    }
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut buf = Vec::with_capacity(512);
    for _ in 0..iterations {
        buf.clear();
        build(&mut buf, &mut next);
        check(&buf);
    }
    println!("{name}: {iterations} inputs, no failure");
}
