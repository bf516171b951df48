//! The sequencer's own cost per request (no sockets, no voter): 50 connections, 3 replicas,
//! each connection with one write in flight at a time, as `redis-benchmark -c 50 -t set` makes
//! them; with one key (every write conflicts: each waits for the one before to be answered by
//! every replica) and with 100,000 keys (conflicts are rare). Each iteration answers one
//! admitted request by all 3 replicas and submits that connection's next one.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use domain_nv::protocol::sequencer::Sequencer;
use domain_nv::protocol::Access;

/// Client connections.
const CONNS: u64 = 50;
/// Replicas of each connection.
const REPLICAS: usize = 3;
/// Requests per measured batch.
const BATCH: u64 = 10_000;

/// A sequencer with every connection's first write submitted, and the keys of the writes.
struct Load {
    seq: Sequencer,
    keys: u64,
    next: u64,
    answered: Vec<u64>,
}

impl Load {
    fn new(keys: u64) -> Load {
        let mut load = Load {
            seq: Sequencer::new(),
            keys,
            next: 0,
            answered: vec![0; CONNS as usize],
        };
        for c in 0..CONNS {
            load.seq.open(c, REPLICAS);
        }
        for c in 0..CONNS {
            load.submit(c);
        }
        load
    }

    /// Connection `c`'s next write, to key `next mod keys` (scattered over the key space).
    fn submit(&mut self, c: u64) {
        let k = self.next.wrapping_mul(0x9e37_79b9) % self.keys;
        self.next += 1;
        let key = format!("key:{k:012}").into_bytes();
        self.seq
            .submit(c, Access::Write(vec![key]))
            .expect("one at a time");
    }

    /// Answers `n` admitted requests (every replica replies), each followed by its
    /// connection's next write.
    fn run(&mut self, n: u64) {
        let mut done = 0;
        while done < n {
            for c in 0..CONNS {
                if self.seq.admitted(c) > self.answered[c as usize] {
                    for r in 0..REPLICAS {
                        self.seq.replied(c, r, 1);
                    }
                    self.answered[c as usize] += 1;
                    done += 1;
                    self.submit(c);
                }
            }
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("sequencer, 50 connections x 3 replicas");
    g.throughput(Throughput::Elements(BATCH));
    for (name, keys) in [("one key", 1), ("100000 keys", 100_000)] {
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || Load::new(keys),
                |load| black_box(load).run(BATCH),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
