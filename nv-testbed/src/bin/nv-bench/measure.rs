//! One round of one variant: its lab, the load generators, their output parsers, and the CPU the
//! middlebox (HAProxy or domain-nv) spent on each phase.

use std::path::Path;

use anyhow::{bail, Context, Result};
use nv_testbed::{Group, GroupSpec, Lab, Service, SERVICE_ADDRESS};

use crate::dns::measure_dns;
use crate::host::cpu_seconds;
use crate::plain::{plain_lab, PlainLab};

/// How large and how long each phase is.
pub struct Settings {
    /// MTU of every link.
    pub mtu: usize,
    /// TAP offload of domain-nv's links.
    pub tap_offload: bool,
    /// Size of the bulk file.
    pub bulk_bytes: u64,
    /// Duration of each wrk run.
    pub seconds: u32,
    /// Requests of redis-benchmark at 1 connection (5x that at 50).
    pub redis_requests: u32,
    /// Only the DNS figures (`--dns-only`): the HTTP and redis phases are skipped.
    pub dns_only: bool,
}

/// Measurements of one variant in one round.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    bulk_mbit: Option<f64>,
    http_rps_1: Option<f64>,
    http_rps_50: Option<f64>,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    redis_rps_1: Option<f64>,
    redis_rps_50: Option<f64>,
    /// DNS queries per second (dnsperf, 64 outstanding); none through HAProxy (TCP only).
    dns_qps: Option<f64>,
    /// p50 latency of one DNS query at a time, µs.
    dns_p50_us: Option<f64>,
    /// Faults domain-nv reported during the run (healthy replicas: false positives).
    faults: usize,
    /// The middlebox's CPU seconds per GiB of the bulk transfer (none for the direct path).
    cpu_s_per_gib: Option<f64>,
    /// Its CPU seconds per 10,000 HTTP requests (both wrk runs).
    cpu_s_per_10k_http: Option<f64>,
    /// Its CPU seconds per 10,000 redis GETs (both redis-benchmark runs).
    cpu_s_per_10k_redis: Option<f64>,
}

/// The figures of [`Figures::fields`], in table order.
pub const FIGURES: usize = 13;

impl Figures {
    /// (table label, JSON key, value) of every figure, in table order.
    pub fn fields(&self) -> [(&'static str, &'static str, Option<f64>); FIGURES] {
        [
            ("bulk Mb/s", "bulk_mbit_s", self.bulk_mbit),
            ("http rps1", "http_rps_1", self.http_rps_1),
            ("http rps50", "http_rps_50", self.http_rps_50),
            ("p50 us", "p50_us", self.p50_us),
            ("p99 us", "p99_us", self.p99_us),
            ("redis rps1", "redis_rps_1", self.redis_rps_1),
            ("redis rps50", "redis_rps_50", self.redis_rps_50),
            ("dns qps", "dns_qps", self.dns_qps),
            ("dns p50 us", "dns_p50_us", self.dns_p50_us),
            ("faults", "faults", Some(self.faults as f64)),
            ("cpu s/GiB", "cpu_s_per_gib", self.cpu_s_per_gib),
            (
                "cpu s/10k http",
                "cpu_s_per_10k_http",
                self.cpu_s_per_10k_http,
            ),
            (
                "cpu s/10k redis",
                "cpu_s_per_10k_redis",
                self.cpu_s_per_10k_redis,
            ),
        ]
    }
}

/// CPU seconds of the middlebox process, if the variant has one.
fn cpu_of(pid: Option<u32>) -> Result<Option<f64>> {
    pid.map(cpu_seconds).transpose()
}

