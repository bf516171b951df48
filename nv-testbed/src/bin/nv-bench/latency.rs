//! `--latency-only`: the latency domain-nv adds to one request/response connection, alone.
//!
//! Per round, interleaved: (a) the client straight to nginx over a veth, then (c) the client
//! through domain-nv to 3 nginx replicas (majority); in each, `wrk -t1 -c1 --latency` on the
//! 512-byte page for the phase's seconds. The report gives p50 and p99 of each, median
//! [min-max] over the rounds, the added latency (c - a) of the medians and of each round, and
//! domain-nv's CPU time per request (user + system, from `/proc`): steadier than the latency
//! on a shared machine, and with one connection nearly all of it is on the request's path.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use nv_testbed::{Group, GroupSpec, Lab, Service, SERVICE_ADDRESS};

use crate::host::cpu_seconds;
use crate::measure::{check, fill_www, parse_wrk, parse_wrk_requests, Settings};
use crate::stats::{difference, spread};

/// p50 and p99 of one wrk run at one connection, µs, and the middlebox's CPU per request.
#[derive(Debug, Clone, Copy)]
struct Latency {
    p50: f64,
    p99: f64,
    /// The middlebox's CPU µs per request (none for the direct path).
    cpu_us: Option<f64>,
}

/// `wrk -t1 -c1` on the small page at `addr` from namespace `ns`; `middlebox` is the pid whose
/// CPU is counted.
fn wrk_one(
    lab: &Lab,
    ns: &str,
    addr: &str,
    middlebox: Option<u32>,
    set: &Settings,
) -> Result<Latency> {
    let url = format!("http://{addr}/small");
    let d = format!("{}s", set.seconds);
    let cpu0 = middlebox.map(cpu_seconds).transpose()?;
    let out = check(
        lab.exec(ns, &["wrk", "-t1", "-c1", "-d", &d, "--latency", &url])?,
        "wrk -c1",
    )?;
    let cpu1 = middlebox.map(cpu_seconds).transpose()?;
    let (_, p50, p99) = parse_wrk(&out)?;
    let requests = parse_wrk_requests(&out)? as f64;
    let cpu_us = cpu0
        .zip(cpu1)
        .filter(|_| requests > 0.0)
        .map(|(a, b)| (b - a) * 1e6 / requests);
    Ok(Latency { p50, p99, cpu_us })
}

/// (a): the client and one nginx, a veth between them.
fn direct(set: &Settings) -> Result<Latency> {
    let mut lab = Lab::new("nvb-la")?;
    let c = lab.add_netns_plain("c")?;
    let s = lab.add_netns_plain("s")?;
    lab.add_veth(&c, "v0", "10.78.2.1/24", &s, "v3", "10.78.2.2/24")?;
    lab.start_service("nginx", &s, &Service::Nginx)?;
    fill_www(&lab.www("nginx"), set)?;
    lab.wait_service(&c, "10.78.2.2", &Service::Nginx)?;
    wrk_one(&lab, &c, "10.78.2.2", None, set)
}

/// (c): domain-nv and 3 nginx replicas, majority.
fn voted(domain_nv: &Path, set: &Settings) -> Result<Latency> {
    let mut spec = GroupSpec::new("majority", 3, Service::Nginx);
    spec.straggler_ms = 5000;
    spec.mtu = set.mtu;
    spec.tap_offload = set.tap_offload;
    let g = Group::start("nvb-lc", spec, domain_nv, |i, g| fill_www(&g.www(i), set))?;
    let pid = g.lab.pid("domain-nv");
    wrk_one(&g.lab, &g.client_ns, SERVICE_ADDRESS, pid, set)
}

/// Runs `rounds` interleaved rounds of (a) and (c) and returns the report.
pub fn run(domain_nv: &Path, rounds: usize, set: &Settings) -> Result<String> {
    let mut pairs: Vec<(Latency, Latency)> = Vec::new();
    for round in 1..=rounds {
        eprintln!("== latency round {round}/{rounds}: (a) direct");
        let a = direct(set)?;
        eprintln!("   {a:?}\n== latency round {round}/{rounds}: (c) domain-nv x3");
        let c = voted(domain_nv, set)?;
        eprintln!("   {c:?}");
        pairs.push((a, c));
    }
    report(&pairs)
}

/// The text report of the rounds' (direct, voted) pairs.
fn report(pairs: &[(Latency, Latency)]) -> Result<String> {
    let mut t = format!(
        "\nlatency, wrk -t1 -c1 on 512 bytes, {} rounds; median [min-max] in us\n",
        pairs.len()
    );
    let fig = |f: fn(&(Latency, Latency)) -> f64| spread(pairs.iter().map(|p| Some(f(p))));
    let cpu = spread(pairs.iter().map(|p| p.1.cpu_us));
    let rows = [
        ("(a) direct p50", fig(|p| p.0.p50)),
        ("(a) direct p99", fig(|p| p.0.p99)),
        ("(c) domain-nv x3 p50", fig(|p| p.1.p50)),
        ("(c) domain-nv x3 p99", fig(|p| p.1.p99)),
        ("per round c-a p50", fig(|p| p.1.p50 - p.0.p50)),
        ("per round c-a p99", fig(|p| p.1.p99 - p.0.p99)),
        ("(c) cpu us/request", cpu),
    ];
    for (name, s) in rows {
        if let Some(s) = s {
            writeln!(
                t,
                "  {name:<22} {:>8.1} [{:.1}-{:.1}]",
                s.median, s.min, s.max
            )?;
        }
    }
    let (a50, a99, c50, c99) = (rows[0].1, rows[1].1, rows[2].1, rows[3].1);
    let us = |x: Option<f64>| x.map_or("-".into(), |x| format!("{x:.1} us"));
    writeln!(
        t,
        "  c-a added p50 (medians) {}  (aim <= 30)",
        us(difference(c50, a50))
    )?;
    writeln!(
        t,
        "  c-a added p99 (medians) {}  (aim <= 150)",
        us(difference(c99, a99))
    )?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_gives_medians_and_added_latency() {
        let l = |p50, p99, cpu_us| Latency { p50, p99, cpu_us };
        let pairs = [
            (l(50.0, 100.0, None), l(90.0, 300.0, Some(40.0))),
            (l(60.0, 120.0, None), l(80.0, 200.0, Some(30.0))),
            (l(55.0, 110.0, None), l(100.0, 250.0, Some(50.0))),
        ];
        let t = report(&pairs).unwrap();
        assert!(t.contains("3 rounds"), "{t}");
        assert!(
            t.contains("(a) direct p50             55.0 [50.0-60.0]"),
            "{t}"
        );
        assert!(
            t.contains("(c) domain-nv x3 p99      250.0 [200.0-300.0]"),
            "{t}"
        );
        // medians 90 - 55 and 250 - 110; per round 40, 20, 45
        assert!(t.contains("c-a added p50 (medians) 35.0 us"), "{t}");
        assert!(t.contains("c-a added p99 (medians) 140.0 us"), "{t}");
        assert!(
            t.contains("per round c-a p50          40.0 [20.0-45.0]"),
            "{t}"
        );
        assert!(
            t.contains("(c) cpu us/request         40.0 [30.0-50.0]"),
            "{t}"
        );
    }
}
