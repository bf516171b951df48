//! Stable-toolchain driver for the same checks as the `resp_framers` fuzz target:
//! `cargo run --release --bin resp_framers_stable -- [ITERATIONS] [CORPUS_FILE...]` replays the
//! given files, then runs ITERATIONS (default 1,000,000) pseudo-random inputs built from RESP
//! fragments and random bytes, so requests, nested replies and the masks are all reached.

/// Pieces of RESP requests and replies that random inputs are built from.
const FRAGMENTS: [&[u8]; 26] = [
    b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n",
    b"*3\r\n$4\r\nMSET\r\n$1\r\nk\r\n",
    b"*2\r\n$8\r\nSMEMBERS\r\n$1\r\ns\r\n",
    b"*1\r\n$5\r\nMULTI\r\n",
    b"*2\r\n$9\r\nSUBSCRIBE\r\n$1\r\nc\r\n",
    b"PING\r\n",
    b"set \"a b\" 'c'\r\n",
    b"*0\r\n",
    b"*3\r\n",
    b"*2\r\n",
    b"%1\r\n",
    b"~2\r\n",
    b">2\r\n",
    b"|1\r\n",
    b"$1\r\nx\r\n",
    b"$1\r\ny\r\n",
    b"$-1\r\n",
    b"$3\r\n",
    b":1\r\n",
    b"+OK\r\n",
    b"-ERR x\r\n",
    b"_\r\n",
    b"#t\r\n",
    b",1.5\r\n",
    b"=5\r\ntxt:a\r\n",
    b"\r\n",
];

fn main() {
    domain_nv_fuzz::stable::run(
        "resp_framers_stable",
        domain_nv_fuzz::check_resp,
        |buf, next| {
            buf.push(next() as u8);
            buf.push(next() as u8);
            for _ in 0..next() % 12 {
                let r = next();
                if r % 8 == 0 {
                    buf.push((r >> 8) as u8);
                } else {
                    buf.extend_from_slice(FRAGMENTS[(r >> 8) as usize % FRAGMENTS.len()]);
                }
            }
        },
    );
}
