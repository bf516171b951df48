//! The listening sockets of every service on the external link ([`ListenPool`]). smoltcp has no
//! backlog: a socket that got a SYN stops listening, so it is replaced at once, and the
//! handshakes in progress are bounded.

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::State;

use super::endpoint::Endpoint;
use super::sockets::new_socket;
use crate::config::{Config, Transport};

/// Bound on handshakes in progress per service (a SYN flood cannot exhaust memory).
const MAX_HALF_OPEN: usize = 1024;

/// A client socket that completed its handshake, taken out of the pool.
pub(super) struct Accepted {
    /// Index of the service in the config.
    pub service: usize,
    /// The client's socket on the external link.
    pub client: SocketHandle,
}

/// `listen_pool` listening sockets per service, plus those in a handshake.
pub(super) struct ListenPool {
    /// Per service, its sockets that are listening or in a handshake.
    per_service: Vec<Vec<SocketHandle>>,
    /// Set by [`ListenPool::close`]: the pool is not replenished any more.
    closed: bool,
}

impl ListenPool {
    /// Starts `listen_pool` listening sockets for every service.
    pub fn new(external: &mut Endpoint, config: &Config) -> anyhow::Result<ListenPool> {
        let mut pool = ListenPool {
            per_service: vec![Vec::new(); config.services.len()],
            closed: false,
        };
        for s in 0..config.services.len() {
            if config.services[s].transport != Transport::Tcp {
                continue;
            }
            while pool.per_service[s].len() < config.listen_pool {
                pool.add(external, config, s)?;
            }
        }
        Ok(pool)
    }

    fn add(
        &mut self,
        external: &mut Endpoint,
        config: &Config,
        service: usize,
    ) -> anyhow::Result<()> {
        let mut s = new_socket(config.tcp_buffer);
        s.listen(config.services[service].listen).map_err(|e| {
            anyhow::anyhow!("service {}: listen: {e:?}", config.services[service].name)
        })?;
        let h = external.sockets.add(s);
        self.per_service[service].push(h);
        Ok(())
    }

    /// Stops listening for good (a graceful stop): every socket of the pool is aborted (a
    /// handshake in progress gets an RST at the next egress) and none replaces it; the next
    /// [`ListenPool::accept`] removes them. SYNs that arrive later get an RST from smoltcp.
    pub fn close(&mut self, external: &mut Endpoint) {
        self.closed = true;
        for &h in self.per_service.iter().flatten() {
            external.tcp(h).abort();
        }
    }

    /// Refuses a connection taken out by [`ListenPool::accept`] (a limit was reached): its
    /// socket is aborted (the client gets an RST at the next egress) and taken back, to be
    /// removed by the next [`ListenPool::accept`].
    pub fn refuse(&mut self, external: &mut Endpoint, accepted: Accepted) {
        external.tcp(accepted.client).abort();
        self.per_service[accepted.service].push(accepted.client);
    }

    /// Takes out the sockets that completed a handshake (in the order found) and keeps
    /// `listen_pool` sockets listening per service; half-open ones are bounded.
    pub fn accept(&mut self, external: &mut Endpoint, config: &Config) -> Vec<Accepted> {
        let mut accepted = Vec::new();
        for s in 0..self.per_service.len() {
            let mut k = 0;
            let (mut listening, mut half_open) = (0, 0);
            while k < self.per_service[s].len() {
                let h = self.per_service[s][k];
                match external.tcp(h).state() {
                    State::Listen => listening += 1,
                    State::SynReceived => half_open += 1,
                    State::Closed => {
                        self.per_service[s].swap_remove(k);
                        external.sockets.remove(h);
                        continue;
                    }
                    _ => {
                        self.per_service[s].swap_remove(k);
                        accepted.push(Accepted {
                            service: s,
                            client: h,
                        });
                        continue;
                    }
                }
                k += 1;
            }
            let tcp = config.services[s].transport == Transport::Tcp;
            while tcp && !self.closed && listening < config.listen_pool && half_open < MAX_HALF_OPEN
            {
                if let Err(e) = self.add(external, config, s) {
                    log::error!("{e}");
                    break;
                }
                listening += 1;
            }
            // Half-open sockets that were reset return to Listen: drop the surplus.
            while listening > config.listen_pool {
                let Some(k) = self.per_service[s]
                    .iter()
                    .position(|&h| external.tcp(h).state() == State::Listen)
                else {
                    break;
                };
                let h = self.per_service[s].swap_remove(k);
                external.sockets.remove(h);
                listening -= 1;
            }
        }
        accepted
    }
}
