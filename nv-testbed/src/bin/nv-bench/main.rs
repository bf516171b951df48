//! `make bench`: the cost of voting, measured side by side on this machine.
//!
//! Variants, all with the same Debian nginx / redis-server and the same load generators:
//! (a) client -> one replica directly (veth); (b) client -> HAProxy (TCP mode) -> one replica;
//! (c) client -> domain-nv -> 3 replicas (majority); (d) client -> domain-nv -> 2 replicas
//! (unanimous). Figures: bulk throughput (curl of a large file), request rate at 1 and 50
//! connections (wrk on nginx, redis-benchmark on redis), p50/p99 latency (wrk, 1 connection),
//! the CPU seconds HAProxy or domain-nv spent per GiB and per 10,000 requests, and for DNS over
//! UDP (nsd) the query rate (dnsperf) and the p50 of one query at a time (not through HAProxy,
//! which proxies TCP only). `--dns-only` measures the DNS figures alone. Then the scaling curve
//! (`scaling.rs`: rate, p99 and domain-nv's memory from 1 to 1,000 connections, plotted by
//! `plot.rs`); `--scaling` measures it alone, `--no-scaling` skips it. `--protocol-only`
//! measures the protocol layer instead (issue 14: ordering and masking, `protocol.rs`).
//!
//! The variants run interleaved (a b c d, a b c d, ...) for `--rounds` rounds, so a busy spell
//! of the machine hits all of them; the report gives each figure's median and min-max over the
//! rounds, the ratios of medians, and the load average of every round (a warning for a round on
//! a busy machine). The JSON result file keeps every round. `--latency-only` measures the
//! latency domain-nv adds at one connection alone (`latency.rs`), with no result file.
#![forbid(unsafe_code)]

mod dns;
mod host;
mod latency;
mod measure;
mod plain;
mod plot;
mod protocol;
mod protocol_report;
mod scaling;
mod stats;

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use nv_testbed::cleanup_on_signal;

use measure::{direct_or_haproxy, voted, Figures, Settings, FIGURES};
use stats::{cell, difference, ratio, spread, Spread};

/// The variants, in the order each round runs them.
const VARIANTS: [(&str, &str); 4] = [
    ("a", "client -> replica (direct)"),
    ("b", "client -> HAProxy -> replica"),
    ("c", "client -> domain-nv -> 3 replicas (majority)"),
    ("d", "client -> domain-nv -> 2 replicas (unanimous)"),
];

/// One round: every variant's figures and the machine's load around them.
struct Round {
    /// Figures of each variant, in [`VARIANTS`] order.
    figures: Vec<Figures>,
    /// 1-minute load average when the round started.
    load1_start: f64,
    /// 1-minute load average when it ended.
    load1_end: f64,
}

impl Round {
    /// Whether the machine was busy during the round: load above the number of cores.
    fn busy(&self, cores: usize) -> bool {
        host::busy(self.load1_start, self.load1_end, cores)
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("bench failed: {e:#}");
        std::process::exit(1);
    }
}

/// The value after flag `name`, parsed, or `default` without the flag.
fn flag_value<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T> {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("{name} takes a number")),
        None => Ok(default),
    }
}

/// Runs variant `key` once.
fn run_variant(key: &str, domain_nv: &std::path::Path, set: &Settings) -> Result<Figures> {
    match key {
        "a" => direct_or_haproxy(false, set),
        "b" => direct_or_haproxy(true, set),
        "c" => voted(domain_nv, "majority", 3, set),
        _ => voted(domain_nv, "unanimous", 2, set),
    }
}

/// Each variant's spread of each figure over the rounds: `[variant][figure]`.
fn spreads(rounds: &[Round]) -> Vec<Vec<Option<Spread>>> {
    (0..VARIANTS.len())
        .map(|v| {
            (0..FIGURES)
                .map(|i| spread(rounds.iter().map(|r| r.figures[v].fields()[i].2)))
                .collect()
        })
        .collect()
}

