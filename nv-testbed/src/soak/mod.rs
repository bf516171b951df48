//! A load generator for `make soak` ([`run_load`]): many concurrent keep-alive client
//! connections (real Linux TCP sockets in the client namespace, one thread, epoll), each
//! sending a redis `GET` or an HTTP `GET` after a pause, and checking every reply byte for
//! byte against the value it must be.

mod reply;

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn};
use reply::{check, Check};

use crate::run;
pub use reply::{Exchange, Reply};

/// What [`run_load`] does.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Connections held open at once.
    pub connections: usize,
    /// How long requests are sent (the replies in flight then are still awaited).
    pub duration: Duration,
    /// Pause of a connection between a reply and its next request.
    pub think: Duration,
    /// Local addresses the connections are spread over (ephemeral ports per address).
    pub sources: Vec<Ipv4Addr>,
    /// Per connection `i`, the server port is `ports[i % len]` and the requests come from
    /// `exchanges[i % len]` in turn.
    pub ports: Vec<u16>,
    /// For each entry of `ports`, the exchanges sent there.
    pub exchanges: Vec<Vec<Exchange>>,
    /// The server's address.
    pub server: Ipv4Addr,
    /// Longest wait for a connect or a whole reply before the connection counts as failed.
    pub reply_timeout: Duration,
    /// New connections opened per second at most (a ramp, not a SYN flood).
    pub connects_per_s: usize,
}

/// What the clients saw.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Connect attempts that completed.
    pub connected: u64,
    /// Most connections established at once.
    pub peak_established: usize,
    /// Replies that matched.
    pub replies_ok: u64,
    /// Replies that differed from the expected value.
    pub wrong: u64,
    /// Connects that failed (refused, reset or timed out).
    pub connect_failures: u64,
    /// Established connections reset by the server.
    pub resets: u64,
    /// Established connections the server closed (EOF) with a request open or between them.
    pub closed: u64,
    /// Replies not complete within the reply timeout.
    pub timeouts: u64,
    /// Latency of each good reply (request written to last byte read).
    pub latencies: Vec<Duration>,
}

impl LoadReport {
    /// Client errors of every kind (everything but good replies).
    pub fn errors(&self) -> u64 {
        self.wrong + self.connect_failures + self.resets + self.closed + self.timeouts
    }
}

/// Where one connection is.
enum Phase {
    /// Not open; (re)opened at the instant.
    Closed(Instant),
    /// Connect sent at the instant.
    Connecting(Instant),
    /// Open; the next request goes at the instant.
    Idle(Instant),
    /// Request `exchange` written at `sent`; `got` the reply so far.
    Waiting {
        exchange: usize,
        sent: Instant,
        got: Vec<u8>,
    },
}

/// One client connection.
struct Conn {
    stream: Option<TcpStream>,
    phase: Phase,
    next_exchange: usize,
}

/// Opens a non-blocking connection from `source` to `server` (connect in progress).
fn open(source: Ipv4Addr, server: SocketAddrV4) -> Result<TcpStream> {
    let fd = socket::socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    socket::bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(SocketAddrV4::new(source, 0)),
    )
    .with_context(|| format!("binding to {source}"))?;
    match socket::connect(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(server),
    ) {
        Ok(()) | Err(nix::errno::Errno::EINPROGRESS) => Ok(TcpStream::from(fd)),
        Err(e) => Err(e.into()),
    }
}

