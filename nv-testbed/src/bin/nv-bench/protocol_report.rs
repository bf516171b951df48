//! The figures of `--protocol-only` (see `protocol.rs`): one variant's run, one round, the text
//! report (medians, min-max, aims, redis/bytes ratios, every round's counts and load) and the
//! JSON that keeps every round. Pure functions over the figures.

use std::fmt::Write as _;

use anyhow::Result;

use crate::host;
use crate::measure::Settings;
use crate::protocol::{RANDOM_KEYS, VARIANTS};
use crate::stats::{ratio, spread, Spread};

/// One variant's figures in one round.
#[derive(Debug, Default, Clone)]
pub struct Run {
    /// Requests/s per workload (`set one`, `get random`, `http get`, ...), in run order.
    pub rates: Vec<(String, f64)>,
    /// domain-nv's CPU µs per request, per workload.
    pub cpu_us: Vec<(String, f64)>,
    /// Faults domain-nv reported (every replica was healthy: each one a false positive).
    pub faults: u64,
    /// Client connections reset because no quorum agreed or no answer came in time.
    pub resets: u64,
    /// Masked reply fields that differed between agreeing replicas (benign, blamed on no one).
    pub masked: u64,
    /// Errors the load generator saw (wrk: socket errors and non-2xx/3xx responses).
    pub client_errors: u64,
}

/// A figure of a [`Run`]: its rates or its CPU per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Figure {
    /// Requests/s.
    Rate,
    /// domain-nv's CPU µs per request.
    Cpu,
}

impl Run {
    /// Its `figure` of `workload`, if the variant ran it.
    fn get(&self, figure: Figure, workload: &str) -> Option<f64> {
        let list = match figure {
            Figure::Rate => &self.rates,
            Figure::Cpu => &self.cpu_us,
        };
        list.iter().find(|(w, _)| w == workload).map(|(_, x)| *x)
    }
}

/// One round: every variant's run and the machine's load around them.
pub struct Round {
    /// Runs of each variant, in [`VARIANTS`] order.
    pub runs: Vec<Run>,
    /// 1-minute load average when the round started.
    pub load1_start: f64,
    /// 1-minute load average when it ended.
    pub load1_end: f64,
}

impl Round {
    /// Whether the machine was busy during the round: load above the number of cores.
    pub fn busy(&self, cores: usize) -> bool {
        host::busy(self.load1_start, self.load1_end, cores)
    }
}

/// Variant indices in [`VARIANTS`].
const RB: usize = 0;
/// redis, ordered.
const RR: usize = 1;
/// nginx, frozen clock, bytes.
const HB: usize = 2;
/// nginx, real clock, http.
const HR: usize = 3;

/// Workloads in order of first appearance over every round and variant.
fn workloads(rounds: &[Round]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for run in rounds.iter().flat_map(|r| &r.runs) {
        for (w, _) in &run.rates {
            if !names.contains(w) {
                names.push(w.clone());
            }
        }
    }
    names
}

/// Variant `v`'s spread of `figure` of `workload` over the rounds.
fn spread_of(rounds: &[Round], v: usize, figure: Figure, workload: &str) -> Option<Spread> {
    spread(
        rounds
            .iter()
            .map(|r| r.runs.get(v).and_then(|x| x.get(figure, workload))),
    )
}

/// Variant `v`'s spread of `workload`'s rate over the rounds.
fn rate(rounds: &[Round], v: usize, workload: &str) -> Option<Spread> {
    spread_of(rounds, v, Figure::Rate, workload)
}

/// Variant `v`'s spread of domain-nv's CPU per request of `workload` over the rounds.
fn cpu(rounds: &[Round], v: usize, workload: &str) -> Option<Spread> {
    spread_of(rounds, v, Figure::Cpu, workload)
}

