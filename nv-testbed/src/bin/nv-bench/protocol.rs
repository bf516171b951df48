//! `--protocol-only` (issue 14): the cost of domain-nv's protocol layer, ordering and masking,
//! against the `bytes` protocol on the same load. Every group is 3 replicas, majority.
//!
//! - (rb) redis replicas, `protocol: bytes`: `redis-benchmark -c 50` over `set` and `get`, the
//!   two commands whose replies and state `bytes` keeps identical under concurrent clients
//!   (every `SET` of redis-benchmark writes the same value);
//! - (rr) redis replicas, `protocol: redis` (conflicting requests ordered): `set`, `get`, `incr`
//!   and `lpush`;
//! - (hb) nginx replicas under a frozen clock, `protocol: bytes`: `wrk -c50` on a small page;
//! - (hr) nginx replicas under their real clock, `protocol: http` (`Date` masked): the same.
//!
//! Each redis variant runs its commands twice: with redis-benchmark's single key, where every
//! write conflicts with every other request, and with `-r 100000` (random keys: conflicts are
//! rare; `lpush` has a single key either way), one redis-benchmark per command, domain-nv's
//! CPU time read before and after each (CPU µs per request: the figure that moves least on a
//! shared machine). The variants run interleaved for `--rounds`
//! rounds; after each variant the faults, the client connections reset (no quorum, timed out)
//! and the masked differences of its run are printed, and the report gives each rate's median
//! and min-max, the aims and the ratios redis/bytes (the cost of ordering) per workload.
//! `--variants rb,rr` runs only those (e.g. to compare two builds of domain-nv quickly).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nv_schema::config::Protocol;
use nv_testbed::{Group, GroupSpec, NginxClock, Service, SERVICE_ADDRESS};

use crate::host;
use crate::measure::Settings;
use crate::protocol_report::{json, report, Round, Run};

/// The variants, in the order each round runs them: key, description.
pub const VARIANTS: [(&str, &str); 4] = [
    ("rb", "redis x3, protocol bytes"),
    ("rr", "redis x3, protocol redis (ordered)"),
    ("hb", "nginx x3, frozen clock, protocol bytes"),
    ("hr", "nginx x3, real clock, protocol http (Date masked)"),
];

/// The redis-benchmark tests of protocol `bytes` (those it keeps correct under concurrency).
const BYTES_TESTS: [&str; 2] = ["set", "get"];
/// The redis-benchmark tests of protocol `redis`.
const REDIS_TESTS: [&str; 4] = ["set", "get", "incr", "lpush"];
/// The key space of the random-key runs (`-r`).
pub const RANDOM_KEYS: u32 = 100_000;
/// Client connections of every load generator.
const CLIENTS: u32 = 50;
/// The longest one load generator may run before the round fails.
const CLIENT_LIMIT: Duration = Duration::from_secs(600);

/// Runs the protocol variants (those of `--variants` in `args`, else all) for `rounds` rounds,
/// prints the report and writes the JSON to `result_path`. Nothing with `--dns-only` (`make
/// bench BENCH_ARGS=--dns-only` measures DNS alone).
pub fn run(
    domain_nv: &Path,
    result_path: &Path,
    rounds: usize,
    set: &Settings,
    args: &[String],
) -> Result<()> {
    if set.dns_only {
        eprintln!("--dns-only: the protocol variants are skipped");
        return Ok(());
    }
    let chosen = chosen_variants(args)?;
    let cores = host::cores();
    let requests = set.redis_requests * 4;
    let mut done = Vec::new();
    for round in 1..=rounds {
        let load1_start = host::load1()?;
        let mut runs = Vec::new();
        for (key, name) in VARIANTS {
            if !chosen.contains(&key) {
                // not measured: no rates, left out of the report
                runs.push(Run::default());
                continue;
            }
            eprintln!("== round {round}/{rounds} ({key}) {name}");
            let r = run_variant(key, domain_nv, set, requests)?;
            eprintln!(
                "   {:?}\n   domain-nv CPU us/request {:?}\n   faults {}, client connections reset {}, masked {}, client errors {}",
                r.rates, r.cpu_us, r.faults, r.resets, r.masked, r.client_errors
            );
            runs.push(r);
        }
        let r = Round {
            runs,
            load1_start,
            load1_end: host::load1()?,
        };
        host::warn_if_busy(r.load1_start, r.load1_end, cores);
        done.push(r);
    }
    print!("{}", report(&done, cores)?);
    let text = serde_json::to_string_pretty(&json(set, requests, &done, cores))? + "\n";
    std::fs::write(result_path, text)
        .with_context(|| format!("writing {}", result_path.display()))?;
    println!("\nresults written to {}", result_path.display());
    Ok(())
}

