//! Throughput of netback through the simulated Xen: guest TX (guest -> backend) and guest RX
//! (backend -> guest) for 64 B, 1500 B and 64 KiB (scatter-gather) frames and 64 KiB TCP
//! segments with GSO (a frontend with `feature-gso-tcpv4`, MTU 1500), with the number of
//! grant-copy segments per copy call, next to a plain `memcpy` of the same bytes (the limit of a
//! copying backend on this machine). `cargo bench -p netback` prints a summary table at the end:
//! the median over rounds and the spread (lowest and highest round).

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use netback::testfront::{FrontOptions, TestFront};
use netback::testhost::NetbackHost;

/// Rounds per case in the summary, and the length of each.
const ROUNDS: usize = 7;
const ROUND: Duration = Duration::from_millis(300);
/// The MSS of the GSO cases (a 1500-byte MTU).
const MSS: u16 = 1448;

/// What is sent: opaque frames, or TCP segments with GSO.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Raw,
    Gso,
}

struct Bench {
    host: NetbackHost,
    front: TestFront,
    name: String,
    kind: Kind,
}

/// The largest MTU a vif accepts: a 64 KiB frame is within it (frames over the MTU are dropped).
const MAX_MTU: usize = 65535 - netback::wire::ETH_HLEN;

fn setup(len: usize, kind: Kind) -> Bench {
    let mut host = NetbackHost::new();
    let (mtu, gso) = match kind {
        Kind::Raw if len > 1500 => (MAX_MTU, false),
        Kind::Raw => (1500, false),
        Kind::Gso => (1500, true),
    };
    let opts = FrontOptions {
        gso,
        ..Default::default()
    };
    let (g, mut front) = host.add_guest(mtu, opts);
    assert!(
        host.pump_until(&mut [&mut front], |_, fs| fs[0].is_up()),
        "handshake did not complete"
    );
    assert_eq!(front.tso(), gso);
    Bench {
        host,
        front,
        name: format!("vif{g}.0"),
        kind,
    }
}

/// An opaque frame (EtherType 0x88b5) or an IPv4 TCP segment of `len` bytes.
fn frame(len: usize, kind: Kind) -> Vec<u8> {
    let mut f = vec![0x5au8; len];
    match kind {
        Kind::Raw => f[12..14].copy_from_slice(&[0x88, 0xb5]),
        Kind::Gso => {
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            f[14] = 0x45;
            f[16..18].copy_from_slice(&((len - 14) as u16).to_be_bytes());
            f[18..22].fill(0);
            f[23] = 6;
            f[46] = 5 << 4;
        }
    }
    f
}

/// Frames per burst: as many as fit in the 256-slot ring (at most 64 per wakeup budget), and
/// for guest RX in the backend's bounded queue.
fn burst(len: usize, kind: Kind, dir: &str) -> usize {
    let slots = len.div_ceil(4096) + usize::from(kind == Kind::Gso);
    let n = (256 / slots).min(64);
    if dir == "guest-rx" {
        n.min(netback::rx::RX_QUEUE_BYTES / len)
    } else {
        n
    }
}

impl Bench {
    /// Guest sends `n` frames; netback takes them all and answers every slot.
    fn tx_burst(&mut self, f: &[u8], n: usize) {
        let gso = (self.kind == Kind::Gso).then_some(MSS);
        for _ in 0..n {
            assert!(self.front.send_gso(f, gso).expect("send"), "tx ring full");
        }
        let mut got = 0;
        while got < n || self.front.tx_in_flight() > 0 {
            self.host.nb.handle_evtchn(self.host.now).expect("evtchn");
            let vif = self.host.nb.vif_mut(&self.name).expect("vif");
            while vif.recv_frame().is_some() {
                got += 1;
            }
            self.front.poll(&self.host.sim).expect("poll");
        }
    }

    /// Netback sends `n` frames; the guest receives them all.
    fn rx_burst(&mut self, f: &[u8], n: usize) {
        let vif = self.host.nb.vif_mut(&self.name).expect("vif");
        for _ in 0..n {
            let queued = match self.kind {
                Kind::Raw => vif.send_frame(f.to_vec()),
                Kind::Gso => vif.send_from_stack(f.to_vec(), Some(MSS)),
            };
            assert!(queued, "rx queue full");
        }
        let mut got = 0;
        while got < n {
            self.host.nb.flush(self.host.now).expect("flush");
            self.host.nb.handle_evtchn(self.host.now).expect("evtchn");
            self.front.poll(&self.host.sim).expect("poll");
            while self.front.recv().is_some() {
                got += 1;
            }
        }
    }

