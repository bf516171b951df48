//! The scaling curve: nginx's request rate and p99 latency (wrk on the 512-byte page) at 1, 10,
//! 50, 200 and 1,000 concurrent connections through (a) the direct path, (b) HAProxy and (c)
//! domain-nv with 3 replicas (majority), and domain-nv's memory at each point.
//!
//! Like the main table, the variants run interleaved (a b c, a b c, ...) for the rounds, each
//! variant's sweep in fresh namespaces with the connection counts in rising order; the report
//! gives each point's median and min-max over the rounds, and the JSON keeps every round.

mod report;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use nv_testbed::{Group, GroupSpec, Lab, Service, SERVICE_ADDRESS};

use crate::host::{self, status_mib};
use crate::measure::{check, fill_www, parse_wrk, Settings};
use crate::plain::plain_lab;
use crate::plot::svg;
use report::{curves, json, report};

/// The concurrent connections of the curve's points, in the order each sweep runs them.
pub const CONNECTIONS: [u32; 5] = [1, 10, 50, 200, 1000];

/// The variants of the curve, in the order each round runs them.
pub const VARIANTS: [(&str, &str); 3] = [("a", "direct"), ("b", "HAProxy"), ("c", "domain-nv x3")];

/// How often domain-nv's `VmRSS` is read while wrk runs.
const RSS_SAMPLE: Duration = Duration::from_millis(50);

/// Figures of one variant at one connection count in one round.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Point {
    /// Requests per second.
    pub rps: f64,
    /// p99 latency, µs.
    pub p99_us: f64,
    /// Requests wrk counted as failed: socket errors and replies other than 2xx/3xx.
    pub errors: u64,
    /// domain-nv's largest `VmRSS` sampled while wrk ran, MiB (none without domain-nv).
    pub rss_mib: Option<f64>,
    /// domain-nv's `VmHWM` after the point, MiB: the peak of its sweep so far (the kernel
    /// updates it lazily: it can read below a `VmRSS` sampled earlier).
    pub hwm_mib: Option<f64>,
}

/// One round of the curve: every variant's sweep and the machine's load around them.
pub struct Round {
    /// Each variant's points, in [`VARIANTS`] and [`CONNECTIONS`] order.
    pub sweeps: Vec<Vec<Point>>,
    /// 1-minute load average when the round started.
    pub load1_start: f64,
    /// 1-minute load average when it ended.
    pub load1_end: f64,
}

/// The number of failed requests in `wrk` output: its socket errors (`Socket errors: connect
/// 0, read 2, write 0, timeout 5`) and non-2xx/3xx replies; 0 when it reports none.
pub fn parse_wrk_errors(out: &str) -> u64 {
    let count = |s: &str| -> u64 {
        s.split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse::<u64>().ok())
            .sum()
    };
    out.lines()
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("Socket errors:")
                .or_else(|| l.strip_prefix("Non-2xx or 3xx responses:"))
        })
        .map(count)
        .sum()
}

/// Runs wrk with `conns` connections against `url` from namespace `ns` for `seconds`, reading
/// the `VmRSS` of `domain_nv` (if any) meanwhile.
fn point(
    lab: &Lab,
    ns: &str,
    url: &str,
    conns: u32,
    seconds: u32,
    domain_nv: Option<u32>,
) -> Result<Point> {
    let threads = format!("-t{}", conns.min(2));
    let (c, d) = (format!("-c{conns}"), format!("{seconds}s"));
    let argv = [
        "wrk",
        &threads,
        &c,
        "-d",
        &d,
        "--timeout",
        "10s",
        "--latency",
        url,
    ];
    let done = AtomicBool::new(false);
    let (out, rss_mib) = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut peak: Option<f64> = None;
            while !done.load(Ordering::Relaxed) {
                if let Some(rss) = domain_nv.and_then(|pid| status_mib(pid, "VmRSS").ok()) {
                    peak = Some(peak.map_or(rss, |p| p.max(rss)));
                }
                std::thread::sleep(RSS_SAMPLE);
            }
            peak
        });
        let out = lab.exec(ns, &argv);
        done.store(true, Ordering::Relaxed);
        (out, sampler.join().expect("the RSS sampler does not panic"))
    });
    let out = check(out?, &format!("wrk -c{conns}"))?;
    let (rps, _, p99_us) = parse_wrk(&out)?;
    Ok(Point {
        rps,
        p99_us,
        errors: parse_wrk_errors(&out),
        rss_mib,
        hwm_mib: domain_nv.map(|pid| status_mib(pid, "VmHWM")).transpose()?,
    })
}