/// The variant keys of `--variants a,b` in `args`, else every variant's.
fn chosen_variants(args: &[String]) -> Result<Vec<&'static str>> {
    let Some(i) = args.iter().position(|a| a == "--variants") else {
        return Ok(VARIANTS.iter().map(|(k, _)| *k).collect());
    };
    let list = args
        .get(i + 1)
        .context("--variants takes a list like rb,rr")?;
    list.split(',')
        .map(|k| {
            VARIANTS
                .iter()
                .map(|(key, _)| *key)
                .find(|key| *key == k)
                .with_context(|| format!("--variants: no variant {k:?} (rb, rr, hb, hr)"))
        })
        .collect()
}

/// Runs variant `key` once.
fn run_variant(key: &str, domain_nv: &Path, set: &Settings, requests: u32) -> Result<Run> {
    match key {
        "rb" => redis(domain_nv, Protocol::Bytes, &BYTES_TESTS, set, requests),
        "rr" => redis(domain_nv, Protocol::Redis, &REDIS_TESTS, set, requests),
        "hb" => nginx(domain_nv, Protocol::Bytes, NginxClock::Frozen, set),
        _ => nginx(domain_nv, Protocol::Http, NginxClock::Real, set),
    }
}

/// The group spec of one variant.
fn spec(service: Service, protocol: Protocol, set: &Settings) -> GroupSpec {
    let mut spec = GroupSpec::new("majority", 3, service);
    spec.protocol = protocol;
    spec.straggler_ms = 5000;
    spec.mtu = set.mtu;
    spec.tap_offload = set.tap_offload;
    spec
}

/// redis replicas under `protocol`: redis-benchmark over `tests`, single key then random keys.
fn redis(
    domain_nv: &Path,
    protocol: Protocol,
    tests: &[&str],
    set: &Settings,
    requests: u32,
) -> Result<Run> {
    let prefix = if protocol == Protocol::Bytes {
        "nvb-pb"
    } else {
        "nvb-pr"
    };
    let g = Group::start(
        prefix,
        spec(Service::Redis, protocol, set),
        domain_nv,
        |_, _| Ok(()),
    )?;
    let pid = g.lab.pid("domain-nv").context("domain-nv's pid")?;
    let mut run = Run::default();
    let (c, n, r) = (
        CLIENTS.to_string(),
        requests.to_string(),
        RANDOM_KEYS.to_string(),
    );
    let limit = CLIENT_LIMIT.as_secs().to_string();
    for random in [false, true] {
        for test in tests {
            let mut argv = vec![
                "timeout",
                &limit,
                "redis-benchmark",
                "-h",
                SERVICE_ADDRESS,
                "-c",
                &c,
                "-n",
                &n,
                "-t",
                test,
                "-q",
            ];
            if random {
                argv.extend(["-r", &r]);
            }
            let cpu0 = host::cpu_seconds(pid)?;
            let out = checked(g.client(&argv)?, "redis-benchmark")?;
            let cpu = host::cpu_seconds(pid)? - cpu0;
            let keys = if random { "random" } else { "one" };
            let workload = format!("{test} {keys}");
            for (t, rate) in parse_redis_benchmark(&out)? {
                if t != *test {
                    bail!("redis-benchmark -t {test} reported {t}:\n{out}");
                }
                run.rates.push((workload.clone(), rate));
            }
            run.cpu_us.push((workload, cpu * 1e6 / f64::from(requests)));
        }
    }
    settle(&g, &mut run)?;
    Ok(run)
}

/// nginx replicas under `clock` and `protocol`: wrk -c50 on a 512-byte page.
fn nginx(domain_nv: &Path, protocol: Protocol, clock: NginxClock, set: &Settings) -> Result<Run> {
    let mut spec = spec(Service::Nginx, protocol, set);
    spec.nginx_clock = clock;
    let prefix = if protocol == Protocol::Bytes {
        "nvb-ph"
    } else {
        "nvb-pt"
    };
    let g = Group::start(prefix, spec, domain_nv, |i, g| {
        Ok(std::fs::write(g.www(i).join("small"), "x".repeat(512))?)
    })?;
    let (d, limit) = (
        format!("{}s", set.seconds),
        CLIENT_LIMIT.as_secs().to_string(),
    );
    let url = format!("http://{SERVICE_ADDRESS}/small");
    let argv = ["timeout", &limit, "wrk", "-t2", "-c50", "-d", &d, &url];
    let pid = g.lab.pid("domain-nv").context("domain-nv's pid")?;
    let cpu0 = host::cpu_seconds(pid)?;
    let out = checked(g.client(&argv)?, "wrk")?;
    let cpu = host::cpu_seconds(pid)? - cpu0;
    let w = parse_wrk(&out)?;
    let mut run = Run::default();
    run.rates.push(("http get".into(), w.rate));
    run.cpu_us
        .push(("http get".into(), cpu * 1e6 / w.requests.max(1) as f64));
    run.client_errors = w.errors;
    settle(&g, &mut run)?;
    Ok(run)
}

