//! `domain-nv`: the voting appliance binary. A small runtime around [`Appliance`]: it starts
//! (from a config file, or as a Xen driver domain from xenstore), then loops over one appliance
//! step, one poll(2) on the appliance's descriptors, the config watch and the signals, and a
//! reload in place when nvctl rewrote the config (Xen) or on SIGHUP (the config file), until
//! SIGINT or SIGTERM, or (Xen) until nvctl writes `drain` to the control node
//! (`data/domain-nv-control`, as `nvctl down` does). A first SIGINT or SIGTERM, or that
//! request, drains: the listeners close and open connections may finish for
//! `drain_timeout_ms`; then, or at a second signal, every connection left is reset and the
//! process exits 0.
#![forbid(unsafe_code)]

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use domain_nv::appliance::{Appliance, FdOwner, LinkId};
use domain_nv::config::Config;
use domain_nv::status::write_status_file;
use domain_nv::xenhost;
use netback::Netback;
use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::time::TimeSpec;
use xen::evtchn::Evtchn;
use xen::gntdev::Gntdev;
use xen::xenstore::Xenstore;

/// Shortest interval between two status file writes.
const STATUS_FILE_INTERVAL: Duration = Duration::from_millis(100);
/// Shortest interval between two status publications to xenstore.
const STATUS_XENSTORE_INTERVAL: Duration = Duration::from_millis(500);

/// Votes on the outputs of N replicas of a TCP service and sends clients only what a quorum
/// agreed on.
///
/// Without Xen: `domain-nv --config FILE` (TAP / raw links). As a Xen driver domain:
/// `domain-nv --xen` reads its config from xenstore (`data/domain-nv-config`, written by nvctl),
/// serves the replicas' vifs with its own netback and publishes its status to
/// `data/domain-nv`; as the NV domain's `/init` add `--init`.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// The YAML configuration file (required without --xen).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Validate the configuration, print a summary and exit.
    #[arg(long)]
    check: bool,
    /// Write the JSON status here (overrides `status_file` in the config).
    #[arg(long, value_name = "FILE")]
    status_file: Option<PathBuf>,
    /// Run as a Xen driver domain: config from xenstore, status to xenstore, vif links.
    #[arg(long)]
    xen: bool,
    /// Run as `/init`: mount /proc, /sys, /dev, /run, /tmp first (implies --xen).
    #[arg(long)]
    init: bool,
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let mut args = Args::parse();
    // As /init the kernel passes no arguments: being pid 1 means --init.
    if std::process::id() == 1 {
        args.init = true;
    }
    let init = args.init;
    if let Err(e) = run(args) {
        eprintln!("domain-nv: {e:#}");
        if init {
            // pid 1 must not exit: power the domain off so the toolstack sees it stop.
            xenhost::power_off();
        }
        std::process::exit(1);
    }
    if init {
        xenhost::power_off();
    }
}

/// Where the status goes.
struct StatusSinks {
    /// The JSON status file, if any.
    file: Option<PathBuf>,
    /// The NV domain's xenstore connection (Xen mode); also watches the config.
    xenstore: Option<Xenstore>,
    last_file: Option<Instant>,
    last_xenstore: Option<Instant>,
}

impl StatusSinks {
    /// Sinks that have published nothing yet.
    fn new(file: Option<PathBuf>, xenstore: Option<Xenstore>) -> StatusSinks {
        StatusSinks {
            file,
            xenstore,
            last_file: None,
            last_xenstore: None,
        }
    }

