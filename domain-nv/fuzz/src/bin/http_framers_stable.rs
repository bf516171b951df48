//! Stable-toolchain driver for the same checks as the `http_framers` fuzz target:
//! `cargo run --release --bin http_framers_stable -- [ITERATIONS] [CORPUS_FILE...]` replays the
//! given files, then runs ITERATIONS (default 1,000,000) pseudo-random inputs built from HTTP
//! fragments and random bytes, so the head, body and masking paths are all reached.

/// Pieces of HTTP/1.x messages that random inputs are built from.
const FRAGMENTS: [&[u8]; 24] = [
    b"GET /a HTTP/1.1\r\n",
    b"HEAD / HTTP/1.0\r\n",
    b"POST /b/../c HTTP/1.1\r\n",
    b"CONNECT h:1 HTTP/1.1\r\n",
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.1 100 Continue\r\n",
    b"HTTP/1.1 101 Switching\r\n",
    b"HTTP/1.1 204 No Content\r\n",
    b"HTTP/1.1 304 Not Modified\r\n",
    b"Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n",
    b"Date: Sunday, 06-Nov-94 08:49:37 GMT\r\n",
    b"ETag: \"5f3a-1b\"\r\n",
    b"Content-Length: 5\r\n",
    b"Content-Length: 0\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Upgrade: x\r\n",
    b"Host: h\r\n",
    b"\r\n",
    b"\n",
    b"5\r\nhello\r\n",
    b"a;x=y\r\n0123456789\r\n",
    b"0\r\n\r\n",
    b"0\r\nT: 1\r\n\r\n",
    b"hello",
];

fn main() {
    domain_nv_fuzz::stable::run(
        "http_framers_stable",
        domain_nv_fuzz::check_http,
        |buf, next| {
            buf.push(next() as u8);
            for _ in 0..next() % 12 {
                let r = next();
                match r % 8 {
                    0 => buf.extend((0..r >> 8 & 15).map(|i| (r >> (i % 7 * 8)) as u8)),
                    1 => buf.push((r >> 8) as u8),
                    _ => buf.extend_from_slice(FRAGMENTS[(r >> 8) as usize % FRAGMENTS.len()]),
                }
            }
        },
    );
}
