//! Throughput of netback through the simulated Xen: guest TX (guest -> backend) and guest RX
//! (backend -> guest) for 64 B, 1500 B and 64 KiB (scatter-gather) frames, with the number of
//! grant-copy segments per copy call. `cargo bench -p netback` prints a summary table at the end.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use netback::testfront::{FrontOptions, TestFront};
use netback::testhost::NetbackHost;

struct Bench {
    host: NetbackHost,
    front: TestFront,
    name: String,
}

fn setup(mtu: usize) -> Bench {
    let mut host = NetbackHost::new();
    let (g, mut front) = host.add_guest(mtu, FrontOptions::default());
    assert!(
        host.pump_until(&mut [&mut front], |_, fs| fs[0].is_up()),
        "handshake did not complete"
    );
    Bench {
        host,
        front,
        name: format!("vif{g}.0"),
    }
}

fn frame(len: usize) -> Vec<u8> {
    let mut f = vec![0x5au8; len];
    f[12] = 0x88;
    f[13] = 0xb5;
    f
}

/// Frames per burst: as many as fit in the 256-slot ring (at most 64 per wakeup budget), and
/// for guest RX in the backend's bounded queue.
fn burst(len: usize, dir: &str) -> usize {
    let n = (256 / len.div_ceil(4096)).min(64);
    if dir == "guest-rx" {
        n.min(netback::rx::RX_QUEUE_BYTES / len)
    } else {
        n
    }
}

impl Bench {
    /// Guest sends `n` frames; netback takes them all and answers every slot.
    fn tx_burst(&mut self, f: &[u8], n: usize) {
        for _ in 0..n {
            assert!(self.front.send(f).expect("send"), "tx ring full");
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
            assert!(vif.send_frame(f.to_vec()), "rx queue full");
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
}

/// The largest MTU a vif accepts: a 64 KiB frame is within it (frames over the MTU are dropped).
const MAX_MTU: usize = 65535 - netback::wire::ETH_HLEN;

const SIZES: [(usize, &str); 3] = [(64, "64B"), (1500, "1500B"), (65535, "64KiB-SG")];

fn bench(c: &mut Criterion) {
    for (len, label) in SIZES {
        let mut b = setup(if len > 1500 { MAX_MTU } else { 1500 });
        let f = frame(len);
        let mut g = c.benchmark_group(format!("netback/{label}"));
        g.sample_size(10)
            .measurement_time(Duration::from_secs(2))
            .warm_up_time(Duration::from_millis(300));
        let n = burst(len, "guest-tx");
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function("guest-tx", |it| it.iter(|| b.tx_burst(&f, n)));
        let n = burst(len, "guest-rx");
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function("guest-rx", |it| it.iter(|| b.rx_burst(&f, n)));
        g.finish();
    }
    summary();
}

/// Runs each case for about a second and prints frames/s, Gbit/s and segments per copy call.
fn summary() {
    println!("\nnetback over xen::sim (one core, single vif):");
    println!(
        "{:<10} {:<9} {:>12} {:>10} {:>14}",
        "frame", "direction", "frames/s", "Gbit/s", "segs/copy call"
    );
    for (len, label) in SIZES {
        for dir in ["guest-tx", "guest-rx"] {
            let mut b = setup(if len > 1500 { MAX_MTU } else { 1500 });
            let f = frame(len);
            let n = burst(len, dir);
            let before = b.host.nb.vif_mut(&b.name).expect("vif").stats();
            let start = Instant::now();
            let mut frames = 0u64;
            while start.elapsed() < Duration::from_secs(1) {
                if dir == "guest-tx" {
                    b.tx_burst(&f, n);
                } else {
                    b.rx_burst(&f, n);
                }
                frames += n as u64;
            }
            let secs = start.elapsed().as_secs_f64();
            let s = b.host.nb.vif_mut(&b.name).expect("vif").stats();
            let calls = (s.copy_calls - before.copy_calls).max(1);
            let segs = s.copy_segments - before.copy_segments;
            println!(
                "{label:<10} {dir:<9} {:>12.0} {:>10.2} {:>14.1}",
                frames as f64 / secs,
                frames as f64 * len as f64 * 8.0 / secs / 1e9,
                segs as f64 / calls as f64
            );
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
