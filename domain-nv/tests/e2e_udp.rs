//! End to end for UDP services: Debian's nsd replicas in network namespaces, `dig` as the
//! client, the real domain-nv binary between them (`transport: udp`, `protocol: dns`). Needs
//! root, so `#[ignore]`d like `e2e.rs` (`make ns-test` runs them).

use std::collections::BTreeSet;
use std::fs::File;
use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use nix::sys::signal::Signal;
use nv_schema::status::{DatagramCounters, ReplicaHealth, Status};
use nv_testbed::dns::{
    self, MAIL_ADDR, MAIL_ADDR_CORRUPTED, MAIL_NAME, ROTATED_ADDRS, ROTATED_NAME,
};
use nv_testbed::{argv, wait_until, Group, GroupSpec, Service, SERVICE_ADDRESS};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_domain-nv"))
}

/// Three nsd replicas under majority; `prepare` runs for each before domain-nv starts.
fn dns_group(
    prefix: &str,
    round_robin: bool,
    prepare: impl FnMut(usize, &Group) -> anyhow::Result<()>,
) -> Group {
    let mut spec = GroupSpec::new("majority", 3, Service::Nsd { round_robin });
    spec.straggler_ms = 800;
    Group::start(prefix, spec, bin(), prepare).expect("group starts")
}

/// The addresses `dig` prints for `name` asked through domain-nv, in the answer's order.
fn dig(g: &Group, name: &str) -> Vec<String> {
    let out = g
        .client(&argv(&dns::dig(SERVICE_ADDRESS, name)))
        .expect("dig runs");
    assert!(out.status.success(), "dig {name}: {out:?}");
    addresses(&out.stdout)
}

/// The answer lines of `dig +short` output (without its `;;` remarks on failed tries).
fn addresses(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.starts_with(';'))
        .map(str::to_owned)
        .collect()
}

/// The addresses replica `i` itself answers for `name`.
fn dig_replica(g: &Group, i: usize, name: &str) -> Vec<String> {
    let out = g
        .replica_exec(i, &argv(&dns::dig(&g.replica_address(i), name)))
        .expect("dig runs");
    addresses(&out.stdout)
}

fn counters(s: &Status) -> DatagramCounters {
    s.services[0]
        .datagrams
        .expect("a UDP service has datagram counters")
}

fn fault_kinds(s: &Status, r: usize) -> Vec<String> {
    s.replicas[r]
        .faults
        .iter()
        .map(|f| f.kind.clone())
        .collect()
}

#[test]
#[ignore = "needs root: netns, TAP (make ns-test)"]
fn dig_through_domain_nv_gets_right_answers_and_rotation_raises_no_fault() {
    // Each replica's rotation starts elsewhere: replica i was asked i times before.
    let g = dns_group("nvt-udp-rr", true, |i, g| {
        for _ in 0..i {
            dig_replica(g, i, ROTATED_NAME);
        }
        Ok(())
    });
    let want: BTreeSet<String> = ROTATED_ADDRS.iter().map(|a| a.to_string()).collect();
    let mut orders = BTreeSet::new();
    for _ in 0..8 {
        let got = dig(&g, ROTATED_NAME);
        assert_eq!(
            got.iter().cloned().collect::<BTreeSet<_>>(),
            want,
            "{got:?}"
        );
        assert_eq!(got.len(), 4, "{got:?}");
        orders.insert(got);
    }
    assert!(orders.len() > 1, "the servers rotated: {orders:?}");
    assert_eq!(dig(&g, MAIL_NAME), vec![MAIL_ADDR.to_owned()]);
    let s = g
        .wait_status("9 questions answered", Duration::from_secs(5), |s| {
            counters(s).answered >= 9
        })
        .unwrap();
    let c = counters(&s);
    assert_eq!((c.questions, c.answered, c.masked, c.dropped), (9, 9, 0, 0));
    for r in 0..3 {
        assert!(
            s.replicas[r].faults.is_empty(),
            "r{r}: {:?}",
            s.replicas[r].faults
        );
        assert_eq!(s.replicas[r].state, ReplicaHealth::Live);
        assert!(s.replicas[r].bytes_voted > 0);
    }
}

