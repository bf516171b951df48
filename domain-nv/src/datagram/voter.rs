//! [`DatagramVoter`]: questions and answers in, agreed answers and verdicts out.

use std::collections::VecDeque;
use std::time::Instant;

use super::dns::{self, QueryKey};
use super::table::{Answer, Question, QuestionId, Table};
use super::vote::{decide, truth, Ballot, Decision};
use super::{Client, DatagramConfig, DatagramEvent, DatagramStats, Refusal, Transmit};
use crate::config::Protocol;
use crate::voter::{FaultKind, ReplicaId, Role};

/// Tag before a DNS answer's canonical form, and before the bytes of one that does not parse
/// (so that no malformed answer equals a well-formed one).
const CANON_DNS: u8 = 0;
const CANON_RAW: u8 = 1;

/// The sans-IO voter of one UDP service (module `datagram`).
#[derive(Debug)]
pub struct DatagramVoter {
    config: DatagramConfig,
    table: Table,
    transmits: VecDeque<Transmit>,
    events: VecDeque<DatagramEvent>,
    stats: DatagramStats,
    /// When each replica's last answer to a pending question came in.
    last_answer: Vec<Option<Instant>>,
}

impl DatagramVoter {
    /// A voter with nothing pending.
    pub fn new(config: DatagramConfig) -> DatagramVoter {
        DatagramVoter {
            table: Table::new(config.pending),
            config,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: DatagramStats::default(),
            last_answer: Vec::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &DatagramConfig {
        &self.config
    }

    /// Takes new settings; pending questions keep their deadlines and roles.
    pub fn set_config(&mut self, config: DatagramConfig) {
        self.config = config;
    }

    /// A question from `client`, to be sent to every replica whose role in `roles` is not
    /// `Absent` (the roles and membership `epoch` of this moment hold for the question). On
    /// `Ok` the caller sends `payload` to those replicas; a refused question is counted and
    /// goes nowhere. Over a bound, the client's or everyone's oldest question is dropped first.
    pub fn question(
        &mut self,
        client: Client,
        payload: &[u8],
        roles: &[Role],
        epoch: u64,
        now: Instant,
    ) -> Result<(), Refusal> {
        let key = match self.config.protocol {
            Protocol::Dns => match dns::query_key(payload) {
                Ok(k) => Some(k),
                Err(e) => {
                    self.stats.dropped += 1;
                    return Err(Refusal::Malformed(e));
                }
            },
            // Redis and HTTP frame TCP streams; the config refuses them for UDP services.
            Protocol::Bytes | Protocol::Redis | Protocol::Http => None,
        };
        let answers: Vec<Option<&[u8]>> = vec![None; roles.len()];
        let open = Ballot {
            roles,
            answers: &answers,
            closed: false,
        };
        if decide(self.config.policy, &open) == Decision::NoQuorum {
            self.stats.no_quorum += 1;
            self.events.push_back(DatagramEvent::NoQuorum { client });
            return Err(Refusal::NoQuorum);
        }
        if self.table.client_len(&client) >= self.config.pending_per_client {
            if let Some(id) = self.table.oldest_of(&client) {
                self.evict(id);
            }
        }
        if self.table.len() >= self.config.pending {
            if let Some(id) = self.table.victim() {
                self.evict(id);
            }
        }
        self.stats.questions += 1;
        self.table.insert(Question {
            client,
            key,
            roles: roles.to_vec(),
            epoch,
            asked: now,
            deadline: now + self.config.deadline,
            answers: vec![None; roles.len()],
            released: None,
            no_quorum: false,
            stray: 0,
        });
        Ok(())
    }

    /// An answer datagram from replica `r` on `client`'s behalf. One that matches no pending
    /// question is dropped and counted (`unsolicited`).
    pub fn answer(&mut self, r: ReplicaId, client: Client, payload: &[u8], now: Instant) {
        let (key, answer) = self.read_answer(payload);
        let found = match (self.config.protocol, &key) {
            (Protocol::Dns, None) => None,
            _ => self.table.match_answer(&client, r, key.as_ref()),
        };
        let Some(id) = found else {
            self.stats.unsolicited += 1;
            // A late answer to a question already ended is no sign of a wrong one.
            if !key.is_some_and(|k| self.table.recently_done(&client, &k)) {
                self.table.mark_stray(&client, r);
            }
            return;
        };
        let Some(q) = self.table.get_mut(id) else {
            return;
        };
        q.answers[r] = Some(answer);
        if self.last_answer.len() <= r {
            self.last_answer.resize(r + 1, None);
        }
        self.last_answer[r] = Some(now);
        self.settle(id, now);
    }

    /// The key and comparable form of an answer.
    fn read_answer(&self, payload: &[u8]) -> (Option<QueryKey>, Answer) {
        match self.config.protocol {
            Protocol::Bytes | Protocol::Redis | Protocol::Http => (
                None,
                Answer {
                    canon: payload.to_vec(),
                    raw: Vec::new(),
                },
            ),
            Protocol::Dns => {
                let key = dns::query_key(payload).ok();
                let mut canon = Vec::with_capacity(payload.len() + 1);
                match dns::canonical(payload) {
                    Ok(c) => {
                        canon.push(CANON_DNS);
                        canon.extend_from_slice(&c);
                    }
                    Err(_) => {
                        canon.push(CANON_RAW);
                        canon.extend_from_slice(payload);
                    }
                }
                let answer = Answer {
                    canon,
                    raw: payload.to_vec(),
                };
                (key, answer)
            }
        }
    }

    /// Ends every question whose deadline is past: the missing answers are late.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((id, q)) = self.table.oldest() {
            if q.deadline > now {
                break;
            }
            self.decide(id, true);
            self.finish(id, now);
        }
    }

