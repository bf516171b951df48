//! Property test of the sequencer (`domain_nv::protocol::sequencer`) against a model: replicas
//! are deterministic key-value state machines (a write appends to a list, so the order of
//! writes matters) that process each connection's admitted requests in stream order but
//! interleave connections arbitrarily. For any client requests and any replica scheduling,
//! replicas that started equal end equal, and every request gets the same reply from every
//! replica.

use std::collections::{BTreeMap, VecDeque};

use domain_nv::protocol::sequencer::Sequencer;
use domain_nv::protocol::Access;
use proptest::prelude::*;

/// One modelled request.
#[derive(Debug, Clone)]
enum Op {
    /// Appends the value to the key's list.
    Push(u8, u32),
    /// Reads the key's list.
    Get(u8),
    /// Touches nothing.
    Ping,
    /// Appends the value to every key's list (like a transaction or an unknown command).
    PushAll(u32),
}

impl Op {
    fn access(&self) -> Access {
        match self {
            Op::Push(k, _) => Access::Write(vec![vec![*k]]),
            Op::Get(k) => Access::Read(vec![vec![*k]]),
            Op::Ping => Access::Nothing,
            Op::PushAll(_) => Access::All,
        }
    }
}

const KEYS: u8 = 3;

/// A replica: its state and, per connection, the requests sent to it and not yet processed.
#[derive(Default)]
struct Replica {
    state: BTreeMap<u8, Vec<u32>>,
    inbox: Vec<VecDeque<(usize, Op)>>,
    /// Reply to each (connection, request index).
    replies: BTreeMap<(usize, usize), Vec<u32>>,
}

impl Replica {
    /// Processes the next request of connection `c`; false if there is none.
    fn step(&mut self, c: usize) -> bool {
        let Some((i, op)) = self.inbox[c].pop_front() else {
            return false;
        };
        let reply = match op {
            Op::Push(k, v) => {
                let l = self.state.entry(k).or_default();
                l.push(v);
                vec![l.len() as u32]
            }
            Op::Get(k) => self.state.get(&k).cloned().unwrap_or_default(),
            Op::Ping => vec![],
            Op::PushAll(v) => (0..KEYS)
                .map(|k| {
                    let l = self.state.entry(k).or_default();
                    l.push(v);
                    l.len() as u32
                })
                .collect(),
        };
        self.replies.insert((c, i), reply);
        true
    }
}

/// Clients, the sequencer (or none: everything admitted at once) and the replicas.
struct World {
    seq: Option<Sequencer>,
    requests: Vec<Vec<Op>>,
    /// Per connection: requests submitted, and requests sent to the replicas.
    submitted: Vec<usize>,
    sent: Vec<usize>,
    replicas: Vec<Replica>,
}

impl World {
    fn new(requests: Vec<Vec<Op>>, replicas: usize, ordered: bool) -> World {
        let conns = requests.len();
        let mut seq = ordered.then(Sequencer::new);
        if let Some(s) = &mut seq {
            for c in 0..conns {
                s.open(c as u64, replicas);
            }
        }
        World {
            seq,
            submitted: vec![0; conns],
            sent: vec![0; conns],
            replicas: (0..replicas)
                .map(|_| Replica {
                    inbox: vec![VecDeque::new(); conns],
                    ..Replica::default()
                })
                .collect(),
            requests,
        }
    }

    /// Connection `c` submits its next request (if it may), then sends what is admitted.
    fn client(&mut self, c: usize) {
        let i = self.submitted[c];
        if i < self.requests[c].len() {
            match &mut self.seq {
                Some(s) if s.can_submit(c as u64) => {
                    s.submit(c as u64, self.requests[c][i].access()).unwrap();
                    self.submitted[c] += 1;
                }
                Some(_) => {}
                None => self.submitted[c] += 1,
            }
        }
        self.send(c);
    }

    /// Sends connection `c`'s admitted requests to every replica.
    fn send(&mut self, c: usize) {
        let admitted = match &self.seq {
            Some(s) => s.admitted(c as u64) as usize,
            None => self.submitted[c],
        };
        while self.sent[c] < admitted {
            let i = self.sent[c];
            for r in &mut self.replicas {
                r.inbox[c].push_back((i, self.requests[c][i].clone()));
            }
            self.sent[c] += 1;
        }
    }

    /// Replica `r` processes connection `c`'s next request and replies.
    fn replica(&mut self, r: usize, c: usize) {
        if self.replicas[r].step(c) {
            if let Some(s) = &mut self.seq {
                s.replied(c as u64, r, 1);
            }
        }
    }

    /// Runs the schedule, then lets everything finish in a fixed order.
    fn run(&mut self, schedule: &[(bool, usize, usize)]) {
        let conns = self.requests.len();
        let n = self.replicas.len();
        for &(is_client, a, b) in schedule {
            if is_client {
                self.client(a % conns);
            } else {
                self.replica(a % n, b % conns);
            }
            for c in 0..conns {
                self.send(c);
            }
        }
        let total: usize = self.requests.iter().map(Vec::len).sum();
        for _ in 0..=total * (n + 1) {
            for c in 0..conns {
                self.client(c);
                for r in 0..n {
                    self.replica(r, c);
                }
            }
        }
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..KEYS, any::<u32>()).prop_map(|(k, v)| Op::Push(k, v)),
        3 => (0..KEYS).prop_map(Op::Get),
        1 => Just(Op::Ping),
        1 => any::<u32>().prop_map(Op::PushAll),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn replicas_that_start_equal_end_equal(
        requests in prop::collection::vec(prop::collection::vec(op(), 0..8), 1..5),
        replicas in 1usize..4,
        schedule in prop::collection::vec((any::<bool>(), 0usize..8, 0usize..8), 0..200),
    ) {
        let mut w = World::new(requests.clone(), replicas, true);
        w.run(&schedule);
        let total: usize = requests.iter().map(Vec::len).sum();
        for r in &w.replicas {
            prop_assert_eq!(r.replies.len(), total, "every request processed");
            prop_assert_eq!(&r.state, &w.replicas[0].state);
            prop_assert_eq!(&r.replies, &w.replicas[0].replies);
        }
        prop_assert_eq!(w.seq.as_ref().unwrap().in_flight(), 0);
    }
}

/// The model can fail: without the sequencer, two connections writing one key diverge under
/// a schedule where the replicas process them in different orders.
#[test]
fn without_ordering_the_model_diverges() {
    let requests = vec![vec![Op::Push(0, 1)], vec![Op::Push(0, 2)]];
    let mut w = World::new(requests, 2, false);
    // Both clients send; replica 0 takes connection 0 first, replica 1 connection 1 first.
    w.run(&[(true, 0, 0), (true, 1, 0), (false, 0, 0), (false, 1, 1)]);
    assert_ne!(w.replicas[0].state, w.replicas[1].state);
    let mut w = World::new(vec![vec![Op::Push(0, 1)], vec![Op::Push(0, 2)]], 2, true);
    w.run(&[(true, 0, 0), (true, 1, 0), (false, 0, 0), (false, 1, 1)]);
    assert_eq!(w.replicas[0].state, w.replicas[1].state);
}
