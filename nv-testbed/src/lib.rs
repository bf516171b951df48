//! Network-namespace labs for domain-nv without Xen: a client namespace and one namespace per
//! replica, each reached through a TAP device that domain-nv serves; real services (redis-server,
//! nginx) and real clients (redis-cli, curl) run inside them as ordinary processes.
//!
//! Used by `make demo` (`nv-demo`) and by the end-to-end tests. Needs root. Everything a lab
//! creates is removed when it is dropped, and also on SIGINT/SIGTERM once
//! [`cleanup_on_signal`] is installed.
#![forbid(unsafe_code)]

pub mod dns;
pub mod lab_dns;
pub mod loss;
pub mod netstat;
pub mod pipelined;
pub mod soak;

use std::fs::File;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::unistd::Pid;
use nv_schema::config::{
    Config, ExternalConfig, InputOrdering, Ipv4Cidr, LinkConfig, PolicyName, Probation, Protocol,
    ReplicaConfig, ServiceConfig, Transport,
};
use nv_schema::status::Status;

/// The children of process `pid` (from `/proc/<pid>/task/*/children`; none if it is gone).
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// A command line of owned words as the `&str` words [`Lab::exec`] takes.
pub fn argv(words: &[String]) -> Vec<&str> {
    words.iter().map(String::as_str).collect()
}

/// Namespaces and processes of every live lab, for cleanup on a signal.
fn registry() -> &'static Mutex<(Vec<String>, Vec<u32>)> {
    static REGISTRY: OnceLock<Mutex<(Vec<String>, Vec<u32>)>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new((Vec::new(), Vec::new())))
}

/// Blocks SIGINT/SIGTERM in the calling thread (call it first in `main`, before other threads
/// start) and starts a thread that, on either signal, kills every lab process, removes every lab
/// namespace and exits with status 130.
pub fn cleanup_on_signal() -> Result<()> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.thread_block().context("blocking signals")?;
    std::thread::spawn(move || {
        if let Ok(sig) = set.wait() {
            eprintln!("\n{sig:?}: cleaning up");
            let (namespaces, pids) = registry().lock().map(|r| r.clone()).unwrap_or_default();
            for pid in pids {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            for ns in namespaces {
                remove_netns(&ns);
            }
            std::process::exit(130);
        }
    });
    Ok(())
}

