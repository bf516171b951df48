//! `make bench`: the cost of voting, measured side by side on this machine.
//!
//! Variants, all with the same Debian nginx / redis-server and the same load generators:
//! (a) client -> one replica directly (veth); (b) client -> HAProxy (TCP mode) -> one replica;
//! (c) client -> domain-nv -> 3 replicas (majority); (d) client -> domain-nv -> 2 replicas
//! (unanimous). Figures: bulk throughput (curl of a large file), request rate at 1 and 50
//! connections (wrk on nginx, redis-benchmark on redis), p50/p99 latency (wrk, 1 connection).
//! Ratios c/a, c/b, d/a last; a JSON result file too.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nv_testbed::{cleanup_on_signal, Group, GroupSpec, Lab, Service, SERVICE_ADDRESS};

/// Measurements of one variant.
#[derive(Debug, Default, Clone)]
struct Figures {
    bulk_mbit: f64,
    http_rps_1: f64,
    http_rps_50: f64,
    p50_us: f64,
    p99_us: f64,
    redis_rps_1: f64,
    redis_rps_50: f64,
    /// Faults domain-nv reported during the run (healthy replicas: false positives).
    faults: usize,
}

impl Figures {
    /// (table label, JSON key, value) of every figure, in table order.
    fn fields(&self) -> [(&'static str, &'static str, f64); 8] {
        [
            ("bulk Mb/s", "bulk_mbit_s", self.bulk_mbit),
            ("http rps1", "http_rps_1", self.http_rps_1),
            ("http rps50", "http_rps_50", self.http_rps_50),
            ("p50 us", "p50_us", self.p50_us),
            ("p99 us", "p99_us", self.p99_us),
            ("redis rps1", "redis_rps_1", self.redis_rps_1),
            ("redis rps50", "redis_rps_50", self.redis_rps_50),
            ("faults", "faults", self.faults as f64),
        ]
    }
}

struct Settings {
    mtu: usize,
    tap_offload: bool,
    bulk_bytes: u64,
    seconds: u32,
    redis_requests: u32,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("bench failed: {e:#}");
        std::process::exit(1);
    }
}

/// Parses a wrk duration like `85.00us`, `1.20ms`, `2.00s` into microseconds.
fn parse_duration_us(s: &str) -> Option<f64> {
    let (num, mult) = if let Some(v) = s.strip_suffix("us") {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix("ms") {
        (v, 1e3)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1e6)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * mult)
}

/// Requests/s and (p50, p99) latency in µs from `wrk --latency` output.
fn parse_wrk(out: &str) -> Result<(f64, f64, f64)> {
    let mut rps = None;
    let (mut p50, mut p99) = (None, None);
    for line in out.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        match t.as_slice() {
            ["Requests/sec:", v] => rps = v.parse().ok(),
            ["50%", v] => p50 = parse_duration_us(v),
            ["99%", v] => p99 = parse_duration_us(v),
            _ => {}
        }
    }
    match (rps, p50, p99) {
        (Some(r), Some(a), Some(b)) => Ok((r, a, b)),
        _ => bail!("cannot parse wrk output:\n{out}"),
    }
}

/// Requests/s from `redis-benchmark -q` output (`GET: 12345.67 requests per second, ...`).
fn parse_redis_benchmark(out: &str) -> Result<f64> {
    out.split(['\r', '\n'])
        .filter_map(|l| l.strip_prefix("GET: "))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .next_back()
        .with_context(|| format!("cannot parse redis-benchmark output:\n{out}"))
}

