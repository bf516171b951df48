//! Property and scenario tests of the sans-IO voter (`domain_nv::voter`).

use std::time::{Duration, Instant};

use domain_nv::voter::{
    Fault, FaultKind, NoQuorum, Policy, ReplicaState, Role, Voter, VoterConfig, VoterEvent,
};
use proptest::prelude::*;

const TIMEOUT: Duration = Duration::from_secs(3600);

fn cfg(policy: Policy, limit: usize) -> VoterConfig {
    VoterConfig {
        policy,
        straggler_timeout: TIMEOUT,
        buffer_limit: limit,
    }
}

/// A client and N replicas around one voter, with a fake clock.
struct Sim {
    v: Voter,
    t0: Instant,
    tick: u64,
    client: Vec<u8>,
    events: Vec<VoterEvent>,
    pos: Vec<usize>,
    fin_sent: Vec<bool>,
    limit: usize,
}

impl Sim {
    fn new(policy: Policy, n: usize, limit: usize) -> Sim {
        Sim::with_roles(policy, &vec![Role::Member; n], limit)
    }
    fn with_roles(policy: Policy, roles: &[Role], limit: usize) -> Sim {
        let t0 = Instant::now();
        let n = roles.len();
        Sim {
            v: Voter::with_roles(cfg(policy, limit), roles, t0),
            t0,
            tick: 0,
            client: Vec::new(),
            events: Vec::new(),
            pos: vec![0; n],
            fin_sent: vec![false; n],
            limit,
        }
    }
    fn now(&mut self) -> Instant {
        self.tick += 1;
        self.t0 + Duration::from_millis(self.tick)
    }
    fn connect_all(&mut self) {
        for r in 0..self.v.replicas() {
            let now = self.now();
            self.v.replica_connected(r, now);
        }
        self.pump();
    }
    /// Drain events and client output, checking the memory bounds.
    fn pump(&mut self) {
        loop {
            let out = self.v.client_output();
            if out.is_empty() {
                break;
            }
            let n = out.len();
            self.client.extend_from_slice(out);
            let now = self.t0 + Duration::from_millis(self.tick);
            self.v.client_output_sent(n, now);
        }
        while let Some(e) = self.v.poll_event() {
            self.events.push(e);
        }
        for r in 0..self.v.replicas() {
            assert!(self.v.replica_unvoted(r) <= self.limit);
        }
        assert!(self.v.input_buffered() <= self.limit);
        assert!(self.v.buffered_bytes() <= (self.v.replicas() + 2) * self.limit);
    }
    /// Push up to `size` more bytes of `stream` from replica `r`; returns how many were taken.
    fn push(&mut self, r: usize, stream: &[u8], size: usize) -> usize {
        let p = self.pos[r];
        let end = (p + size).min(stream.len());
        let now = self.now();
        let n = self.v.push_replica(r, &stream[p..end], now);
        self.pos[r] += n;
        self.pump();
        n
    }
    /// Run the given (replica, chunk size) operations, then finish every stream round-robin and
    /// send FIN where `fins[r]`.
    fn run(&mut self, streams: &[Vec<u8>], fins: &[bool], ops: &[(usize, usize)]) {
        let n = self.v.replicas();
        for &(r, size) in ops {
            self.push(r % n, &streams[r % n], size);
        }
        loop {
            let mut progress = false;
            for r in 0..n {
                if self.pos[r] < streams[r].len() {
                    progress |= self.push(r, &streams[r], 4096) > 0;
                } else if fins[r] && !self.fin_sent[r] {
                    self.fin_sent[r] = true;
                    let now = self.now();
                    self.v.replica_fin(r, now);
                    self.pump();
                    progress = true;
                }
            }
            if !progress {
                break;
            }
        }
    }
    fn faults(&self) -> Vec<Fault> {
        self.events
            .iter()
            .filter_map(|e| match e {
                VoterEvent::Fault(f) => Some(f.clone()),
                _ => None,
            })
            .collect()
    }
    fn no_quorums(&self) -> Vec<NoQuorum> {
        self.events
            .iter()
            .filter_map(|e| match e {
                VoterEvent::NoQuorum(nq) => Some(nq.clone()),
                _ => None,
            })
            .collect()
    }
    fn has(&self, e: &VoterEvent) -> bool {
        self.events.contains(e)
    }
}

fn ops_strategy(max_chunk: usize) -> impl Strategy<Value = Vec<(usize, usize)>> {
    prop::collection::vec((0usize..8, 1usize..max_chunk), 0..200)
}

