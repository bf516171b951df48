//! Voting throughput: 3 identical 16 MiB replica streams under random segmentation (1..64 KiB
//! chunks, interleaved) through the voter, against plain slice equality (memcmp) of the same bytes
//! twice (what any 3-way comparison must at least do). Each replica's stream is its own copy in
//! memory (as in separate socket buffers), for the voter and for memcmp alike. Prints the ratio at
//! the end.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use domain_nv::voter::{Policy, Voter, VoterConfig};

const LEN: usize = 16 << 20;
const MAX_CHUNK: usize = 64 << 10;

/// xorshift64*: deterministic data and segmentation without extra dependencies.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

struct Input {
    /// Per replica: its own copy of the same stream bytes.
    streams: [Vec<u8>; 3],
    /// Per replica: chunk sizes covering `data`.
    chunks: Vec<Vec<usize>>,
    /// Order in which replicas push their next chunk.
    order: Vec<usize>,
}

fn input() -> Input {
    let mut rng = Rng(0x5d9e_b857_1a7d_c4e2);
    let data: Vec<u8> = (0..LEN).map(|_| rng.next() as u8).collect();
    let chunks: Vec<Vec<usize>> = (0..3)
        .map(|_| {
            let mut v = Vec::new();
            let mut left = LEN;
            while left > 0 {
                let c = (1 + rng.next() as usize % MAX_CHUNK).min(left);
                v.push(c);
                left -= c;
            }
            v
        })
        .collect();
    let mut remaining: Vec<usize> = chunks.iter().map(Vec::len).collect();
    let mut order = Vec::new();
    while remaining.iter().any(|&n| n > 0) {
        let r = rng.next() as usize % 3;
        if remaining[r] > 0 {
            remaining[r] -= 1;
            order.push(r);
        }
    }
    Input {
        streams: [data.clone(), data.clone(), data],
        chunks,
        order,
    }
}

/// Vote the three streams; returns the number of bytes released.
fn vote(inp: &Input) -> u64 {
    let now = Instant::now();
    let config = VoterConfig {
        policy: Policy::Majority,
        straggler_timeout: Duration::from_secs(10),
        buffer_limit: 1 << 20,
    };
    let mut v = Voter::new(config, 3, now);
    for r in 0..3 {
        v.replica_connected(r, now);
    }
    let mut pos = [0usize; 3];
    let mut next = [0usize; 3];
    let mut pending = [0usize; 3];
    let mut released = 0u64;
    let push = |v: &mut Voter, r: usize, pending: &mut [usize; 3], pos: &mut [usize; 3]| {
        let n = v.push_replica(r, &inp.streams[r][pos[r]..pos[r] + pending[r]], now);
        pos[r] += n;
        pending[r] -= n;
    };
    for &r in &inp.order {
        pending[r] += inp.chunks[r][next[r]];
        next[r] += 1;
        push(&mut v, r, &mut pending, &mut pos);
        let out = black_box(v.client_output()).len();
        released += out as u64;
        v.client_output_sent(out, now);
    }
    while pending.iter().any(|&p| p > 0) {
        for r in 0..3 {
            push(&mut v, r, &mut pending, &mut pos);
        }
        let out = black_box(v.client_output()).len();
        released += out as u64;
        v.client_output_sent(out, now);
    }
    assert_eq!(released, LEN as u64);
    released
}

/// Baseline: two memcmps of the whole stream.
fn memcmp(a: &[u8], b: &[u8], c: &[u8]) -> bool {
    black_box(a) == black_box(b) && black_box(a) == black_box(c)
}

fn bench(c: &mut Criterion) {
    let inp = input();
    let [s0, s1, s2] = &inp.streams;
    let mut g = c.benchmark_group("vote_3x16MiB");
    g.throughput(Throughput::Bytes(LEN as u64));
    g.sample_size(10);
    g.bench_function("voter", |b| b.iter(|| vote(&inp)));
    g.bench_function("memcmp_2x", |b| b.iter(|| memcmp(s0, s1, s2)));
    g.finish();

    // Summary: best of a few runs each.
    let best = |f: &dyn Fn()| {
        (0..5)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .min()
            .unwrap_or_default()
    };
    let tv = best(&|| {
        black_box(vote(&inp));
    });
    let tm = best(&|| {
        assert!(memcmp(s0, s1, s2));
    });
    let mbs = |t: Duration| LEN as f64 / t.as_secs_f64() / 1e6;
    eprintln!(
        "voter {:.0} MB/s, memcmp x2 {:.0} MB/s, ratio voter/memcmp {:.2}",
        mbs(tv),
        mbs(tm),
        mbs(tv) / mbs(tm)
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
