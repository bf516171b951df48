//! `nv-lossbench`: bulk throughput under random packet loss on the client link, through
//! domain-nv (3 nginx replicas, majority) and from the same nginx directly (veth), side by
//! side.
//!
//! For each loss rate (default 0, 1 and 5 %), `rounds` downloads of a `--mib` MiB file per
//! variant; prints the median MiB/s, the median of each round's longest stall and the ratio
//! voted / direct. Loss is nftables' `numgen random` drop in the client namespace, both
//! directions ([`nv_testbed::loss`]). A download that does not finish within `--timeout`
//! seconds counts as 0 MiB/s.
//!
//! usage: `nv-lossbench PATH-TO-domain-nv [--mib N] [--rounds N] [--loss 0,1,5] [--timeout S]`
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use nv_testbed::loss::{drop_packets, timed_download};
use nv_testbed::{cleanup_on_signal, flag_value, Group, GroupSpec, Lab, Service, SERVICE_ADDRESS};

/// What one run measures.
struct Settings {
    mib: u64,
    rounds: usize,
    losses: Vec<u32>,
    timeout: Duration,
}

/// The medians of one variant at one loss rate.
struct Figures {
    mib_per_s: f64,
    stall: Duration,
    failed: usize,
}

/// The file every nginx serves: a byte pattern, so a download can be checked exactly.
fn pattern(bytes: u64) -> Vec<u8> {
    (0..bytes as u32)
        .map(|i| (i.wrapping_mul(2246822519) >> 13) as u8)
        .collect()
}

fn median<T: PartialOrd + Copy>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

/// `rounds` downloads of `/big` from `addr` in namespace `ns`, checked against `data`.
fn measure(ns: &str, addr: &str, data: &[u8], set: &Settings) -> Figures {
    let (mut rates, mut stalls, mut failed) = (Vec::new(), Vec::new(), 0);
    for _ in 0..set.rounds {
        match timed_download(ns, addr, "big", set.timeout) {
            Ok(d) if d.body == data => {
                eprintln!(
                    "   {:.1} MiB/s in {:.2} s, longest stall {:.0} ms",
                    d.mib_per_s(),
                    d.elapsed.as_secs_f64(),
                    d.longest_stall.as_secs_f64() * 1e3
                );
                rates.push(d.mib_per_s());
                stalls.push(d.longest_stall);
            }
            Ok(d) => {
                eprintln!("   wrong bytes ({} of {})", d.body.len(), data.len());
                failed += 1;
                rates.push(0.0);
                stalls.push(set.timeout);
            }
            Err(e) => {
                eprintln!("   failed: {e:#}");
                failed += 1;
                rates.push(0.0);
                stalls.push(set.timeout);
            }
        }
    }
    Figures {
        mib_per_s: median(rates),
        stall: median(stalls),
        failed,
    }
}

/// Client -> nginx over a veth, at each loss rate.
fn direct(data: &[u8], set: &Settings) -> Result<Vec<Figures>> {
    let mut lab = Lab::new("nvlb-a")?;
    let c = lab.add_netns_plain("c")?;
    let s = lab.add_netns_plain("s")?;
    lab.add_veth(&c, "v0", "10.78.2.1/24", &s, "v3", "10.78.2.2/24")?;
    lab.start_service("nginx", &s, &Service::Nginx)?;
    std::fs::create_dir_all(lab.www("nginx"))?;
    std::fs::write(lab.www("nginx").join("big"), data)?;
    Lab::freeze_mtimes(&lab.www("nginx"))?;
    lab.wait_service(&c, "10.78.2.2", &Service::Nginx)?;
    let mut out = Vec::new();
    for &loss in &set.losses {
        eprintln!("== direct, {loss} % loss");
        drop_packets(&c, "v0", loss)?;
        out.push(measure(&c, "10.78.2.2", data, set));
    }
    Ok(out)
}

/// Client -> domain-nv -> 3 nginx replicas (majority), at each loss rate.
fn voted(domain_nv: &Path, data: &[u8], set: &Settings) -> Result<Vec<Figures>> {
    let mut spec = GroupSpec::new("majority", 3, Service::Nginx);
    spec.straggler_ms = 5000;
    let g = Group::start("nvlb-v", spec, domain_nv, |i, g| {
        Ok(std::fs::write(g.www(i).join("big"), data)?)
    })?;
    let mut out = Vec::new();
    for &loss in &set.losses {
        eprintln!("== domain-nv, {loss} % loss");
        drop_packets(&g.client_ns, "ext0", loss)?;
        out.push(measure(&g.client_ns, SERVICE_ADDRESS, data, set));
    }
    let faults: usize = g.status()?.replicas.iter().map(|r| r.faults.len()).sum();
    eprintln!("   faults reported by domain-nv: {faults}");
    Ok(out)
}

fn run() -> Result<()> {
    cleanup_on_signal()?;
    let args: Vec<String> = std::env::args().collect();
    let domain_nv = PathBuf::from(args.get(1).context(
        "usage: nv-lossbench PATH-TO-domain-nv [--mib N] [--rounds N] [--loss 0,1,5] [--timeout S]",
    )?);
    let losses: String = flag_value(&args, "--loss")?.unwrap_or_else(|| "0,1,5".into());
    let set = Settings {
        mib: flag_value(&args, "--mib")?.unwrap_or(64),
        rounds: flag_value(&args, "--rounds")?.unwrap_or(3),
        losses: losses
            .split(',')
            .map(|v| v.trim().parse())
            .collect::<Result<_, _>>()
            .context("--loss takes percentages like 0,1,5")?,
        timeout: Duration::from_secs(flag_value(&args, "--timeout")?.unwrap_or(120)),
    };
    let data = pattern(set.mib << 20);
    let d = direct(&data, &set)?;
    let v = voted(&domain_nv, &data, &set)?;
    println!(
        "\n{} MiB download, median of {} rounds (MiB/s; longest stall in ms)",
        set.mib, set.rounds
    );
    println!(
        "{:>6} {:>12} {:>10} {:>12} {:>10} {:>8}",
        "loss", "direct", "stall", "domain-nv", "stall", "ratio"
    );
    for ((loss, a), b) in set.losses.iter().zip(&d).zip(&v) {
        let failed = a.failed + b.failed;
        println!(
            "{:>5}% {:>12.1} {:>10.0} {:>12.1} {:>10.0} {:>8.3}{}",
            loss,
            a.mib_per_s,
            a.stall.as_secs_f64() * 1e3,
            b.mib_per_s,
            b.stall.as_secs_f64() * 1e3,
            b.mib_per_s / a.mib_per_s,
            if failed > 0 {
                format!("  ({failed} failed)")
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("nv-lossbench failed: {e:#}");
        std::process::exit(1);
    }
}