fn data_strategy(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

/// Each fault kind at most once per replica.
fn assert_faults_once(sim: &Sim) {
    let f = sim.faults();
    for r in 0..sim.v.replicas() {
        assert!(
            f.iter().filter(|x| x.replica == r).count() <= 1,
            "replica {r} reported twice: {f:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, .. ProptestConfig::default() })]

    /// Identical streams, random segmentation and interleaving: no fault, exact stream, clean close.
    #[test]
    fn identical_streams_any_segmentation(
        data in data_strategy(20_000),
        ops in ops_strategy(3000),
        setup in 0usize..4,
        limit in 64usize..8192,
    ) {
        let (policy, n) = [
            (Policy::Majority, 3),
            (Policy::Unanimous, 2),
            (Policy::Majority, 5),
            (Policy::PrimaryBackup { primary: 1 }, 3),
        ][setup];
        let mut sim = Sim::new(policy, n, limit);
        sim.connect_all();
        let streams = vec![data.clone(); n];
        sim.run(&streams, &vec![true; n], &ops);
        prop_assert_eq!(sim.faults(), vec![]);
        prop_assert_eq!(&sim.client, &data);
        prop_assert!(sim.has(&VoterEvent::CloseClient));
        prop_assert!(!sim.has(&VoterEvent::ResetClient));
        prop_assert_eq!(sim.v.stats().bytes_released, data.len() as u64);
        for r in 0..n {
            prop_assert_eq!(sim.v.replica_state(r), ReplicaState::Finished);
        }
        // The client closes too: the connection is over once every replica got the FIN.
        let now = sim.now();
        sim.v.client_fin(now);
        for r in 0..n {
            prop_assert!(sim.v.replica_input_fin(r));
        }
        sim.pump();
        prop_assert!(sim.v.is_finished());
        for r in 0..n {
            prop_assert!(sim.has(&VoterEvent::CloseReplica(r)));
        }
    }

    /// One corrupted byte in one of 3 replicas: never released, blamed on it at the right offset,
    /// and the client still gets the whole stream.
    #[test]
    fn corrupted_byte_is_masked_and_blamed(
        data in data_strategy(10_000).prop_filter("non-empty", |d| !d.is_empty()),
        pos_seed in any::<usize>(),
        bad in 0usize..3,
        flip in 1u8..=255,
        ops in ops_strategy(2000),
        limit in 256usize..8192,
    ) {
        let p = pos_seed % data.len();
        let mut streams = vec![data.clone(); 3];
        streams[bad][p] ^= flip;
        let mut sim = Sim::new(Policy::Majority, 3, limit);
        sim.connect_all();
        sim.run(&streams, &[true; 3], &ops);
        prop_assert_eq!(&sim.client, &data);
        let f = sim.faults();
        prop_assert_eq!(f.len(), 1);
        prop_assert_eq!(f[0].replica, bad);
        prop_assert_eq!(&f[0].kind, &FaultKind::ValueMismatch { offset: p as u64 });
        prop_assert!(sim.has(&VoterEvent::ResetReplica(bad)));
        prop_assert_eq!(sim.v.replica_state(bad), ReplicaState::Faulty);
        prop_assert!(sim.has(&VoterEvent::CloseClient));
        prop_assert!(!sim.has(&VoterEvent::ResetClient));
    }

    /// Majority of 5 with two corrupted replicas (random offsets, possibly the same byte value):
    /// both blamed at their offsets, the client gets the correct stream.
    #[test]
    fn two_of_five_corrupted_masked(
        data in data_strategy(10_000).prop_filter("non-empty", |d| !d.is_empty()),
        seeds in (any::<usize>(), any::<usize>()),
        bad in (0usize..5, 1usize..5),
        flip in 1u8..=255,
        ops in ops_strategy(2000),
        limit in 256usize..8192,
    ) {
        let (b1, b2) = (bad.0, (bad.0 + bad.1) % 5);
        let (p1, p2) = (seeds.0 % data.len(), seeds.1 % data.len());
        let mut streams = vec![data.clone(); 5];
        streams[b1][p1] ^= flip;
        streams[b2][p2] ^= flip;
        let mut sim = Sim::new(Policy::Majority, 5, limit);
        sim.connect_all();
        sim.run(&streams, &[true; 5], &ops);
        prop_assert_eq!(&sim.client, &data);
        let mut f: Vec<(usize, FaultKind)> = sim.faults().into_iter().map(|f| (f.replica, f.kind)).collect();
        f.sort_by_key(|x| x.0);
        let mut want = vec![
            (b1, FaultKind::ValueMismatch { offset: p1 as u64 }),
            (b2, FaultKind::ValueMismatch { offset: p2 as u64 }),
        ];
        want.sort_by_key(|x| x.0);
        prop_assert_eq!(f, want);
        prop_assert!(sim.has(&VoterEvent::CloseClient));
    }

    /// N=2 unanimous: any divergence resets the client and no differing byte is released.
    #[test]
    fn unanimous_divergence_fail_stop(
        data in data_strategy(10_000).prop_filter("non-empty", |d| !d.is_empty()),
        pos_seed in any::<usize>(),
        bad in 0usize..2,
        flip in 1u8..=255,
        ops in ops_strategy(2000),
        limit in 256usize..8192,
    ) {
        let p = pos_seed % data.len();
        let mut streams = vec![data.clone(); 2];
        streams[bad][p] ^= flip;
        let mut sim = Sim::new(Policy::Unanimous, 2, limit);
        sim.connect_all();
        sim.run(&streams, &[true; 2], &ops);
        prop_assert!(sim.client.len() <= p);
        prop_assert_eq!(&sim.client[..], &data[..sim.client.len()]);
        prop_assert!(sim.has(&VoterEvent::ResetClient));
        prop_assert!(!sim.has(&VoterEvent::CloseClient));
        // No quorum: reported once, and nobody is blamed for it.
        prop_assert_eq!(sim.no_quorums().len(), 1);
        prop_assert!(sim.faults().is_empty(), "{:?}", sim.faults());
        prop_assert!(sim.v.is_finished());
        assert_faults_once(&sim);
    }

    /// Primary-backup: the primary crashes mid-stream; a backup continues from the released
    /// offset. The crash is blamed unless the primary had produced the whole stream: a reset
    /// where the voted FIN then falls is how a server closes with unread input, not a fault.
    #[test]
    fn primary_crash_fails_over(
        data in data_strategy(20_000),
        crash_seed in any::<usize>(),
        n in 2usize..4,
        ops in ops_strategy(3000),
        limit in 256usize..8192,
    ) {
        let crash_at = crash_seed % (data.len() + 1);
        let mut sim = Sim::new(Policy::PrimaryBackup { primary: 0 }, n, limit);
        sim.connect_all();
        // The primary gets ahead (up to the window), then crashes.
        while sim.pos[0] < crash_at && sim.push(0, &data[..crash_at], 1024) > 0 {}
        let released_before = sim.client.len();
        prop_assert_eq!(&sim.client[..], &data[..released_before]);
        let now = sim.now();
        sim.v.replica_reset(0, now);
        sim.pump();
        let mut streams = vec![data.clone(); n];
        streams[0] = data[..sim.pos[0]].to_vec();
        let whole_stream_before_the_crash = sim.pos[0] == data.len();
        let ops: Vec<(usize, usize)> = ops.into_iter().filter(|o| o.0 % n != 0).collect();
        sim.run(&streams, &vec![true; n], &ops);
        prop_assert_eq!(&sim.client, &data);
        prop_assert!(sim.has(&VoterEvent::CloseClient));
        prop_assert!(sim.v.primary() != Some(0));
        let f = sim.faults();
        if whole_stream_before_the_crash {
            prop_assert_eq!(f, vec![]);
        } else {
            prop_assert_eq!(f.len(), 1);
            prop_assert_eq!(f[0].replica, 0);
            prop_assert_eq!(&f[0].kind, &FaultKind::Reset);
        }
    }

    /// Primary-backup: a diverging backup is blamed; the client gets the primary's stream.
    #[test]
    fn backup_divergence_blamed(
        data in data_strategy(10_000).prop_filter("non-empty", |d| !d.is_empty()),
        pos_seed in any::<usize>(),
        n in 2usize..4,
        flip in 1u8..=255,
        ops in ops_strategy(2000),
        limit in 256usize..8192,
    ) {
        let p = pos_seed % data.len();
        let bad = n - 1;
        let mut streams = vec![data.clone(); n];
        streams[bad][p] ^= flip;
        let mut sim = Sim::new(Policy::PrimaryBackup { primary: 0 }, n, limit);
        sim.connect_all();
        sim.run(&streams, &vec![true; n], &ops);
        prop_assert_eq!(&sim.client, &data);
        let f = sim.faults();
        prop_assert_eq!(f.len(), 1);
        prop_assert_eq!(f[0].replica, bad);
        prop_assert_eq!(&f[0].kind, &FaultKind::ValueMismatch { offset: p as u64 });
        prop_assert!(sim.has(&VoterEvent::CloseClient));
    }

    /// Input fan-out: every live replica reads exactly the client's bytes, in order, then FIN.
    #[test]
    fn input_fan_out(
        input in data_strategy(30_000),
        chunks in prop::collection::vec(1usize..5000, 1..40),
        reads in prop::collection::vec((0usize..3, 1usize..5000), 0..200),
        limit in 64usize..8192,
    ) {
        let mut v = Voter::new(cfg(Policy::Majority, limit), 3, Instant::now());
        let now = Instant::now();
        // Replica 2 connects late: it still gets everything.
        v.replica_connected(0, now);
        v.replica_connected(1, now);
        let mut got = vec![Vec::new(); 3];
        let mut fed = 0;
        let mut ci = 0;
        let mut ri = 0;
        let read = |v: &mut Voter, got: &mut Vec<Vec<u8>>, r: usize, max: usize| {
            let inp = v.replica_input(r);
            let n = inp.len().min(max);
            got[r].extend_from_slice(&inp[..n]);
            v.replica_input_sent(r, n);
            n
        };
        while fed < input.len() {
            let c = chunks[ci % chunks.len()];
            ci += 1;
            let end = (fed + c).min(input.len());
            fed += v.push_client(&input[fed..end], now);
            assert!(v.input_buffered() <= limit);
            if ri < reads.len() {
                let (r, m) = reads[ri];
                ri += 1;
                read(&mut v, &mut got, r, m);
            } else {
                for r in 0..3 {
                    read(&mut v, &mut got, r, usize::MAX);
                }
            }
            if ri >= reads.len() / 2 {
                v.replica_connected(2, now);
            }
        }
        v.replica_connected(2, now);
        v.client_fin(now);
        prop_assert_eq!(v.client_window(), 0);
        for r in 0..3 {
            while read(&mut v, &mut got, r, usize::MAX) > 0 {}
            prop_assert_eq!(&got[r], &input);
            prop_assert!(v.replica_input_fin(r));
        }
        prop_assert_eq!(v.input_buffered(), 0);
        prop_assert_eq!(v.stats().client_bytes_in, input.len() as u64);
    }
}

fn stream(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 7) as u8).collect()
}

#[test]
fn backup_straggler_cut_off() {
    let data = stream(6000);
    let mut sim = Sim::new(Policy::PrimaryBackup { primary: 0 }, 3, 65536);
    sim.connect_all();
    sim.push(0, &data, 6000);
    assert_eq!(sim.client, data, "primary bytes released at once");
    sim.push(1, &data, 6000);
    sim.push(2, &data, 100);
    let deadline = sim.v.poll_timeout().expect("backup 2 is behind");
    sim.v.handle_timeout(deadline);
    sim.pump();
    assert_eq!(only_fault(&sim), (2, FaultKind::Straggler));
    assert_eq!(sim.v.primary(), Some(0));
}

#[test]
fn primary_fault_when_backups_agree() {
    let data = stream(5000);
    let mut bad = data.clone();
    bad[1234] ^= 0x55;
    let mut sim = Sim::new(Policy::PrimaryBackup { primary: 0 }, 3, 4096);
    sim.connect_all();
    sim.run(&[bad, data.clone(), data.clone()], &[true; 3], &[(0, 5000)]);
    let f = sim.faults();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        (f[0].replica, &f[0].kind),
        (0, &FaultKind::ValueMismatch { offset: 1234 })
    );
    assert!(sim.has(&VoterEvent::ResetClient));
    assert!(!sim.has(&VoterEvent::CloseClient));
}