/// One table: a row per workload, a column per variant, of `figure`'s medians and min-max.
fn table(t: &mut String, rounds: &[Round], figure: Figure) -> Result<()> {
    write!(t, "{:<14}", "workload")?;
    for (key, _) in VARIANTS {
        write!(t, " {:>24}", format!("({key})"))?;
    }
    for w in workloads(rounds) {
        write!(t, "\n{w:<14}")?;
        for v in 0..VARIANTS.len() {
            write!(t, " {:>24}", cell(spread_of(rounds, v, figure, &w)))?;
        }
    }
    writeln!(t)?;
    Ok(())
}

/// A median with its min-max, or `-`.
fn cell(s: Option<Spread>) -> String {
    s.map_or("-".into(), |s| {
        format!("{:.0} [{:.0}-{:.0}]", s.median, s.min, s.max)
    })
}

/// A ratio to three places, or `-`.
fn show(x: Option<f64>) -> String {
    x.map_or("-".into(), |x| format!("{x:.3}"))
}

/// The text report.
pub fn report(rounds: &[Round], cores: usize) -> Result<String> {
    let mut t = format!(
        "\nprotocol layer, 3 replicas (majority), 50 connections; {} rounds\nrequests/s, median [min-max]:\n",
        rounds.len(),
    );
    table(&mut t, rounds, Figure::Rate)?;
    writeln!(t, "domain-nv CPU us per request, median [min-max]:")?;
    table(&mut t, rounds, Figure::Cpu)?;
    for (key, name) in VARIANTS {
        writeln!(t, "  ({key}) {name}")?;
    }
    writeln!(
        t,
        "  one = redis-benchmark's single key; random = -r {RANDOM_KEYS} (lpush: one key either way)"
    )?;
    writeln!(
        t,
        "\naim: ordered writes >= 0.5x of bytes get (ratios of medians):"
    )?;
    for keys in ["one", "random"] {
        let get = rate(rounds, RB, &format!("get {keys}"));
        for cmd in ["set", "incr", "lpush"] {
            let x = ratio(rate(rounds, RR, &format!("{cmd} {keys}")), get);
            writeln!(t, "  rr {cmd:<5} {keys:<6} / rb get {keys:<6} {}", show(x))?;
        }
    }
    writeln!(
        t,
        "\ncost of ordering and framing (same load, redis / bytes): rate, CPU per request"
    )?;
    for w in ["get one", "get random", "set one", "set random"] {
        let x = ratio(rate(rounds, RR, w), rate(rounds, RB, w));
        let c = ratio(cpu(rounds, RR, w), cpu(rounds, RB, w));
        writeln!(t, "  rr/rb {w:<11} {}  {}", show(x), show(c))?;
    }
    let w = "http get";
    let x = ratio(rate(rounds, HR, w), rate(rounds, HB, w));
    let c = ratio(cpu(rounds, HR, w), cpu(rounds, HB, w));
    writeln!(
        t,
        "  hr/hb http get    {}  {}  (real clock, Date masked / frozen clock, bytes)",
        show(x),
        show(c)
    )?;
    writeln!(
        t,
        "\nper round and variant: faults / resets / client errors (all must be 0), masked:"
    )?;
    for (i, r) in rounds.iter().enumerate() {
        let warn = if r.busy(cores) {
            "  WARNING: busy machine"
        } else {
            ""
        };
        write!(
            t,
            "  round {} (load {:.2} -> {:.2}):",
            i + 1,
            r.load1_start,
            r.load1_end
        )?;
        for ((key, _), run) in VARIANTS.iter().zip(&r.runs) {
            if run.rates.is_empty() {
                continue; // not measured (`--variants`)
            }
            write!(
                t,
                " ({key}) {}/{}/{} {}",
                run.faults, run.resets, run.client_errors, run.masked
            )?;
        }
        writeln!(t, "{warn}")?;
    }
    Ok(t)
}

/// Workload to figure, two decimals.
fn to_map(list: &[(String, f64)]) -> serde_json::Map<String, serde_json::Value> {
    list.iter()
        .map(|(w, x)| (w.clone(), ((x * 100.0).round() / 100.0).into()))
        .collect()
}