    /// Publishes if something changed and the interval allows; returns how long until it
    /// would, if it is waiting.
    fn publish(&mut self, app: &mut Appliance, now: Instant, force: bool) -> Option<Duration> {
        if !app.status().changed() && !force {
            return None;
        }
        let due =
            |last: Option<Instant>, every: Duration| force || last.is_none_or(|t| now >= t + every);
        let file_due = self.file.is_some() && due(self.last_file, STATUS_FILE_INTERVAL);
        let xs_due = self.xenstore.is_some() && due(self.last_xenstore, STATUS_XENSTORE_INTERVAL);
        if !file_due && !xs_due {
            let next = [
                (self.file.is_some(), self.last_file, STATUS_FILE_INTERVAL),
                (
                    self.xenstore.is_some(),
                    self.last_xenstore,
                    STATUS_XENSTORE_INTERVAL,
                ),
            ]
            .into_iter()
            .filter_map(|(on, last, every)| {
                on.then(|| last.map(|t| (t + every).saturating_duration_since(now)))
                    .flatten()
            })
            .min();
            return next;
        }
        let snapshot = app.status().take_snapshot();
        if let (true, Some(path)) = (file_due, &self.file) {
            if let Err(e) = write_status_file(path, &snapshot) {
                log::warn!("status file {}: {e}", path.display());
            }
            self.last_file = Some(now);
        }
        if let (true, Some(xs)) = (xs_due, &self.xenstore) {
            if let Err(e) = xenhost::publish_status(xs, &snapshot) {
                log::warn!("{e:#}");
            }
            self.last_xenstore = Some(now);
        }
        None
    }
}

/// What a start yields: the config and, in Xen mode, netback and the xenstore connection.
struct Start {
    config: Config,
    netback: Option<Netback<Gntdev, Evtchn>>,
    xenstore: Option<Xenstore>,
    /// The config as read from xenstore, to notice when nvctl rewrites it (empty without Xen).
    config_text: String,
    /// The config file (without Xen).
    config_file: Option<PathBuf>,
}

/// Xen mode: announces the domain up but not ready, waits for the config in xenstore, watches it
/// and starts netback.
fn start_xen() -> anyhow::Result<Start> {
    let xs = Xenstore::open().context("opening xenstore")?;
    let domid = xenhost::own_domid(&xs)?;
    // Up but not ready: nvctl sees the NV domain alive before it hands over the config.
    let booting = nv_schema::status::Status {
        version: nv_schema::status::SCHEMA_VERSION,
        ready: false,
        draining: false,
        updated_ms: domain_nv::status::wall_ms(),
        services: Vec::new(),
        replicas: Vec::new(),
        vifs: Vec::new(),
        links: Vec::new(),
    };
    xenhost::publish_status(&xs, &booting)?;
    log::info!("driver domain {domid}: waiting for the config in xenstore");
    let text = xenhost::wait_config(&xs, None)?;
    let config = Config::from_yaml(&text)?;
    xenhost::watch_config(&xs)?;
    let mut nb = Netback::new(
        Xenstore::open().context("opening xenstore for netback")?,
        Gntdev::open().context("opening /dev/xen/gntdev")?,
        Evtchn::open().context("opening /dev/xen/evtchn")?,
        domid,
    )
    .context("starting netback")?;
    // No `xl devd` runs in the NV domain: netback completes libxl's hotplug handshake itself.
    nb.set_hotplug_agent(true);
    Ok(Start {
        config,
        netback: Some(nb),
        xenstore: Some(xs),
        config_text: text,
        config_file: None,
    })
}

/// Without Xen: the config from its file.
fn start_local(config: Option<&Path>) -> anyhow::Result<Start> {
    let Some(path) = config else {
        bail!("--config FILE is required (or --xen)")
    };
    Ok(Start {
        config: Config::from_file(path)?,
        netback: None,
        xenstore: None,
        config_text: String::new(),
        config_file: Some(path.to_owned()),
    })
}

/// Blocks SIGINT, SIGTERM and SIGHUP and returns a descriptor that reports them.
fn signal_fd() -> anyhow::Result<SignalFd> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGINT);
    mask.add(Signal::SIGTERM);
    mask.add(Signal::SIGHUP);
    mask.thread_block().context("blocking signals")?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).context("signalfd")
}

/// What a descriptor polled by [`Runtime::poll_once`] belongs to.
#[derive(Clone, Copy)]
enum Wake {
    /// One of the appliance's descriptors.
    Appliance(FdOwner),
    /// The xenstore connection that watches the config.
    ConfigWatch,
    /// SIGINT, SIGTERM or SIGHUP.
    Signal,
}

/// The descriptors of one poll(2), each tagged with what it belongs to.
#[derive(Default)]
struct PollSet<'a> {
    wakes: Vec<Wake>,
    fds: Vec<PollFd<'a>>,
}

/// What one poll(2) reported.
struct Woken {
    /// The signal descriptor is readable.
    signalled: bool,
    /// Links whose descriptor reported an error.
    link_errors: Vec<LinkId>,
    /// Links with a frame to read, or in error.
    readable: Vec<LinkId>,
}