fn remove_netns(ns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<i32>() {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
    let _ = Command::new("ip")
        .args(["netns", "del", ns])
        .stderr(Stdio::null())
        .status();
}

/// Runs a command, failing with its stderr if it does not succeed.
pub fn run(argv: &[&str]) -> Result<Output> {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .with_context(|| format!("running {}", argv.join(" ")))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            argv.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// The value after `flag` in a program's arguments, parsed; `None` if the flag is absent, an error
/// if its value is missing or does not parse.
pub fn flag_value<T: std::str::FromStr>(args: &[String], flag: &str) -> Result<Option<T>> {
    match args.iter().position(|a| a == flag) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .map(Some)
            .with_context(|| format!("{flag} takes a value")),
        None => Ok(None),
    }
}

/// Waits until `f` is true, polling every 20 ms, for at most `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Result<()> {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return Ok(());
        }
        if Instant::now() >= end {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A set of network namespaces and processes, removed on drop.
pub struct Lab {
    prefix: String,
    dir: PathBuf,
    namespaces: Vec<String>,
    procs: Vec<(String, Child)>,
    /// How many seconds ahead of the real clock the next nginx service runs; `None`: a frozen
    /// clock (every replica's `Date` is the same).
    nginx_ahead: Option<u64>,
}

impl Lab {
    /// A new lab whose namespaces are named `<prefix>-…` (stale ones from an earlier run with the
    /// same prefix are removed first). Logs and configs go to a fresh directory under /tmp.
    pub fn new(prefix: &str) -> Result<Lab> {
        if !nix::unistd::geteuid().is_root() {
            bail!("network-namespace labs need root");
        }
        let list = run(&["ip", "netns", "list"])?;
        for line in String::from_utf8_lossy(&list.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or_default();
            if name.starts_with(&format!("{prefix}-")) {
                remove_netns(name);
            }
        }
        let dir = std::env::temp_dir().join(format!("{prefix}.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Lab {
            prefix: prefix.to_owned(),
            dir,
            namespaces: Vec::new(),
            procs: Vec::new(),
            nginx_ahead: None,
        })
    }

    /// nginx services started from now on run under the real clock, `ahead` seconds ahead of
    /// it (`None`: under a frozen clock, the default).
    pub fn set_nginx_clock(&mut self, ahead: Option<u64>) {
        self.nginx_ahead = ahead;
    }

    /// The lab's directory for logs and configs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates namespace `<prefix>-<suffix>` with only loopback (up). Returns its name.
    pub fn add_netns_plain(&mut self, suffix: &str) -> Result<String> {
        let ns = format!("{}-{suffix}", self.prefix);
        run(&["ip", "netns", "add", &ns])?;
        self.namespaces.push(ns.clone());
        registry()
            .lock()
            .map_err(|_| anyhow::anyhow!("registry poisoned"))?
            .0
            .push(ns.clone());
        run(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Creates namespace `<prefix>-<suffix>` with loopback up and a persistent TAP device `tap`
    /// carrying `cidr` (e.g. `10.77.1.2/24`) and a default route via `gateway` if given. Returns
    /// the namespace name.
    pub fn add_netns(
        &mut self,
        suffix: &str,
        tap: &str,
        cidr: &str,
        gateway: Option<&str>,
    ) -> Result<String> {
        let ns = self.add_netns_plain(suffix)?;
        run(&["ip", "-n", &ns, "tuntap", "add", "dev", tap, "mode", "tap"])?;
        run(&["ip", "-n", &ns, "addr", "add", cidr, "dev", tap])?;
        run(&["ip", "-n", &ns, "link", "set", tap, "up"])?;
        if let Some(gw) = gateway {
            run(&["ip", "-n", &ns, "route", "add", "default", "via", gw])?;
        }
        Ok(ns)
    }

    /// Creates a veth pair between namespaces `a` and `b` (interfaces `if_a`, `if_b`) with the
    /// given addresses (an empty one: none), both ends up.
    pub fn add_veth(
        &mut self,
        a: &str,
        if_a: &str,
        cidr_a: &str,
        b: &str,
        if_b: &str,
        cidr_b: &str,
    ) -> Result<()> {
        run(&[
            "ip", "link", "add", if_a, "netns", a, "type", "veth", "peer", "name", if_b, "netns", b,
        ])?;
        for (ns, ifname, cidr) in [(a, if_a, cidr_a), (b, if_b, cidr_b)] {
            if !cidr.is_empty() {
                run(&["ip", "-n", ns, "addr", "add", cidr, "dev", ifname])?;
            }
        }
        run(&["ip", "-n", a, "link", "set", if_a, "up"])?;
        run(&["ip", "-n", b, "link", "set", if_b, "up"])?;
        Ok(())
    }

    /// The www root of the nginx started as `label`.
    pub fn www(&self, label: &str) -> PathBuf {
        self.dir.join(format!("www-{label}"))
    }

    /// Starts `service` in namespace `ns` as process `label` (state under `<dir>/<label>/`).
    pub fn start_service(&mut self, label: &str, ns: &str, service: &Service) -> Result<u32> {
        let dir = self.dir.join(label);
        std::fs::create_dir_all(&dir)?;
        match service {
            Service::Redis => {
                let d = dir.to_string_lossy().into_owned();
                self.spawn(
                    label,
                    Some(ns),
                    &[
                        "redis-server",
                        "--port",
                        "6379",
                        "--bind",
                        "0.0.0.0",
                        "--protected-mode",
                        "no",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        // Room for 10,000 client connections (nv-membench) and the probes.
                        "--maxclients",
                        "20000",
                        "--dir",
                        &d,
                    ],
                )
            }
            Service::Nginx => {
                let www = self.www(label);
                std::fs::create_dir_all(&www)?;
                let conf = dir.join("nginx.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "daemon off;\nmaster_process off;\nworker_processes 1;\nenv FAKETIME;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nworker_rlimit_nofile 16384;\nevents {{ worker_connections 16000; }}\n\
                         http {{ access_log off; sendfile on; keepalive_requests 1000000; client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
                         server {{ listen 80; root {w}; }} }}\n",
                        d = dir.display(),
                        w = www.display()
                    ),
                )?;
                let c = conf.to_string_lossy().into_owned();
                // Replicas must be deterministic: a frozen clock makes nginx's Date header
                // identical on every replica (RESH assumes deterministic services). nginx clears
                // its environment at startup; `env FAKETIME` keeps the variable, else libfaketime
                // finds it gone when it re-reads it (every 10 s) and each replica's clock jumps to
                // the real time at its own moment (different Date headers, keepalive_time expiry).
                // (`env` execs, so the pid is nginx's own.)
                let preload = format!("LD_PRELOAD={LIBFAKETIME}");
                let frozen = match self.nginx_ahead {
                    None => format!("FAKETIME={FROZEN_TIME}"),
                    Some(0) => return self.spawn(label, Some(ns), &["nginx", "-c", &c]),
                    Some(s) => format!("FAKETIME=+{s}"),
                };
                self.spawn(
                    label,
                    Some(ns),
                    &["env", &preload, &frozen, "nginx", "-c", &c],
                )
            }
            Service::BusyboxHttpd => {
                let www = self.www(label);
                std::fs::create_dir_all(&www)?;
                let w = www.to_string_lossy().into_owned();
                self.spawn(
                    label,
                    Some(ns),
                    &["busybox", "httpd", "-f", "-p", "80", "-h", &w],
                )
            }
            Service::Nsd { round_robin } => {
                let conf = dns::write_nsd(&dir, *round_robin)?;
                let c = conf.to_string_lossy().into_owned();
                self.spawn(label, Some(ns), &["nsd", "-d", "-c", &c])
            }
        }
    }

    /// Waits (bounded) until `service` answers at `addr` from inside namespace `ns`.
    pub fn wait_service(&self, ns: &str, addr: &str, service: &Service) -> Result<()> {
        wait_until(
            &format!("{service:?} at {addr} in {ns}"),
            Duration::from_secs(10),
            || match service {
                Service::Redis => self
                    .exec(ns, &["redis-cli", "-h", addr, "ping"])
                    .is_ok_and(|o| o.stdout.starts_with(b"PONG")),
                Service::Nginx | Service::BusyboxHttpd => self
                    .exec(
                        ns,
                        &["curl", "-s", "-o", "/dev/null", &format!("http://{addr}/")],
                    )
                    .is_ok_and(|o| o.status.success()),
                Service::Nsd { .. } => self
                    .exec(ns, &argv(&dns::dig(addr, dns::MAIL_NAME)))
                    .is_ok_and(|o| o.status.success() && !o.stdout.is_empty()),
            },
        )
    }

    /// Gives every file in `www` the same modification time (nginx's Last-Modified and ETag
    /// derive from it, so replicas must agree); directories are left as they are.
    pub fn freeze_mtimes(www: &Path) -> Result<()> {
        for entry in std::fs::read_dir(www)? {
            let entry = entry?;
            if !entry.file_type()?.is_file() {
                continue;
            }
            let file = File::options().write(true).open(entry.path())?;
            file.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(FROZEN_EPOCH_SECS))?;
        }
        Ok(())
    }

    /// Starts `argv` (in namespace `ns` if given) as `label`, output to `<dir>/<label>.log`.
    pub fn spawn(&mut self, label: &str, ns: Option<&str>, argv: &[&str]) -> Result<u32> {
        let log = File::create(self.dir.join(format!("{label}.log")))?;
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).args(argv);
                c
            }
            None => {
                let mut c = Command::new(argv[0]);
                c.args(&argv[1..]);
                c
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {label}: {}", argv.join(" ")))?;
        let pid = child.id();
        registry()
            .lock()
            .map_err(|_| anyhow::anyhow!("registry poisoned"))?
            .1
            .push(pid);
        self.procs.push((label.to_owned(), child));
        Ok(pid)
    }

    /// Runs `argv` in namespace `ns` to completion (not checked: the caller asserts on it).
    pub fn exec(&self, ns: &str, argv: &[&str]) -> Result<Output> {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(argv)
            .output()
            .with_context(|| format!("running {} in {ns}", argv.join(" ")))
    }

    /// Runs `argv` in namespace `ns` with `input` on its stdin.
    pub fn exec_with_input(&self, ns: &str, argv: &[&str], input: &[u8]) -> Result<Output> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(argv)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut stdin = child.stdin.take().context("stdin")?;
        let data = input.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&data));
        let out = child.wait_with_output()?;
        writer
            .join()
            .map_err(|_| anyhow::anyhow!("stdin writer panicked"))??;
        Ok(out)
    }

    /// Sends `sig` to the process started as `label` (for `ip netns exec`, the service itself:
    /// it execs the command).
    pub fn signal(&self, label: &str, sig: Signal) -> Result<()> {
        let pid = self
            .pid(label)
            .with_context(|| format!("no process {label}"))?;
        kill(Pid::from_raw(pid as i32), sig).with_context(|| format!("signal {sig:?} to {label}"))
    }

    /// Stops the process started as `label` (SIGKILL), waits for it to exit and forgets it, so
    /// that `label` can be started again.
    pub fn stop(&mut self, label: &str) -> Result<()> {
        let i = self
            .procs
            .iter()
            .position(|(l, _)| l == label)
            .with_context(|| format!("no process {label}"))?;
        let (_, mut child) = self.procs.remove(i);
        let _ = child.kill();
        child
            .wait()
            .with_context(|| format!("waiting for {label}"))?;
        Ok(())
    }

    /// Waits up to `timeout` for the process started as `label` to exit by itself, forgets it
    /// (so that `label` can be started again) and returns how it exited.
    pub fn wait_exit(&mut self, label: &str, timeout: Duration) -> Result<ExitStatus> {
        let i = self
            .procs
            .iter()
            .position(|(l, _)| l == label)
            .with_context(|| format!("no process {label}"))?;
        let end = Instant::now() + timeout;
        loop {
            if let Some(status) = self.procs[i].1.try_wait()? {
                self.procs.remove(i);
                return Ok(status);
            }
            if Instant::now() >= end {
                bail!("{label} did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The pid of the process started as `label`.
    pub fn pid(&self, label: &str) -> Option<u32> {
        self.procs
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, c)| c.id())
    }

    /// The log of the process started as `label`.
    pub fn log(&self, label: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{label}.log"))).unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, child) in &mut self.procs {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
        for ns in &self.namespaces {
            remove_netns(ns);
        }
        if let Ok(mut r) = registry().lock() {
            r.0.retain(|n| !self.namespaces.contains(n));
            let pids: Vec<u32> = self.procs.iter().map(|(_, c)| c.id()).collect();
            r.1.retain(|p| !pids.contains(p));
        }
        if std::env::var_os("NV_KEEP_LAB").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The service the replicas run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// Debian's redis-server on port 6379, no persistence.
    Redis,
    /// Debian's nginx on port 80, serving `<lab dir>/www-<label>/`, under a frozen clock.
    Nginx,
    /// Debian's busybox httpd on port 80, serving `<lab dir>/www-<label>/` under the real clock
    /// (as the Xen lab's replicas do): HTTP/1.1 replies with `Date`, `Last-Modified`, `ETag`,
    /// `Content-Length` and `Connection: close`, one request per connection.
    BusyboxHttpd,
    /// Debian's nsd on UDP port 53, authoritative for [`dns::ZONE`] (zone file
    /// `<lab dir>/<label>/example.test.zone`), rotating RRsets if `round_robin`.
    Nsd {
        /// nsd's `round-robin`: each answer's RRsets rotated by one more.
        round_robin: bool,
    },
}

impl Service {
    /// The port the service listens on.
    pub fn port(&self) -> u16 {
        match self {
            Service::Redis => 6379,
            Service::Nginx | Service::BusyboxHttpd => 80,
            Service::Nsd { .. } => 53,
        }
    }

    /// The service as domain-nv's config declares it.
    pub fn config(&self) -> ServiceConfig {
        let port = self.port();
        match self {
            Service::Redis => ServiceConfig::tcp("redis", port, port),
            Service::Nginx | Service::BusyboxHttpd => ServiceConfig::tcp("http", port, port),
            Service::Nsd { .. } => ServiceConfig {
                transport: Transport::Udp,
                protocol: Protocol::Dns,
                ..ServiceConfig::tcp("dns", port, port)
            },
        }
    }
}

/// How to build a replica group.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    /// `majority`, `unanimous` or `primary-backup`.
    pub policy: String,
    /// Number of replicas.
    pub replicas: usize,
    /// What they run.
    pub service: Service,
    /// Further services each replica runs next to `service` (each one more service in
    /// domain-nv's config; at most one of each kind in all, as each has its own port). Their
    /// processes are labelled `<replica>-<port>`.
    pub also: Vec<Service>,
    /// Straggler deadline.
    pub straggler_ms: u64,
    /// Per-replica buffer bound.
    pub buffer_limit: usize,
    /// Reach clients through a veth read with `AF_PACKET` (a NIC, as in the NV domain) instead
    /// of a TAP device.
    pub raw_external: bool,
    /// The raw external link exchanges TCP segments of up to 64 KiB with the veth (`offload`
    /// in its link config, `PACKET_VNET_HDR`); off: one MTU-sized frame per read or write.
    pub raw_offload: bool,
    /// IP MTU of every link (TAP devices and domain-nv alike).
    pub mtu: usize,
    /// domain-nv's TAP links exchange TCP segments of up to 64 KiB with the namespaces
    /// (`offload` in its link config); off: one MTU-sized frame per read or write.
    pub tap_offload: bool,
    /// How much a joining replica must agree before it votes (`probation` in the config).
    pub probation: Probation,
    /// The service's `protocol` in the config (default `bytes`).
    pub protocol: Protocol,
    /// The service's `ordering` in the config (default `none`).
    pub ordering: InputOrdering,
    /// The clock nginx replicas run under (default frozen).
    pub nginx_clock: NginxClock,
}

/// The clock nginx replicas run under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NginxClock {
    /// One frozen instant on every replica: their `Date` headers are identical.
    Frozen,
    /// The real clock: `Date` headers differ when replicas answer across a second boundary.
    Real,
    /// Replica `i` runs `i` times this many seconds ahead of the real clock: every `Date`
    /// differs.
    Skewed(u64),
}