#[test]
#[ignore = "needs root: netns, TAP (make ns-test)"]
fn a_replica_with_a_corrupted_zone_is_outvoted_and_reported() {
    let g = dns_group("nvt-udp-bad", false, |i, g| {
        if i == 1 {
            let zone = g.lab.dir().join("r1").join("example.test.zone");
            std::fs::write(zone, dns::zone(true))?;
            g.signal_replica(1, Signal::SIGHUP)?;
            wait_until(
                "r1 serves its corrupted zone",
                Duration::from_secs(10),
                || dig_replica(g, 1, MAIL_NAME) == [MAIL_ADDR_CORRUPTED],
            )?;
        }
        Ok(())
    });
    for _ in 0..3 {
        assert_eq!(dig(&g, MAIL_NAME), vec![MAIL_ADDR.to_owned()]);
    }
    let s = g
        .wait_status("r1 faulty", Duration::from_secs(5), |s| {
            s.replicas[1].state == ReplicaHealth::Faulty
        })
        .unwrap();
    assert_eq!(fault_kinds(&s, 1)[0], "value-mismatch");
    assert!(s.replicas[0].faults.is_empty() && s.replicas[2].faults.is_empty());
    // Excluded, r1 gets no more questions; r0 and r2 still answer every one.
    assert_eq!(dig(&g, ROTATED_NAME).len(), 4);
    let c = counters(&g.status().unwrap());
    assert!(c.masked >= 1, "{c:?}");
    assert_eq!(c.answered, c.questions, "{c:?}");
}

#[test]
#[ignore = "needs root: netns, TAP (make ns-test)"]
fn a_crashed_replica_is_a_straggler_only() {
    let g = dns_group("nvt-udp-crash", false, |_, _| Ok(()));
    assert_eq!(dig(&g, MAIL_NAME), vec![MAIL_ADDR.to_owned()]);
    g.signal_replica(2, Signal::SIGKILL).unwrap();
    wait_until("r2 gone", Duration::from_secs(5), || {
        dig_replica(&g, 2, MAIL_NAME).is_empty()
    })
    .unwrap();
    // r0 and r1 agree: the answer goes out at once, without waiting for r2.
    let t = Instant::now();
    assert_eq!(dig(&g, MAIL_NAME), vec![MAIL_ADDR.to_owned()]);
    assert!(
        t.elapsed() < Duration::from_millis(700),
        "{:?}",
        t.elapsed()
    );
    let s = g
        .wait_status("a straggler fault on r2", Duration::from_secs(5), |s| {
            fault_kinds(s, 2).contains(&"straggler".to_owned())
        })
        .unwrap();
    assert!(
        fault_kinds(&s, 2).iter().all(|k| k == "straggler"),
        "{:?}",
        s.replicas[2].faults
    );
    assert_eq!(s.replicas[2].state, ReplicaHealth::Joining);
    assert!(s.replicas[0].faults.is_empty() && s.replicas[1].faults.is_empty());
}

/// Resident and peak resident memory of process `pid`, KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A DNS query for `name` A with ID `id`.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for l in name.split('.') {
        m.push(l.len() as u8);
        m.extend_from_slice(l.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    m
}

const FLOOD: usize = 100_000;
const FLOOD_PORTS: usize = 256;
const FLOOD_BURST: usize = 100;

