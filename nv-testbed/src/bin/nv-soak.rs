//! `nv-soak` (`make soak`): many concurrent client connections with mixed redis and HTTP load
//! through domain-nv (3 replicas each running redis and nginx, majority) under random loss on
//! the client link, for a bounded time.
//!
//! The clients ([`nv_testbed::soak`]) are real Linux TCP sockets in the client namespace,
//! spread over several client addresses; half talk redis (`GET` of preloaded keys), half HTTP
//! (keep-alive `GET` of files), each with a pause between requests, and every reply is checked
//! byte for byte. Prints domain-nv's peak RSS and CPU seconds, the client errors by kind, the
//! wrong replies, the replica faults and the appliance's own counters, and what explains
//! them: for the client and per replica, how its kernel's TCP counters grew (SYN cookies,
//! accept queue overflows, retransmissions, RSTs, TIME_WAIT ...) and the frames its link
//! dropped towards domain-nv, and per replica link how many local ports domain-nv reused
//! within TIME_WAIT; fails if any reply was wrong.
//!
//! usage: `nv-soak PATH-TO-domain-nv [--connections N] [--seconds S] [--loss PERCENT]
//! [--think-ms MS] [--sources N] [--connects-per-s N]`
#![forbid(unsafe_code)]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nv_testbed::loss::drop_packets;
use nv_testbed::netstat::{link_drops, TcpCounters};
use nv_testbed::soak::{quantile, raise_fd_limit, run_load, Exchange, LoadReport, LoadSpec, Reply};
use nv_testbed::{cleanup_on_signal, flag_value, run, Group, GroupSpec, Service, SERVICE_ADDRESS};

/// Sizes of the values and files the clients fetch.
const SIZES: [usize; 5] = [16, 300, 2000, 16_384, 65_536];

/// `len` bytes of a pattern seeded by `seed`, letters and digits only (a redis inline value).
fn pattern(seed: usize, len: usize) -> Vec<u8> {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|i| {
            ALNUM[(((i + seed) as u32).wrapping_mul(2_246_822_519) >> 7) as usize % ALNUM.len()]
        })
        .collect()
}

/// The redis exchanges (GET of `soak:<k>`) and the commands that preload their values.
fn redis_load() -> (Vec<Exchange>, String) {
    let mut exchanges = Vec::new();
    let mut commands = String::new();
    for (k, &len) in SIZES.iter().enumerate() {
        let key = format!("soak:{k}");
        let value = pattern(k, len.min(4000));
        commands.push_str(&format!("SET {key} {}\n", String::from_utf8_lossy(&value)));
        let mut reply = format!("${}\r\n", value.len()).into_bytes();
        reply.extend_from_slice(&value);
        reply.extend_from_slice(b"\r\n");
        exchanges.push(Exchange {
            request: format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len()).into_bytes(),
            reply: Reply::Exact(reply),
        });
    }
    (exchanges, commands)
}

/// The HTTP exchanges (GET of `/f<k>`) and the files they fetch.
fn http_load() -> (Vec<Exchange>, Vec<(String, Vec<u8>)>) {
    let files: Vec<(String, Vec<u8>)> = SIZES
        .iter()
        .enumerate()
        .map(|(k, &len)| (format!("f{k}"), pattern(k + 100, len)))
        .collect();
    let exchanges = files
        .iter()
        .map(|(name, body)| Exchange {
            request: format!("GET /{name} HTTP/1.1\r\nHost: nv\r\n\r\n").into_bytes(),
            reply: Reply::HttpBody(body.clone()),
        })
        .collect();
    (exchanges, files)
}

/// A `kB` field of `/proc/<pid>/status` (e.g. `VmHWM`), in KiB.
fn proc_kib(pid: u32, field: &str) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// User plus system CPU seconds of process `pid`.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // the fields after the command name (which may hold spaces) close with ')'
    let rest = stat.rsplit_once(')').context("/proc/PID/stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?.unwrap_or(100) as f64;
    Ok(ticks as f64 / hz)
}

/// What one namespace's kernel counted: its TCP counters and its link's drops.
struct Kernel {
    /// The namespace's role: `client` or the replica's name.
    name: String,
    tcp: TcpCounters,
    /// Frames dropped on its link to domain-nv (`ext0` or `tap0`): (towards the namespace,
    /// towards domain-nv).
    drops: (u64, u64),
}

