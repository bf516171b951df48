//! `domain-nv`: the voting appliance binary.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use domain_nv::appliance::Appliance;
use domain_nv::config::Config;
use domain_nv::status::write_status_file;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// Shortest interval between two status file writes.
const STATUS_INTERVAL: Duration = Duration::from_millis(100);

/// Votes on the outputs of N replicas of a TCP service and sends clients only what a quorum
/// agreed on.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// The YAML configuration file.
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,
    /// Validate the configuration, print a summary and exit.
    #[arg(long)]
    check: bool,
    /// Write the JSON status here (overrides `status_file` in the config).
    #[arg(long, value_name = "FILE")]
    status_file: Option<PathBuf>,
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).format_timestamp_millis().init();
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("domain-nv: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let config = Config::from_file(&args.config)?;
    if args.check {
        println!(
            "{}: ok: {:?}, {} replicas, {} services",
            args.config.display(),
            config.policy,
            config.replicas.len(),
            config.services.len()
        );
        return Ok(());
    }
    let status_file = args.status_file.or_else(|| config.status_file.clone().map(PathBuf::from));
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGINT);
    mask.add(Signal::SIGTERM);
    mask.thread_block().context("blocking signals")?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).context("signalfd")?;
    let mut app = Appliance::new(config)?;
    log::info!("serving");
    let mut last_write: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let mut wait = app.step(now);
        if let Some(path) = &status_file {
            if app.status().changed() {
                if last_write.is_none_or(|t| now >= t + STATUS_INTERVAL) {
                    let snapshot = app.status().take_snapshot();
                    if let Err(e) = write_status_file(path, &snapshot) {
                        log::warn!("status file {}: {e}", path.display());
                    }
                    last_write = Some(now);
                } else if let Some(t) = last_write {
                    wait = wait.min((t + STATUS_INTERVAL).saturating_duration_since(now));
                }
            }
        }
        let (stop, errors) = {
            let fds = app.fds();
            let mut pfds: Vec<PollFd> = fds.iter().map(|fd| PollFd::new(*fd, PollFlags::POLLIN)).collect();
            pfds.push(PollFd::new(signals.as_fd(), PollFlags::POLLIN));
            let timeout = PollTimeout::try_from(wait.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::MAX);
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
            let stop = pfds.last().and_then(|p| p.revents()).is_some_and(|r| r.contains(PollFlags::POLLIN));
            (stop, errors)
        };
        for i in errors {
            app.link_error(i);
        }
        if stop {
            log::info!("signal received, shutting down with {} connections open", app.connections());
            break;
        }
    }
    if let Some(path) = &status_file {
        app.status().set_ready(false);
        let snapshot = app.status().take_snapshot();
        write_status_file(path, &snapshot).with_context(|| format!("status file {}", path.display()))?;
    }
    Ok(())
}
