//! `nv-membench`: domain-nv's memory per idle voted connection, measured with real clients.
//!
//! For each count of connections (default 1,000 and 10,000), in a fresh group of 3 redis
//! replicas (majority) behind domain-nv: the client namespace opens that many connections (8
//! threads), each sends `PING` and reads the voted `+PONG` (so the client socket, every replica
//! socket and the voter have carried bytes), and holds them open. Before that, the same number
//! of connections is opened, used the same way and closed once (a warm-up): the allocator then
//! serves the measured connections from recycled memory, as in a server that has been running
//! (fresh memory from the OS is zero and untouched, which hides buffers allocated but unused).
//! Figures from domain-nv's `/proc/<pid>/status`: `VmRSS` after the warm-up with no connection
//! open, after the measured connections have been idle for 3 s (domain-nv gives an idle
//! connection's buffers back after 1 s), and 3 s after they all closed and domain-nv released
//! them; `VmHWM` (the peak). `--rounds` rounds, each in a fresh group; the report gives medians
//! and min-max.
//!
//! usage: `nv-membench PATH-TO-domain-nv [--connections 1000,10000] [--rounds N]`
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::resource::{setrlimit, Resource};
use nv_testbed::{cleanup_on_signal, Group, GroupSpec, Service, SERVICE_ADDRESS};

/// Client threads opening connections.
const THREADS: usize = 8;
/// Pause of each client thread after closing a connection.
const CLOSE_PACE: Duration = Duration::from_millis(8);
/// How long the connections stay idle before the measurement (domain-nv shrinks after 1 s).
const IDLE: Duration = Duration::from_secs(3);

/// One round at one count: KiB figures of domain-nv.
#[derive(Clone, Copy, Debug)]
struct Round {
    /// `VmRSS` when domain-nv is ready, before any connection.
    start: u64,
    /// `VmRSS` after the warm-up, with no connection open.
    before: u64,
    /// `VmRSS` with every connection open and idle.
    idle: u64,
    /// `VmRSS` after every connection closed and was released.
    after: u64,
    /// `VmHWM`: the peak `VmRSS`.
    peak: u64,
}

/// The value in KiB of `key` (e.g. `VmRSS`) in the text of `/proc/<pid>/status`.
fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(&format!("{key}:")))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `key` of process `pid`, KiB.
fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_status_kib(&text, key).with_context(|| format!("no {key} in /proc/{pid}/status"))
}

/// Opens `n` connections, asks each `PING`, holds them until `hold` is passed twice (measure,
/// then close); returns how many failed.
fn client(ns: String, n: usize, hold: Arc<Barrier>) -> Result<usize> {
    let netns = std::fs::File::open(format!("/run/netns/{ns}"))?;
    nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)?;
    let mut open = Vec::with_capacity(n);
    let mut failed = 0;
    for _ in 0..n {
        let ping = || -> std::io::Result<TcpStream> {
            let mut s = TcpStream::connect((SERVICE_ADDRESS, 6379))?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            s.write_all(b"PING\r\n")?;
            let mut reply = [0u8; 7];
            s.read_exact(&mut reply)?;
            if &reply != b"+PONG\r\n" {
                return Err(std::io::Error::other("unexpected reply"));
            }
            Ok(s)
        };
        match ping() {
            Ok(s) => open.push(s),
            Err(_) => failed += 1,
        }
    }
    hold.wait();
    hold.wait();
    // Closed at a pace (all threads: about 1,000 a second): thousands of FINs at once would
    // queue up in domain-nv for seconds, which is not what is measured here.
    for s in open {
        drop(s);
        std::thread::sleep(CLOSE_PACE);
    }
    Ok(failed)
}

/// Opens `count` connections from the client namespace, asks each `PING`, runs `idle` once
/// they are all open (and domain-nv counts them) and closes them; waits until domain-nv
/// released them all.
fn connections<T>(g: &Group, count: usize, idle: impl FnOnce() -> Result<T>) -> Result<T> {
    let hold = Arc::new(Barrier::new(THREADS + 1));
    let clients: Vec<_> = (0..THREADS)
        .map(|t| {
            let (ns, hold) = (g.client_ns.clone(), hold.clone());
            let n = count / THREADS + usize::from(t < count % THREADS);
            std::thread::spawn(move || client(ns, n, hold))
        })
        .collect();
    hold.wait();
    let open = g.wait_status("every connection open", Duration::from_secs(30), |s| {
        s.services[0].active >= count as u64
    });
    let measured = open.and_then(|_| idle());
    hold.wait();
    let mut failed = 0;
    for c in clients {
        failed += c
            .join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
    }
    if failed > 0 {
        bail!("{failed} of {count} connections failed");
    }
    let measured = measured?;
    g.wait_status("every connection released", Duration::from_secs(120), |s| {
        s.services[0].active == 0
    })?;
    Ok(measured)
}