#[test]
fn primary_stall_fails_over_by_timeout() {
    let data = stream(10_000);
    let mut sim = Sim::new(Policy::PrimaryBackup { primary: 0 }, 2, 65536);
    sim.connect_all();
    sim.push(0, &data, 3000);
    sim.push(1, &data, 6000);
    assert_eq!(sim.client, &data[..3000]);
    let deadline = sim.v.poll_timeout().expect("primary is behind the backup");
    sim.v.handle_timeout(deadline - Duration::from_millis(1));
    sim.pump();
    assert!(sim.faults().is_empty());
    sim.v.handle_timeout(deadline);
    sim.pump();
    assert_eq!(sim.v.primary(), Some(1));
    assert_eq!(sim.client, &data[..6000]);
    sim.run(&[data[..3000].to_vec(), data.clone()], &[false, true], &[]);
    assert_eq!(sim.client, data);
    let f = sim.faults();
    assert_eq!(
        (f.len(), f[0].replica, &f[0].kind),
        (1, 0, &FaultKind::Straggler)
    );
    assert!(sim.has(&VoterEvent::CloseClient));
}

/// Majority of 3 with replica `odd` doing something else; returns the sim after the others
/// finished their streams.
fn minority_case(odd_stream: &[u8], odd_fin: bool, prepare: impl FnOnce(&mut Sim)) -> Sim {
    let data = stream(8000);
    let mut sim = Sim::new(Policy::Majority, 3, 4096);
    prepare(&mut sim);
    sim.run(
        &[data.clone(), data.clone(), odd_stream.to_vec()],
        &[true, true, odd_fin],
        &[(2, 8000), (0, 100), (1, 3000)],
    );
    assert_eq!(sim.client, data);
    assert!(sim.has(&VoterEvent::CloseClient));
    assert!(!sim.has(&VoterEvent::ResetClient));
    sim
}

fn only_fault(sim: &Sim) -> (usize, FaultKind) {
    let f = sim.faults();
    assert_eq!(f.len(), 1, "{f:?}");
    (f[0].replica, f[0].kind.clone())
}

#[test]
fn minority_refused() {
    let sim = minority_case(&[], false, |s| {
        let now = s.now();
        s.v.replica_refused(2, now);
        s.v.replica_connected(0, now);
        s.pump();
        assert!(s.faults().is_empty(), "one refusal, one connect: undecided");
        s.v.replica_connected(1, now);
        s.pump();
    });
    assert_eq!(only_fault(&sim), (2, FaultKind::Refused));
}