    /// When [`DatagramVoter::handle_timeout`] has work next.
    pub fn next_deadline(&self) -> Option<Instant> {
        // Deadlines grow with arrival: the oldest question's is the first.
        self.table.oldest().map(|(_, q)| q.deadline)
    }

    /// The next datagram to send to a client.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event to report.
    pub fn poll_event(&mut self) -> Option<DatagramEvent> {
        self.events.pop_front()
    }

    /// The counters.
    pub fn stats(&self) -> DatagramStats {
        self.stats
    }

    /// Questions pending.
    pub fn pending(&self) -> usize {
        self.table.len()
    }

    /// Questions pending from `client` (0: nothing more is expected for it).
    pub fn pending_for(&self, client: &Client) -> usize {
        self.table.client_len(client)
    }

    /// Clients with questions pending.
    pub fn clients(&self) -> usize {
        self.table.clients()
    }

    /// Drops every pending question (counted as dropped); nobody is judged.
    pub fn clear(&mut self) {
        while let Some((id, _)) = self.table.oldest() {
            self.evict(id);
        }
    }

    /// Drops a question to make room (counted as dropped); nobody is judged.
    fn evict(&mut self, id: QuestionId) {
        if self.table.remove(id).is_some() {
            self.stats.dropped += 1;
        }
    }

    /// Votes question `id` after an answer came in, and ends it once every answer is in.
    fn settle(&mut self, id: QuestionId, now: Instant) {
        self.decide(id, false);
        if self.table.get_mut(id).is_some_and(|q| q.complete()) {
            self.finish(id, now);
        }
    }

    /// Applies the policy's decision to question `id` (`closed`: no more answers will come).
    fn decide(&mut self, id: QuestionId, closed: bool) {
        let policy = self.config.policy;
        let Some(q) = self.table.get_mut(id) else {
            return;
        };
        if q.released.is_some() || q.no_quorum {
            return;
        }
        let canon = q.canon_answers();
        let ballot = Ballot {
            roles: &q.roles,
            answers: &canon,
            closed,
        };
        match decide(policy, &ballot) {
            Decision::Release(r) => {
                let payload = q.answers[r].as_ref().map(|a| a.bytes().to_vec());
                q.released = Some(r);
                self.transmits.push_back(Transmit {
                    client: q.client,
                    payload: payload.unwrap_or_default(),
                });
                self.stats.answered += 1;
            }
            Decision::NoQuorum => {
                q.no_quorum = true;
                self.stats.no_quorum += 1;
                self.events
                    .push_back(DatagramEvent::NoQuorum { client: q.client });
            }
            Decision::Wait => {}
        }
    }

    /// Ends question `id`: judges every replica that got it against the agreed answer.
    fn finish(&mut self, id: QuestionId, now: Instant) {
        let policy = self.config.policy;
        let Some(q) = self.table.remove(id) else {
            return;
        };
        let canon = q.canon_answers();
        let ballot = Ballot {
            roles: &q.roles,
            answers: &canon,
            closed: true,
        };
        let Some(t) = truth(policy, &ballot, q.released) else {
            return;
        };
        let right = canon[t];
        let reference = q.answers[t].as_ref().map_or(&[][..], Answer::bytes);
        let mut masked = false;
        for (r, role) in q.roles.iter().enumerate() {
            if *role == Role::Absent {
                continue;
            }
            let kind = match &q.answers[r] {
                Some(a) if Some(a.canon.as_slice()) == right => {
                    self.events.push_back(DatagramEvent::Agreed {
                        replica: r,
                        epoch: q.epoch,
                        bytes: a.bytes().len() as u64,
                    });
                    continue;
                }
                Some(a) => FaultKind::ValueMismatch {
                    offset: first_difference(a.bytes(), reference),
                },
                None if r < 64 && q.stray & (1 << r) != 0 => FaultKind::ValueMismatch { offset: 0 },
                None if self
                    .last_answer
                    .get(r)
                    .copied()
                    .flatten()
                    .is_some_and(|t| t >= q.asked) =>
                {
                    // It answered a later question: this datagram was lost, not the replica.
                    masked = true;
                    self.stats.lost += 1;
                    continue;
                }
                None => FaultKind::Straggler,
            };
            masked = true;
            self.events.push_back(DatagramEvent::Fault {
                replica: r,
                kind,
                client: q.client,
                at: now,
            });
        }
        if masked && q.released.is_some() {
            self.stats.masked += 1;
        }
    }
}

/// Offset of the first byte where `a` and `b` differ (the shorter's length if one is a prefix).
fn first_difference(a: &[u8], b: &[u8]) -> u64 {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len())) as u64
}