fn check(out: std::process::Output, what: &str) -> Result<String> {
    if !out.status.success() {
        bail!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs the HTTP load against `addr` from namespace `ns`.
fn measure_http(lab: &Lab, ns: &str, addr: &str, set: &Settings, f: &mut Figures) -> Result<()> {
    let url = format!("http://{addr}/big");
    let out = check(
        lab.exec(
            ns,
            &[
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{size_download} %{time_total}",
                &url,
            ],
        )?,
        "curl",
    )?;
    let mut it = out.split_whitespace();
    let size: f64 = it
        .next()
        .and_then(|v| v.parse().ok())
        .context("curl size")?;
    let secs: f64 = it
        .next()
        .and_then(|v| v.parse().ok())
        .context("curl time")?;
    if size as u64 != set.bulk_bytes {
        bail!("bulk transfer got {size} of {} bytes", set.bulk_bytes);
    }
    f.bulk_mbit = size * 8.0 / secs / 1e6;
    let small = format!("http://{addr}/small");
    let d = format!("{}s", set.seconds);
    let one = check(
        lab.exec(ns, &["wrk", "-t1", "-c1", "-d", &d, "--latency", &small])?,
        "wrk -c1",
    )?;
    (f.http_rps_1, f.p50_us, f.p99_us) = parse_wrk(&one)?;
    let fifty = check(
        lab.exec(ns, &["wrk", "-t2", "-c50", "-d", &d, "--latency", &small])?,
        "wrk -c50",
    )?;
    f.http_rps_50 = parse_wrk(&fifty)?.0;
    Ok(())
}

/// Runs the redis load against `addr` from namespace `ns`.
fn measure_redis(lab: &Lab, ns: &str, addr: &str, set: &Settings, f: &mut Figures) -> Result<()> {
    let n = set.redis_requests.to_string();
    let one = check(
        lab.exec(
            ns,
            &[
                "redis-benchmark",
                "-h",
                addr,
                "-c",
                "1",
                "-n",
                &n,
                "-t",
                "get",
                "-q",
            ],
        )?,
        "redis-benchmark -c1",
    )?;
    f.redis_rps_1 = parse_redis_benchmark(&one)?;
    let n50 = (set.redis_requests * 5).to_string();
    let fifty = check(
        lab.exec(
            ns,
            &[
                "redis-benchmark",
                "-h",
                addr,
                "-c",
                "50",
                "-n",
                &n50,
                "-t",
                "get",
                "-q",
            ],
        )?,
        "redis-benchmark -c50",
    )?;
    f.redis_rps_50 = parse_redis_benchmark(&fifty)?;
    Ok(())
}

/// Fills an nginx www root with the bulk file (sparse) and a small page.
fn fill_www(www: &Path, set: &Settings) -> Result<()> {
    std::fs::create_dir_all(www)?;
    std::fs::File::create(www.join("big"))?.set_len(set.bulk_bytes)?;
    std::fs::write(www.join("small"), "x".repeat(512))?;
    Lab::freeze_mtimes(www)
}

/// (a) and (b): a client namespace, optionally a HAProxy namespace, and one server namespace.
fn direct_or_haproxy(proxy: bool, set: &Settings) -> Result<Figures> {
    let mut lab = Lab::new(if proxy { "nvb-b" } else { "nvb-a" })?;
    let c = lab.add_netns_plain("c")?;
    let s = lab.add_netns_plain("s")?;
    let target = if proxy {
        let p = lab.add_netns_plain("p")?;
        lab.add_veth(&c, "v0", "10.78.1.2/24", &p, "v1", "10.78.1.1/24")?;
        lab.add_veth(&p, "v2", "10.78.2.1/24", &s, "v3", "10.78.2.2/24")?;
        let cfg = lab.dir().join("haproxy.cfg");
        std::fs::write(
            &cfg,
            "global\n  maxconn 4096\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
             listen http\n  bind 10.78.1.1:80\n  server s 10.78.2.2:80\n\
             listen redis\n  bind 10.78.1.1:6379\n  server s 10.78.2.2:6379\n",
        )?;
        let cfg = cfg.to_string_lossy().into_owned();
        lab.spawn("haproxy", Some(&p), &["haproxy", "-db", "-f", &cfg])?;
        "10.78.1.1"
    } else {
        lab.add_veth(&c, "v0", "10.78.2.1/24", &s, "v3", "10.78.2.2/24")?;
        "10.78.2.2"
    };
    if set.mtu != 1500 {
        let mtu = set.mtu.to_string();
        let links: &[(&str, &str)] = if proxy {
            &[("c", "v0"), ("p", "v1"), ("p", "v2"), ("s", "v3")]
        } else {
            &[("c", "v0"), ("s", "v3")]
        };
        for (ns, ifname) in links {
            let ns = format!("{}-{ns}", if proxy { "nvb-b" } else { "nvb-a" });
            nv_testbed::run(&["ip", "-n", &ns, "link", "set", ifname, "mtu", &mtu])?;
        }
    }
    lab.start_service("nginx", &s, &Service::Nginx)?;
    lab.start_service("redis", &s, &Service::Redis)?;
    fill_www(&lab.www("nginx"), set)?;
    lab.wait_service(&c, target, &Service::Nginx)?;
    lab.wait_service(&c, target, &Service::Redis)?;
    let mut f = Figures::default();
    measure_http(&lab, &c, target, set, &mut f)?;
    measure_redis(&lab, &c, target, set, &mut f)?;
    Ok(f)
}

/// (c) and (d): domain-nv with `n` replicas.
fn voted(domain_nv: &Path, policy: &str, n: usize, set: &Settings) -> Result<Figures> {
    let mut f = Figures::default();
    let mut spec = GroupSpec::new(policy, n, Service::Nginx);
    spec.straggler_ms = 5000;
    spec.mtu = set.mtu;
    spec.tap_offload = set.tap_offload;
    let g = Group::start(&format!("nvb-{n}h"), spec, domain_nv, |i, g| {
        fill_www(&g.www(i), set)
    })?;
    measure_http(&g.lab, &g.client_ns, SERVICE_ADDRESS, set, &mut f)?;
    f.faults = g.status()?.replicas.iter().map(|r| r.faults.len()).sum();
    drop(g);
    let mut spec = GroupSpec::new(policy, n, Service::Redis);
    spec.straggler_ms = 5000;
    spec.mtu = set.mtu;
    spec.tap_offload = set.tap_offload;
    let g = Group::start(&format!("nvb-{n}r"), spec, domain_nv, |_, _| Ok(()))?;
    measure_redis(&g.lab, &g.client_ns, SERVICE_ADDRESS, set, &mut f)?;
    f.faults += g
        .status()?
        .replicas
        .iter()
        .map(|r| r.faults.len())
        .sum::<usize>();
    Ok(f)
}

fn run() -> Result<()> {
    cleanup_on_signal()?;
    let args: Vec<String> = std::env::args().collect();
    let domain_nv = PathBuf::from(args.get(1).context(
        "usage: nv-bench PATH-TO-domain-nv [RESULT.json] [--quick] [--mtu N] [--no-tap-offload]",
    )?);
    let result_path = PathBuf::from(
        args.get(2)
            .cloned()
            .unwrap_or_else(|| "bench-results.json".into()),
    );
    let quick = args.iter().any(|a| a == "--quick");
    let mtu: usize = match args.iter().position(|a| a == "--mtu") {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .context("--mtu takes a number")?,
        None => 1500,
    };
    let tap_offload = !args.iter().any(|a| a == "--no-tap-offload");
    let set = if quick {
        Settings {
            mtu,
            tap_offload,
            bulk_bytes: 64 << 20,
            seconds: 2,
            redis_requests: 5_000,
        }
    } else {
        Settings {
            mtu,
            tap_offload,
            bulk_bytes: 1 << 30,
            seconds: 10,
            redis_requests: 50_000,
        }
    };
    let variants: [(&str, &str); 4] = [
        ("a", "client -> replica (direct)"),
        ("b", "client -> HAProxy -> replica"),
        ("c", "client -> domain-nv -> 3 replicas (majority)"),
        ("d", "client -> domain-nv -> 2 replicas (unanimous)"),
    ];
    let mut results = Vec::new();
    for (key, name) in variants {
        eprintln!("== ({key}) {name}");
        let f = match key {
            "a" => direct_or_haproxy(false, &set)?,
            "b" => direct_or_haproxy(true, &set)?,
            "c" => voted(&domain_nv, "majority", 3, &set)?,
            _ => voted(&domain_nv, "unanimous", 2, &set)?,
        };
        eprintln!("   {f:?}");
        results.push((key, name, f));
    }
    let mut table = format!("\n{:<48}", "variant");
    for (label, _, _) in results[0].2.fields() {
        write!(table, " {label:>11}")?;
    }
    for (key, name, f) in &results {
        write!(table, "\n{:<48}", format!("({key}) {name}"))?;
        for (_, _, v) in f.fields() {
            write!(table, " {v:>11.0}")?;
        }
    }
    writeln!(table)?;
    let (a, b, c, d) = (&results[0].2, &results[1].2, &results[2].2, &results[3].2);
    writeln!(table, "\nratios:")?;
    writeln!(
        table,
        "  c/a bulk throughput      {:.3}  (aim >= 0.9)",
        c.bulk_mbit / a.bulk_mbit
    )?;
    writeln!(
        table,
        "  c/b http rate, 1 conn    {:.3}  (aim >= 1.0)",
        c.http_rps_1 / b.http_rps_1
    )?;
    writeln!(
        table,
        "  c/b http rate, 50 conns  {:.3}",
        c.http_rps_50 / b.http_rps_50
    )?;
    writeln!(
        table,
        "  c/b redis rate, 1 conn   {:.3}",
        c.redis_rps_1 / b.redis_rps_1
    )?;
    writeln!(
        table,
        "  c/b redis rate, 50 conns {:.3}",
        c.redis_rps_50 / b.redis_rps_50
    )?;
    writeln!(
        table,
        "  c-a added latency p50    {:.0} us  (aim <= 30)",
        c.p50_us - a.p50_us
    )?;
    writeln!(
        table,
        "  c-a added latency p99    {:.0} us  (aim <= 150)",
        c.p99_us - a.p99_us
    )?;
    writeln!(
        table,
        "  d/a bulk throughput      {:.3}",
        d.bulk_mbit / a.bulk_mbit
    )?;
    print!("{table}");
    let variants: Vec<serde_json::Value> = results
        .iter()
        .map(|(key, name, f)| {
            let mut v = serde_json::Map::new();
            v.insert("variant".into(), key.to_string().into());
            v.insert("name".into(), name.to_string().into());
            for (_, field, x) in f.fields() {
                // one decimal, as the table shows them
                v.insert(field.into(), ((x * 10.0).round() / 10.0).into());
            }
            serde_json::Value::Object(v)
        })
        .collect();
    let json = serde_json::json!({
        "settings": {
            "mtu": set.mtu,
            "tap_offload": set.tap_offload,
            "bulk_bytes": set.bulk_bytes,
            "seconds": set.seconds,
            "redis_requests": set.redis_requests,
        },
        "variants": variants,
    });
    let json = serde_json::to_string_pretty(&json)? + "\n";
    std::fs::write(&result_path, json)
        .with_context(|| format!("writing {}", result_path.display()))?;
    println!("\nresults written to {}", result_path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_parsed() {
        let out = "  Latency Distribution\n     50%   85.00us\n     75%  100.00us\n     90%  1.20ms\n     99%    2.50ms\n  12345 requests in 1.00s\nRequests/sec:  12345.67\n";
        assert_eq!(parse_wrk(out).unwrap(), (12345.67, 85.0, 2500.0));
        assert!(parse_wrk("garbage").is_err());
    }

    #[test]
    fn redis_benchmark_output_is_parsed() {
        let out = "GET: rps=0.0 (overall: nan) avg_msec=nan\rGET: 107526.88 requests per second, p50=0.239 msec\n";
        assert_eq!(parse_redis_benchmark(out).unwrap(), 107526.88);
        assert!(parse_redis_benchmark("nothing").is_err());
    }
}