/// The JSON result: settings and every round's runs and load.
pub fn json(set: &Settings, requests: u32, rounds: &[Round], cores: usize) -> serde_json::Value {
    let rounds: Vec<serde_json::Value> = rounds
        .iter()
        .map(|r| {
            let variants: Vec<serde_json::Value> = VARIANTS
                .iter()
                .zip(&r.runs)
                .filter(|(_, run)| !run.rates.is_empty())
                .map(|((key, name), run)| {
                    serde_json::json!({
                        "variant": key,
                        "name": name,
                        "rates": to_map(&run.rates),
                        "cpu_us_per_request": to_map(&run.cpu_us),
                        "faults": run.faults,
                        "resets": run.resets,
                        "masked": run.masked,
                        "client_errors": run.client_errors,
                    })
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
            "seconds": set.seconds,
            "redis_requests": requests,
            "clients": 50,
            "random_keys": RANDOM_KEYS,
            "cores": cores,
        },
        "rounds": rounds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rates: &[(&str, f64)], faults: u64) -> Run {
        Run {
            rates: rates.iter().map(|(w, r)| (w.to_string(), *r)).collect(),
            // CPU per request: 10^6 / rate, as if domain-nv were busy all the time
            cpu_us: rates
                .iter()
                .map(|(w, r)| (w.to_string(), 1e6 / r))
                .collect(),
            faults,
            ..Run::default()
        }
    }

    fn round(rb_get: f64, rr_set: f64, faults: u64, load: f64) -> Round {
        Round {
            runs: vec![
                run(&[("set one", 900.0), ("get one", rb_get)], 0),
                run(&[("set one", rr_set), ("get one", 800.0)], faults),
                run(&[("http get", 100.0)], 0),
                run(&[("http get", 90.0)], 0),
            ],
            load1_start: load,
            load1_end: load,
        }
    }

    #[test]
    fn the_report_gives_medians_ratios_and_every_rounds_faults() {
        let rounds = [
            round(1000.0, 400.0, 0, 0.5),
            round(2000.0, 600.0, 2, 3.0),
            round(1000.0, 500.0, 0, 0.5),
        ];
        let text = report(&rounds, 2).unwrap();
        assert!(text.contains("3 rounds"), "{text}");
        assert!(text.contains("1000 [1000-2000]"), "{text}");
        // aim: median rr set one (500) / median rb get one (1000)
        assert!(
            text.contains("rr set   one    / rb get one    0.500"),
            "{text}"
        );
        assert!(text.contains("rr/rb get one     0.800  1.250"), "{text}");
        assert!(text.contains("hr/hb http get    0.900  1.111"), "{text}");
        // CPU table: 10^6/1000 us for rb get one in two rounds, 500 in one
        assert!(text.contains("1000 [500-1000]"), "{text}");
        assert!(text.contains("round 2 (load 3.00 -> 3.00): (rb) 0/0/0 0 (rr) 2/0/0 0"));
        assert!(text.contains("WARNING: busy machine"));
        // a workload a variant did not run has no cell
        assert!(text.contains("rr incr  one    / rb get one    -"), "{text}");
    }

    #[test]
    fn the_json_keeps_every_round_and_rate() {
        let set = Settings {
            mtu: 1500,
            tap_offload: true,
            bulk_bytes: 1,
            seconds: 1,
            redis_requests: 1,
            dns_only: false,
        };
        let j = json(&set, 4, &[round(1000.0, 400.0, 1, 0.5)], 2);
        assert_eq!(j["rounds"].as_array().unwrap().len(), 1);
        assert_eq!(j["rounds"][0]["variants"][1]["rates"]["set one"], 400.0);
        assert_eq!(
            j["rounds"][0]["variants"][1]["cpu_us_per_request"]["set one"],
            2500.0
        );
        assert_eq!(j["rounds"][0]["variants"][1]["faults"], 1);
        assert_eq!(j["settings"]["redis_requests"], 4);
    }
}
