//! The scaling curve: nginx's request rate and p99 latency (wrk on the 512-byte page) at 1, 10,
//! 50, 200 and 1,000 concurrent connections through (a) the direct path, (b) HAProxy and (c)
//! domain-nv with 3 replicas (majority), and domain-nv's memory at each point.
//!
//! Like the main table, the variants run interleaved (a b c, a b c, ...) for the rounds, each
//! variant's sweep in fresh namespaces with the connection counts in rising order; the report
//! gives each point's median and min-max over the rounds, and the JSON keeps every round.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use nv_testbed::{Group, GroupSpec, Lab, Service, SERVICE_ADDRESS};

use crate::host::{self, status_mib};
use crate::measure::{check, fill_www, parse_wrk, Settings};
use crate::plain::plain_lab;
use crate::plot::{svg, Curve, CurvePoint};
use crate::stats::{cell, ratio, spread, Spread};

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
    /// domain-nv's `VmHWM` after the point, MiB: the peak of its sweep so far.
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

/// The largest fall of a rate from one point to any later one, as a fraction of the earlier
/// (0 for a curve that never falls). `None` if a median is missing.
pub fn largest_drop(rates: &[Option<f64>]) -> Option<f64> {
    let rates: Vec<f64> = rates.iter().copied().collect::<Option<_>>()?;
    let mut best: Option<f64> = None;
    let mut drop: f64 = 0.0;
    for r in rates {
        if let Some(b) = best.filter(|b| *b > 0.0) {
            drop = drop.max(1.0 - r / b);
        }
        best = Some(best.map_or(r, |b| b.max(r)));
    }
    Some(drop)
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
        if host::busy(load1_start, load1_end, cores) {
            eprintln!("   WARNING: load {load1_start:.2} -> {load1_end:.2} on {cores} cores: busy machine");
        }
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

/// The spread over the rounds of one figure of variant `v` at point `i`.
fn figure(
    rounds: &[Round],
    v: usize,
    i: usize,
    f: impl Fn(&Point) -> Option<f64>,
) -> Option<Spread> {
    spread(rounds.iter().map(|r| f(&r.sweeps[v][i])))
}

/// Each variant's curve (medians and min-max at each point), for the plot.
pub fn curves(rounds: &[Round]) -> Vec<Curve> {
    VARIANTS
        .iter()
        .enumerate()
        .map(|(v, (key, name))| Curve {
            name: format!("({key}) {name}"),
            points: CONNECTIONS
                .iter()
                .enumerate()
                .filter_map(|(i, &connections)| {
                    Some(CurvePoint {
                        connections,
                        rps: figure(rounds, v, i, |p| Some(p.rps))?,
                        p99_us: figure(rounds, v, i, |p| Some(p.p99_us))?,
                    })
                })
                .collect(),
        })
        .collect()
}

/// The text report: a table per figure (rows: connections, columns: variants), the aims, and
/// the load of every round.
pub fn report(rounds: &[Round], seconds: u32, cores: usize) -> Result<String> {
    type Pick = fn(&Point) -> Option<f64>;
    let tables: [(&str, usize, Pick); 5] = [
        ("requests/s", 0, |p| Some(p.rps)),
        ("p99 latency, us", 0, |p| Some(p.p99_us)),
        ("failed requests", 0, |p| Some(p.errors as f64)),
        ("domain-nv VmRSS during the point, MiB", 1, |p| p.rss_mib),
        ("domain-nv VmHWM after the point, MiB", 1, |p| p.hwm_mib),
    ];
    let mut t = format!(
        "\nscaling: nginx 512-byte page, wrk {seconds} s per point, {} rounds; median [min-max]\n",
        rounds.len()
    );
    for (title, decimals, pick) in tables {
        write!(t, "\n{title}\n{:<8}", "conns")?;
        for (key, name) in VARIANTS {
            write!(t, " {:>28}", format!("({key}) {name}"))?;
        }
        for (i, n) in CONNECTIONS.iter().enumerate() {
            write!(t, "\n{n:<8}")?;
            for v in 0..VARIANTS.len() {
                write!(t, " {:>28}", cell(figure(rounds, v, i, pick), decimals))?;
            }
        }
        writeln!(t)?;
    }
    let rate = |v: usize, i: usize| figure(rounds, v, i, |p| Some(p.rps));
    let show = |x: Option<f64>| x.map_or("-".into(), |x| format!("{x:.3}"));
    let (b, c) = (1, 2);
    writeln!(t, "\nratios of medians:")?;
    for (i, n) in CONNECTIONS.iter().enumerate() {
        let aim = if *n == 1 || *n == 50 {
            "  (aim >= 1.0)"
        } else {
            ""
        };
        writeln!(
            t,
            "  c/b rate, {n:>4} conns   {}{aim}",
            show(ratio(rate(c, i), rate(b, i)))
        )?;
    }
    for (v, (key, _)) in VARIANTS.iter().enumerate() {
        let rates: Vec<Option<f64>> = (1..CONNECTIONS.len())
            .map(|i| rate(v, i).map(|s| s.median))
            .collect();
        let drop = largest_drop(&rates).map_or("-".into(), |d| format!("{:.0} %", d * 100.0));
        let aim = if *key == "c" { "  (aim <= 20 %)" } else { "" };
        writeln!(
            t,
            "  ({key}) largest rate drop, 10 -> 1000 conns  {drop}{aim}"
        )?;
    }
    writeln!(
        t,
        "\nload (1-minute average, start -> end of round; {cores} cores):"
    )?;
    for (i, r) in rounds.iter().enumerate() {
        let warn = if host::busy(r.load1_start, r.load1_end, cores) {
            "  WARNING: busy machine, this round's figures are suspect"
        } else {
            ""
        };
        writeln!(
            t,
            "  round {}: {:.2} -> {:.2}{warn}",
            i + 1,
            r.load1_start,
            r.load1_end
        )?;
    }
    Ok(t)
}

/// The JSON result: settings and every round's points and load.
pub fn json(set: &Settings, rounds: &[Round], seconds: u32, cores: usize) -> serde_json::Value {
    let round = |r: &Round| {
        let variants: Vec<serde_json::Value> = VARIANTS
            .iter()
            .zip(&r.sweeps)
            .map(|((key, name), points)| {
                let points: Vec<serde_json::Value> = CONNECTIONS
                    .iter()
                    .zip(points)
                    .map(|(n, p)| {
                        serde_json::json!({
                            "connections": n,
                            "rps": (p.rps * 10.0).round() / 10.0,
                            "p99_us": p.p99_us,
                            "errors": p.errors,
                            "rss_mib": p.rss_mib.map(|x| (x * 10.0).round() / 10.0),
                            "hwm_mib": p.hwm_mib.map(|x| (x * 10.0).round() / 10.0),
                        })
                    })
                    .collect();
                serde_json::json!({ "variant": key, "name": name, "points": points })
            })
            .collect();
        serde_json::json!({
            "load1_start": r.load1_start,
            "load1_end": r.load1_end,
            "busy": host::busy(r.load1_start, r.load1_end, cores),
            "variants": variants,
        })
    };
    serde_json::json!({
        "settings": {
            "mtu": set.mtu,
            "tap_offload": set.tap_offload,
            "seconds_per_point": seconds,
            "connections": CONNECTIONS,
            "cores": cores,
        },
        "rounds": rounds.iter().map(round).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A round whose variant `v` at point `i` has rate `base * (v + 1)` and p99 `100 * (i + 1)`.
    fn round(base: f64) -> Round {
        let sweeps = (0..VARIANTS.len())
            .map(|v| {
                (0..CONNECTIONS.len())
                    .map(|i| Point {
                        rps: base * (v + 1) as f64,
                        p99_us: 100.0 * (i + 1) as f64,
                        errors: 0,
                        rss_mib: (v == 2).then_some(5.0 + i as f64),
                        hwm_mib: (v == 2).then_some(6.0 + i as f64),
                    })
                    .collect()
            })
            .collect();
        Round {
            sweeps,
            load1_start: 0.5,
            load1_end: 3.0,
        }
    }

    #[test]
    fn wrk_errors_are_summed() {
        let out = "  Socket errors: connect 0, read 12, write 1, timeout 3\n  Non-2xx or 3xx responses: 4\nRequests/sec:  1.00\n";
        assert_eq!(parse_wrk_errors(out), 20);
        assert_eq!(parse_wrk_errors("Requests/sec:  12345.67\n"), 0);
    }

    #[test]
    fn the_largest_drop_is_measured_from_the_best_earlier_rate() {
        assert_eq!(
            largest_drop(&[Some(100.0), Some(150.0), Some(120.0), Some(90.0)]),
            Some(0.4)
        );
        assert_eq!(
            largest_drop(&[Some(10.0), Some(20.0), Some(30.0)]),
            Some(0.0)
        );
        assert_eq!(largest_drop(&[Some(10.0), None]), None);
        assert_eq!(largest_drop(&[]), Some(0.0));
    }

    #[test]
    fn the_report_has_a_row_per_point_and_the_aims() {
        let text = report(&[round(1000.0), round(2000.0), round(3000.0)], 5, 2).unwrap();
        assert!(text.contains("3 rounds"));
        // (c) has three times (a)'s rate: median 6000 over 3000, 6000, 9000
        assert!(text.contains("6000 [3000-9000]"), "{text}");
        assert!(
            text.contains("c/b rate,    1 conns   1.500  (aim >= 1.0)"),
            "{text}"
        );
        assert!(text.contains("(c) largest rate drop, 10 -> 1000 conns  0 %  (aim <= 20 %)"));
        assert!(text.contains("round 3: 0.50 -> 3.00  WARNING: busy machine"));
        // the direct path has no domain-nv: its memory cells are empty
        let rss = text
            .lines()
            .skip_while(|l| !l.contains("VmRSS"))
            .nth(2)
            .unwrap();
        assert!(
            rss.starts_with("1 ") && rss.contains(" - ") && rss.ends_with("5.0 [5.0-5.0]"),
            "{rss}"
        );
    }

    #[test]
    fn curves_and_json_keep_every_point() {
        let rounds = [round(1000.0), round(3000.0)];
        let curves = curves(&rounds);
        assert_eq!(curves.len(), 3);
        assert_eq!(curves[2].points.len(), CONNECTIONS.len());
        assert_eq!(curves[2].points[4].connections, 1000);
        assert_eq!(curves[2].points[4].rps.median, 6000.0);
        let set = Settings {
            mtu: 1500,
            tap_offload: true,
            bulk_bytes: 1,
            seconds: 1,
            redis_requests: 1,
            dns_only: false,
        };
        let j = json(&set, &rounds, 5, 2);
        assert_eq!(j["rounds"].as_array().unwrap().len(), 2);
        assert_eq!(
            j["rounds"][0]["variants"][2]["points"][4]["connections"],
            1000
        );
        assert!(j["rounds"][0]["variants"][0]["points"][0]["rss_mib"].is_null());
        assert_eq!(j["rounds"][1]["variants"][2]["points"][0]["hwm_mib"], 6.0);
    }
}