/// Runs every point of [`CONNECTIONS`] in rising order.
fn sweep(
    lab: &Lab,
    ns: &str,
    addr: &str,
    seconds: u32,
    domain_nv: Option<u32>,
) -> Result<Vec<Point>> {
    let url = format!("http://{addr}/small");
    CONNECTIONS
        .iter()
        .map(|&n| point(lab, ns, &url, n, seconds, domain_nv))
        .collect()
}

/// One variant's sweep in fresh namespaces.
fn run_variant(key: &str, domain_nv: &Path, set: &Settings, seconds: u32) -> Result<Vec<Point>> {
    if key == "c" {
        let mut spec = GroupSpec::new("majority", 3, Service::Nginx);
        spec.straggler_ms = 5000;
        spec.mtu = set.mtu;
        spec.tap_offload = set.tap_offload;
        let g = Group::start("nvs-3", spec, domain_nv, |i, g| fill_www(&g.www(i), set))?;
        let pid = g.lab.pid("domain-nv").context("domain-nv is not running")?;
        return sweep(&g.lab, &g.client_ns, SERVICE_ADDRESS, seconds, Some(pid));
    }
    let prefix = format!("nvs-{key}");
    let mut p = plain_lab(&prefix, key == "b", set)?;
    p.lab.start_service("nginx", &p.server, &Service::Nginx)?;
    fill_www(&p.lab.www("nginx"), set)?;
    p.lab.wait_service(&p.client, p.target, &Service::Nginx)?;
    sweep(&p.lab, &p.client, p.target, seconds, None)
}

/// Runs `rounds` interleaved rounds of every variant's sweep, `seconds` of wrk per point.
fn measure(domain_nv: &Path, set: &Settings, rounds: usize, seconds: u32) -> Result<Vec<Round>> {
    // wrk holds 1,000 sockets, HAProxy 2,000, nginx up to 1,000 each: all inherit this limit
    nv_testbed::soak::raise_fd_limit(2 * CONNECTIONS[CONNECTIONS.len() - 1] as usize)?;
    let cores = host::cores();
    let mut all = Vec::new();
    for round in 1..=rounds {
        let load1_start = host::load1()?;
        let mut sweeps = Vec::new();
        for (key, name) in VARIANTS {
            eprintln!(
                "== scaling round {round}/{rounds} ({key}) {name}: {CONNECTIONS:?} connections"
            );
            let points = run_variant(key, domain_nv, set, seconds)?;
            eprintln!("   {points:?}");
            sweeps.push(points);
        }
        let load1_end = host::load1()?;
        host::warn_if_busy(load1_start, load1_end, cores);
        all.push(Round {
            sweeps,
            load1_start,
            load1_end,
        });
    }
    Ok(all)
}

/// Measures the curve (`rounds` rounds, `seconds` per point), prints its report and writes its
/// JSON (`bench-scaling.json`) and plot (`bench-scaling.svg`) next to `result_path`.
pub fn run(
    domain_nv: &Path,
    set: &Settings,
    rounds: usize,
    seconds: u32,
    result_path: &Path,
) -> Result<()> {
    let cores = host::cores();
    let all = measure(domain_nv, set, rounds, seconds)?;
    print!("{}", report(&all, seconds, cores)?);
    let json_path = result_path.with_file_name("bench-scaling.json");
    let text = serde_json::to_string_pretty(&json(set, &all, seconds, cores))? + "\n";
    std::fs::write(&json_path, text).with_context(|| format!("writing {}", json_path.display()))?;
    let svg_path = result_path.with_file_name("bench-scaling.svg");
    std::fs::write(&svg_path, svg(&curves(&all))?)
        .with_context(|| format!("writing {}", svg_path.display()))?;
    println!(
        "\nscaling results written to {} and {}",
        json_path.display(),
        svg_path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_errors_are_summed() {
        let out = "  Socket errors: connect 0, read 12, write 1, timeout 3\n  Non-2xx or 3xx responses: 4\nRequests/sec:  1.00\n";
        assert_eq!(parse_wrk_errors(out), 20);
        assert_eq!(parse_wrk_errors("Requests/sec:  12345.67\n"), 0);
    }
}