#[test]
#[ignore = "needs root: netns, TAP (make ns-test)"]
fn a_flood_of_questions_keeps_memory_bounded_and_legitimate_questions_answered() {
    let g = dns_group("nvt-udp-flood", false, |_, _| Ok(()));
    assert_eq!(dig(&g, MAIL_NAME), vec![MAIL_ADDR.to_owned()]);
    let pid = g.lab.pid("domain-nv").expect("domain-nv runs");
    let (rss_before, _) = memory_kib(pid);
    // r2 hangs through the flood: every question waits for it until its deadline, so the
    // pending questions reach their bound (r0 and r1 still agree at once).
    g.signal_replica_tree(2, Signal::SIGSTOP).unwrap();
    // The flood: FLOOD questions from FLOOD_PORTS ports of the client namespace, in bursts of
    // FLOOD_BURST, never reading an answer.
    let netns = File::open(format!("/var/run/netns/{}", g.client_ns)).unwrap();
    let flood = std::thread::spawn(move || {
        setns(netns.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns");
        let socks: Vec<UdpSocket> = (0..FLOOD_PORTS)
            .map(|_| UdpSocket::bind("10.77.0.2:0").unwrap())
            .collect();
        let to = format!("{SERVICE_ADDRESS}:53");
        let mut sent = 0;
        for i in 0..FLOOD {
            let q = query(i as u16, &format!("n{i}.example.test"));
            if socks[i % FLOOD_PORTS].send_to(&q, &to).is_ok() {
                sent += 1;
            }
            // Pacing (at most 20,000 a second, several times what a debug build takes in) so that the flood lasts while dig asks.
            if i % FLOOD_BURST == FLOOD_BURST - 1 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        sent
    });
    // Meanwhile legitimate questions (dig tries up to 10 times: the flood overloads the links).
    let mut legit = 0;
    let mut unanswered = 0;
    let mut peak = 0;
    while !flood.is_finished() {
        let out = g
            .client(&[
                "dig",
                "+short",
                "+nocookie",
                "+tries=10",
                "+timeout=1",
                &format!("@{SERVICE_ADDRESS}"),
                MAIL_NAME,
                "A",
            ])
            .unwrap();
        let got = addresses(&out.stdout);
        if got.is_empty() {
            unanswered += 1;
        } else {
            assert_eq!(got, [MAIL_ADDR], "{out:?}");
            legit += 1;
        }
        peak = peak.max(memory_kib(pid).0);
    }
    let sent = flood.join().unwrap();
    g.signal_replica_tree(2, Signal::SIGCONT).unwrap();
    assert_eq!(sent, FLOOD);
    let s = g
        .wait_status("the flood counted", Duration::from_secs(20), |s| {
            let c = counters(s);
            c.questions + c.dropped >= (FLOOD / 10) as u64
        })
        .unwrap();
    assert_eq!(dig(&g, MAIL_NAME), vec![MAIL_ADDR.to_owned()]);
    let (rss_after, hwm) = memory_kib(pid);
    let c = counters(&s);
    eprintln!(
        "flood: {sent} sent, {legit} legitimate answered during it, {unanswered} not; {c:?}; RSS {rss_before} -> {rss_after} KiB (peak seen {peak}, high-water {hwm})"
    );
    assert!(legit >= 2, "{legit} answered during the flood");
    assert_eq!(unanswered, 0, "a dig got no answer in 10 tries");
    // Bounded: the pending questions (1024), their client mappings and the socket buffers.
    assert!(
        hwm < rss_before + 96 * 1024,
        "peak {hwm} KiB from {rss_before} KiB"
    );
    assert!(c.answered <= c.questions);
    assert!(c.dropped > 0, "the pending bound was reached: {c:?}");
    // The replicas that answered are not blamed; the hung one is a straggler, nothing else.
    for r in 0..2 {
        assert!(
            s.replicas[r].faults.is_empty(),
            "r{r}: {:?}",
            s.replicas[r].faults
        );
    }
    let kinds = fault_kinds(&s, 2);
    assert!(kinds.iter().all(|k| k == "straggler"), "r2: {kinds:?}");
}

#[test]
#[ignore = "needs root: netns, TAP (make ns-test)"]
fn a_replica_replaced_on_sighup_joins_on_probation_and_votes_again() {
    let mut g = dns_group("nvt-udp-hup", false, |_, _| Ok(()));
    assert_eq!(dig(&g, MAIL_NAME), vec![MAIL_ADDR.to_owned()]);
    g.replace_replica(1, "r1b", |_, _| Ok(())).unwrap();
    g.wait_status("r1b configured", Duration::from_secs(10), |s| {
        s.replicas[1].name == "r1b"
    })
    .unwrap();
    // Probation: 20 questions agreed and 4096 bytes (about 90 bytes an answer).
    for _ in 0..60 {
        assert_eq!(dig(&g, MAIL_NAME), vec![MAIL_ADDR.to_owned()]);
    }
    let s = g
        .wait_status("r1b live, 61 answers", Duration::from_secs(5), |s| {
            s.replicas[1].state == ReplicaHealth::Live && counters(s).answered == 61
        })
        .unwrap();
    for r in 0..3 {
        assert!(
            s.replicas[r].faults.is_empty(),
            "r{r}: {:?}",
            s.replicas[r].faults
        );
    }
    let c = counters(&s);
    assert_eq!((c.answered, c.masked), (61, 0), "{c:?}");
}
