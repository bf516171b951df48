//! Health probes of one replica ([`Probe`]): while it is `starting` or `down` (no connection has
//! shown it serving since it was attached), a TCP connect to its first service port every
//! [`PROBE_INTERVAL`]; an accepted one makes it `live` (and is reset at once), so that the
//! toolstack sees a new replica live before any client arrives.

use std::time::{Duration, Instant};

use smoltcp::socket::tcp::{self, State};

use super::endpoint::{Endpoint, OutgoingSocket};
use super::sockets::socket_gone;
use crate::status::StatusBook;

/// Interval between two health probes of a replica not yet seen serving.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Socket buffers of a health probe (it sends and reads nothing).
const PROBE_BUFFER: usize = 1024;

/// Where a probe attempt is.
enum AttemptState {
    /// Connecting; given up at the attempt's deadline.
    Connecting,
    /// Aborted; its reset may go out until the attempt's deadline.
    Resetting,
}

/// One health probe connection in progress (or being reset).
struct ProbeAttempt {
    socket: OutgoingSocket,
    /// Until the connect gives up; once reset, until the reset may still go out.
    deadline: Instant,
    state: AttemptState,
}

/// What a probe needs to know of its replica for one round.
pub(super) struct ProbeTarget<'a> {
    /// Index of the replica.
    pub replica: usize,
    /// The replica's address and first service port.
    pub remote: (std::net::Ipv4Addr, u16),
    /// True if its link can carry frames.
    pub link_up: bool,
    /// How long a connect may take.
    pub connect_timeout: Duration,
    /// Where an accepted probe is reported.
    pub status: &'a mut StatusBook,
}

/// The health probes of one replica.
pub(super) struct Probe {
    attempt: Option<ProbeAttempt>,
    next_at: Instant,
}

impl Probe {
    /// A probe whose first attempt is one interval after `epoch`, when the appliance started.
    pub fn new(epoch: Instant) -> Probe {
        // The first probe waits one interval: a link that just came up may drop frames for a
        // moment (Linux starts a TAP's queue only when its link-watch event runs, up to a
        // second after the carrier), and a lost ARP request keeps smoltcp from asking again
        // for a second, which would stall the first clients' connections as well.
        Probe {
            attempt: None,
            next_at: epoch + PROBE_INTERVAL,
        }
    }

    /// Advances the attempt in progress, or starts one if the replica is unproven and one is due.
    pub fn run(&mut self, ep: &mut Endpoint, target: ProbeTarget<'_>, now: Instant) {
        let r = target.replica;
        let wanted = target.link_up && target.status.replica_unproven(r);
        if let Some(a) = &mut self.attempt {
            let s = ep.sockets.get_mut::<tcp::Socket>(a.socket.handle);
            let resetting = matches!(a.state, AttemptState::Resetting);
            // A reset that cannot go out (no link, no neighbour) is given up: the socket is
            // dropped as it is.
            if socket_gone(s) || !target.link_up || (resetting && now >= a.deadline) {
                ep.remove_outgoing(a.socket);
                self.attempt = None;
            } else if !resetting {
                let accepted = !matches!(
                    s.state(),
                    State::SynSent | State::SynReceived | State::Closed
                );
                if accepted && wanted {
                    log::info!("replica {}: health probe accepted: live", ep.name);
                    target.status.replica_reachable(r);
                }
                if accepted || now >= a.deadline || !wanted {
                    s.abort();
                    a.state = AttemptState::Resetting;
                    a.deadline = now + PROBE_INTERVAL;
                }
            }
            return;
        }
        if !wanted || now < self.next_at {
            return;
        }
        self.next_at = now + PROBE_INTERVAL;
        match ep.connect(target.remote, PROBE_BUFFER) {
            Ok(Some(socket)) => {
                self.attempt = Some(ProbeAttempt {
                    socket,
                    deadline: now + target.connect_timeout,
                    state: AttemptState::Connecting,
                });
            }
            Ok(None) => {}
            Err(e) => log::warn!("replica {}: health probe: connect: {e:?}", ep.name),
        }
    }

    /// When the probe next needs a round: its attempt's deadline, or the next attempt if the
    /// replica is `unproven`.
    pub fn wake_at(&self, unproven: bool) -> Option<Instant> {
        match &self.attempt {
            Some(a) => Some(a.deadline),
            None if unproven => Some(self.next_at),
            None => None,
        }
    }

    /// Aborts the attempt in progress (the appliance is shutting down).
    pub fn abort(&self, ep: &mut Endpoint) {
        if let Some(a) = &self.attempt {
            ep.tcp(a.socket.handle).abort();
        }
    }
}
