//! End-to-end: a connect flood against domain-nv (3 redis replicas, majority, real Linux TCP
//! stacks in network namespaces) blames no healthy replica and still answers an established
//! client.
//!
//! Needs root (namespaces, TAP), so `#[ignore]`d: `cargo test -p domain-nv --test e2e_flood --
//! --ignored`.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nv_schema::status::ReplicaHealth;
use nv_testbed::soak::{run_load, Exchange, LoadReport, LoadSpec, Reply};
use nv_testbed::{run, wait_until, Group, GroupSpec, Service, SERVICE_ADDRESS};

/// Connections the flood opens at once and holds.
const FLOOD: usize = 5000;

/// Runs `spec` in a thread of its own that enters namespace `ns` first.
fn in_netns(ns: &str, spec: LoadSpec) -> std::thread::JoinHandle<LoadReport> {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        let netns = std::fs::File::open(format!("/run/netns/{ns}")).expect("namespace");
        nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        run_load(&spec).expect("load runs")
    })
}

#[test]
#[ignore = "needs root: netns, TAP, AF_PACKET (make ns-test)"]
fn connect_flood_blames_no_healthy_replica_and_the_client_is_answered() {
    // The flood holds 5,000 sockets in this process.
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    let g = Group::start(
        "nvt-cflood",
        GroupSpec::new("majority", 3, Service::Redis),
        Path::new(env!("CARGO_BIN_EXE_domain-nv")),
        |i, g| g.redis_to_replica(i, "SET flood:key legitimate\n"),
    )
    .expect("group starts");
    // A flood socket whose closing frame the overloaded TAP queue dropped would otherwise stay
    // open for good (nothing more comes from it): idle 15 s (longer than the 10 s the flood is
    // held), it is reset and counted `timed_out`, blaming no replica.
    let mut config = g.config().unwrap();
    config.client_timeout_ms = 15_000;
    g.reload(&config).unwrap();
    wait_until("the config reloaded", Duration::from_secs(5), || {
        g.lab.log("domain-nv").contains("config changed in place")
    })
    .unwrap();
    let sources: Vec<Ipv4Addr> = (0..4).map(|k| Ipv4Addr::new(10, 77, 0, 10 + k)).collect();
    for a in &sources {
        let addr = format!("{a}/24");
        run(&[
            "ip",
            "-n",
            &g.client_ns,
            "addr",
            "add",
            &addr,
            "dev",
            "ext0",
        ])
        .unwrap();
    }
    let legit = LoadSpec {
        connections: 1,
        duration: Duration::from_secs(10),
        think: Duration::from_millis(10),
        sources: vec![Ipv4Addr::new(10, 77, 0, 2)],
        ports: vec![6379],
        exchanges: vec![vec![Exchange {
            request: b"*2\r\n$3\r\nGET\r\n$9\r\nflood:key\r\n".to_vec(),
            reply: Reply::Exact(b"$10\r\nlegitimate\r\n".to_vec()),
        }]],
        server: SERVICE_ADDRESS.parse().unwrap(),
        reply_timeout: Duration::from_secs(10),
        connects_per_s: 1,
    };
    let flooder = LoadSpec {
        connections: FLOOD,
        // connects only: the first request would be due long after the test
        think: Duration::from_secs(3600),
        sources,
        connects_per_s: 1_000_000,
        ..legit.clone()
    };
    let flood = in_netns(&g.client_ns, flooder);
    let client = in_netns(&g.client_ns, legit).join().unwrap();
    let flood = flood.join().unwrap();
    eprintln!(
        "client: {} replies, {} errors; flood: {} connected, {} connect failures, {} resets",
        client.replies_ok,
        client.errors(),
        flood.connected,
        flood.connect_failures,
        flood.resets
    );
    assert!(client.replies_ok > 0, "the established client was answered");
    assert_eq!(client.errors(), 0, "no wrong, failed or reset reply");
    assert!(flood.connected > 0, "the flood reached domain-nv");
    // Every flood connection is closed by now: wait (bounded) until domain-nv has ended them
    // all, so that a fault charged while they end is seen too.
    let s = g
        .wait_status("flood connections ended", Duration::from_secs(60), |s| {
            s.services.iter().all(|sv| sv.active == 0)
        })
        .unwrap();
    let overloaded: Vec<u64> = s.replicas.iter().map(|r| r.overloaded).collect();
    eprintln!("rounds domain-nv fell behind on each replica link: {overloaded:?}");
    for r in &s.replicas {
        assert_eq!(
            r.state,
            ReplicaHealth::Live,
            "{} not live: {}",
            r.name,
            s.to_json()
        );
        assert!(r.faults.is_empty(), "{} blamed: {}", r.name, s.to_json());
    }
}