/// One round with `count` connections (after a warm-up with as many).
fn round(domain_nv: &Path, count: usize) -> Result<Round> {
    let mut spec = GroupSpec::new("majority", 3, Service::Redis);
    // Thousands of connections closing at once keep domain-nv (and this shared machine) busy
    // for seconds: a 1 s straggler deadline would cut replicas off, which is not measured here.
    spec.straggler_ms = 10_000;
    let g = Group::start("nvm", spec, domain_nv, |_, _| Ok(()))?;
    let pid = g.lab.pid("domain-nv").context("domain-nv is not running")?;
    let start = status_kib(pid, "VmRSS")?;
    connections(&g, count, || Ok(()))?;
    std::thread::sleep(IDLE);
    let before = status_kib(pid, "VmRSS")?;
    let idle = connections(&g, count, || {
        std::thread::sleep(IDLE);
        status_kib(pid, "VmRSS")
    })?;
    std::thread::sleep(IDLE);
    Ok(Round {
        start,
        before,
        idle,
        after: status_kib(pid, "VmRSS")?,
        peak: status_kib(pid, "VmHWM")?,
    })
}

/// Median and min-max of `values` (at least one), one decimal.
fn spread(values: &[f64]) -> String {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let median = v[v.len() / 2];
    format!("{median:.1} ({:.1}-{:.1})", v[0], v[v.len() - 1])
}

/// The report: one line per count.
fn report(results: &[(usize, Vec<Round>)]) -> String {
    let mut out = String::from(
        "connections  rounds  RSS start MiB  RSS warmed up MiB  RSS idle MiB  \
         KiB per idle connection  RSS after close MiB  peak MiB\n",
    );
    for (count, rounds) in results {
        let f = |g: fn(&Round) -> u64| -> Vec<f64> {
            rounds.iter().map(|r| g(r) as f64 / 1024.0).collect()
        };
        let per: Vec<f64> = rounds
            .iter()
            .map(|r| r.idle.saturating_sub(r.start) as f64 / *count as f64)
            .collect();
        out.push_str(&format!(
            "{count:>11}  {:>6}  {:>13}  {:>17}  {:>12}  {:>23}  {:>19}  {:>8}\n",
            rounds.len(),
            spread(&f(|r| r.start)),
            spread(&f(|r| r.before)),
            spread(&f(|r| r.idle)),
            spread(&per),
            spread(&f(|r| r.after)),
            spread(&f(|r| r.peak)),
        ));
    }
    out.push_str("(medians over the rounds, min-max in parentheses; KiB per connection: ");
    out.push_str("(RSS idle - RSS start) / connections)\n");
    out
}

fn run() -> Result<()> {
    cleanup_on_signal()?;
    let args: Vec<String> = std::env::args().collect();
    let domain_nv =
        PathBuf::from(args.get(1).context(
            "usage: nv-membench PATH-TO-domain-nv [--connections 1000,10000] [--rounds N]",
        )?);
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let counts: Vec<usize> = match flag("--connections") {
        Some(v) => v
            .split(',')
            .map(|c| c.parse().with_context(|| format!("--connections: {c}")))
            .collect::<Result<_>>()?,
        None => vec![1000, 10_000],
    };
    let rounds: usize = match flag("--rounds") {
        Some(v) => v.parse().context("--rounds")?,
        None => 3,
    };
    if rounds == 0 || counts.is_empty() {
        bail!("nothing to measure: --rounds and --connections must not be empty");
    }
    // Every client connection is a descriptor here and in each redis-server (which inherits it).
    let files = (*counts.iter().max().unwrap_or(&0) as u64 + 1024).max(4096);
    setrlimit(Resource::RLIMIT_NOFILE, files, files).context("raising RLIMIT_NOFILE")?;
    let mut results = Vec::new();
    for &count in &counts {
        let mut rs = Vec::new();
        for r in 0..rounds {
            let res = round(&domain_nv, count).with_context(|| format!("{count}, round {r}"))?;
            eprintln!("{count} connections, round {}: {res:?} KiB", r + 1);
            rs.push(res);
        }
        results.push((count, rs));
    }
    print!("{}", report(&results));
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("nv-membench failed: {e:#}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_values_are_read_by_key() {
        let text = "Name:\tdomain-nv\nVmHWM:\t  204800 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(parse_status_kib(text, "VmRSS"), Some(10240));
        assert_eq!(parse_status_kib(text, "VmHWM"), Some(204800));
        assert_eq!(parse_status_kib(text, "VmSwap"), None);
    }

    #[test]
    fn the_report_gives_kib_per_connection() {
        let r = Round {
            start: 10 * 1024,
            before: 11 * 1024,
            idle: 30 * 1024,
            after: 12 * 1024,
            peak: 40 * 1024,
        };
        let text = report(&[(1024, vec![r, r, r])]);
        // 20 MiB over 1024 connections: 20 KiB each.
        assert!(text.contains("20.0 (20.0-20.0)"), "{text}");
        assert!(text.contains("40.0 (40.0-40.0)"), "{text}");
    }
}