impl<'a> PollSet<'a> {
    /// Adds `fd`, waited on for input.
    fn push(&mut self, wake: Wake, fd: BorrowedFd<'a>) {
        self.wakes.push(wake);
        self.fds.push(PollFd::new(fd, PollFlags::POLLIN));
    }

    /// Waits up to `wait` (at most a minute) for any descriptor. ppoll(2) takes the wait to
    /// the nanosecond: poll(2)'s milliseconds would truncate a timer less than 1 ms away (a
    /// delayed ACK, a straggler's clock) to 0 and the loop would spin until it fell due.
    fn wait(&mut self, wait: Duration) -> anyhow::Result<Woken> {
        let timeout = TimeSpec::from_duration(wait.min(Duration::from_secs(60)));
        match ppoll(&mut self.fds, Some(timeout), None) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("ppoll"),
        }
        let bad = PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL;
        let mut woken = Woken {
            signalled: false,
            link_errors: Vec::new(),
            readable: Vec::new(),
        };
        for (wake, fd) in self.wakes.iter().zip(&self.fds) {
            let revents = fd.revents().unwrap_or(PollFlags::empty());
            match wake {
                Wake::Appliance(FdOwner::Link(link)) => {
                    if revents.intersects(bad) {
                        woken.link_errors.push(*link);
                    }
                    // a link in error is read too: the read reports (and counts) its error
                    if revents.intersects(bad | PollFlags::POLLIN) {
                        woken.readable.push(*link);
                    }
                }
                Wake::Signal => woken.signalled = revents.contains(PollFlags::POLLIN),
                _ => {}
            }
        }
        Ok(woken)
    }
}

/// What the signals received in one poll ask for.
#[derive(Default)]
struct Signalled {
    /// SIGINT or SIGTERM: stop.
    stop: bool,
    /// SIGHUP: re-read the config file.
    reload: bool,
}

/// What surrounds the appliance: where its status goes, the signals, the config it runs.
struct Runtime {
    sinks: StatusSinks,
    signals: SignalFd,
    /// The config file (without Xen), re-read on SIGHUP.
    config_file: Option<PathBuf>,
    /// The config text from xenstore the appliance runs (empty without Xen).
    config_text: String,
}

impl Runtime {
    /// One appliance round and the status publication; how long the loop may then wait.
    fn step(&mut self, app: &mut Appliance, now: Instant) -> Duration {
        let wait = app.step(now);
        match self.sinks.publish(app, now, false) {
            Some(d) => wait.min(d),
            None => wait,
        }
    }

    /// Waits up to `wait` for a frame, a netback or config event or a signal; marks links whose
    /// descriptor reported an error down and tells the appliance which links have frames to
    /// read. Returns what the signals received ask for (the signals are consumed: each one is
    /// reported once).
    fn poll_once(&self, app: &mut Appliance, wait: Duration) -> anyhow::Result<Signalled> {
        let woken = {
            let mut set = PollSet::default();
            for f in app.fds() {
                set.push(Wake::Appliance(f.owner), f.fd);
            }
            if let Some(xs) = &self.sinks.xenstore {
                set.push(Wake::ConfigWatch, xs.as_fd());
            }
            set.push(Wake::Signal, self.signals.as_fd());
            set.wait(wait)?
        };
        for link in woken.link_errors {
            app.link_error(link);
        }
        app.set_readable(woken.readable);
        let mut signalled = Signalled::default();
        if woken.signalled {
            while let Some(info) = self.signals.read_signal().context("reading the signalfd")? {
                if info.ssi_signo == Signal::SIGHUP as u32 {
                    signalled.reload = true;
                } else {
                    signalled.stop = true;
                }
            }
        }
        Ok(signalled)
    }