#[test]
fn quorum_refused_resets_client_without_blame() {
    let mut sim = Sim::new(Policy::Majority, 3, 4096);
    let now = sim.now();
    sim.v.replica_connected(0, now);
    sim.v.replica_refused(1, now);
    sim.v.replica_refused(2, now);
    sim.pump();
    assert!(sim.faults().is_empty());
    assert!(sim.has(&VoterEvent::ResetClient));
    assert!(sim.has(&VoterEvent::ResetReplica(0)));
    assert!(sim.v.is_finished());
}

#[test]
fn minority_reset_masked() {
    let data = stream(8000);
    let mut sim = Sim::new(Policy::Majority, 3, 4096);
    sim.connect_all();
    sim.push(2, &data, 2000);
    let now = sim.now();
    sim.v.replica_reset(2, now);
    sim.pump();
    assert!(sim.faults().is_empty(), "not yet known to be a minority");
    sim.run(
        &[data.clone(), data.clone(), data[..2000].to_vec()],
        &[true, true, false],
        &[],
    );
    assert_eq!(sim.client, data);
    assert_eq!(only_fault(&sim), (2, FaultKind::Reset));
    assert!(sim.has(&VoterEvent::CloseClient));
}

#[test]
fn quorum_reset_resets_client() {
    let data = stream(8000);
    let mut sim = Sim::new(Policy::Majority, 3, 4096);
    sim.connect_all();
    for r in 0..3 {
        sim.push(r, &data, 2000);
    }
    let now = sim.now();
    sim.v.replica_reset(0, now);
    sim.v.replica_reset(1, now);
    sim.pump();
    assert!(sim.faults().is_empty());
    assert!(sim.has(&VoterEvent::ResetClient));
    assert!(sim.has(&VoterEvent::ResetReplica(2)));
    assert_eq!(sim.client, &data[..2000]);
}

#[test]
fn minority_early_close() {
    let data = stream(8000);
    let sim = minority_case(&data[..5000], true, |s| s.connect_all());
    assert_eq!(
        only_fault(&sim),
        (2, FaultKind::EarlyClose { offset: 5000 })
    );
}

#[test]
fn minority_flood_beyond_fin() {
    let mut long = stream(8000);
    long.extend_from_slice(b"extra bytes after the end");
    let sim = minority_case(&long, true, |s| s.connect_all());
    assert_eq!(only_fault(&sim), (2, FaultKind::Flood));
}

#[test]
fn majority_no_quorum_when_all_differ() {
    let data = stream(3000);
    let mut streams = vec![data.clone(); 3];
    streams[1][100] ^= 1;
    streams[2][100] ^= 2;
    let mut sim = Sim::new(Policy::Majority, 3, 4096);
    sim.connect_all();
    sim.run(&streams, &[true; 3], &[]);
    assert_eq!(sim.client, &data[..100]);
    assert!(sim.has(&VoterEvent::ResetClient));
    let nq = sim.no_quorums();
    assert_eq!(nq.len(), 1);
    // Nobody is blamed; every replica's position is reported.
    assert!(sim.faults().is_empty(), "{:?}", sim.faults());
    assert_eq!(nq[0].released, 100);
    assert_eq!(nq[0].positions.len(), 3);
    assert!(nq[0].positions.iter().all(|p| p.agreed == 100), "{nq:?}");
    assert_faults_once(&sim);
}

#[test]
fn straggler_deadline() {
    let data = stream(4000);
    let mut sim = Sim::new(Policy::Majority, 3, 4096);
    sim.connect_all();
    assert_eq!(sim.v.poll_timeout(), None);
    sim.push(0, &data, 1000);
    assert_eq!(
        sim.v.poll_timeout(),
        None,
        "one replica ahead is not a quorum"
    );
    sim.push(1, &data, 1000);
    let t_quorum = sim.t0 + Duration::from_millis(sim.tick);
    assert_eq!(sim.v.poll_timeout(), Some(t_quorum + TIMEOUT));
    // Replica 2 catches up part way: still behind, same deadline (time the quorum got there).
    sim.push(2, &data, 500);
    assert_eq!(sim.v.poll_timeout(), Some(t_quorum + TIMEOUT));
    sim.v
        .handle_timeout(t_quorum + TIMEOUT - Duration::from_millis(1));
    sim.pump();
    assert!(sim.faults().is_empty());
    sim.v.handle_timeout(t_quorum + TIMEOUT);
    sim.pump();
    assert_eq!(only_fault(&sim), (2, FaultKind::Straggler));
    assert!(sim.has(&VoterEvent::ResetReplica(2)));
    assert_eq!(sim.v.replica_state(2), ReplicaState::Faulty);
    let t = sim.t0 + TIMEOUT * 2;
    sim.tick = (t - sim.t0).as_millis() as u64;
    sim.run(
        &[data.clone(), data.clone(), vec![]],
        &[true, true, false],
        &[],
    );
    assert_eq!(sim.client, data);
    assert!(sim.has(&VoterEvent::CloseClient));
}

#[test]
fn straggler_while_connecting_and_at_fin() {
    let data = stream(1000);
    let mut sim = Sim::new(Policy::Majority, 3, 4096);
    let now = sim.now();
    sim.v.replica_connected(0, now);
    assert_eq!(sim.v.poll_timeout(), None);
    sim.v.replica_connected(1, now);
    assert_eq!(sim.v.poll_timeout(), Some(now + TIMEOUT));
    sim.v.handle_timeout(now + TIMEOUT);
    sim.pump();
    assert_eq!(only_fault(&sim), (2, FaultKind::Straggler));
    // Replica 1 sends everything but never FINs: deadline from the FIN of... only one FIN is not a
    // quorum, so replica 1 is not a straggler; the stream waits.
    sim.run(
        &[data.clone(), data.clone(), vec![]],
        &[true, false, false],
        &[],
    );
    assert_eq!(sim.client, data);
    assert!(!sim.has(&VoterEvent::CloseClient));
}