/// CPU seconds spent between two readings, per `units`.
fn cpu_per(before: Option<f64>, after: Option<f64>, units: f64) -> Option<f64> {
    Some((after? - before?) / units)
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
pub fn parse_wrk(out: &str) -> Result<(f64, f64, f64)> {
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

/// The number of requests wrk completed (`12345 requests in 1.00s, ...`).
pub(crate) fn parse_wrk_requests(out: &str) -> Result<u64> {
    out.lines()
        .find_map(
            |l| match l.split_whitespace().collect::<Vec<_>>().as_slice() {
                [n, "requests", "in", ..] => n.parse().ok(),
                _ => None,
            },
        )
        .with_context(|| format!("cannot find the request count in wrk output:\n{out}"))
}

/// Requests/s from `redis-benchmark -q` output (`GET: 12345.67 requests per second, ...`).
fn parse_redis_benchmark(out: &str) -> Result<f64> {
    out.split(['\r', '\n'])
        .filter_map(|l| l.strip_prefix("GET: "))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .next_back()
        .with_context(|| format!("cannot parse redis-benchmark output:\n{out}"))
}

/// The standard output of a load generator that succeeded, or an error with all it printed.
pub fn check(out: std::process::Output, what: &str) -> Result<String> {
    if !out.status.success() {
        bail!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs the HTTP load against `addr` from namespace `ns`; `middlebox` is the pid whose CPU is
/// counted.
fn measure_http(
    lab: &Lab,
    ns: &str,
    addr: &str,
    middlebox: Option<u32>,
    set: &Settings,
    f: &mut Figures,
) -> Result<()> {
    let url = format!("http://{addr}/big");
    let cpu0 = cpu_of(middlebox)?;
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
    let cpu1 = cpu_of(middlebox)?;
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
    f.bulk_mbit = Some(size * 8.0 / secs / 1e6);
    f.cpu_s_per_gib = cpu_per(cpu0, cpu1, size / f64::from(1u32 << 30));
    let small = format!("http://{addr}/small");
    let d = format!("{}s", set.seconds);
    let one = check(
        lab.exec(ns, &["wrk", "-t1", "-c1", "-d", &d, "--latency", &small])?,
        "wrk -c1",
    )?;
    let (rps, p50, p99) = parse_wrk(&one)?;
    (f.http_rps_1, f.p50_us, f.p99_us) = (Some(rps), Some(p50), Some(p99));
    let fifty = check(
        lab.exec(ns, &["wrk", "-t2", "-c50", "-d", &d, "--latency", &small])?,
        "wrk -c50",
    )?;
    f.http_rps_50 = Some(parse_wrk(&fifty)?.0);
    let requests = parse_wrk_requests(&one)? + parse_wrk_requests(&fifty)?;
    f.cpu_s_per_10k_http = cpu_per(cpu1, cpu_of(middlebox)?, requests as f64 / 1e4);
    Ok(())
}

/// Runs redis-benchmark (GET) with `clients` connections and `requests` requests.
fn redis_benchmark(lab: &Lab, ns: &str, addr: &str, clients: u32, requests: u32) -> Result<f64> {
    let (c, n) = (clients.to_string(), requests.to_string());
    let argv = [
        "redis-benchmark",
        "-h",
        addr,
        "-c",
        &c,
        "-n",
        &n,
        "-t",
        "get",
        "-q",
    ];
    let out = check(lab.exec(ns, &argv)?, &format!("redis-benchmark -c{c}"))?;
    parse_redis_benchmark(&out)
}

/// Runs the redis load against `addr` from namespace `ns`; `middlebox` is the pid whose CPU is
/// counted.
fn measure_redis(
    lab: &Lab,
    ns: &str,
    addr: &str,
    middlebox: Option<u32>,
    set: &Settings,
    f: &mut Figures,
) -> Result<()> {
    let cpu0 = cpu_of(middlebox)?;
    f.redis_rps_1 = Some(redis_benchmark(lab, ns, addr, 1, set.redis_requests)?);
    f.redis_rps_50 = Some(redis_benchmark(lab, ns, addr, 50, set.redis_requests * 5)?);
    let requests = f64::from(set.redis_requests) * 6.0;
    f.cpu_s_per_10k_redis = cpu_per(cpu0, cpu_of(middlebox)?, requests / 1e4);
    Ok(())
}

/// Fills an nginx www root with the bulk file (sparse) and a small page.
pub fn fill_www(www: &Path, set: &Settings) -> Result<()> {
    std::fs::create_dir_all(www)?;
    std::fs::File::create(www.join("big"))?.set_len(set.bulk_bytes)?;
    std::fs::write(www.join("small"), "x".repeat(512))?;
    Lab::freeze_mtimes(www)
}

/// (a) and (b): a client namespace, optionally a HAProxy namespace, and one server namespace.
pub fn direct_or_haproxy(proxy: bool, set: &Settings) -> Result<Figures> {
    let PlainLab {
        mut lab,
        client: c,
        server: s,
        target,
    } = plain_lab(if proxy { "nvb-b" } else { "nvb-a" }, proxy, set)?;
    let mut f = Figures::default();
    if !proxy {
        // HAProxy proxies TCP only: the DNS figures are the direct path's.
        let nsd = Service::Nsd { round_robin: false };
        lab.start_service("nsd", &s, &nsd)?;
        lab.wait_service(&c, target, &nsd)?;
        let (qps, p50) = measure_dns(&lab, &c, target, set.seconds)?;
        (f.dns_qps, f.dns_p50_us) = (Some(qps), Some(p50));
    }
    if set.dns_only {
        return Ok(f);
    }
    lab.start_service("nginx", &s, &Service::Nginx)?;
    lab.start_service("redis", &s, &Service::Redis)?;
    fill_www(&lab.www("nginx"), set)?;
    lab.wait_service(&c, target, &Service::Nginx)?;
    lab.wait_service(&c, target, &Service::Redis)?;
    let haproxy = lab.pid("haproxy");
    measure_http(&lab, &c, target, haproxy, set, &mut f)?;
    measure_redis(&lab, &c, target, haproxy, set, &mut f)?;
    Ok(f)
}

/// (c) and (d): domain-nv with `n` replicas.
pub fn voted(domain_nv: &Path, policy: &str, n: usize, set: &Settings) -> Result<Figures> {
    let mut f = Figures::default();
    let mut spec = GroupSpec::new(policy, n, Service::Nsd { round_robin: false });
    spec.straggler_ms = 5000;
    spec.mtu = set.mtu;
    spec.tap_offload = set.tap_offload;
    let g = Group::start(&format!("nvb-{n}d"), spec, domain_nv, |_, _| Ok(()))?;
    let (qps, p50) = measure_dns(&g.lab, &g.client_ns, SERVICE_ADDRESS, set.seconds)?;
    (f.dns_qps, f.dns_p50_us) = (Some(qps), Some(p50));
    f.faults = g.status()?.replicas.iter().map(|r| r.faults.len()).sum();
    drop(g);
    if set.dns_only {
        return Ok(f);
    }
    let mut spec = GroupSpec::new(policy, n, Service::Nginx);
    spec.straggler_ms = 5000;
    spec.mtu = set.mtu;
    spec.tap_offload = set.tap_offload;
    let g = Group::start(&format!("nvb-{n}h"), spec, domain_nv, |i, g| {
        fill_www(&g.www(i), set)
    })?;
    let pid = g.lab.pid("domain-nv");
    measure_http(&g.lab, &g.client_ns, SERVICE_ADDRESS, pid, set, &mut f)?;
    f.faults += g
        .status()?
        .replicas
        .iter()
        .map(|r| r.faults.len())
        .sum::<usize>();
    drop(g);
    let mut spec = GroupSpec::new(policy, n, Service::Redis);
    spec.straggler_ms = 5000;
    spec.mtu = set.mtu;
    spec.tap_offload = set.tap_offload;
    let g = Group::start(&format!("nvb-{n}r"), spec, domain_nv, |_, _| Ok(()))?;
    let pid = g.lab.pid("domain-nv");
    measure_redis(&g.lab, &g.client_ns, SERVICE_ADDRESS, pid, set, &mut f)?;
    f.faults += g
        .status()?
        .replicas
        .iter()
        .map(|r| r.faults.len())
        .sum::<usize>();
    Ok(f)
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
    fn wrk_request_count_is_parsed() {
        let out = "  Latency Distribution\n     50%   85.00us\n  12345 requests in 1.00s, 8.1MB read\nRequests/sec:  12345.67\n";
        assert_eq!(parse_wrk_requests(out).unwrap(), 12345);
        assert!(parse_wrk_requests("garbage").is_err());
    }

    #[test]
    fn redis_benchmark_output_is_parsed() {
        let out = "GET: rps=0.0 (overall: nan) avg_msec=nan\rGET: 107526.88 requests per second, p50=0.239 msec\n";
        assert_eq!(parse_redis_benchmark(out).unwrap(), 107526.88);
        assert!(parse_redis_benchmark("nothing").is_err());
    }

    #[test]
    fn cpu_per_unit_needs_both_readings() {
        assert_eq!(cpu_per(Some(1.0), Some(4.0), 2.0), Some(1.5));
        assert_eq!(cpu_per(None, None, 2.0), None);
    }
}
