//! `nv-floodbench` (`make floodbench`): what a connect flood does to an established client of
//! domain-nv (3 redis replicas, majority).
//!
//! Each round measures one legitimate client (one connection, a redis `GET` every
//! `--think-ms`, every reply checked) for `--seconds`, first alone (quiet), then while
//! `--flood` connections are opened from the same namespace at once and held open without
//! data. Prints the legitimate client's p50 and p99 latency, quiet and under the flood (medians
//! over the rounds, with min-max), the flood's connect failures, and after each flood the
//! replicas' states and faults as domain-nv reports them (a healthy replica must stay `live`).
//!
//! usage: `nv-floodbench PATH-TO-domain-nv [--flood N] [--seconds S] [--rounds N] [--think-ms MS]`
#![forbid(unsafe_code)]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use nv_schema::status::ReplicaHealth;
use nv_testbed::netstat::link_drops;
use nv_testbed::soak::{quantile, raise_fd_limit, run_load, Exchange, LoadReport, LoadSpec, Reply};
use nv_testbed::{cleanup_on_signal, flag_value, run, Group, GroupSpec, Service, SERVICE_ADDRESS};

/// Runs `spec` in a thread of its own that enters namespace `ns` first.
fn in_netns(ns: &str, spec: LoadSpec) -> std::thread::JoinHandle<Result<LoadReport>> {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        let netns = std::fs::File::open(format!("/run/netns/{ns}"))?;
        nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)?;
        run_load(&spec)
    })
}

/// Waits for a load thread.
fn join(h: std::thread::JoinHandle<Result<LoadReport>>) -> Result<LoadReport> {
    h.join()
        .map_err(|_| anyhow::anyhow!("client thread panicked"))?
}

/// Median and range of `v`, formatted in ms (`none` if no round had a reply).
fn median_range(mut v: Vec<Duration>) -> String {
    if v.is_empty() {
        return "none (no round had a reply)".into();
    }
    v.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "{:.2} ms ({:.2}-{:.2})",
        ms(v[v.len() / 2]),
        ms(v[0]),
        ms(v[v.len() - 1])
    )
}

/// Frames the kernel dropped from its per-CPU input backlogs so far (`/proc/net/softnet_stat`,
/// second column, summed): frames written into a TAP that found the backlog full.
fn backlog_drops() -> Result<u64> {
    let text = std::fs::read_to_string("/proc/net/softnet_stat")?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|v| u64::from_str_radix(v, 16).ok())
        .sum())
}

/// The drop counters of the group's links: the client's `ext0`, each replica's `tap0`, and the
/// kernel's input backlogs.
fn all_drops(g: &Group) -> Result<Vec<(u64, u64)>> {
    let mut v = vec![link_drops(&g.client_ns, "ext0")?];
    for ns in &g.replica_ns {
        v.push(link_drops(ns, "tap0")?);
    }
    v.push((backlog_drops()?, 0));
    Ok(v)
}