/// Reads the counters of the client's namespace and of each replica's.
fn kernels(g: &Group) -> Result<Vec<Kernel>> {
    let client = [("client".to_owned(), g.client_ns.as_str(), "ext0")];
    let replicas = g
        .replica_names
        .iter()
        .zip(&g.replica_ns)
        .map(|(name, ns)| (name.clone(), ns.as_str(), "tap0"));
    client
        .into_iter()
        .chain(replicas)
        .map(|(name, ns, dev)| {
            Ok(Kernel {
                name,
                tcp: TcpCounters::read(ns)?,
                drops: link_drops(ns, dev)?,
            })
        })
        .collect()
}

/// The kernels' counters that explain failed connections, with what each counts.
const KERNEL_COUNTERS: [(&str, &str); 18] = [
    ("Tcp.ActiveOpens", "connects"),
    ("Tcp.PassiveOpens", "connections accepted"),
    ("TcpExt.SyncookiesSent", "SYN cookies sent"),
    ("TcpExt.SyncookiesRecv", "valid cookie ACKs"),
    ("TcpExt.SyncookiesFailed", "invalid cookie ACKs"),
    ("TcpExt.ListenOverflows", "accept queue overflows"),
    ("TcpExt.ListenDrops", "listen drops"),
    (
        "TcpExt.TCPReqQFullDrop",
        "SYNs dropped (request queue full)",
    ),
    ("TcpExt.TCPSynRetrans", "SYN/SYN-ACK retransmits"),
    ("TcpExt.TCPTimeouts", "retransmission timeouts"),
    ("Tcp.OutRsts", "RSTs sent"),
    ("TcpExt.EmbryonicRsts", "RSTs received on handshakes"),
    (
        "Tcp.EstabResets",
        "established connections reset (either side)",
    ),
    ("TcpExt.TW", "TIME_WAITs ended"),
    ("TcpExt.TCPTimeWaitOverflow", "TIME_WAIT overflows"),
    ("TcpExt.PAWSEstab", "PAWS rejects"),
    (
        "TcpExt.TCPAbortOnTimeout",
        "aborted on retransmission timeout",
    ),
    ("TcpExt.TCPAbortOnData", "aborted with data unread"),
];

/// Prints per namespace how its kernel's counters grew during the load (those that did), and
/// its link's drops.
fn print_kernels(before: &[Kernel], after: &[Kernel]) {
    for (b, a) in before.iter().zip(after) {
        let grown = a.tcp.since(&b.tcp);
        let counters: Vec<String> = KERNEL_COUNTERS
            .iter()
            .filter(|(k, _)| grown.get(k) > 0)
            .map(|(k, what)| format!("{what} {}", grown.get(k)))
            .collect();
        println!(
            "kernel {}: {} (other counters 0); frames dropped towards domain-nv {}, from it {}",
            a.name,
            counters.join(", "),
            a.drops.1 - b.drops.1,
            a.drops.0 - b.drops.0
        );
    }
}

/// Stops domain-nv (SIGTERM: it drains what is left, then exits) and prints its log's lines
/// on the local ports each replica link handed out.
fn print_ports(g: &mut Group) -> Result<()> {
    g.lab
        .signal("domain-nv", nix::sys::signal::Signal::SIGTERM)?;
    let exit = g.lab.wait_exit("domain-nv", Duration::from_secs(60))?;
    for line in g.lab.log("domain-nv").lines() {
        if let Some((_, ports)) = line.split_once("replica link ") {
            println!("ports {ports}");
        }
    }
    if !exit.success() {
        bail!("domain-nv exited with {exit}");
    }
    Ok(())
}

/// Prints what the clients saw and what domain-nv reported; an error if a reply was wrong.
fn print_report(r: &mut LoadReport, set: &LoadSpec, loss: u32, g: &Group, pid: u32) -> Result<()> {
    let status = g.status()?;
    let faults: usize = status.replicas.iter().map(|x| x.faults.len()).sum();
    println!(
        "\nsoak: {} connections ({} client addresses), {} s of requests every {} ms each, {loss} % loss on the client link",
        set.connections,
        set.sources.len(),
        set.duration.as_secs(),
        set.think.as_millis()
    );
    println!(
        "clients:   peak established {}, connects {}, good replies {}, latency p50 {:.1} ms p99 {:.1} ms",
        r.peak_established,
        r.connected,
        r.replies_ok,
        quantile(&mut r.latencies, 0.5).as_secs_f64() * 1e3,
        quantile(&mut r.latencies, 0.99).as_secs_f64() * 1e3
    );
    println!(
        "errors:    {} (connect failures {}, resets {}, closed {}, reply timeouts {}), wrong replies {}",
        r.errors(),
        r.connect_failures,
        r.resets,
        r.closed,
        r.timeouts,
        r.wrong
    );
    println!(
        "domain-nv: peak RSS {:.1} MiB, CPU {:.1} s",
        proc_kib(pid, "VmHWM")? as f64 / 1024.0,
        cpu_seconds(pid)?
    );
    for s in &status.services {
        println!(
            "service {}: total {}, no quorum {}, refused (limit) {}, timed out {}",
            s.name, s.total, s.no_quorum, s.refused_limit, s.timed_out
        );
    }
    for x in &status.replicas {
        println!(
            "replica {}: {:?}, domain-nv behind on its link in {} rounds, {} faults{}",
            x.name,
            x.state,
            x.overloaded,
            x.faults.len(),
            x.faults
                .first()
                .map(|f| format!(" (first: {} {})", f.kind, f.detail))
                .unwrap_or_default()
        );
    }
    println!("faults: {faults}, wrong bytes: {}", r.wrong);
    if r.wrong > 0 {
        bail!("{} replies differed from the expected value", r.wrong);
    }
    Ok(())
}