#[test]
fn backpressure_replica_not_reading_input() {
    let limit = 10_000;
    let mut v = Voter::new(cfg(Policy::Majority, limit), 3, Instant::now());
    let now = Instant::now();
    for r in 0..3 {
        v.replica_connected(r, now);
    }
    let chunk = vec![7u8; 1500];
    let mut total = 0;
    for _ in 0..100 {
        total += v.push_client(&chunk, now);
        for r in 0..2 {
            let n = v.replica_input(r).len();
            v.replica_input_sent(r, n);
        }
        assert!(v.input_buffered() <= limit);
    }
    assert_eq!(total, limit);
    assert_eq!(v.client_window(), 0);
    assert_eq!(v.input_buffered(), limit);
    // Replica 2 reads a little: the window opens by that much.
    v.replica_input_sent(2, 2500);
    assert_eq!(v.client_window(), 2500);
    // Output side: a replica far ahead of the others is stopped at buffer_limit, no fault.
    let big = vec![1u8; 3 * limit];
    let took = v.push_replica(0, &big, now);
    assert_eq!(took, limit);
    assert_eq!(v.replica_window(0), 0);
    assert!(v.poll_event().is_none());
    assert!(v.buffered_bytes() <= 5 * limit);
}

#[test]
fn client_not_draining_bounds_release() {
    let limit = 4096;
    let mut v = Voter::new(cfg(Policy::Majority, limit), 3, Instant::now());
    let now = Instant::now();
    for r in 0..3 {
        v.replica_connected(r, now);
    }
    let data = stream(50_000);
    let mut pos = [0usize; 3];
    for _ in 0..20 {
        for r in 0..3 {
            pos[r] += v.push_replica(r, &data[pos[r]..], now);
        }
    }
    assert_eq!(v.client_output().len(), limit);
    assert!(pos.iter().all(|&p| p <= 2 * limit));
    assert!((0..3).all(|r| v.replica_window(r) == 0));
    v.client_output_sent(limit, now);
    assert!(
        v.client_output().len() == limit,
        "room freed: next bytes released"
    );
}

#[test]
fn client_reset_resets_replicas() {
    let mut sim = Sim::new(Policy::Majority, 3, 4096);
    sim.connect_all();
    let now = sim.now();
    sim.v.client_reset(now);
    sim.pump();
    for r in 0..3 {
        assert!(sim.has(&VoterEvent::ResetReplica(r)));
    }
    assert!(sim.v.is_finished());
    assert_eq!(sim.v.client_window(), 0);
}

#[test]
fn unanimous_crash_is_fail_stop() {
    let data = stream(3000);
    let mut sim = Sim::new(Policy::Unanimous, 2, 4096);
    sim.connect_all();
    sim.push(0, &data, 1000);
    sim.push(1, &data, 1000);
    let now = sim.now();
    sim.v.replica_reset(1, now);
    sim.pump();
    assert!(sim.has(&VoterEvent::ResetClient));
    assert_eq!(sim.client, &data[..1000]);
}

/// A crashed primary's kernel closes with an ordinary FIN: it is not the end of the stream
/// while a backup goes on; the primary is blamed (early close) and a backup takes over at the
/// same offset without waiting for a straggler deadline.
#[test]
fn primary_fin_before_backups_fails_over() {
    let data = stream(10_000);
    let mut sim = Sim::new(Policy::PrimaryBackup { primary: 0 }, 3, 65536);
    sim.connect_all();
    sim.push(0, &data, 4000);
    let now = sim.now();
    sim.v.replica_fin(0, now);
    sim.fin_sent[0] = true;
    sim.pump();
    assert_eq!(sim.client, &data[..4000]);
    assert!(
        !sim.has(&VoterEvent::CloseClient),
        "a primary FIN alone must not end the stream"
    );
    sim.run(
        &[data[..4000].to_vec(), data.clone(), data.clone()],
        &[true, true, true],
        &[],
    );
    assert_eq!(sim.client, data);
    let f = sim.faults();
    assert_eq!(
        (f.len(), f[0].replica, &f[0].kind),
        (1, 0, &FaultKind::EarlyClose { offset: 4000 })
    );
    assert!(sim.has(&VoterEvent::CloseClient));
}

/// With backups in agreement, the primary's FIN ends the stream once a backup confirms it.
#[test]
fn primary_fin_confirmed_by_backup_closes() {
    let data = stream(5000);
    let mut sim = Sim::new(Policy::PrimaryBackup { primary: 0 }, 2, 65536);
    sim.connect_all();
    sim.push(0, &data, 5000);
    let now = sim.now();
    sim.v.replica_fin(0, now);
    sim.fin_sent[0] = true;
    sim.pump();
    assert!(!sim.has(&VoterEvent::CloseClient));
    sim.run(&[data.clone(), data.clone()], &[true, true], &[]);
    assert_eq!(sim.client, data);
    assert!(sim.faults().is_empty());
    assert!(sim.has(&VoterEvent::CloseClient));
}

/// Once the client has sent FIN, a replica that ends its output before the others (nginx
/// aborting a response on the client's half-close) leaves without blame; the client still gets
/// the quorum's stream.
#[test]
fn early_close_after_client_fin_is_not_blamed() {
    let data = stream(6000);
    let mut sim = Sim::new(Policy::Majority, 3, 65536);
    sim.connect_all();
    let now = sim.now();
    sim.v.client_fin(now);
    sim.push(2, &data, 1000);
    let now = sim.now();
    sim.v.replica_fin(2, now);
    sim.fin_sent[2] = true;
    sim.run(
        &[data.clone(), data.clone(), data[..1000].to_vec()],
        &[true, true, true],
        &[],
    );
    assert_eq!(sim.client, data);
    assert!(sim.faults().is_empty(), "{:?}", sim.faults());
    assert!(sim.has(&VoterEvent::CloseClient));
}

/// A request from the client, handed to every replica, then the client's FIN: the replicas are
/// half-closed.
fn half_close(sim: &mut Sim) {
    let now = sim.now();
    assert_eq!(sim.v.push_client(b"GET / HTTP/1.1\r\n\r\n", now), 18);
    let now = sim.now();
    sim.v.client_fin(now);
    for r in 0..sim.v.replicas() {
        let n = sim.v.replica_input(r).len();
        sim.v.replica_input_sent(r, n);
        assert!(sim.v.replica_input_fin(r));
    }
    sim.pump();
}

/// After the half-close, two replicas cut the response short at the same offset (nginx aborts
/// a response in progress when it sees the client's FIN) and the third sends it all: the quorum's
/// FIN is voted, the third leaves (reset) without blame.
#[test]
fn output_past_fin_after_client_fin_is_not_blamed() {
    let data = stream(6000);
    let mut sim = Sim::new(Policy::Majority, 3, 65536);
    sim.connect_all();
    half_close(&mut sim);
    let cut = data[..2500].to_vec();
    sim.run(
        &[data.clone(), cut.clone(), cut.clone()],
        &[true, true, true],
        &[(1, 2500), (2, 2500)],
    );
    assert_eq!(sim.client, cut);
    assert!(sim.faults().is_empty(), "{:?}", sim.faults());
    assert!(sim.has(&VoterEvent::CloseClient));
    assert!(sim.has(&VoterEvent::ResetReplica(0)));
}