impl GroupSpec {
    /// Defaults: 1 s straggler deadline, 1 MiB buffer bound, MTU 1500, TAP and raw offload on, the
    /// default probation, protocol `bytes` without ordering, a frozen clock.
    pub fn new(policy: &str, replicas: usize, service: Service) -> GroupSpec {
        GroupSpec {
            policy: policy.to_owned(),
            replicas,
            service,
            also: Vec::new(),
            straggler_ms: 1000,
            buffer_limit: 1 << 20,
            raw_external: false,
            raw_offload: true,
            mtu: 1500,
            tap_offload: true,
            probation: Probation::default(),
            protocol: Protocol::Bytes,
            ordering: InputOrdering::None,
            nginx_clock: NginxClock::Frozen,
        }
    }
}

/// The frozen wall-clock time nginx replicas run at (via libfaketime).
const FROZEN_TIME: &str = "2026-01-01 00:00:00";
/// libfaketime (Debian package `faketime`).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
/// The same instant as seconds since the epoch (file mtimes).
const FROZEN_EPOCH_SECS: u64 = 1_767_225_600;

/// Address of domain-nv on the client link (what clients connect to).
pub const SERVICE_ADDRESS: &str = "10.77.0.1";

/// A client namespace, N replica namespaces running a service, and domain-nv between them.
pub struct Group {
    /// The underlying lab.
    pub lab: Lab,
    /// The client's namespace.
    pub client_ns: String,
    /// The replicas' namespaces, in order.
    pub replica_ns: Vec<String>,
    /// The replicas' names, in order: `r<i>` at the start, a new name after
    /// [`Group::replace_replica`].
    pub replica_names: Vec<String>,
    /// The spec it was built from.
    pub spec: GroupSpec,
    /// Each replica's subnet: `10.77.<net>.0/24`.
    nets: Vec<u8>,
    status_path: PathBuf,
    config_path: PathBuf,
}