/// The text report: one row per figure, one column per variant, then ratios and load.
fn report(rounds: &[Round], cores: usize) -> Result<String> {
    let s = spreads(rounds);
    let labels = Figures::default().fields().map(|(label, _, _)| label);
    let mut t = format!(
        "\n{} rounds; median [min-max] per figure\n{:<16}",
        rounds.len(),
        "figure"
    );
    for (key, _) in VARIANTS {
        write!(t, " {:>26}", format!("({key})"))?;
    }
    for (i, label) in labels.iter().enumerate() {
        write!(t, "\n{label:<16}")?;
        for v in &s {
            // CPU seconds per unit are small numbers; rates, latencies and counts are not
            let decimals = if label.starts_with("cpu") { 3 } else { 0 };
            write!(t, " {:>26}", cell(v[i], decimals))?;
        }
    }
    writeln!(t)?;
    for (key, name) in VARIANTS {
        writeln!(t, "  ({key}) {name}")?;
    }
    let fig = |v: usize, key: &str| {
        let i = labels.iter().position(|l| *l == key).expect("known figure");
        s[v][i]
    };
    let (a, b, c, d) = (0, 1, 2, 3);
    let show = |x: Option<f64>| x.map_or("-".into(), |x| format!("{x:.3}"));
    let us = |x: Option<f64>| x.map_or("-".into(), |x| format!("{x:.0} us"));
    writeln!(t, "\nratios of medians:")?;
    let rows = [
        (
            "c/a bulk throughput     ",
            ratio(fig(c, "bulk Mb/s"), fig(a, "bulk Mb/s")),
            "  (aim >= 0.9)",
        ),
        (
            "c/b http rate, 1 conn   ",
            ratio(fig(c, "http rps1"), fig(b, "http rps1")),
            "  (aim >= 1.0)",
        ),
        (
            "c/b http rate, 50 conns ",
            ratio(fig(c, "http rps50"), fig(b, "http rps50")),
            "",
        ),
        (
            "c/b redis rate, 1 conn  ",
            ratio(fig(c, "redis rps1"), fig(b, "redis rps1")),
            "",
        ),
        (
            "c/b redis rate, 50 conns",
            ratio(fig(c, "redis rps50"), fig(b, "redis rps50")),
            "",
        ),
        (
            "d/a bulk throughput     ",
            ratio(fig(d, "bulk Mb/s"), fig(a, "bulk Mb/s")),
            "",
        ),
        (
            "c/b cpu per GiB         ",
            ratio(fig(c, "cpu s/GiB"), fig(b, "cpu s/GiB")),
            "",
        ),
        (
            "c/b cpu per http request",
            ratio(fig(c, "cpu s/10k http"), fig(b, "cpu s/10k http")),
            "",
        ),
        (
            "c/b cpu per redis GET   ",
            ratio(fig(c, "cpu s/10k redis"), fig(b, "cpu s/10k redis")),
            "",
        ),
    ];
    for (name, x, aim) in rows {
        writeln!(t, "  {name} {}{aim}", show(x))?;
    }
    writeln!(
        t,
        "  c-a added latency p50    {}  (aim <= 30)",
        us(difference(fig(c, "p50 us"), fig(a, "p50 us")))
    )?;
    writeln!(
        t,
        "  c-a added latency p99    {}  (aim <= 150)",
        us(difference(fig(c, "p99 us"), fig(a, "p99 us")))
    )?;
    writeln!(
        t,
        "  c/a dns query rate       {}  (aim >= 0.5)",
        show(ratio(fig(c, "dns qps"), fig(a, "dns qps")))
    )?;
    writeln!(
        t,
        "  c-a added dns p50        {}  (aim <= 100)",
        us(difference(fig(c, "dns p50 us"), fig(a, "dns p50 us")))
    )?;
    host::write_loads(
        &mut t,
        rounds.iter().map(|r| (r.load1_start, r.load1_end)),
        cores,
    )?;
    Ok(t)
}

/// The JSON result: settings and every round's figures and load.
fn json(set: &Settings, rounds: &[Round], cores: usize) -> serde_json::Value {
    let rounds: Vec<serde_json::Value> = rounds
        .iter()
        .map(|r| {
            let variants: Vec<serde_json::Value> = VARIANTS
                .iter()
                .zip(&r.figures)
                .map(|((key, name), f)| {
                    let mut v = serde_json::Map::new();
                    v.insert("variant".into(), key.to_string().into());
                    v.insert("name".into(), name.to_string().into());
                    for (_, field, x) in f.fields() {
                        // three decimals: enough for CPU seconds, harmless for rates
                        let x = x.map(|x| (x * 1000.0).round() / 1000.0);
                        v.insert(field.into(), x.into());
                    }
                    serde_json::Value::Object(v)
                })
                .collect();
            serde_json::json!({
                "load1_start": r.load1_start,
                "load1_end": r.load1_end,
                "busy": r.busy(cores),
                "variants": variants,
            })
        })
        .collect();
    serde_json::json!({
        "settings": {
            "mtu": set.mtu,
            "tap_offload": set.tap_offload,
            "bulk_bytes": set.bulk_bytes,
            "seconds": set.seconds,
            "redis_requests": set.redis_requests,
            "dns_only": set.dns_only,
            "cores": cores,
        },
        "rounds": rounds,
    })
}