/// Without the client's FIN, output past the quorum's FIN is still a flood.
#[test]
fn output_past_fin_without_client_fin_is_a_flood() {
    let data = stream(6000);
    let mut sim = Sim::new(Policy::Majority, 3, 65536);
    sim.connect_all();
    let cut = data[..2500].to_vec();
    sim.run(
        &[data.clone(), cut.clone(), cut.clone()],
        &[true, true, true],
        &[(1, 2500), (2, 2500)],
    );
    assert_eq!(sim.client, cut);
    assert_eq!(only_fault(&sim), (0, FaultKind::Flood));
}

/// After the half-close, a replica that resets is not blamed; the others' stream goes on.
#[test]
fn reset_after_client_fin_is_not_blamed() {
    let data = stream(6000);
    let mut sim = Sim::new(Policy::Majority, 3, 65536);
    sim.connect_all();
    half_close(&mut sim);
    sim.push(1, &data, 700);
    let now = sim.now();
    sim.v.replica_reset(1, now);
    sim.pump();
    sim.run(
        &[data.clone(), data.clone(), data.clone()],
        &[true, false, true],
        &[],
    );
    assert_eq!(sim.client, data);
    assert!(sim.faults().is_empty(), "{:?}", sim.faults());
    assert!(sim.has(&VoterEvent::CloseClient));
    // N = 2: the survivor alone cannot be checked; fail-stop, nobody blamed.
    let mut sim = Sim::new(Policy::Unanimous, 2, 65536);
    sim.connect_all();
    half_close(&mut sim);
    sim.push(0, &data, 700);
    sim.push(1, &data, 300);
    let now = sim.now();
    sim.v.replica_reset(1, now);
    sim.pump();
    assert!(sim.has(&VoterEvent::ResetClient));
    assert!(sim.faults().is_empty(), "{:?}", sim.faults());
}

/// The half-close excuses how a stream ends, not what it says: a replica whose bytes differ is
/// blamed after the client's FIN too, and the client never gets its bytes.
#[test]
fn value_mismatch_after_client_fin_is_blamed() {
    let data = stream(6000);
    let mut bad = data.clone();
    bad[5990] ^= 1;
    let mut sim = Sim::new(Policy::Majority, 3, 65536);
    sim.connect_all();
    half_close(&mut sim);
    sim.run(&[data.clone(), bad, data.clone()], &[true, true, true], &[]);
    assert_eq!(sim.client, data);
    assert_eq!(
        only_fault(&sim),
        (1, FaultKind::ValueMismatch { offset: 5990 })
    );
}

/// A replica that has not been given all client input yet did not see the FIN: its early close
/// is still blamed.
#[test]
fn early_close_before_the_fin_reached_it_is_blamed() {
    let data = stream(3000);
    let mut sim = Sim::new(Policy::Majority, 3, 65536);
    sim.connect_all();
    let now = sim.now();
    sim.v.push_client(b"request", now);
    sim.v.client_fin(now);
    for r in 0..2 {
        sim.v.replica_input_sent(r, 7);
    }
    sim.run(
        &[data.clone(), data.clone(), data[..1000].to_vec()],
        &[true, true, true],
        &[],
    );
    assert_eq!(sim.client, data);
    assert_eq!(
        only_fault(&sim),
        (2, FaultKind::EarlyClose { offset: 1000 })
    );
}

/// Primary-backup after the half-close: a primary that stops early hands over to a backup that
/// goes on, without blame.
#[test]
fn primary_early_fin_after_client_fin_fails_over_without_blame() {
    let data = stream(8000);
    let mut sim = Sim::new(Policy::PrimaryBackup { primary: 0 }, 3, 65536);
    sim.connect_all();
    half_close(&mut sim);
    sim.run(
        &[data[..3000].to_vec(), data.clone(), data.clone()],
        &[true, true, true],
        &[(0, 3000)],
    );
    assert_eq!(sim.client, data);
    assert!(sim.faults().is_empty(), "{:?}", sim.faults());
    assert!(sim.has(&VoterEvent::CloseClient));
}

/// A client that resets after its FIN (it closed and got data it no longer reads): every replica
/// is reset at once and what they do afterwards is neither voted nor blamed.
#[test]
fn client_reset_after_fin_stops_voting() {
    let data = stream(4000);
    let mut bad = data.clone();
    bad[100] ^= 1;
    let mut sim = Sim::new(Policy::Majority, 3, 65536);
    sim.connect_all();
    half_close(&mut sim);
    let now = sim.now();
    sim.v.client_reset(now);
    sim.pump();
    for r in 0..3 {
        assert!(sim.has(&VoterEvent::ResetReplica(r)));
        assert_eq!(sim.v.replica_window(r), 0);
    }
    sim.run(
        &[data.clone(), bad, data[..10].to_vec()],
        &[true, true, true],
        &[],
    );
    assert!(sim.client.is_empty());
    assert!(sim.faults().is_empty(), "{:?}", sim.faults());
    assert!(sim.v.is_finished());
    assert_eq!(sim.v.poll_timeout(), None);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, .. ProptestConfig::default() })]

    /// After the half-close, every replica ends its correct stream wherever and however it likes
    /// (FIN or reset at any offset, any segmentation): nobody is blamed, the client gets a prefix
    /// of the stream, and the whole stream whenever a quorum sent it all.
    #[test]
    fn ends_after_client_fin_are_never_blamed(
        data in data_strategy(8000),
        cuts in prop::collection::vec((any::<prop::sample::Index>(), any::<bool>(), any::<bool>()), 3),
        ops in ops_strategy(2000),
        setup in 0usize..3,
    ) {
        let (policy, n) = [(Policy::Majority, 3), (Policy::Unanimous, 2), (Policy::PrimaryBackup { primary: 0 }, 3)][setup];
        let mut sim = Sim::new(policy, n, 4096);
        sim.connect_all();
        half_close(&mut sim);
        // (length, ends with FIN (else reset)) per replica; `whole` keeps the full stream.
        let ends: Vec<(usize, bool)> = cuts[..n]
            .iter()
            .map(|(i, fin, whole)| (if *whole { data.len() } else { i.index(data.len() + 1) }, *fin))
            .collect();
        let streams: Vec<Vec<u8>> = ends.iter().map(|&(len, _)| data[..len].to_vec()).collect();
        let fins: Vec<bool> = ends.iter().map(|e| e.1).collect();
        sim.run(&streams, &fins, &ops);
        for (r, &(_, fin)) in ends.iter().enumerate() {
            if !fin {
                let now = sim.now();
                sim.v.replica_reset(r, now);
                sim.pump();
            }
        }
        prop_assert_eq!(sim.faults(), vec![]);
        prop_assert!(data.starts_with(&sim.client));
        let complete = ends.iter().filter(|e| *e == &(data.len(), true)).count();
        if policy == Policy::Majority && complete >= 2 {
            prop_assert_eq!(&sim.client, &data);
            prop_assert!(sim.has(&VoterEvent::CloseClient));
        }
    }
}

