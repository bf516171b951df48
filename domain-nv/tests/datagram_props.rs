//! Property and scenario tests of the sans-IO datagram voter (`domain_nv::datagram`).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use domain_nv::config::Protocol;
use domain_nv::datagram::{
    dns, Client, DatagramConfig, DatagramEvent, DatagramVoter, Refusal, Transmit,
};
use domain_nv::voter::{FaultKind, Policy, Role};
use proptest::prelude::*;

const DEADLINE: Duration = Duration::from_millis(500);

fn cfg(policy: Policy, protocol: Protocol, pending: usize, per_client: usize) -> DatagramConfig {
    DatagramConfig {
        policy,
        protocol,
        deadline: DEADLINE,
        pending,
        pending_per_client: per_client,
    }
}

fn client(i: u16) -> Client {
    SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 2 + (i % 3) as u8), 40000 + i)
}

fn drain(v: &mut DatagramVoter) -> (Vec<Transmit>, Vec<DatagramEvent>) {
    (
        std::iter::from_fn(|| v.poll_transmit()).collect(),
        std::iter::from_fn(|| v.poll_event()).collect(),
    )
}

fn faults(events: &[DatagramEvent]) -> Vec<(usize, FaultKind)> {
    events
        .iter()
        .filter_map(|e| match e {
            DatagramEvent::Fault { replica, kind, .. } => Some((*replica, kind.clone())),
            _ => None,
        })
        .collect()
}

/// A name in wire form, uncompressed.
fn name(labels: &[&str]) -> Vec<u8> {
    let mut v = Vec::new();
    for l in labels {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v
}

/// One record, uncompressed.
fn record(owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
    let mut r = owner.to_vec();
    r.extend_from_slice(&rtype.to_be_bytes());
    r.extend_from_slice(&[0, 1]);
    r.extend_from_slice(&ttl.to_be_bytes());
    r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    r.extend_from_slice(rdata);
    r
}

/// An answer's sections: RRsets (each a list of records) per section.
type Sections = [Vec<Vec<Vec<u8>>>; 3];

fn query(id: u16, qname: &[u8]) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    m.extend_from_slice(qname);
    m.extend_from_slice(&[0, 1, 0, 1]);
    m
}

fn message(id: u16, qname: &[u8], sections: &Sections) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x84, 0x00, 0, 1]);
    for s in sections {
        let n: usize = s.iter().map(Vec::len).sum();
        m.extend_from_slice(&(n as u16).to_be_bytes());
    }
    m.extend_from_slice(qname);
    m.extend_from_slice(&[0, 1, 0, 1]);
    for s in sections {
        for set in s {
            for rec in set {
                m.extend_from_slice(rec);
            }
        }
    }
    m
}

/// RRsets with distinct owners per section (A records, TXT records or NS records).
fn sections() -> impl Strategy<Value = Sections> {
    let owners = ["www", "mail", "ns1", "Www"];
    let rrset =
        (0usize..4, 0usize..3, any::<u32>(), 1usize..5).prop_flat_map(move |(o, kind, ttl, n)| {
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 4..12), n).prop_map(
                move |datas| {
                    let owner = name(&[owners[o], "example"]);
                    let (rtype, _) = [(1u16, 4usize), (16, 0), (2, 0)][kind];
                    let mut seen = Vec::new();
                    for d in datas {
                        let rdata = match rtype {
                            1 => d[..4].to_vec(),
                            16 => {
                                let mut t = vec![(d.len() - 1) as u8];
                                t.extend_from_slice(&d[1..]);
                                t
                            }
                            _ => name(&[&format!("n{}", d[0] % 50), "example"]),
                        };
                        let rec = record(&owner, rtype, ttl, &rdata);
                        if !seen.contains(&rec) {
                            seen.push(rec);
                        }
                    }
                    (o * 3 + kind, seen)
                },
            )
        });
    let section = proptest::collection::vec(rrset, 0..4).prop_map(|sets| {
        // One RRset per (owner, type).
        let mut keys = Vec::new();
        sets.into_iter()
            .filter(|(k, _)| {
                let new = !keys.contains(k);
                keys.push(*k);
                new
            })
            .map(|(_, s)| s)
            .collect::<Vec<_>>()
    });
    [section.clone(), section.clone(), section]
}