    /// nvctl rewrites the config in xenstore when the voting set changes (replace, patch):
    /// applies it in place ([`Appliance::reconfigure`]: no connection is reset). A config
    /// that does not parse, or changes a key that cannot change in place, is logged and the
    /// appliance goes on with the old one. Returns true if nvctl asks for a drain (`nvctl
    /// down` writes the control node).
    fn reload_xenstore(&mut self, app: &mut Appliance) -> bool {
        let Some(xs) = &self.sinks.xenstore else {
            return false;
        };
        let changes = match xenhost::watched_changes(xs, &self.config_text) {
            Ok(changes) => changes,
            Err(e) => {
                log::warn!("reading the config from xenstore: {e:#}");
                return false;
            }
        };
        if let Some(text) = changes.config {
            match Config::from_yaml(&text) {
                Ok(new_config) => {
                    log::info!("new config from xenstore");
                    if reconfigure(app, new_config) {
                        self.config_text = text;
                    }
                }
                Err(e) => {
                    log::error!("new config from xenstore rejected, keeping the old one: {e}")
                }
            }
        }
        changes.drain
    }

    /// SIGHUP (TAP mode): re-reads the config file and applies it in place, as
    /// [`Runtime::reload_xenstore`] does.
    fn reload_file(&mut self, app: &mut Appliance) {
        let Some(path) = &self.config_file else {
            log::warn!("SIGHUP: no config file to re-read (the config comes from xenstore)");
            return;
        };
        log::info!("SIGHUP: re-reading {}", path.display());
        match Config::from_file(path) {
            Ok(config) => {
                reconfigure(app, config);
            }
            Err(e) => log::error!("new config rejected, keeping the old one: {e:#}"),
        }
    }
}

/// Applies `config` to the running appliance, or logs why not (it keeps the old one); true if
/// applied.
fn reconfigure(app: &mut Appliance, config: Config) -> bool {
    match app.reconfigure(config, Instant::now()) {
        Ok(()) => true,
        Err(e) => {
            log::error!("config change refused, keeping the running config: {e:#}");
            false
        }
    }
}

/// Starts, serves until a signal, drains, publishes the status one last time as not ready and
/// resets the connections left.
fn run(args: Args) -> anyhow::Result<()> {
    if args.init {
        xenhost::init_mounts()?;
        xenhost::load_modules(xenhost::INIT_MODULES_DIR)?;
    }
    let signals = signal_fd()?;
    let start = if args.xen || args.init {
        start_xen()?
    } else {
        start_local(args.config.as_deref())?
    };
    let config = start.config;
    if args.check {
        println!(
            "config ok: {:?}, {} replicas, {} services",
            config.policy,
            config.replicas.len(),
            config.services.len()
        );
        return Ok(());
    }
    let status_file = args
        .status_file
        .or_else(|| config.status_file.clone().map(PathBuf::from));
    let mut rt = Runtime {
        sinks: StatusSinks::new(status_file, start.xenstore),
        signals,
        config_file: start.config_file,
        config_text: start.config_text,
    };
    let mut app: Appliance = Appliance::new(config, start.netback)?;
    log::info!("serving");
    // Set by the first SIGTERM / SIGINT: when the connections still open get reset.
    let mut drain_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let mut wait = rt.step(&mut app, now);
        if let Some(until) = drain_until {
            if app.connections() == 0 || now >= until {
                log::info!(
                    "drained: stopping with {} connections left (reset)",
                    app.connections()
                );
                break;
            }
            wait = wait.min(until - now);
        }
        let signalled = rt.poll_once(&mut app, wait)?;
        let mut drain_asked = false;
        if drain_until.is_none() {
            drain_asked = rt.reload_xenstore(&mut app);
            if drain_asked {
                log::info!("nvctl asks to drain (xenstore control node)");
            }
            if signalled.reload {
                rt.reload_file(&mut app);
            }
        }
        if signalled.stop || drain_asked {
            if drain_until.is_some() {
                log::info!(
                    "second signal: stopping now, {} connections reset",
                    app.connections()
                );
                break;
            }
            // the drain timeout of the config in force (a SIGHUP may have changed it)
            let drain_timeout = app.drain_timeout();
            log::info!(
                "signal received: draining {} connections for up to {} ms (a second signal stops at once)",
                app.connections(),
                drain_timeout.as_millis()
            );
            app.drain();
            drain_until = Some(Instant::now() + drain_timeout);
        }
    }
    app.status().set_ready(false);
    app.status().set_draining(false);
    rt.sinks.publish(&mut app, Instant::now(), true);
    // Clients and replicas get an RST for every connection still open.
    drop(app.shutdown(Instant::now()));
    Ok(())
}