fn main_result() -> Result<()> {
    cleanup_on_signal()?;
    let args: Vec<String> = std::env::args().collect();
    let domain_nv = PathBuf::from(args.get(1).context(
        "usage: nv-floodbench PATH-TO-domain-nv [--flood N] [--seconds S] [--rounds N] [--think-ms MS]",
    )?);
    let flood: usize = flag_value(&args, "--flood")?.unwrap_or(5000);
    let seconds: u64 = flag_value(&args, "--seconds")?.unwrap_or(10);
    let rounds: usize = flag_value(&args, "--rounds")?.unwrap_or(3);
    let think = Duration::from_millis(flag_value(&args, "--think-ms")?.unwrap_or(10));
    raise_fd_limit(flood)?;
    let g = Group::start(
        "nvflood",
        GroupSpec::new("majority", 3, Service::Redis),
        &domain_nv,
        |i, g| g.redis_to_replica(i, "SET flood:key legitimate-value-0123456789\n"),
    )?;
    let sources: Vec<Ipv4Addr> = (0..4).map(|k| Ipv4Addr::new(10, 77, 0, 10 + k)).collect();
    for a in &sources {
        run(&[
            "ip",
            "-n",
            &g.client_ns,
            "addr",
            "add",
            &format!("{a}/24"),
            "dev",
            "ext0",
        ])?;
    }
    let server: Ipv4Addr = SERVICE_ADDRESS.parse()?;
    let legit = LoadSpec {
        connections: 1,
        duration: Duration::from_secs(seconds),
        think,
        sources: vec![Ipv4Addr::new(10, 77, 0, 2)],
        ports: vec![6379],
        exchanges: vec![vec![Exchange {
            request: b"*2\r\n$3\r\nGET\r\n$9\r\nflood:key\r\n".to_vec(),
            reply: Reply::Exact(b"$27\r\nlegitimate-value-0123456789\r\n".to_vec()),
        }]],
        server,
        reply_timeout: Duration::from_secs(10),
        connects_per_s: 1,
    };
    let flooder = LoadSpec {
        connections: flood,
        // connects only: the first request would be due after the measurement
        think: Duration::from_secs(3600),
        sources,
        connects_per_s: 1_000_000,
        ..legit.clone()
    };
    let (mut quiet, mut flooded) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
    let mut failed = (0, 0);
    for round in 0..rounds {
        let mut q = join(in_netns(&g.client_ns, legit.clone()))?;
        let before = all_drops(&g)?;
        let f_thread = in_netns(&g.client_ns, flooder.clone());
        let mut l = join(in_netns(&g.client_ns, legit.clone()))?;
        let f = join(f_thread)?;
        let after = all_drops(&g)?;
        let names = [
            "client ext0",
            "r0 tap0",
            "r1 tap0",
            "r2 tap0",
            "softnet backlog",
        ];
        let during: Vec<String> = names
            .iter()
            .zip(before.iter().zip(&after))
            .map(|(n, (b, a))| format!("{n} rx {} tx {}", a.0 - b.0, a.1 - b.1))
            .collect();
        eprintln!(
            "round {round}: frames dropped during the flood: {}",
            during.join(", ")
        );
        let status = g.status()?;
        let unhealthy: Vec<String> = status
            .replicas
            .iter()
            .filter(|r| r.state != ReplicaHealth::Live || !r.faults.is_empty())
            .map(|r| {
                let kinds: Vec<&str> = r.faults.iter().map(|f| f.kind.as_str()).collect();
                format!("{} {:?} faults {:?}", r.name, r.state, kinds)
            })
            .collect();
        let overloaded: Vec<u64> = status.replicas.iter().map(|r| r.overloaded).collect();
        eprintln!(
            "round {round}: rounds domain-nv fell behind on each replica link so far: {overloaded:?}"
        );
        eprintln!(
            "round {round}: quiet p50 {:.2} p99 {:.2} ms ({} replies, {} errors); flood p50 {:.2} p99 {:.2} ms ({} replies, {} errors); flood: {} connected, {} connect failures, {} resets; replicas not live or with faults: {:?}",
            quantile(&mut q.latencies, 0.5).as_secs_f64() * 1e3,
            quantile(&mut q.latencies, 0.99).as_secs_f64() * 1e3,
            q.replies_ok,
            q.errors(),
            quantile(&mut l.latencies, 0.5).as_secs_f64() * 1e3,
            quantile(&mut l.latencies, 0.99).as_secs_f64() * 1e3,
            l.replies_ok,
            l.errors(),
            f.connected,
            f.connect_failures,
            f.resets,
            unhealthy
        );
        // a round without a reply has no latency: it is counted in `failed`, not as 0 ms
        for (report, into, failed) in [
            (&mut q, &mut quiet, &mut failed.0),
            (&mut l, &mut flooded, &mut failed.1),
        ] {
            if report.latencies.is_empty() {
                *failed += 1;
            } else {
                into.0.push(quantile(&mut report.latencies, 0.5));
                into.1.push(quantile(&mut report.latencies, 0.99));
            }
        }
    }
    println!(
        "\nlegitimate redis client, one GET every {} ms for {seconds} s; flood of {flood} connections held open; median (min-max) of {rounds} rounds",
        think.as_millis()
    );
    println!(
        "quiet: p50 {}, p99 {}; rounds without a reply: {}",
        median_range(quiet.0),
        median_range(quiet.1),
        failed.0
    );
    println!(
        "flood: p50 {}, p99 {}; rounds without a reply: {}",
        median_range(flooded.0),
        median_range(flooded.1),
        failed.1
    );
    Ok(())
}

fn main() {
    if let Err(e) = main_result() {
        eprintln!("nv-floodbench failed: {e:#}");
        std::process::exit(1);
    }
}