    fn run(&mut self, f: &[u8], n: usize, dir: &str) {
        if dir == "guest-tx" {
            self.tx_burst(f, n)
        } else {
            self.rx_burst(f, n)
        }
    }
}

const CASES: [(usize, Kind, &str); 4] = [
    (64, Kind::Raw, "64B"),
    (1500, Kind::Raw, "1500B"),
    (65535, Kind::Raw, "64KiB-SG"),
    (65535, Kind::Gso, "64KiB-GSO"),
];

fn bench(c: &mut Criterion) {
    for (len, kind, label) in CASES {
        let mut b = setup(len, kind);
        let f = frame(len, kind);
        let mut g = c.benchmark_group(format!("netback/{label}"));
        g.sample_size(10)
            .measurement_time(Duration::from_secs(2))
            .warm_up_time(Duration::from_millis(300));
        for dir in ["guest-tx", "guest-rx"] {
            let n = burst(len, kind, dir);
            g.throughput(Throughput::Elements(n as u64));
            g.bench_function(dir, |it| it.iter(|| b.run(&f, n, dir)));
        }
        g.finish();
    }
    summary();
}

/// The median and the lowest and highest of `v`.
fn spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// Gbit/s of copying `n` frames of `len` bytes from one buffer to another, `ROUNDS` rounds.
fn memcpy_gbits(len: usize, n: usize) -> Vec<f64> {
    let src: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; len]).collect();
    let mut dst: Vec<Vec<u8>> = (0..n).map(|_| vec![0u8; len]).collect();
    (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            let mut bytes = 0u64;
            while start.elapsed() < ROUND {
                for (d, s) in dst.iter_mut().zip(&src) {
                    d.copy_from_slice(s);
                }
                std::hint::black_box(&mut dst);
                bytes += (n * len) as u64;
            }
            bytes as f64 * 8.0 / start.elapsed().as_secs_f64() / 1e9
        })
        .collect()
}

/// Runs each case `ROUNDS` times and prints frames/s and Gbit/s (median, lowest-highest),
/// segments per copy call and the ratio to memcpy.
fn summary() {
    println!("\nnetback over xen::sim (one core, single vif), median of {ROUNDS} rounds of {ROUND:?} [lowest-highest]:");
    println!(
        "{:<10} {:<9} {:>10} {:>22} {:>9} {:>16} {:>9}",
        "frame", "direction", "frames/s", "Gbit/s", "segs/call", "memcpy Gbit/s", "of memcpy"
    );
    for (len, kind, label) in CASES {
        for dir in ["guest-tx", "guest-rx"] {
            let mut b = setup(len, kind);
            let f = frame(len, kind);
            let n = burst(len, kind, dir);
            let before = b.host.nb.vif_mut(&b.name).expect("vif").stats();
            let mut rates = Vec::new();
            for _ in 0..ROUNDS {
                let start = Instant::now();
                let mut frames = 0u64;
                while start.elapsed() < ROUND {
                    b.run(&f, n, dir);
                    frames += n as u64;
                }
                rates.push(frames as f64 / start.elapsed().as_secs_f64());
            }
            let s = b.host.nb.vif_mut(&b.name).expect("vif").stats();
            let calls = (s.copy_calls - before.copy_calls).max(1);
            let segs = s.copy_segments - before.copy_segments;
            let gbits: Vec<f64> = rates.iter().map(|r| r * len as f64 * 8.0 / 1e9).collect();
            let (fps, _, _) = spread(rates);
            let (g, lo, hi) = spread(gbits);
            let (m, mlo, mhi) = spread(memcpy_gbits(len, n));
            println!(
                "{label:<10} {dir:<9} {fps:>10.0} {:>22} {:>9.1} {:>16} {:>8.0}%",
                format!("{g:.2} [{lo:.2}-{hi:.2}]"),
                segs as f64 / calls as f64,
                format!("{m:.1} [{mlo:.1}-{mhi:.1}]"),
                100.0 * g / m
            );
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