/// Waits (bounded) until the group's client connections are over, then records its faults,
/// reset client connections and masked differences in `run`.
fn settle(g: &Group, run: &mut Run) -> Result<()> {
    let s = g.wait_status("every connection over", Duration::from_secs(20), |s| {
        s.services[0].active == 0
    })?;
    run.faults = s.replicas.iter().map(|r| r.faults.len() as u64).sum();
    let svc = &s.services[0];
    run.resets = svc.no_quorum + svc.timed_out;
    run.masked = svc.masked;
    Ok(())
}

/// The stdout of a command that succeeded.
fn checked(out: std::process::Output, what: &str) -> Result<String> {
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Each test's requests/s from `redis-benchmark -q` output (`SET: 12345.67 requests per
/// second, ...`; progress lines end with `\r`), in output order, test names in lower case.
fn parse_redis_benchmark(out: &str) -> Result<Vec<(String, f64)>> {
    let rates: Vec<(String, f64)> = out
        .split(['\r', '\n'])
        .filter_map(|l| {
            let (test, rest) = l.split_once(": ")?;
            let (rate, tail) = rest.split_once(' ')?;
            tail.starts_with("requests per second")
                .then(|| Some((test.to_lowercase(), rate.parse().ok()?)))?
        })
        .collect();
    if rates.is_empty() {
        bail!("cannot parse redis-benchmark output:\n{out}");
    }
    Ok(rates)
}

/// What wrk reported.
#[derive(Debug, PartialEq)]
struct WrkOutput {
    /// Requests/s.
    rate: f64,
    /// Requests completed.
    requests: u64,
    /// Socket errors plus non-2xx/3xx responses.
    errors: u64,
}

/// The rate, the request count and the errors from wrk's output.
fn parse_wrk(out: &str) -> Result<WrkOutput> {
    let mut rate = None;
    let mut requests = None;
    let mut errors = 0;
    for line in out.lines().map(str::trim) {
        if let Some((n, _)) = line.split_once(" requests in ") {
            requests = n.parse().ok();
        } else if let Some(v) = line.strip_prefix("Requests/sec:") {
            rate = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            // `connect 0, read 0, write 0, timeout 0`
            for part in v.split(',') {
                let n = part
                    .split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse::<u64>().ok());
                errors += n.context("wrk's socket errors")?;
            }
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            errors += v.trim().parse::<u64>().context("wrk's non-2xx count")?;
        }
    }
    match (rate, requests) {
        (Some(rate), Some(requests)) => Ok(WrkOutput {
            rate,
            requests,
            errors,
        }),
        _ => bail!("cannot parse wrk output:\n{out}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_redis_benchmark_test_is_parsed() {
        let out = "SET: rps=0.0 (overall: nan) avg_msec=nan\rSET: 1234.50 requests per second, p50=0.239 msec\n\
                   GET: 2000.00 requests per second, p50=0.1 msec\nLPUSH: 99.00 requests per second\n";
        let rates = parse_redis_benchmark(out).unwrap();
        assert_eq!(
            rates,
            vec![
                ("set".to_string(), 1234.5),
                ("get".to_string(), 2000.0),
                ("lpush".to_string(), 99.0)
            ]
        );
        assert!(parse_redis_benchmark("SET: rps=0.0 (overall: nan)\r").is_err());
    }

    #[test]
    fn variants_are_chosen_by_key() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(chosen_variants(&args(&[])).unwrap().len(), VARIANTS.len());
        assert_eq!(
            chosen_variants(&args(&["--variants", "rr,hb"])).unwrap(),
            vec!["rr", "hb"]
        );
        assert!(chosen_variants(&args(&["--variants", "rr,zz"])).is_err());
        assert!(chosen_variants(&args(&["--variants"])).is_err());
    }

    #[test]
    fn wrk_rate_and_errors_are_parsed() {
        let clean =
            "Running 2s test\n  1000 requests in 2.00s, 1.2MB read\nRequests/sec:    500.25\n";
        let w = |rate, requests, errors| WrkOutput {
            rate,
            requests,
            errors,
        };
        assert_eq!(parse_wrk(clean).unwrap(), w(500.25, 1000, 0));
        let bad = "  20 requests in 2.00s, 1.2MB read\n  Socket errors: connect 0, read 3, write 1, timeout 2\n  Non-2xx or 3xx responses: 4\nRequests/sec: 10.0\n";
        assert_eq!(parse_wrk(bad).unwrap(), w(10.0, 20, 10));
        assert!(
            parse_wrk("Requests/sec: 10.0\n").is_err(),
            "no request count"
        );
        assert!(parse_wrk("garbage").is_err());
    }
}
