//! The pending questions ([`Table`]): bounded in all and per client, in arrival order, with
//! each replica's answer as it comes in.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Instant;

use super::dns::QueryKey;
use super::Client;
use crate::voter::{ReplicaId, Role};

/// One replica's answer to a question.
#[derive(Debug, Clone)]
pub(super) struct Answer {
    /// What it is compared by (for `protocol: dns` the canonical form, else the bytes).
    pub canon: Vec<u8>,
    /// The datagram as the replica sent it (empty when it equals `canon`).
    pub raw: Vec<u8>,
}

impl Answer {
    /// The datagram as the replica sent it.
    pub fn bytes(&self) -> &[u8] {
        if self.raw.is_empty() {
            &self.canon
        } else {
            &self.raw
        }
    }
}

/// A question waiting for its answers.
#[derive(Debug)]
pub(super) struct Question {
    /// Who asked.
    pub client: Client,
    /// For `protocol: dns`: the query ID and question an answer must carry.
    pub key: Option<QueryKey>,
    /// Each replica's role, fixed when the question came.
    pub roles: Vec<Role>,
    /// The membership epoch the question came in.
    pub epoch: u64,
    /// When it came.
    pub asked: Instant,
    /// When the answers still missing make their replicas stragglers.
    pub deadline: Instant,
    /// Each replica's answer, once in.
    pub answers: Vec<Option<Answer>>,
    /// The replica whose answer was released to the client.
    pub released: Option<ReplicaId>,
    /// The vote gave up: no answer will be released.
    pub no_quorum: bool,
    /// Replicas (bit r) that sent this client an answer matching no question while this one
    /// waited for theirs: a missing answer of theirs is a wrong one, not a late one.
    pub stray: u64,
}

impl Question {
    /// True once every replica that got the question answered.
    pub fn complete(&self) -> bool {
        self.roles
            .iter()
            .zip(&self.answers)
            .all(|(role, a)| *role == Role::Absent || a.is_some())
    }

    /// Each replica's answer in its comparable form (`None`: no answer yet, or not asked).
    pub fn canon_answers(&self) -> Vec<Option<&[u8]>> {
        self.answers
            .iter()
            .map(|a| a.as_ref().map(|a| a.canon.as_slice()))
            .collect()
    }

    /// True if replica `r` got the question and has not answered it yet.
    pub fn awaits(&self, r: ReplicaId) -> bool {
        self.roles[r] != Role::Absent && self.answers[r].is_none()
    }
}

/// How many of the oldest questions [`Table::victim`] looks at.
const VICTIM_SCAN: usize = 64;

/// Identifier of a question: its arrival number.
pub(super) type QuestionId = u64;

/// The pending questions, oldest first, with each client's in arrival order.
#[derive(Debug, Default)]
pub(super) struct Table {
    questions: BTreeMap<QuestionId, Question>,
    by_client: HashMap<Client, VecDeque<QuestionId>>,
    next: QuestionId,
    /// The keys of the latest questions removed (at most as many as may be pending), so that
    /// a late answer to one of them is told from an answer with a corrupted ID or question.
    done: VecDeque<(Client, QueryKey)>,
    done_set: HashSet<(Client, QueryKey)>,
    done_cap: usize,
}

impl Table {
    /// A table that remembers the keys of the last `done_cap` questions removed.
    pub fn new(done_cap: usize) -> Table {
        Table {
            done_cap,
            ..Table::default()
        }
    }

    /// True if `client` asked `key` in one of the questions removed lately.
    pub fn recently_done(&self, client: &Client, key: &QueryKey) -> bool {
        self.done_set.contains(&(*client, key.clone()))
    }

    /// Number of pending questions.
    pub fn len(&self) -> usize {
        self.questions.len()
    }

    /// Pending questions of `client`.
    pub fn client_len(&self, client: &Client) -> usize {
        self.by_client.get(client).map_or(0, VecDeque::len)
    }

    /// Clients with questions pending.
    pub fn clients(&self) -> usize {
        self.by_client.len()
    }

    /// Adds a question (the caller keeps the bounds).
    pub fn insert(&mut self, q: Question) -> QuestionId {
        let id = self.next;
        self.next += 1;
        self.by_client.entry(q.client).or_default().push_back(id);
        self.questions.insert(id, q);
        id
    }

    /// Removes a question.
    pub fn remove(&mut self, id: QuestionId) -> Option<Question> {
        let q = self.questions.remove(&id)?;
        if let Some(ids) = self.by_client.get_mut(&q.client) {
            ids.retain(|&i| i != id);
            if ids.is_empty() {
                self.by_client.remove(&q.client);
            }
        }
        if let Some(key) = &q.key {
            if self.done_cap > 0 && self.done_set.insert((q.client, key.clone())) {
                self.done.push_back((q.client, key.clone()));
                if self.done.len() > self.done_cap {
                    if let Some(old) = self.done.pop_front() {
                        self.done_set.remove(&old);
                    }
                }
            }
        }
        Some(q)
    }

    /// The oldest question of all.
    pub fn oldest(&self) -> Option<(QuestionId, &Question)> {
        self.questions.iter().next().map(|(&id, q)| (id, q))
    }

    /// The question to drop when the table is full: the oldest that is decided (answered, or
    /// given up) and only waits for late replicas; else the oldest of a client with more than
    /// one pending (a client asking many at once makes room before one asking one); else the
    /// oldest of all. Looks at most [`VICTIM_SCAN`] questions.
    pub fn victim(&self) -> Option<QuestionId> {
        let scan = || self.questions.iter().take(VICTIM_SCAN);
        scan()
            .find(|(_, q)| q.released.is_some() || q.no_quorum)
            .or_else(|| scan().find(|(_, q)| self.client_len(&q.client) > 1))
            .map(|(&id, _)| id)
            .or_else(|| self.oldest().map(|(id, _)| id))
    }

    /// The oldest question of `client`.
    pub fn oldest_of(&self, client: &Client) -> Option<QuestionId> {
        self.by_client
            .get(client)
            .and_then(|ids| ids.front().copied())
    }

    /// A question.
    pub fn get_mut(&mut self, id: QuestionId) -> Option<&mut Question> {
        self.questions.get_mut(&id)
    }

    /// The oldest question of `client` that awaits replica `r`'s answer and, when `key` is
    /// given, carries that key.
    pub fn match_answer(
        &self,
        client: &Client,
        r: ReplicaId,
        key: Option<&QueryKey>,
    ) -> Option<QuestionId> {
        self.by_client.get(client)?.iter().copied().find(|id| {
            let q = &self.questions[id];
            q.awaits(r) && (key.is_none() || q.key.as_ref() == key)
        })
    }

    /// Marks every question of `client` that awaits `r` as having seen a stray answer of it.
    pub fn mark_stray(&mut self, client: &Client, r: ReplicaId) {
        let Some(ids) = self.by_client.get(client) else {
            return;
        };
        for id in ids {
            if let Some(q) = self.questions.get_mut(id) {
                if q.awaits(r) && r < 64 {
                    q.stray |= 1 << r;
                }
            }
        }
    }
}