fn run() -> Result<()> {
    cleanup_on_signal()?;
    let args: Vec<String> = std::env::args().collect();
    let domain_nv = PathBuf::from(args.get(1).context(
        "usage: nv-bench PATH-TO-domain-nv [RESULT.json] [--quick] [--rounds N] [--mtu N] \
         [--no-tap-offload] [--dns-only] [--latency-only] [--scaling | --no-scaling]\
         [--protocol-only [--variants rb,rr,hb,hr]]",
    )?);
    let result_path = PathBuf::from(
        args.get(2)
            .filter(|a| !a.starts_with("--"))
            .cloned()
            .unwrap_or_else(|| "bench-results.json".into()),
    );
    let quick = args.iter().any(|a| a == "--quick");
    let mtu = flag_value(&args, "--mtu", 1500)?;
    let rounds_wanted: usize = flag_value(&args, "--rounds", if quick { 2 } else { 5 })?;
    let tap_offload = !args.iter().any(|a| a == "--no-tap-offload");
    let dns_only = args.iter().any(|a| a == "--dns-only");
    let set = if quick {
        Settings {
            mtu,
            tap_offload,
            bulk_bytes: 64 << 20,
            seconds: 2,
            redis_requests: 5_000,
            dns_only,
        }
    } else {
        Settings {
            mtu,
            tap_offload,
            bulk_bytes: 1 << 30,
            seconds: 10,
            redis_requests: 50_000,
            dns_only,
        }
    };
    if args.iter().any(|a| a == "--protocol-only") {
        return protocol::run(&domain_nv, &result_path, rounds_wanted, &set, &args);
    }
    if args.iter().any(|a| a == "--latency-only") {
        print!("{}", latency::run(&domain_nv, rounds_wanted, &set)?);
        return Ok(());
    }
    // the scaling curve: 5 points of 5 s (2 s with --quick) per variant and round
    let scaling_seconds = if quick { 2 } else { 5 };
    if args.iter().any(|a| a == "--scaling") {
        return scaling::run(
            &domain_nv,
            &set,
            rounds_wanted,
            scaling_seconds,
            &result_path,
        );
    }
    let cores = host::cores();
    let mut rounds = Vec::new();
    for round in 1..=rounds_wanted {
        let load1_start = host::load1()?;
        let mut figures = Vec::new();
        for (key, name) in VARIANTS {
            eprintln!("== round {round}/{rounds_wanted} ({key}) {name}");
            let f = run_variant(key, &domain_nv, &set)?;
            eprintln!("   {f:?}");
            figures.push(f);
        }
        let r = Round {
            figures,
            load1_start,
            load1_end: host::load1()?,
        };
        host::warn_if_busy(r.load1_start, r.load1_end, cores);
        rounds.push(r);
    }
    print!("{}", report(&rounds, cores)?);
    let json = serde_json::to_string_pretty(&json(&set, &rounds, cores))? + "\n";
    std::fs::write(&result_path, json)
        .with_context(|| format!("writing {}", result_path.display()))?;
    println!("\nresults written to {}", result_path.display());
    if !dns_only && !args.iter().any(|a| a == "--no-scaling") {
        scaling::run(
            &domain_nv,
            &set,
            rounds_wanted,
            scaling_seconds,
            &result_path,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(load1_start: f64, load1_end: f64) -> Round {
        Round {
            figures: vec![Figures::default(); VARIANTS.len()],
            load1_start,
            load1_end,
        }
    }

    #[test]
    fn a_round_is_busy_when_its_load_exceeds_the_cores() {
        assert!(!round(0.5, 2.0).busy(2));
        assert!(round(2.5, 1.0).busy(2));
        assert!(round(0.1, 2.1).busy(2));
    }

    #[test]
    fn the_report_warns_of_busy_rounds_only() {
        let text = report(&[round(0.2, 1.0), round(3.0, 4.0)], 2).unwrap();
        assert!(text.contains("2 rounds"));
        assert!(text.contains("round 1: 0.20 -> 1.00\n"));
        assert!(text.contains("round 2: 3.00 -> 4.00  WARNING: busy machine"));
        // the direct path has no middlebox: its CPU cells are empty
        assert!(text.contains("cpu s/GiB"));
    }

    #[test]
    fn the_json_keeps_every_round() {
        let set = Settings {
            mtu: 1500,
            tap_offload: true,
            bulk_bytes: 1,
            seconds: 1,
            redis_requests: 1,
            dns_only: false,
        };
        let j = json(&set, &[round(0.2, 1.0), round(3.0, 4.0)], 2);
        assert_eq!(j["rounds"].as_array().unwrap().len(), 2);
        assert_eq!(j["rounds"][1]["busy"], true);
        assert_eq!(j["rounds"][0]["variants"].as_array().unwrap().len(), 4);
        assert!(j["rounds"][0]["variants"][0]["cpu_s_per_gib"].is_null());
        assert_eq!(j["settings"]["cores"], 2);
    }
}