impl Group {
    /// Builds the namespaces, starts the replicas' service and waits until each answers inside
    /// its namespace; `prepare(i, group)` then runs for each replica (e.g. to load data) before
    /// domain-nv (the binary at `domain_nv`) starts and reports ready.
    pub fn start(
        prefix: &str,
        spec: GroupSpec,
        domain_nv: &Path,
        mut prepare: impl FnMut(usize, &Group) -> Result<()>,
    ) -> Result<Group> {
        let mut lab = Lab::new(prefix)?;
        let client_ns = if spec.raw_external {
            // The client's veth peer lives in namespace `x` without an address: only domain-nv
            // (through AF_PACKET) answers on it.
            let c = lab.add_netns_plain("c")?;
            let x = lab.add_netns_plain("x")?;
            lab.add_veth(&c, "v0", "10.77.0.2/24", &x, "ext0", "")?;
            c
        } else {
            lab.add_netns("c", "ext0", "10.77.0.2/24", None)?
        };
        let mut replica_ns = Vec::new();
        for i in 0..spec.replicas {
            lab.set_nginx_clock(match spec.nginx_clock {
                NginxClock::Frozen => None,
                NginxClock::Real => Some(0),
                NginxClock::Skewed(step) => Some(i as u64 * step),
            });
            let net = i + 1;
            let ns = lab.add_netns(
                &format!("r{i}"),
                "tap0",
                &format!("10.77.{net}.2/24"),
                Some(&format!("10.77.{net}.1")),
            )?;
            lab.start_service(&format!("r{i}"), &ns, &spec.service)?;
            for extra in &spec.also {
                lab.start_service(&format!("r{i}-{}", extra.port()), &ns, extra)?;
            }
            replica_ns.push(ns);
        }
        if spec.mtu != 1500 {
            let mtu = spec.mtu.to_string();
            for ns in replica_ns.iter() {
                run(&["ip", "-n", ns, "link", "set", "tap0", "mtu", &mtu])?;
            }
            let ext = if spec.raw_external { "v0" } else { "ext0" };
            run(&["ip", "-n", &client_ns, "link", "set", ext, "mtu", &mtu])?;
        }
        let mut group = Group {
            lab,
            client_ns,
            replica_names: (0..replica_ns.len()).map(|i| format!("r{i}")).collect(),
            nets: (1..=replica_ns.len() as u8).collect(),
            replica_ns,
            status_path: PathBuf::new(),
            config_path: PathBuf::new(),
            spec,
        };
        for i in 0..group.spec.replicas {
            let ns = group.replica_ns[i].clone();
            let addr = group.replica_address(i);
            group.lab.wait_service(&ns, &addr, &group.spec.service)?;
            for extra in &group.spec.also {
                group.lab.wait_service(&ns, &addr, extra)?;
            }
            prepare(i, &group)?;
            if matches!(group.spec.service, Service::Nginx | Service::BusyboxHttpd) {
                Lab::freeze_mtimes(&group.www(i))?;
            }
        }
        group.status_path = group.lab.dir().join("status.json");
        group.config_path = group.lab.dir().join("domain-nv.yaml");
        group.start_domain_nv(domain_nv)?;
        Ok(group)
    }

