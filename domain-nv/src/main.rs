//! `domain-nv`: the voting appliance binary.
#![forbid(unsafe_code)]

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use domain_nv::appliance::Appliance;
use domain_nv::config::Config;
use domain_nv::status::write_status_file;
use domain_nv::xenhost;
use netback::Netback;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
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
    file: Option<PathBuf>,
    xenstore: Option<Xenstore>,
    last_file: Option<Instant>,
    last_xenstore: Option<Instant>,
}

impl StatusSinks {
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

fn run(args: Args) -> anyhow::Result<()> {
    if args.init {
        xenhost::init_mounts()?;
        xenhost::load_modules(xenhost::INIT_MODULES_DIR)?;
    }
    let xen_mode = args.xen || args.init;
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGINT);
    mask.add(Signal::SIGTERM);
    mask.thread_block().context("blocking signals")?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .context("signalfd")?;
    let mut config_text = String::new();
    let (config, netback, xenstore) = if xen_mode {
        let xs = Xenstore::open().context("opening xenstore")?;
        let domid = xenhost::own_domid(&xs)?;
        // Up but not ready: nvctl sees the NV domain alive before it hands over the config.
        let booting = nv_schema::status::Status {
            version: nv_schema::status::SCHEMA_VERSION,
            ready: false,
            updated_ms: domain_nv::status::wall_ms(),
            services: Vec::new(),
            replicas: Vec::new(),
        };
        xenhost::publish_status(&xs, &booting)?;
        log::info!("driver domain {domid}: waiting for the config in xenstore");
        let text = xenhost::wait_config(&xs, None)?;
        let config = Config::from_yaml(&text)?;
        config_text = text;
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
        (config, Some(nb), Some(xs))
    } else {
        let Some(path) = &args.config else {
            bail!("--config FILE is required (or --xen)")
        };
        (Config::from_file(path)?, None, None)
    };
    if args.check {
        println!(
            "config ok: {:?}, {} replicas, {} services",
            config.policy,
            config.replicas.len(),
            config.services.len()
        );
        return Ok(());
    }
    let mut sinks = StatusSinks {
        file: args
            .status_file
            .or_else(|| config.status_file.clone().map(PathBuf::from)),
        xenstore,
        last_file: None,
        last_xenstore: None,
    };
    let mut app: Appliance = Appliance::new(config, netback)?;
    log::info!("serving");
    loop {
        let now = Instant::now();
        let mut wait = app.step(now);
        if let Some(d) = sinks.publish(&mut app, now, false) {
            wait = wait.min(d);
        }
        let (stop, errors) = {
            let fds = app.fds();
            let mut pfds: Vec<PollFd> = fds
                .iter()
                .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
                .collect();
            if let Some(xs) = &sinks.xenstore {
                pfds.push(PollFd::new(xs.as_fd(), PollFlags::POLLIN));
            }
            pfds.push(PollFd::new(signals.as_fd(), PollFlags::POLLIN));
            let timeout = PollTimeout::try_from(wait.as_millis().min(60_000) as i32)
                .unwrap_or(PollTimeout::MAX);
            match poll(&mut pfds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e).context("poll"),
            }
            let bad = PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL;
            let errors: Vec<usize> = pfds[..fds.len()]
                .iter()
                .enumerate()
                .filter(|(_, p)| p.revents().is_some_and(|r| r.intersects(bad)))
                .map(|(i, _)| i)
                .collect();
            let stop = pfds
                .last()
                .and_then(|p| p.revents())
                .is_some_and(|r| r.contains(PollFlags::POLLIN));
            (stop, errors)
        };
        for i in errors {
            app.link_error(i);
        }
        // nvctl rewrites the config when the voting set changes (replace, patch): restart the
        // appliance on the new one, keeping netback and its connected vifs.
        if let Some(xs) = &sinks.xenstore {
            match xenhost::config_change(xs, &config_text) {
                Ok(Some(text)) => match Config::from_yaml(&text) {
                    Ok(new_config) => {
                        log::info!("new config from xenstore: restarting the appliance ({} connections reset)", app.connections());
                        let earlier = app.status().status().clone();
                        let nb = app.shutdown(Instant::now());
                        app = Appliance::new(new_config, nb)?;
                        app.status().carry_over(&earlier);
                        config_text = text;
                    }
                    Err(e) => {
                        log::error!("new config from xenstore rejected, keeping the old one: {e}")
                    }
                },
                Ok(None) => {}
                Err(e) => log::warn!("reading the config from xenstore: {e:#}"),
            }
        }
        if stop {
            log::info!(
                "signal received, shutting down with {} connections open",
                app.connections()
            );
            break;
        }
    }
    app.status().set_ready(false);
    sinks.publish(&mut app, Instant::now(), true);
    Ok(())
}
