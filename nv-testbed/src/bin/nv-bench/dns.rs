//! The DNS figures: the query rate (dnsperf, 64 queries outstanding) and the p50 latency of
//! one query at a time (a UDP socket in the client's namespace, timed here) against nsd
//! serving `nv_testbed::dns::ZONE`, directly or through domain-nv.

use std::fs::File;
use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sched::{setns, CloneFlags};
use nv_testbed::dns::{MAIL_NAME, ROTATED_NAME};
use nv_testbed::Lab;

/// Queries timed one at a time for the p50.
const PINGS: usize = 2000;
/// How long one timed query may take before it counts as lost.
const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// Queries per second from dnsperf's output (`  Queries per second:   12345.678901`).
pub fn parse_dnsperf(out: &str) -> Result<f64> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Queries per second:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("cannot parse dnsperf output:\n{out}"))
}

/// A DNS query with ID `id` for `name` A.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for l in name.split('.') {
        m.push(l.len() as u8);
        m.extend_from_slice(l.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    m
}

/// The median of `v` (sorted in place), `None` if empty.
fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// The p50 in µs of [`PINGS`] queries to `addr:53`, one at a time, from namespace `ns`.
fn p50_us(ns: &str, addr: &str) -> Result<f64> {
    let netns =
        File::open(format!("/var/run/netns/{ns}")).with_context(|| format!("namespace {ns}"))?;
    let to = format!("{addr}:53");
    let samples = std::thread::spawn(move || -> Result<Vec<f64>> {
        // This thread only: the namespace of the rest of the process stays.
        setns(netns.as_fd(), CloneFlags::CLONE_NEWNET).context("setns")?;
        let sock = UdpSocket::bind("0.0.0.0:0")?;
        sock.connect(&to)?;
        sock.set_read_timeout(Some(PING_TIMEOUT))?;
        let mut buf = [0u8; 1500];
        let mut samples = Vec::with_capacity(PINGS);
        for i in 0..PINGS {
            let id = i as u16;
            let q = query(id, if i % 2 == 0 { MAIL_NAME } else { ROTATED_NAME });
            let t = Instant::now();
            sock.send(&q)?;
            // Wait for the answer with this ID (a late answer to an earlier one is skipped).
            while let Ok(n) = sock.recv(&mut buf) {
                if n >= 2 && buf[..2] == id.to_be_bytes() {
                    samples.push(t.elapsed().as_secs_f64() * 1e6);
                    break;
                }
            }
        }
        Ok(samples)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the timing thread panicked"))??;
    if samples.len() < PINGS / 2 {
        bail!("only {} of {PINGS} timed queries answered", samples.len());
    }
    median(&mut samples.clone()).context("no sample")
}

/// (queries per second, p50 µs) of nsd at `addr` from namespace `ns` for `seconds`.
pub fn measure_dns(lab: &Lab, ns: &str, addr: &str, seconds: u32) -> Result<(f64, f64)> {
    let queries = lab.dir().join("dns-queries.txt");
    std::fs::write(
        &queries,
        format!("{MAIL_NAME} A\n{ROTATED_NAME} A\ntxt.example.test TXT\nns1.example.test A\n"),
    )?;
    let (q, l) = (queries.to_string_lossy().into_owned(), seconds.to_string());
    let out = lab.exec(
        ns,
        &[
            "dnsperf", "-s", addr, "-d", &q, "-l", &l, "-c", "4", "-q", "64",
        ],
    )?;
    if !out.status.success() {
        bail!(
            "dnsperf failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let qps = parse_dnsperf(&String::from_utf8_lossy(&out.stdout))?;
    Ok((qps, p50_us(ns, addr)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dnsperf_output_is_parsed() {
        let out =
            "Statistics:\n\n  Queries sent:         100\n  Queries completed:    100 (100.00%)\n  \
                   Queries per second:   12345.678901\n\n  Average Latency (s):  0.000100\n";
        assert_eq!(parse_dnsperf(out).unwrap(), 12345.678901);
        assert!(parse_dnsperf("no statistics").is_err());
    }

    #[test]
    fn queries_carry_their_id_and_median_is_the_middle() {
        let q = query(0x1234, "a.b");
        assert_eq!(&q[..2], &[0x12, 0x34]);
        assert_eq!(&q[12..], &[1, b'a', 1, b'b', 0, 0, 1, 0, 1]);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut []), None);
    }
}