    /// Starts domain-nv (the binary at `domain_nv`, labelled `domain-nv`) on this group's
    /// config and waits until it reports ready; also to start it again after it exited or was
    /// stopped (its earlier status file is removed first).
    pub fn start_domain_nv(&mut self, domain_nv: &Path) -> Result<()> {
        let _ = std::fs::remove_file(&self.status_path);
        std::fs::write(&self.config_path, self.config()?.to_yaml())?;
        let cfg = self.config_path.to_string_lossy().into_owned();
        let bin = domain_nv.to_string_lossy().into_owned();
        self.lab
            .spawn("domain-nv", None, &[&bin, "--config", &cfg])?;
        let status_path = self.status_path.clone();
        wait_until("domain-nv ready", Duration::from_secs(10), || {
            std::fs::read_to_string(&status_path)
                .ok()
                .and_then(|t| Status::from_json(&t).ok())
                .is_some_and(|s| s.ready)
        })
        .with_context(|| self.lab.log("domain-nv"))
    }

    /// The domain-nv config of this group.
    pub fn config(&self) -> Result<Config> {
        let offload = self.spec.tap_offload;
        let policy: PolicyName = self
            .spec
            .policy
            .parse()
            .map_err(|e| anyhow::anyhow!("policy: {e}"))?;
        let link = if self.spec.raw_external {
            LinkConfig::Raw {
                interface: "ext0".into(),
                netns: Some(format!("{}-x", self.lab.prefix)),
                offload: self.spec.raw_offload,
            }
        } else {
            LinkConfig::Tap {
                name: "ext0".into(),
                netns: Some(self.client_ns.clone()),
                offload,
            }
        };
        let external = ExternalConfig {
            link,
            address: format!("{SERVICE_ADDRESS}/24")
                .parse()
                .map_err(anyhow::Error::msg)?,
            gateway: None,
        };
        // The group's own service speaks the spec's protocol (a DNS service keeps `dns` unless
        // the spec names another); the extra services are plain bytes.
        let mut main = self.spec.service.config();
        if self.spec.protocol != Protocol::Bytes {
            main.protocol = self.spec.protocol;
        }
        main.ordering = self.spec.ordering;
        let services = std::iter::once(main)
            .chain(self.spec.also.iter().map(Service::config))
            .collect();
        let replicas = self
            .replica_ns
            .iter()
            .zip(&self.replica_names)
            .zip(&self.nets)
            .map(|((ns, name), &net)| ReplicaConfig {
                name: name.clone(),
                link: LinkConfig::Tap {
                    name: "tap0".into(),
                    netns: Some(ns.clone()),
                    offload,
                },
                address: Ipv4Cidr {
                    addr: Ipv4Addr::new(10, 77, net, 1),
                    prefix: 24,
                },
                replica_address: Ipv4Addr::new(10, 77, net, 2),
            })
            .collect();
        let mut config = Config::new(policy, external, services, replicas);
        if policy == PolicyName::PrimaryBackup {
            config.primary = Some(self.replica_names[0].clone());
        }
        config.straggler_timeout_ms = self.spec.straggler_ms;
        config.connect_timeout_ms = 1000;
        config.buffer_limit = self.spec.buffer_limit;
        config.mtu = self.spec.mtu;
        config.probation = self.spec.probation;
        config.status_file = Some(self.status_path.to_string_lossy().into_owned());
        Ok(config)
    }