/// Runs the load of `spec` from the calling thread's network namespace; returns what the
/// clients saw.
pub fn run_load(spec: &LoadSpec) -> Result<LoadReport> {
    anyhow::ensure!(
        !spec.sources.is_empty() && !spec.ports.is_empty(),
        "no sources or ports"
    );
    anyhow::ensure!(
        spec.ports.len() == spec.exchanges.len() && spec.exchanges.iter().all(|e| !e.is_empty()),
        "every port needs at least one exchange"
    );
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    let start = Instant::now();
    let end = start + spec.duration;
    let mut report = LoadReport::default();
    // connection i opens at its place in the ramp
    let ramp = Duration::from_secs(1) / spec.connects_per_s.max(1) as u32;
    let mut conns: Vec<Conn> = (0..spec.connections)
        .map(|i| Conn {
            stream: None,
            phase: Phase::Closed(start + ramp * i as u32),
            next_exchange: i / spec.ports.len(),
        })
        .collect();
    let mut established = 0usize;
    let mut events = vec![EpollEvent::empty(); 1024];
    let mut ready: VecDeque<usize> = VecDeque::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let now = Instant::now();
        let sending = now < end;
        // timers: opens, requests, timeouts
        for (i, c) in conns.iter_mut().enumerate() {
            let port_ix = i % spec.ports.len();
            match &c.phase {
                Phase::Closed(at) if sending && now >= *at => {
                    let server = SocketAddrV4::new(spec.server, spec.ports[port_ix]);
                    let stream = match open(spec.sources[i % spec.sources.len()], server) {
                        Ok(stream) => stream,
                        Err(_) => {
                            // e.g. no ephemeral port left: a failed connect, tried again later
                            report.connect_failures += 1;
                            c.phase = Phase::Closed(now + spec.think);
                            continue;
                        }
                    };
                    epoll.add(
                        stream.as_fd(),
                        EpollEvent::new(EpollFlags::EPOLLOUT | EpollFlags::EPOLLIN, i as u64),
                    )?;
                    c.stream = Some(stream);
                    c.phase = Phase::Connecting(now);
                }
                Phase::Connecting(at) if now >= *at + spec.reply_timeout => {
                    report.connect_failures += 1;
                    close(&epoll, c, now + spec.think, false, &mut established)?;
                }
                Phase::Idle(at) if sending && now >= *at => ready.push_back(i),
                Phase::Waiting { sent, .. } if now >= *sent + spec.reply_timeout => {
                    report.timeouts += 1;
                    close(&epoll, c, now + spec.think, true, &mut established)?;
                }
                _ => {}
            }
        }
        while let Some(i) = ready.pop_front() {
            let c = &mut conns[i];
            let list = &spec.exchanges[i % spec.ports.len()];
            let exchange = c.next_exchange % list.len();
            c.next_exchange += 1;
            let stream = c.stream.as_mut().context("idle without a stream")?;
            match stream.write(&list[exchange].request) {
                Ok(n) if n == list[exchange].request.len() => {
                    c.phase = Phase::Waiting {
                        exchange,
                        sent: Instant::now(),
                        got: Vec::new(),
                    }
                }
                Ok(_) | Err(_) => {
                    report.resets += 1;
                    close(&epoll, c, now + spec.think, true, &mut established)?;
                }
            }
        }
        let waiting = conns
            .iter()
            .any(|c| matches!(c.phase, Phase::Waiting { .. } | Phase::Connecting(_)));
        if !sending && !waiting {
            break;
        }
        let n = epoll.wait(&mut events, EpollTimeout::from(20u8))?;
        let now = Instant::now();
        for ev in &events[..n] {
            let i = ev.data() as usize;
            let c = &mut conns[i];
            let Some(stream) = c.stream.as_mut() else {
                continue;
            };
            if let Phase::Connecting(_) = c.phase {
                match stream.take_error() {
                    Ok(None) if ev.events().contains(EpollFlags::EPOLLOUT) => {
                        report.connected += 1;
                        established += 1;
                        report.peak_established = report.peak_established.max(established);
                        epoll.modify(
                            stream.as_fd(),
                            &mut EpollEvent::new(EpollFlags::EPOLLIN, i as u64),
                        )?;
                        c.phase = Phase::Idle(now + spec.think.mul_f64(i as f64 % 7.0 / 7.0));
                    }
                    Ok(None) => {}
                    _ => {
                        report.connect_failures += 1;
                        close(&epoll, c, now + spec.think, false, &mut established)?;
                    }
                }
                continue;
            }
            let outcome = loop {
                match stream.read(&mut buf) {
                    Ok(0) => break Err(false),
                    Ok(n) => match &mut c.phase {
                        Phase::Waiting { got, .. } => got.extend_from_slice(&buf[..n]),
                        _ => break Ok(Some(Check::Wrong)),
                    },
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break Ok(None),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => break Err(true),
                }
            };
            let verdict = match (&outcome, &c.phase) {
                (Ok(Some(v)), _) => Some(match v {
                    Check::Wrong => Check::Wrong,
                    _ => Check::Partial,
                }),
                (_, Phase::Waiting { exchange, got, .. }) => {
                    let list = &spec.exchanges[i % spec.ports.len()];
                    Some(check(got, &list[*exchange].reply))
                }
                _ => None,
            };
            match verdict {
                Some(Check::Good) => {
                    if let Phase::Waiting { sent, .. } = c.phase {
                        report.latencies.push(now - sent);
                    }
                    report.replies_ok += 1;
                    c.phase = Phase::Idle(now + spec.think);
                }
                Some(Check::Wrong) => {
                    report.wrong += 1;
                    close(&epoll, c, now + spec.think, true, &mut established)?;
                    continue;
                }
                _ => {}
            }
            match outcome {
                Err(true) => {
                    report.resets += 1;
                    close(&epoll, c, now + spec.think, true, &mut established)?;
                }
                Err(false) => {
                    report.closed += 1;
                    close(&epoll, c, now + spec.think, true, &mut established)?;
                }
                Ok(_) => {}
            }
        }
    }
    Ok(report)
}

/// Closes `c` (if open), to be reopened at `reopen`; `was_established` for the count.
fn close(
    epoll: &Epoll,
    c: &mut Conn,
    reopen: Instant,
    was_established: bool,
    established: &mut usize,
) -> Result<()> {
    if let Some(stream) = c.stream.take() {
        epoll.delete(stream.as_fd())?;
    }
    if was_established {
        *established -= 1;
    }
    c.phase = Phase::Closed(reopen);
    Ok(())
}

/// The `q`-quantile (0..=1) of `v` (sorted in place); zero if empty.
pub fn quantile(v: &mut [Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort_unstable();
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Raises this process's soft limit of open descriptors to its hard limit (redis and nginx,
/// started from here, inherit it): every client socket is a descriptor. An error if the hard
/// limit is too low for `connections`.
pub fn raise_fd_limit(connections: usize) -> Result<()> {
    let me = std::process::id().to_string();
    let out = run(&[
        "prlimit",
        "--pid",
        &me,
        "--nofile",
        "--raw",
        "--noheadings",
        "--output",
        "HARD",
    ])?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let hard: usize = match text.as_str() {
        "unlimited" => 1 << 20,
        v => v.parse().with_context(|| format!("prlimit says {v:?}"))?,
    };
    if hard < connections + 1000 {
        bail!("the hard limit of open files is {hard}: too low for {connections} connections");
    }
    run(&["prlimit", "--pid", &me, &format!("--nofile={hard}:{hard}")])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_from_the_sorted_values() {
        let mut v: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        assert_eq!(quantile(&mut v, 0.5), Duration::from_millis(51));
        assert_eq!(quantile(&mut v, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&mut [], 0.5), Duration::ZERO);
    }
}
