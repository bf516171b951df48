//! The scaling curve's report (a table per figure, the aims, the load of every round), its JSON
//! and the curves the plot draws: medians and min-max over the rounds.

use std::fmt::Write as _;

use anyhow::Result;

use super::{Point, Round, CONNECTIONS, VARIANTS};
use crate::host;
use crate::measure::Settings;
use crate::plot::{Curve, CurvePoint};
use crate::stats::{cell, ratio, spread, Spread};

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
            "  c/b rate at {n:>4} connections  {}{aim}",
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
    host::write_loads(
        &mut t,
        rounds.iter().map(|r| (r.load1_start, r.load1_end)),
        cores,
    )?;
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
            text.contains("c/b rate at    1 connections  1.500  (aim >= 1.0)"),
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
