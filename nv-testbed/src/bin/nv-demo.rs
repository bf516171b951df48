//! `make demo`: three redis-server replicas behind domain-nv, one killed mid-stream (masked on
//! one unbroken connection), started again and voting after probation, one with corrupted
//! state (outvoted and excluded); a real redis-cli gets only correct answers and the status
//! names the culprits.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use nix::sys::signal::Signal;
use nv_schema::config::Probation;
use nv_schema::status::{ReplicaHealth, Status};
use nv_testbed::{cleanup_on_signal, wait_until, Group, GroupSpec, Service, SERVICE_ADDRESS};

/// Keys loaded into every replica.
const KEYS: usize = 50;
/// Keys whose values are corrupted in replica r1.
const CORRUPTED: [usize; 2] = [7, 42];

fn value(i: usize) -> String {
    format!("value-{i}-{}", "x".repeat(i % 13))
}

/// Connections a returning replica must agree on before it votes again (the demo's probation).
const PROBATION: u64 = 5;

/// Loads every key into replica `i` (r1's corrupted at `CORRUPTED`).
fn load(g: &Group, i: usize) -> Result<()> {
    let mut load = String::new();
    for k in 0..KEYS {
        let v = if i == 1 && CORRUPTED.contains(&k) {
            format!("CORRUPTED-{k}")
        } else {
            value(k)
        };
        load += &format!("SET key:{k} {v}\n");
    }
    g.redis_to_replica(i, &load)
        .with_context(|| format!("loading r{i}"))
}

fn main() {
    if let Err(e) = run() {
        eprintln!("\nDEMO FAILED: {e:#}");
        std::process::exit(1);
    }
}

fn show_status(status: &Status) {
    println!(
        "    {:<4} {:<8} {:<5} {:>12}  faults",
        "name", "state", "link", "bytes voted"
    );
    for r in &status.replicas {
        let kinds: Vec<String> = r
            .faults
            .iter()
            .map(|f| format!("{} (conn {})", f.kind, f.connection))
            .collect();
        println!(
            "    {:<4} {:<8} {:<5} {:>12}  {}",
            r.name,
            format!("{:?}", r.state).to_lowercase(),
            format!("{:?}", r.link).to_lowercase(),
            r.bytes_voted,
            if kinds.is_empty() {
                "-".to_owned()
            } else {
                kinds.join(", ")
            }
        );
    }
}

fn run() -> Result<()> {
    cleanup_on_signal()?;
    let bin = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: nv-demo PATH-TO-domain-nv")?,
    );
    let started = Instant::now();
    println!("== 1. three replicas of redis-server (Debian's), each in its own network namespace,");
    println!("      reached only through domain-nv over TAP links; majority voting");
    let mut spec = GroupSpec::new("majority", 3, Service::Redis);
    spec.probation = Probation {
        connections: PROBATION,
        bytes: 0,
    };
    let mut group = Group::start("nvdemo", spec, &bin, |i, g| load(g, i))?;
    println!(
        "   loaded {KEYS} keys into each replica; r1's state is corrupted at keys {CORRUPTED:?}"
    );

    println!(
        "\n== 2. one client connection sends 60 requests over ~3 s; r2's redis is SIGKILLed mid-stream"
    );
    let log = group.lab.dir().join("stream.out");
    let script = format!(
        "redis-cli -h {SERVICE_ADDRESS} -r 60 -i 0.05 GET key:3 > {}",
        log.display()
    );
    let mut client = std::process::Command::new("ip")
        .args(["netns", "exec", &group.client_ns, "sh", "-c", &script])
        .spawn()
        .context("starting the streaming client")?;
    let lines = |p: &PathBuf| {
        std::fs::read_to_string(p)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    wait_until("10 answers on the stream", Duration::from_secs(10), || {
        lines(&log) >= 10
    })?;
    group.signal_replica(2, Signal::SIGKILL)?;
    println!("   killed r2 after {} answers", lines(&log));
    let end = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(st) = client.try_wait()? {
            break st;
        }
        if Instant::now() > end {
            let _ = client.kill();
            bail!("the streaming client did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let answers = std::fs::read_to_string(&log)?;
    let good = answers.lines().filter(|l| *l == value(3)).count();
    println!(
        "   client exit {exit}, {good}/60 correct answers, {} other lines",
        answers.lines().count() - good
    );
    ensure!(
        exit.success() && good == 60 && answers.lines().count() == 60,
        "the stream did not survive: {answers}"
    );
    let status = group.wait_status("r2 reported", Duration::from_secs(5), |s| {
        !s.replicas[2].faults.is_empty() && s.services[0].active == 0
    })?;
    ensure!(
        status.services[0].total == 1,
        "the client needed {} connections for the stream (expected 1)",
        status.services[0].total
    );
    println!("   the client used one connection throughout (r0 and r1 agreed); status:");
    show_status(&status);
    ensure!(
        matches!(
            status.replicas[2].state,
            ReplicaHealth::Joining | ReplicaHealth::Down
        ),
        "r2 not reported"
    );
    println!(
        "   r2 may have lost its state: it no longer votes; back, it must first agree on probation"
    );

    println!("\n== 3. r2's redis is started again and reloaded (a repaired replica): it joins on probation,");
    println!(
        "      compared with r0 and r1 but not voting, for {PROBATION} connections in agreement"
    );
    group.restart_replica(2)?;
    load(&group, 2)?;

    println!(
        "\n== 4. a real client (redis-cli) asks domain-nv at {SERVICE_ADDRESS}:6379 for every key"
    );
    let mut wrong = 0;
    for k in 0..KEYS {
        let key = format!("key:{k}");
        let out = group.client(&["redis-cli", "-h", SERVICE_ADDRESS, "GET", &key])?;
        let got = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let ok = got == value(k);
        if !ok {
            wrong += 1;
        }
        if CORRUPTED.contains(&k) || k < 3 {
            println!(
                "   GET {key:<7} -> {got:<22} {}",
                if ok { "correct" } else { "WRONG" }
            );
        }
    }
    ensure!(wrong == 0, "{wrong} wrong answers reached the client");
    println!(
        "   all {KEYS} answers correct (r2 voted again after probation; r1's corrupted answer was outvoted)"
    );
    let status = group.wait_status("r1 reported", Duration::from_secs(5), |s| {
        s.replicas[1]
            .faults
            .iter()
            .any(|f| f.kind == "value-mismatch")
            && s.services[0].total == 1 + KEYS as u64
            && s.services[0].active == 0
    })?;
    println!("   status (also in the JSON status file):");
    show_status(&status);
    ensure!(
        status.replicas[0].faults.is_empty()
            && status.replicas[2]
                .faults
                .iter()
                .all(|f| f.kind != "value-mismatch"),
        "a healthy replica was blamed"
    );
    ensure!(
        status.replicas[2].state == ReplicaHealth::Live,
        "r2 did not pass its probation"
    );
    ensure!(
        status.replicas[1].state == ReplicaHealth::Faulty,
        "r1 is not excluded"
    );
    println!(
        "   r1 was excluded at its first wrong answer (key:{}): later connections do not ask it",
        CORRUPTED[0]
    );

    drop(group);
    println!(
        "\n== demo passed in {:.1} s; namespaces and processes removed",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