fn main_result() -> Result<()> {
    cleanup_on_signal()?;
    let args: Vec<String> = std::env::args().collect();
    let domain_nv = PathBuf::from(args.get(1).context(
        "usage: nv-soak PATH-TO-domain-nv [--connections N] [--seconds S] [--loss PERCENT] [--think-ms MS] [--sources N] [--connects-per-s N]",
    )?);
    let loss: u32 = flag_value(&args, "--loss")?.unwrap_or(1);
    let sources: u8 = flag_value(&args, "--sources")?.unwrap_or(4);
    let connections: usize = flag_value(&args, "--connections")?.unwrap_or(10_000);
    raise_fd_limit(connections)?;
    let (redis, commands) = redis_load();
    let (http, files) = http_load();
    let mut spec = GroupSpec::new("majority", 3, Service::Nginx);
    spec.also = vec![Service::Redis];
    spec.straggler_ms = 5000;
    let mut g = Group::start("nvsoak", spec, &domain_nv, |i, g| {
        for (name, body) in &files {
            std::fs::write(g.www(i).join(name), body)?;
        }
        g.redis_to_replica(i, &commands)
    })?;
    let source_addrs: Vec<Ipv4Addr> = (0..sources)
        .map(|k| Ipv4Addr::new(10, 77, 0, 10 + k))
        .collect();
    for a in &source_addrs {
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
    drop_packets(&g.client_ns, "ext0", loss)?;
    let set = LoadSpec {
        connections,
        duration: Duration::from_secs(flag_value(&args, "--seconds")?.unwrap_or(60)),
        think: Duration::from_millis(flag_value(&args, "--think-ms")?.unwrap_or(5000)),
        sources: source_addrs,
        ports: vec![Service::Redis.port(), Service::Nginx.port()],
        exchanges: vec![redis, http],
        server: SERVICE_ADDRESS.parse()?,
        reply_timeout: Duration::from_secs(30),
        connects_per_s: flag_value(&args, "--connects-per-s")?.unwrap_or(1000),
    };
    let pid = g.lab.pid("domain-nv").context("domain-nv is not running")?;
    let ns = g.client_ns.clone();
    let load = set.clone();
    let kernels_before = kernels(&g)?;
    // setns affects only the calling thread: the clients run in one of their own
    let clients = std::thread::spawn(move || -> Result<LoadReport> {
        let netns = std::fs::File::open(format!("/run/netns/{ns}"))?;
        nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)?;
        run_load(&load)
    });
    let started = Instant::now();
    let mut next_report = started;
    let mut peak_sampled = 0;
    // domain-nv's memory, sampled each second while the clients run (they end on their own)
    while !clients.is_finished() {
        peak_sampled = peak_sampled.max(proc_kib(pid, "VmRSS").unwrap_or(0));
        if Instant::now() >= next_report {
            eprintln!(
                "  {:>3} s: domain-nv peak RSS so far {:.0} MiB",
                started.elapsed().as_secs(),
                peak_sampled as f64 / 1024.0
            );
            next_report += Duration::from_secs(10);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let mut report = clients
        .join()
        .map_err(|_| anyhow::anyhow!("client thread panicked"))??;
    let kernels_after = kernels(&g)?;
    let wrong = print_report(&mut report, &set, loss, &g, pid);
    print_kernels(&kernels_before, &kernels_after);
    print_ports(&mut g)?;
    wrong
}

fn main() {
    if let Err(e) = main_result() {
        eprintln!("nv-soak failed: {e:#}");
        std::process::exit(1);
    }
}