/// `sections` with the records of each RRset rotated by `by`.
fn rotated(s: &Sections, by: usize) -> Sections {
    s.clone().map(|sets| {
        sets.into_iter()
            .map(|mut set| {
                let k = by % set.len().max(1);
                set.rotate_left(k);
                set
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Rotation inside RRsets raises no fault; one changed byte anywhere else is caught (the
    /// replica is judged wrong), and the client gets one answer: a correct replica's bytes.
    #[test]
    fn a_changed_byte_is_caught_and_rotation_is_not(
        s in sections(),
        id in any::<u16>(),
        by in 0usize..4,
        flip_at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let qname = name(&["www", "example"]);
        let good = message(id, &qname, &s);
        let rot = message(id, &qname, &rotated(&s, by + 1));
        let mut bad = message(id, &qname, &rotated(&s, by));
        let at = flip_at.index(bad.len());
        bad[at] ^= flip;
        let t0 = Instant::now();
        let mut v = DatagramVoter::new(cfg(Policy::Majority, Protocol::Dns, 16, 16));
        let c = client(1);
        v.question(c, &query(id, &qname), &[Role::Member; 3], 0, t0).unwrap();
        v.answer(2, c, &bad, t0);
        v.answer(0, c, &good, t0);
        v.answer(1, c, &rot, t0);
        v.handle_timeout(t0 + DEADLINE);
        let (tx, ev) = drain(&mut v);
        prop_assert_eq!(tx.len(), 1);
        prop_assert_eq!(tx[0].client, c);
        prop_assert!(tx[0].payload == good || tx[0].payload == rot);
        let f = faults(&ev);
        prop_assert_eq!(f.len(), 1, "{:?}", f);
        prop_assert_eq!(f[0].0, 2);
        prop_assert!(matches!(f[0].1, FaultKind::ValueMismatch { .. }), "{:?}", f);
        prop_assert_eq!(v.pending(), 0);
    }

    /// Whatever the replicas send: answers never exceed questions, each goes only to a client
    /// that asked, and the pending questions stay within their bounds.
    #[test]
    fn answers_never_exceed_questions_and_go_only_to_the_asker(
        ops in proptest::collection::vec((0u8..4, 0u16..6, 0usize..3, 0u16..4, any::<bool>()), 1..300),
        dns_protocol in any::<bool>(),
    ) {
        let protocol = if dns_protocol { Protocol::Dns } else { Protocol::Bytes };
        let t0 = Instant::now();
        let mut now = t0;
        let mut v = DatagramVoter::new(cfg(Policy::Majority, protocol, 8, 3));
        let qname = name(&["www", "example"]);
        let mut asked = std::collections::HashMap::new();
        let mut answered = std::collections::HashMap::<Client, u64>::new();
        for (op, who, r, id, same) in ops {
            let c = client(who);
            match op {
                0 => {
                    if v.question(c, &query(id, &qname), &[Role::Member; 3], 0, now).is_ok() {
                        *asked.entry(c).or_insert(0u64) += 1;
                    }
                }
                1 | 2 => {
                    let payload = if same {
                        message(id, &qname, &[vec![], vec![], vec![]])
                    } else {
                        message(id, &qname, &[vec![vec![record(&qname, 1, r as u32, &[1, 2, 3, 4])]], vec![], vec![]])
                    };
                    v.answer(r, c, &payload, now);
                }
                _ => {
                    now += Duration::from_millis(200);
                    v.handle_timeout(now);
                }
            }
            prop_assert!(v.pending() <= 8);
            prop_assert!(v.pending_for(&c) <= 3);
            for t in std::iter::from_fn(|| v.poll_transmit()) {
                prop_assert!(asked.contains_key(&t.client), "answer to {} who never asked", t.client);
                *answered.entry(t.client).or_default() += 1;
            }
        }
        for (c, n) in &answered {
            prop_assert!(*n <= asked[c], "{c}: {n} answers to {} questions", asked[c]);
        }
        prop_assert!(v.stats().answered <= v.stats().questions);
    }
}

#[test]
fn a_crashed_replica_is_a_straggler_only_and_the_answer_goes_out_at_once() {
    let t0 = Instant::now();
    let mut v = DatagramVoter::new(cfg(Policy::Majority, Protocol::Bytes, 16, 16));
    let c = client(0);
    v.question(c, b"ping", &[Role::Member; 3], 0, t0).unwrap();
    v.answer(0, c, b"pong", t0);
    assert_eq!(drain(&mut v).0.len(), 0, "one answer is no quorum");
    v.answer(1, c, b"pong", t0);
    let (tx, ev) = drain(&mut v);
    assert_eq!(
        tx,
        vec![Transmit {
            client: c,
            payload: b"pong".to_vec()
        }]
    );
    assert!(faults(&ev).is_empty());
    assert_eq!(v.next_deadline(), Some(t0 + DEADLINE));
    v.handle_timeout(t0 + DEADLINE - Duration::from_millis(1));
    assert!(
        faults(&drain(&mut v).1).is_empty(),
        "not before the deadline"
    );
    v.handle_timeout(t0 + DEADLINE);
    assert_eq!(faults(&drain(&mut v).1), vec![(2, FaultKind::Straggler)]);
    let s = v.stats();
    assert_eq!((s.questions, s.answered, s.masked, s.dropped), (1, 1, 1, 0));
}

#[test]
fn unsolicited_answers_are_dropped_and_a_corrupted_id_is_a_wrong_answer() {
    let t0 = Instant::now();
    let mut v = DatagramVoter::new(cfg(Policy::Majority, Protocol::Dns, 16, 16));
    let c = client(0);
    let qname = name(&["www", "example"]);
    let right = message(9, &qname, &[vec![], vec![], vec![]]);
    v.answer(0, c, &right, t0);
    assert_eq!(v.stats().unsolicited, 1, "nothing asked yet");
    v.question(c, &query(9, &qname), &[Role::Member; 3], 0, t0)
        .unwrap();
    v.answer(2, c, &message(10, &qname, &[vec![], vec![], vec![]]), t0);
    v.answer(0, c, &right, t0);
    v.answer(1, c, &right, t0);
    v.answer(1, client(1), &right, t0);
    assert_eq!(v.stats().unsolicited, 3);
    v.handle_timeout(t0 + DEADLINE);
    let (tx, ev) = drain(&mut v);
    assert_eq!(tx.len(), 1);
    assert_eq!(
        faults(&ev),
        vec![(2, FaultKind::ValueMismatch { offset: 0 })]
    );
}

#[test]
fn the_oldest_question_is_dropped_over_a_bound_and_counted() {
    let t0 = Instant::now();
    let mut v = DatagramVoter::new(cfg(Policy::Majority, Protocol::Bytes, 4, 2));
    let m = [Role::Member; 3];
    for i in 0..3u8 {
        v.question(client(0), &[i], &m, 0, t0).unwrap();
    }
    assert_eq!((v.pending(), v.stats().dropped), (2, 1));
    // The first question went: the replicas' first answers now match the second.
    for r in 0..3 {
        v.answer(r, client(0), b"1", t0);
    }
    assert_eq!(drain(&mut v).0[0].payload, b"1");
    for k in 1..=4 {
        v.question(client(k), b"q", &m, 0, t0).unwrap();
    }
    assert_eq!(v.pending(), 4);
    assert_eq!(v.stats().dropped, 2, "the oldest of all made room");
    assert_eq!(v.pending_for(&client(0)), 0);
}

#[test]
fn observers_are_compared_absent_replicas_get_nothing_and_unanimous_is_fail_stop() {
    let t0 = Instant::now();
    let mut v = DatagramVoter::new(cfg(Policy::Majority, Protocol::Bytes, 16, 16));
    let c = client(0);
    let roles = [
        Role::Member,
        Role::Observer,
        Role::Member,
        Role::Absent,
        Role::Member,
    ];
    v.question(c, b"q", &roles, 4, t0).unwrap();
    v.answer(1, c, b"x", t0);
    v.answer(0, c, b"a", t0);
    v.answer(2, c, b"a", t0);
    assert!(drain(&mut v).0.is_empty(), "q = 3 of the 5 configured");
    v.answer(4, c, b"a", t0);
    let (tx, ev) = drain(&mut v);
    assert_eq!(tx[0].payload, b"a");
    assert_eq!(
        faults(&ev),
        vec![(1, FaultKind::ValueMismatch { offset: 0 })]
    );
    assert!(ev.contains(&DatagramEvent::Agreed {
        replica: 4,
        epoch: 4,
        bytes: 1
    }));

    let mut u = DatagramVoter::new(cfg(Policy::Unanimous, Protocol::Bytes, 16, 16));
    assert_eq!(
        u.question(c, b"q", &[Role::Member, Role::Observer], 0, t0),
        Err(Refusal::NoQuorum)
    );
    u.question(c, b"q", &[Role::Member; 2], 0, t0).unwrap();
    u.answer(0, c, b"a", t0);
    u.answer(1, c, b"b", t0);
    let (tx, ev) = drain(&mut u);
    assert!(tx.is_empty());
    assert!(faults(&ev).is_empty(), "two that differ: nobody is blamed");
    assert_eq!(u.stats().no_quorum, 2, "the refused question and this one");
}

#[test]
fn malformed_dns_questions_go_nowhere() {
    let mut v = DatagramVoter::new(cfg(Policy::Majority, Protocol::Dns, 16, 16));
    let r = v.question(client(0), &[1, 2, 3], &[Role::Member; 3], 0, Instant::now());
    assert!(matches!(
        r,
        Err(Refusal::Malformed(dns::DnsError::Truncated(_)))
    ));
    assert_eq!((v.stats().dropped, v.pending()), (1, 0));
}

#[test]
fn a_lost_answer_of_a_replica_that_answers_later_questions_blames_nobody() {
    let t0 = Instant::now();
    let mut v = DatagramVoter::new(cfg(Policy::Majority, Protocol::Bytes, 16, 16));
    let m = [Role::Member; 3];
    v.question(client(0), b"q1", &m, 0, t0).unwrap();
    v.question(client(1), b"q2", &m, 0, t0).unwrap();
    // r2's answer to q1 is lost; it answers q2.
    for r in 0..2 {
        v.answer(r, client(0), b"a1", t0);
    }
    for r in 0..3 {
        v.answer(r, client(1), b"a2", t0);
    }
    v.handle_timeout(t0 + DEADLINE);
    let (tx, ev) = drain(&mut v);
    assert_eq!(tx.len(), 2);
    assert!(faults(&ev).is_empty(), "{ev:?}");
    let s = v.stats();
    assert_eq!((s.answered, s.masked, s.lost), (2, 1, 1));
}

#[test]
fn a_late_answer_to_an_ended_question_is_not_taken_for_a_corrupted_one() {
    let t0 = Instant::now();
    let mut v = DatagramVoter::new(cfg(Policy::Majority, Protocol::Dns, 16, 16));
    let c = client(0);
    let qname = name(&["www", "example"]);
    let answer = |id| message(id, &qname, &[vec![], vec![], vec![]]);
    v.question(c, &query(1, &qname), &[Role::Member; 3], 0, t0)
        .unwrap();
    for r in 0..2 {
        v.answer(r, c, &answer(1), t0);
    }
    v.handle_timeout(t0 + DEADLINE);
    assert_eq!(faults(&drain(&mut v).1), vec![(2, FaultKind::Straggler)]);
    // The next question; r2's answer to the first comes late, then r2 goes silent again.
    let t1 = t0 + DEADLINE;
    v.question(c, &query(2, &qname), &[Role::Member; 3], 0, t1)
        .unwrap();
    v.answer(2, c, &answer(1), t1);
    assert_eq!(v.stats().unsolicited, 1);
    for r in 0..2 {
        v.answer(r, c, &answer(2), t1);
    }
    v.handle_timeout(t1 + DEADLINE);
    let f = faults(&drain(&mut v).1);
    assert!(
        f.iter()
            .all(|(_, k)| *k != FaultKind::ValueMismatch { offset: 0 }),
        "{f:?}"
    );
}

#[test]
fn a_full_table_drops_an_answered_question_before_an_unanswered_one() {
    let t0 = Instant::now();
    let mut v = DatagramVoter::new(cfg(Policy::Majority, Protocol::Bytes, 2, 2));
    let m = [Role::Member; 3];
    v.question(client(0), b"q0", &m, 0, t0).unwrap();
    v.question(client(1), b"q1", &m, 0, t0).unwrap();
    // q1 is answered by two (the third is late); q0 waits for everyone.
    for r in 0..2 {
        v.answer(r, client(1), b"a1", t0);
    }
    v.question(client(2), b"q2", &m, 0, t0).unwrap();
    assert_eq!(
        v.pending_for(&client(0)),
        1,
        "the unanswered question stays"
    );
    assert_eq!(v.pending_for(&client(1)), 0, "the answered one made room");
    assert_eq!(v.stats().dropped, 1);
}
