//! HTTP/1.1 pipelining from inside a namespace: several `GET`s written on one TCP connection
//! before any response is read, the responses read back in order (curl no longer pipelines).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Sends `GET` requests for `paths` (in order, the last one with `Connection: close`) to
/// `addr:port` from namespace `ns`, all written before the first response is read, and returns
/// each response's status line and body. Every response must have a `Content-Length`; the
/// whole exchange must end within `timeout`.
pub fn pipelined_get(
    ns: &str,
    addr: &str,
    port: u16,
    paths: &[&str],
    timeout: Duration,
) -> Result<Vec<(String, Vec<u8>)>> {
    let (ns, addr) = (ns.to_owned(), addr.to_owned());
    let requests: String = paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let close = if i + 1 == paths.len() {
                "Connection: close\r\n"
            } else {
                ""
            };
            format!("GET {p} HTTP/1.1\r\nHost: nv\r\n{close}\r\n")
        })
        .collect();
    // setns affects only the calling thread: do it in one of its own.
    let stream = std::thread::spawn(move || exchange(&ns, &addr, port, &requests, timeout))
        .join()
        .map_err(|_| anyhow::anyhow!("pipelining thread panicked"))??;
    split_responses(&stream, paths.len())
}

/// Writes `requests` on one connection and reads until the server closes it.
fn exchange(ns: &str, addr: &str, port: u16, requests: &str, timeout: Duration) -> Result<Vec<u8>> {
    let netns = std::fs::File::open(format!("/run/netns/{ns}"))?;
    nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)?;
    let deadline = Instant::now() + timeout;
    let ip: Ipv4Addr = addr.parse().with_context(|| format!("address {addr}"))?;
    let mut s = TcpStream::connect_timeout(&(ip, port).into(), timeout)?;
    s.write_all(requests.as_bytes())?;
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("timed out after {timeout:?} with {} bytes", got.len());
        }
        s.set_read_timeout(Some(left))?;
        match s.read(&mut chunk) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e).context(format!("reading after {} bytes", got.len())),
        }
    }
}

/// The stream as `count` responses with `Content-Length`, nothing after the last.
fn split_responses(mut stream: &[u8], count: usize) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for i in 0..count {
        let Some(end) = stream.windows(4).position(|w| w == b"\r\n\r\n") else {
            bail!("response {i}: no complete head in {} bytes", stream.len());
        };
        let head = String::from_utf8_lossy(&stream[..end]).into_owned();
        let status = head.lines().next().unwrap_or_default().to_owned();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .with_context(|| format!("response {i} has no Content-Length: {head}"))?;
        let body = &stream[end + 4..];
        if body.len() < length {
            bail!("response {i}: {} of {length} body bytes", body.len());
        }
        out.push((status, body[..length].to_vec()));
        stream = &body[length..];
    }
    if !stream.is_empty() {
        bail!("{} bytes after the last response", stream.len());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_split_by_content_length() {
        let s = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 404 No\r\ncontent-length:0\r\n\r\n";
        let r = split_responses(s, 2).unwrap();
        assert_eq!(r[0], ("HTTP/1.1 200 OK".into(), b"abc".to_vec()));
        assert_eq!(r[1], ("HTTP/1.1 404 No".into(), Vec::new()));
        assert!(split_responses(s, 3).is_err(), "a missing response");
        assert!(split_responses(&s[..40], 1).is_err(), "a short body");
        assert!(split_responses(s, 1).is_err(), "bytes after the last");
    }
}