/// A replica already far ahead of an idle quorum when the client's FIN comes (a flood the
/// quorum never produced): the quorum's FIN at its end is no reaction to the half-close, so
/// the output beyond it is still a flood.
#[test]
fn flood_ahead_of_idle_quorum_before_client_fin_is_blamed() {
    let data = stream(5000);
    let mut sim = Sim::new(Policy::Majority, 3, 65536);
    sim.connect_all();
    for r in 0..3 {
        sim.push(r, &data, 1000);
    }
    sim.push(1, &data, 4000);
    assert_eq!(sim.client, &data[..1000]);
    half_close(&mut sim);
    for r in [0, 2] {
        let now = sim.now();
        sim.v.replica_fin(r, now);
    }
    sim.pump();
    assert_eq!(sim.client, &data[..1000]);
    assert!(sim.has(&VoterEvent::CloseClient));
    assert_eq!(only_fault(&sim), (1, FaultKind::Flood));
}

// ---- membership: who may decide ----

/// A membership event: a fault of some kind, a restart, or a connection in agreement.
#[derive(Debug, Clone)]
enum MemberEvent {
    Fault(usize, FaultKind),
    Restart(usize),
    Agreed(usize, u64),
}

fn member_events(n: usize) -> impl Strategy<Value = Vec<MemberEvent>> {
    let kind = prop_oneof![
        Just(FaultKind::ValueMismatch { offset: 0 }),
        Just(FaultKind::Flood),
        Just(FaultKind::Refused),
        Just(FaultKind::Reset),
        Just(FaultKind::EarlyClose { offset: 0 }),
        Just(FaultKind::Straggler),
    ];
    let event = prop_oneof![
        (0..n, kind).prop_map(|(r, k)| MemberEvent::Fault(r, k)),
        (0..n).prop_map(MemberEvent::Restart),
        (0..n, 0u64..3).prop_map(|(r, back)| MemberEvent::Agreed(r, back)),
    ];
    prop::collection::vec(event, 0..40)
}

/// The roles after `events` applied to a fresh membership book of `n` replicas (probation: 2
/// connections, 10 bytes). `Agreed(r, back)` counts a connection opened `back` epochs ago.
fn roles_after(n: usize, events: &[MemberEvent]) -> Vec<Role> {
    use domain_nv::config::Probation;
    use domain_nv::membership::Membership;
    let mut m = Membership::new(
        n,
        Probation {
            connections: 2,
            bytes: 10,
        },
    );
    for e in events {
        match e {
            MemberEvent::Fault(r, kind) => {
                m.fault(*r, kind);
            }
            MemberEvent::Restart(r) => {
                m.rejoin(*r);
            }
            MemberEvent::Agreed(r, back) => {
                let epoch = m.epoch().saturating_sub(*back);
                m.agreed(*r, epoch, 8);
            }
        }
    }
    m.roles()
}

/// Streams equal to `data` except at `p`, where replica `r`'s byte is `data[p] ^ values[r]`.
fn streams_with_values(data: &[u8], p: usize, values: &[u8]) -> Vec<Vec<u8>> {
    values
        .iter()
        .map(|&v| {
            let mut s = data.to_vec();
            s[p] ^= v;
            s
        })
        .collect()
}

/// The Members whose byte at `p` is what the client received there.
fn members_with(roles: &[Role], streams: &[Vec<u8>], p: usize, byte: u8) -> usize {
    (0..roles.len())
        .filter(|&r| roles[r] == Role::Member && streams[r][p] == byte)
        .count()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, .. ProptestConfig::default() })]

    /// Majority after any sequence of restarts, joins and faults: a byte reaches the client only
    /// if at least the configured quorum floor(N/2)+1 of Members produced it; Joining
    /// (observer) and Excluded (absent) replicas never count, and an observer that differs from
    /// what was released is reported.
    #[test]
    fn majority_decides_only_with_a_quorum_of_members(
        n in 3usize..6,
        events in member_events(5),
        values in prop::collection::vec(0u8..3, 5),
        data in data_strategy(3000).prop_filter("non-empty", |d| !d.is_empty()),
        pos_seed in any::<usize>(),
        ops in ops_strategy(1500),
        limit in 256usize..8192,
    ) {
        let events: Vec<MemberEvent> = events.into_iter().filter(|e| match e {
            MemberEvent::Fault(r, _) | MemberEvent::Restart(r) | MemberEvent::Agreed(r, _) => *r < n,
        }).collect();
        let roles = roles_after(n, &events);
        let p = pos_seed % data.len();
        let streams = streams_with_values(&data, p, &values[..n]);
        let mut sim = Sim::with_roles(Policy::Majority, &roles, limit);
        sim.connect_all();
        sim.run(&streams, &vec![true; n], &ops);
        let q = n / 2 + 1;
        if sim.client.len() > p {
            let byte = sim.client[p];
            prop_assert!(
                members_with(&roles, &streams, p, byte) >= q,
                "decided by fewer than {} Members: roles {:?} values {:?}", q, roles, values
            );
            for r in 0..n {
                if roles[r] == Role::Observer && streams[r][p] != byte {
                    prop_assert!(sim.faults().iter().any(|f| f.replica == r));
                }
            }
        }
        // Observers never keep Members from deciding: a quorum of agreeing Members delivers all.
        let agreeing = (0..3u8)
            .map(|v| (0..n).filter(|&r| roles[r] == Role::Member && values[r] == v).count())
            .max()
            .unwrap_or(0);
        if agreeing >= q {
            prop_assert!(sim.client.len() > p);
        }
        if sim.client.len() == data.len() {
            prop_assert!(sim.has(&VoterEvent::CloseClient) || agreeing < q);
        }
        // Absent replicas are never connected or blamed; nobody is blamed for a missing quorum.
        for (r, role) in roles.iter().enumerate() {
            if *role == Role::Absent {
                prop_assert_eq!(sim.v.replica_state(r), ReplicaState::Gone);
                prop_assert!(!sim.faults().iter().any(|f| f.replica == r));
            }
        }
        if sim.client.len() <= p {
            prop_assert!(sim.faults().is_empty(), "blamed without a decision: {:?}", sim.faults());
        }
        assert_faults_once(&sim);
    }

    /// Unanimous: an answer is released only if every configured replica is a Member and all
    /// agree; PrimaryBackup: only a Member's output is ever released.
    #[test]
    fn unanimous_and_primary_backup_decide_only_with_members(
        n in 2usize..5,
        events in member_events(4),
        values in prop::collection::vec(0u8..3, 4),
        data in data_strategy(3000).prop_filter("non-empty", |d| !d.is_empty()),
        pos_seed in any::<usize>(),
        primary_seed in any::<usize>(),
        ops in ops_strategy(1500),
        limit in 256usize..8192,
    ) {
        let events: Vec<MemberEvent> = events.into_iter().filter(|e| match e {
            MemberEvent::Fault(r, _) | MemberEvent::Restart(r) | MemberEvent::Agreed(r, _) => *r < n,
        }).collect();
        let roles = roles_after(n, &events);
        let p = pos_seed % data.len();
        let streams = streams_with_values(&data, p, &values[..n]);

        let mut sim = Sim::with_roles(Policy::Unanimous, &roles, limit);
        sim.connect_all();
        sim.run(&streams, &vec![true; n], &ops);
        if !sim.client.is_empty() {
            prop_assert!(roles.iter().all(|&r| r == Role::Member), "roles {:?}", roles);
        }
        if sim.client.len() > p {
            prop_assert!(members_with(&roles, &streams, p, sim.client[p]) == n);
        }

        let primary = primary_seed % n;
        let mut sim = Sim::with_roles(Policy::PrimaryBackup { primary }, &roles, limit);
        sim.connect_all();
        sim.run(&streams, &vec![true; n], &ops);
        if !sim.client.is_empty() {
            prop_assert!(roles.contains(&Role::Member));
        }
        if sim.client.len() > p {
            prop_assert!(members_with(&roles, &streams, p, sim.client[p]) >= 1);
            if let Some(leader) = sim.v.primary() {
                prop_assert_eq!(roles[leader], Role::Member);
            }
        }
    }
}

