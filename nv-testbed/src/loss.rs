//! Loss injection and a timed download, for the loss tier (`domain-nv/tests/loss.rs`) and
//! `nv-lossbench`.
//!
//! The kernels the labs run on have no netem, so loss comes from nftables: a rule in a
//! namespace drops each packet crossing one interface with probability `percent / 100`
//! (`numgen random mod 100 < percent`), in both directions. A TCP segment the sender's kernel
//! has not split yet (a 64 KiB TSO/GSO segment crossing a veth or written to a TAP) counts as
//! one packet, for the Linux stack and for domain-nv alike.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::run;

/// Drops `percent` % of the IP packets entering or leaving interface `ifname` of namespace
/// `ns`, chosen at random (an nftables table `nvloss`, replaced if present; 0 removes it).
pub fn drop_packets(ns: &str, ifname: &str, percent: u32) -> Result<()> {
    if percent > 100 {
        bail!("loss of {percent} %");
    }
    let _ = std::process::Command::new("ip")
        .args([
            "netns", "exec", ns, "nft", "delete", "table", "inet", "nvloss",
        ])
        .stderr(std::process::Stdio::null())
        .status();
    if percent == 0 {
        return Ok(());
    }
    let ruleset = format!(
        "table inet nvloss {{\n\
         \x20 chain ingress {{ type filter hook prerouting priority -300; iifname \"{ifname}\" numgen random mod 100 < {percent} drop; }}\n\
         \x20 chain egress {{ type filter hook postrouting priority 300; oifname \"{ifname}\" numgen random mod 100 < {percent} drop; }}\n\
         }}\n"
    );
    load_ruleset(ns, "nvloss", &ruleset)
}

/// Loads an nftables `ruleset` in namespace `ns` (through a file named after `name`).
fn load_ruleset(ns: &str, name: &str, ruleset: &str) -> Result<()> {
    let file = std::env::temp_dir().join(format!("{name}-{ns}.nft"));
    std::fs::write(&file, ruleset)?;
    let path = file.to_string_lossy().into_owned();
    let r = run(&["ip", "netns", "exec", ns, "nft", "-f", &path]);
    let _ = std::fs::remove_file(&file);
    r.map(drop)
        .context("nftables (scripts/install-deps.sh installs it)")
}

/// Drops the next ARP reply namespace `ns` sends (an nftables table `nvarp`, replaced if
/// present): the first ARP on a link that just came up, lost.
pub fn drop_next_arp_reply(ns: &str) -> Result<()> {
    let _ = std::process::Command::new("ip")
        .args([
            "netns", "exec", ns, "nft", "delete", "table", "arp", "nvarp",
        ])
        .stderr(std::process::Stdio::null())
        .status();
    let ruleset = "table arp nvarp {\n\
         \x20 chain out { type filter hook output priority 0; arp operation reply numgen inc mod 1000000000 < 1 drop; }\n\
         }\n";
    load_ruleset(ns, "nvarp", ruleset)
}

/// One HTTP download as the client saw it.
#[derive(Debug, Clone)]
pub struct Download {
    /// The response body.
    pub body: Vec<u8>,
    /// From connect to the last byte.
    pub elapsed: Duration,
    /// The longest time between two reads that returned data (the first byte included).
    pub longest_stall: Duration,
}

impl Download {
    /// Throughput of the body in MiB/s.
    pub fn mib_per_s(&self) -> f64 {
        self.body.len() as f64 / (1u64 << 20) as f64 / self.elapsed.as_secs_f64()
    }
}

/// Downloads `http://addr/path` (HTTP/1.0, `Connection: close`) from namespace `ns`, giving
/// up after `timeout` in total.
pub fn timed_download(ns: &str, addr: &str, path: &str, timeout: Duration) -> Result<Download> {
    let (ns, addr, path) = (ns.to_owned(), addr.to_owned(), path.to_owned());
    // setns affects only the calling thread: do it in one of its own.
    std::thread::spawn(move || download_in(&ns, &addr, &path, timeout))
        .join()
        .map_err(|_| anyhow::anyhow!("download thread panicked"))?
}

fn download_in(ns: &str, addr: &str, path: &str, timeout: Duration) -> Result<Download> {
    let netns = std::fs::File::open(format!("/run/netns/{ns}"))?;
    nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)?;
    let start = Instant::now();
    let deadline = start + timeout;
    let ip: Ipv4Addr = addr.parse().with_context(|| format!("address {addr}"))?;
    let mut s = TcpStream::connect_timeout(&(ip, 80).into(), timeout)?;
    s.write_all(
        format!("GET /{path} HTTP/1.0\r\nHost: nv\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    let mut last = Instant::now();
    let mut longest_stall = Duration::ZERO;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!(
                "timed out after {timeout:?} with {} bytes (longest stall {longest_stall:?})",
                got.len()
            );
        }
        s.set_read_timeout(Some(left))?;
        let n = match s.read(&mut chunk) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(e).context(format!("reading after {} bytes", got.len())),
        };
        if n == 0 {
            break;
        }
        let now = Instant::now();
        longest_stall = longest_stall.max(now - last);
        last = now;
        got.extend_from_slice(&chunk[..n]);
    }
    let elapsed = start.elapsed();
    let head_end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no HTTP header in the response")?;
    let head = String::from_utf8_lossy(&got[..head_end]).into_owned();
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!("response: {}", head.lines().next().unwrap_or_default());
    }
    Ok(Download {
        body: got.split_off(head_end + 4),
        elapsed,
        longest_stall,
    })
}