    /// Runs a client command in the client namespace.
    pub fn client(&self, argv: &[&str]) -> Result<Output> {
        self.lab.exec(&self.client_ns, argv)
    }

    /// Runs a command in replica `i`'s namespace (directly against its service).
    pub fn replica_exec(&self, i: usize, argv: &[&str]) -> Result<Output> {
        self.lab.exec(&self.replica_ns[i], argv)
    }

    /// Replica `i`'s own address on its link.
    pub fn replica_address(&self, i: usize) -> String {
        format!("10.77.{}.2", self.nets[i])
    }

    /// Sends `commands` (one redis command a line) to replica `i`'s redis directly, with
    /// `redis-cli` in its namespace (not through domain-nv); an error if `redis-cli` fails.
    pub fn redis_to_replica(&self, i: usize, commands: &str) -> Result<()> {
        let out = self.lab.exec_with_input(
            &self.replica_ns[i],
            &["redis-cli", "-h", &self.replica_address(i)],
            commands.as_bytes(),
        )?;
        ensure!(
            out.status.success(),
            "redis-cli to {}: {}",
            self.replica_names[i],
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// The www root of nginx (or busybox httpd) replica `i`.
    pub fn www(&self, i: usize) -> PathBuf {
        self.lab.www(&self.replica_names[i])
    }

    /// Replaces replica `i` by a new one named `name`, as a rename in the config (e.g. `r2` ->
    /// `r2-g1`): the new replica runs the service in a new namespace on a new TAP and subnet,
    /// `prepare(i, group)` then runs for it (e.g. to give it the data), and domain-nv re-reads
    /// its rewritten config file on SIGHUP. The old replica keeps running (domain-nv drops its
    /// link). Returns once the new replica's service answers and the signal is sent.
    pub fn replace_replica(
        &mut self,
        i: usize,
        name: &str,
        prepare: impl FnOnce(usize, &Group) -> Result<()>,
    ) -> Result<()> {
        let net = self.nets.iter().max().copied().unwrap_or(0) + 1;
        let ns = self.lab.add_netns(
            name,
            "tap0",
            &format!("10.77.{net}.2/24"),
            Some(&format!("10.77.{net}.1")),
        )?;
        self.lab.start_service(name, &ns, &self.spec.service)?;
        self.replica_ns[i] = ns.clone();
        self.replica_names[i] = name.to_owned();
        self.nets[i] = net;
        self.lab
            .wait_service(&ns, &self.replica_address(i), &self.spec.service)?;
        prepare(i, self)?;
        if matches!(self.spec.service, Service::Nginx | Service::BusyboxHttpd) {
            Lab::freeze_mtimes(&self.www(i))?;
        }
        self.reload(&self.config()?)
    }

    /// Writes `config` to domain-nv's config file and sends it SIGHUP to re-read it.
    pub fn reload(&self, config: &Config) -> Result<()> {
        std::fs::write(&self.config_path, config.to_yaml())?;
        self.lab.signal("domain-nv", Signal::SIGHUP)
    }

    /// Restarts replica `i`'s service with empty state (killed, started again without its data,
    /// as a restart of a service without persistence does) and waits until it answers.
    pub fn restart_replica(&mut self, i: usize) -> Result<()> {
        let label = self.replica_names[i].clone();
        self.lab.stop(&label)?;
        let ns = self.replica_ns[i].clone();
        self.lab.start_service(&label, &ns, &self.spec.service)?;
        self.lab
            .wait_service(&ns, &self.replica_address(i), &self.spec.service)
    }

    /// Sends `sig` to replica `i`'s service.
    pub fn signal_replica(&self, i: usize, sig: Signal) -> Result<()> {
        self.lab.signal(&self.replica_names[i], sig)
    }

    /// Sends `sig` to replica `i`'s service and every process it started (nsd answers from a
    /// child process: stopping the parent alone stops nothing).
    pub fn signal_replica_tree(&self, i: usize, sig: Signal) -> Result<()> {
        let label = &self.replica_names[i];
        let pid = self
            .lab
            .pid(label)
            .with_context(|| format!("no process {label}"))?;
        let mut todo = vec![pid];
        while let Some(p) = todo.pop() {
            kill(Pid::from_raw(p as i32), sig).with_context(|| format!("signal {sig:?} to {p}"))?;
            todo.extend(children(p));
        }
        Ok(())
    }

    /// The latest status domain-nv wrote.
    pub fn status(&self) -> Result<Status> {
        let text = std::fs::read_to_string(&self.status_path).context("reading the status file")?;
        Status::from_json(&text).map_err(|e| anyhow::anyhow!("status file: {e}"))
    }

    /// Waits (bounded) until the status satisfies `pred`.
    pub fn wait_status(
        &self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&Status) -> bool,
    ) -> Result<Status> {
        let mut last = None;
        wait_until(what, timeout, || {
            last = self.status().ok();
            last.as_ref().is_some_and(&mut pred)
        })
        .with_context(|| format!("last status: {:?}", last.as_ref().map(|s| s.to_json())))?;
        self.status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A group as `Group::start` would build it, without namespaces or processes.
    fn group(spec: GroupSpec) -> Group {
        let lab = Lab {
            prefix: "nvt-cfg".into(),
            dir: PathBuf::from("/nonexistent/nvt-cfg"),
            namespaces: Vec::new(),
            procs: Vec::new(),
            nginx_ahead: None,
        };
        Group {
            lab,
            client_ns: "nvt-cfg-c".into(),
            replica_ns: (0..spec.replicas)
                .map(|i| format!("nvt-cfg-r{i}"))
                .collect(),
            replica_names: (0..spec.replicas).map(|i| format!("r{i}")).collect(),
            nets: (1..=spec.replicas as u8).collect(),
            status_path: PathBuf::from("/tmp/nvt-cfg/status.json"),
            config_path: PathBuf::from("/tmp/nvt-cfg/domain-nv.yaml"),
            spec,
        }
    }

    fn written_config(g: &Group) -> Config {
        let text = g.config().unwrap().to_yaml();
        Config::from_yaml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn lab_configs_read_as_the_lab_was_built() {
        let redis = group(GroupSpec::new("majority", 3, Service::Redis));
        let expected = "\
policy: majority
straggler_timeout_ms: 1000
connect_timeout_ms: 1000
buffer_limit: 1048576
mtu: 1500
status_file: /tmp/nvt-cfg/status.json
external:
  link: { kind: tap, name: ext0, netns: nvt-cfg-c }
  address: 10.77.0.1/24
services:
  - name: redis
    listen: 6379
    replica_port: 6379
replicas:
  - name: r0
    link: { kind: tap, name: tap0, netns: nvt-cfg-r0 }
    address: 10.77.1.1/24
    replica_address: 10.77.1.2
  - name: r1
    link: { kind: tap, name: tap0, netns: nvt-cfg-r1 }
    address: 10.77.2.1/24
    replica_address: 10.77.2.2
  - name: r2
    link: { kind: tap, name: tap0, netns: nvt-cfg-r2 }
    address: 10.77.3.1/24
    replica_address: 10.77.3.2
";
        assert_eq!(written_config(&redis), Config::from_yaml(expected).unwrap());

        let mut spec = GroupSpec::new("majority", 3, Service::Redis);
        spec.ordering = InputOrdering::Serial;
        let service = &written_config(&group(spec)).services[0];
        assert_eq!(
            (service.protocol, service.ordering),
            (Protocol::Bytes, InputOrdering::Serial)
        );
        let mut spec = GroupSpec::new("majority", 3, Service::Nginx);
        spec.protocol = Protocol::Http;
        assert_eq!(
            written_config(&group(spec)).services[0].protocol,
            Protocol::Http
        );

        let mut spec = GroupSpec::new("primary-backup", 2, Service::Nginx);
        spec.raw_external = true;
        spec.tap_offload = false;
        spec.mtu = 9000;
        spec.straggler_ms = 300;
        spec.buffer_limit = 65536;
        let nginx = group(spec);
        let expected = "\
policy: primary-backup
primary: r0
straggler_timeout_ms: 300
connect_timeout_ms: 1000
buffer_limit: 65536
mtu: 9000
status_file: /tmp/nvt-cfg/status.json
external:
  link: { kind: raw, interface: ext0, netns: nvt-cfg-x }
  address: 10.77.0.1/24
services:
  - name: http
    listen: 80
    replica_port: 80
replicas:
  - name: r0
    link: { kind: tap, name: tap0, netns: nvt-cfg-r0, offload: false }
    address: 10.77.1.1/24
    replica_address: 10.77.1.2
  - name: r1
    link: { kind: tap, name: tap0, netns: nvt-cfg-r1, offload: false }
    address: 10.77.2.1/24
    replica_address: 10.77.2.2
";
        assert_eq!(written_config(&nginx), Config::from_yaml(expected).unwrap());
        let bad = GroupSpec::new("plurality", 3, Service::Redis);
        assert!(group(bad).config().is_err());
    }
}