/// N = 3 with one replica excluded: the other two must agree, else fail-stop (the bug of
/// issue 13: two empty replicas must not outvote the one with the data).
#[test]
fn excluded_replica_never_lowers_the_bar() {
    let data = stream(500);
    let mut wrong = data.clone();
    wrong[10] ^= 1;
    // r0 excluded, r1 lost its state, r2 has the data.
    let roles = [Role::Absent, Role::Member, Role::Member];
    let mut sim = Sim::with_roles(Policy::Majority, &roles, 4096);
    sim.connect_all();
    sim.run(
        &[wrong.clone(), wrong.clone(), data.clone()],
        &[true; 3],
        &[],
    );
    assert!(sim.client.len() <= 10 && data.starts_with(&sim.client));
    assert!(sim.has(&VoterEvent::ResetClient));
    assert_eq!(sim.no_quorums().len(), 1);
    assert!(sim.faults().is_empty(), "{:?}", sim.faults());
    // r0 joining (observer) with r1's wrong answer: still no quorum, and r0 is reported.
    let roles = [Role::Observer, Role::Member, Role::Member];
    let mut sim = Sim::with_roles(Policy::Majority, &roles, 4096);
    sim.connect_all();
    sim.run(
        &[wrong.clone(), wrong.clone(), data.clone()],
        &[true; 3],
        &[],
    );
    assert!(sim.client.len() <= 10 && data.starts_with(&sim.client));
    assert_eq!(sim.no_quorums().len(), 1);
    // The two Members agree: the observer's wrong answer is reported, the client gets it all.
    let mut sim = Sim::with_roles(Policy::Majority, &roles, 4096);
    sim.connect_all();
    sim.run(
        &[wrong.clone(), data.clone(), data.clone()],
        &[true; 3],
        &[],
    );
    assert_eq!(sim.client, data);
    assert!(sim.has(&VoterEvent::CloseClient));
    assert_eq!(
        only_fault(&sim),
        (0, FaultKind::ValueMismatch { offset: 10 })
    );
}

/// An observer that agrees finishes with the quorum (its probation counts this connection).
#[test]
fn agreeing_observer_finishes_with_the_quorum() {
    let data = stream(3000);
    let roles = [Role::Member, Role::Observer, Role::Member];
    let mut sim = Sim::with_roles(Policy::Majority, &roles, 1024);
    sim.connect_all();
    sim.run(&[data.clone(), data.clone(), data.clone()], &[true; 3], &[]);
    assert_eq!(sim.client, data);
    assert!(sim.faults().is_empty());
    assert_eq!(sim.v.replica_state(1), ReplicaState::Finished);
    assert_eq!(sim.v.agreed_output(1), data.len() as u64);
    assert_eq!(sim.v.role(1), Role::Observer);
}

/// A replica whose reply stream does not frame (reported by the protocol layer) is cut off as
/// a fault, once; the others go on.
#[test]
fn a_protocol_error_cuts_the_replica_off_and_the_others_go_on() {
    let t = Instant::now();
    let mut v = Voter::new(cfg(Policy::Majority, 1 << 10), 3, t);
    for r in 0..3 {
        v.replica_connected(r, t);
    }
    v.replica_protocol_error(1, 7, "not a reply", t);
    v.replica_protocol_error(1, 9, "again", t);
    let events: Vec<VoterEvent> = std::iter::from_fn(|| v.poll_event()).collect();
    let faults: Vec<&Fault> = events
        .iter()
        .filter_map(|e| match e {
            VoterEvent::Fault(f) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(faults.len(), 1, "{events:?}");
    assert_eq!(
        (faults[0].replica, &faults[0].kind),
        (
            1,
            &FaultKind::ProtocolError {
                offset: 7,
                reason: "not a reply"
            }
        )
    );
    assert!(events.contains(&VoterEvent::ResetReplica(1)), "{events:?}");
    assert_eq!(v.replica_state(1), ReplicaState::Faulty);
    v.push_replica(0, b"+OK\r\n", t);
    v.push_replica(2, b"+OK\r\n", t);
    assert_eq!(v.client_output(), b"+OK\r\n");
}
