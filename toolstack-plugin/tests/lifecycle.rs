//! The group lifecycle against recorded `xl` transcripts (tests/transcripts/*.xl) and a fake
//! domain-nv publishing its status in xenstore: first an in-memory xenstore, then (at the end)
//! the simulated xenstored of the `xen` crate.

mod common;

use common::{fault, list_v, uuid_of, FakeNv, Host, Replay};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use toolstack_plugin::dom0::Dom0;
use toolstack_plugin::failure::Failure;
use toolstack_plugin::group::{self, Ctx, Mode, Role, StateFrom, WatchOptions, Watcher};
use toolstack_plugin::owned::{DomainRole, Owned, OwnedDomain};
use toolstack_plugin::spec::GroupSpec;
use toolstack_plugin::store::{read_blob, MemStore, Store};

const SPEC: &str = include_str!("../../xl-configs/example-group.yaml");

/// A scratch state directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "nvctl-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A Dom0 in which every file, bridge and PCI device exists except those listed as missing.
#[derive(Default)]
struct FakeDom0 {
    missing: Mutex<Vec<String>>,
}

impl FakeDom0 {
    fn has(&self, name: &str) -> bool {
        !self.missing.lock().unwrap().iter().any(|m| m == name)
    }
}

impl Dom0 for FakeDom0 {
    fn file_exists(&self, path: &str) -> bool {
        self.has(path)
    }
    fn bridge_exists(&self, bridge: &str) -> bool {
        self.has(bridge)
    }
    fn pci_device_exists(&self, bdf: &str) -> bool {
        self.has(bdf)
    }
}

/// One simulated Dom0: xenstore (with the fake domain-nv), its files and devices, a state dir,
/// the progress lines.
struct World {
    dom0: FakeDom0,
    host: Host,
    nv: Arc<FakeNv>,
    dir: TempDir,
    said: Mutex<Vec<String>>,
    timeout: Duration,
}

impl World {
    fn new() -> World {
        let mem: Arc<dyn Store + Send + Sync> = Arc::new(MemStore::new());
        World::on(Arc::clone(&mem), mem)
    }

    /// Dom0 talks through `dom0`, domain-nv through `nv_store`.
    fn on(dom0: Arc<dyn Store + Send + Sync>, nv_store: Arc<dyn Store + Send + Sync>) -> World {
        let nv = FakeNv::new(nv_store);
        World {
            dom0: FakeDom0::default(),
            host: Host {
                dom0,
                nv: Arc::clone(&nv),
            },
            nv,
            dir: TempDir::new(),
            said: Mutex::new(Vec::new()),
            timeout: Duration::from_secs(10),
        }
    }

    fn replay(&self, transcript: &str) -> Replay {
        Replay::load(transcript, &self.dir.path(), self.nv.hook("web"))
    }

    /// Run `f` with a context on `xl`.
    fn with<T>(&self, xl: &Replay, f: impl FnOnce(&Ctx) -> T) -> T {
        let progress = |s: &str| self.said.lock().unwrap().push(s.to_string());
        let ctx = Ctx {
            xl,
            store: &self.host,
            dom0: &self.dom0,
            dir: self.dir.0.clone(),
            timeout: self.timeout,
            poll: Duration::from_millis(5),
            report_every: Duration::from_millis(20),
            progress: &progress,
        };
        f(&ctx)
    }

    /// Replay `transcript` over `f`, checking that every recorded command ran.
    fn run<T>(&self, transcript: &str, f: impl FnOnce(&Ctx) -> T) -> T {
        let xl = self.replay(transcript);
        let out = self.with(&xl, f);
        xl.assert_done();
        out
    }

    /// Replay the transcript `text` over `f`, checking that every command ran.
    fn run_text<T>(&self, text: &str, f: impl FnOnce(&Ctx) -> T) -> T {
        let xl = Replay::new("inline", text, &self.dir.path(), self.nv.hook("web"));
        let out = self.with(&xl, f);
        xl.assert_done();
        out
    }

    fn said(&self) -> String {
        self.said.lock().unwrap().join("\n")
    }

    /// The config domain-nv last read.
    fn last_config(&self) -> String {
        self.nv
            .st()
            .configs
            .last()
            .cloned()
            .expect("no config written")
    }

    fn config_names(&self) -> Vec<String> {
        self.nv.st().replicas.clone()
    }

    /// Record domains (name, id, role) as created by nvctl for group web, as an earlier,
    /// interrupted nvctl would have left them.
    fn own(&self, domains: &[(&str, u32, DomainRole)]) {
        let mut o = Owned::load(&self.dir.0, "web").unwrap();
        for &(name, id, role) in domains {
            o.add(OwnedDomain {
                uuid: uuid_of(id),
                domid: id,
                role,
                name: name.to_string(),
            })
            .unwrap();
        }
    }

    /// A group that `up` created, on a fresh world.
    fn up() -> World {
        let w = World::new();
        w.run("up-fresh.xl", |ctx| group::up(ctx, SPEC)).unwrap();
        w
    }
}

fn golden(file: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/golden/example-group/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn up_creates_nv_domain_hands_config_then_replicas() {
    let w = World::up();
    // the config files xl created the domains from are the rendered goldens
    for f in ["web-nv.cfg", "web-r0.cfg", "web-r1.cfg", "web-r2.cfg"] {
        assert_eq!(
            std::fs::read_to_string(w.dir.0.join("web").join(f)).unwrap(),
            golden(f),
            "{f}"
        );
    }
    // domain-nv got the rendered config in its xenstore home before any replica existed
    assert_eq!(w.last_config(), golden("domain-nv.yaml"));
    assert_eq!(
        read_blob(&w.host, "/local/domain/7/data/domain-nv-config")
            .unwrap()
            .unwrap(),
        golden("domain-nv.yaml")
    );
    let said = w.said();
    let order = [
        "NV domain web-nv: creating",
        "config written to /local/domain/7/data/domain-nv-config",
        "NV domain web-nv: ready",
        "[1/3] replica web-r0: created (id 8)",
        "[3/3] replica web-r2: created (id 10)",
        "group web: up, 3 replicas live",
    ];
    let mut at = 0;
    for o in order {
        let i = said[at..]
            .find(o)
            .unwrap_or_else(|| panic!("{o:?} missing or out of order in:\n{said}"));
        at += i;
    }
    // the record: spec and three generation-0 members
    let rec = group::load(&w.host, "web").unwrap();
    assert_eq!(rec.spec, GroupSpec::parse(SPEC).unwrap());
    let names: Vec<(String, Role)> = rec.instances.iter().map(|(i, r)| (i.name(), *r)).collect();
    assert_eq!(
        names,
        [
            ("r0".to_string(), Role::Member),
            ("r1".into(), Role::Member),
            ("r2".into(), Role::Member)
        ]
    );
    assert_eq!(group::groups(&w.host).unwrap(), ["web"]);
}

#[test]
fn up_again_converges_without_creating_anything() {
    let w = World::up();
    w.said.lock().unwrap().clear();
    w.run("up-again.xl", |ctx| group::up(ctx, SPEC)).unwrap();
    assert!(
        w.said()
            .contains("NV domain web-nv: already running (id 7)")
            && w.said()
                .contains("[2/3] replica web-r1: already running (id 9)"),
        "{}",
        w.said()
    );
    assert_eq!(
        w.nv.st().configs.len(),
        2,
        "the config is handed over again"
    );
}

#[test]
fn up_finishes_a_half_created_group_and_removes_leftovers() {
    let w = World::new();
    w.nv.st().booted.insert("r0".into());
    // the first up created web-nv and web-r0, an interrupted replace web-r1-g4
    w.own(&[
        ("web-nv", 7, DomainRole::Nv),
        ("web-r0", 8, DomainRole::Replica),
        ("web-r1-g4", 12, DomainRole::Replica),
    ]);
    w.run("up-half.xl", |ctx| group::up(ctx, SPEC)).unwrap();
    assert!(
        w.said()
            .contains("web-r1-g4: left over from an interrupted replacement"),
        "{}",
        w.said()
    );
    assert_eq!(w.config_names(), ["r0", "r1", "r2"]);
}

#[test]
fn up_stops_on_an_xl_failure_with_its_stderr_and_can_be_torn_down() {
    let w = World::new();
    let e = w
        .run("up-create-fails.xl", |ctx| group::up(ctx, SPEC))
        .unwrap_err();
    let e = format!("{e:#}");
    assert!(
        e.contains("`xl create ") && e.contains("exit 3") && e.contains("cannot make domain: -3"),
        "{e}"
    );
    // the half-created group is known and `down` tears down what runs
    let down = &[
        list_v(&[("web-nv", 7)]),
        "$ xl destroy web-nv\n".to_string(),
    ]
    .concat();
    let xl = Replay::new("inline", down, &w.dir.path(), w.nv.hook("web"));
    w.with(&xl, |ctx| group::down(ctx, "web")).unwrap();
    xl.assert_done();
    assert!(group::groups(&w.host).unwrap().is_empty());
}

#[test]
fn up_waits_bounded_for_ready() {
    let mut w = World::new();
    w.timeout = Duration::from_millis(150);
    w.nv.st().never_ready = true;
    let xl = w.replay("up-fresh.xl");
    let t = Instant::now();
    let e = w
        .with(&xl, |ctx| group::up(ctx, SPEC))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("timed out after 0.15s waiting for web-nv to report ready"),
        "{e}"
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(
        w.said()
            .contains("still waiting for web-nv to report ready"),
        "{}",
        w.said()
    );
}

#[test]
fn up_reports_replicas_that_never_go_live() {
    let mut w = World::new();
    w.timeout = Duration::from_millis(150);
    w.nv.st().stuck.insert("r2".into());
    let e = w
        .run("up-fresh.xl", |ctx| group::up(ctx, SPEC))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("waiting for every replica to be live; not live: r2"),
        "{e}"
    );
}

#[test]
fn down_destroys_replicas_leftovers_and_nv_domain() {
    let w = World::up();
    // an interrupted replace left web-r1-g4 behind
    w.own(&[("web-r1-g4", 12, DomainRole::Replica)]);
    w.run("down.xl", |ctx| group::down(ctx, "web")).unwrap();
    assert!(group::groups(&w.host).unwrap().is_empty());
    assert!(!w.dir.0.join("web").exists());
    assert!(
        w.said().contains("group web: down (4 domains destroyed)"),
        "{}",
        w.said()
    );
    // down is idempotent: a group nvctl knows nothing of is already down (no xl command runs)
    let none = Replay::new("inline", "", &w.dir.path(), w.nv.hook("web"));
    w.with(&none, |ctx| group::down(ctx, "web")).unwrap();
    none.assert_done();
    assert!(
        w.said().contains("group web: not found, nothing to do"),
        "{}",
        w.said()
    );
}

#[test]
fn down_drains_the_nv_domain_before_destroying_anything() {
    let w = World::up();
    w.own(&[("web-r1-g4", 12, DomainRole::Replica)]);
    w.run("down.xl", |ctx| group::down(ctx, "web")).unwrap();
    assert_eq!(w.nv.st().drain_requests, 1);
    let said = w.said();
    let asked = said.find("asking web-nv to drain").expect(&said);
    let drained = said.find("web-nv: drained").expect(&said);
    let first_destroy = said.find("destroying ").expect(&said);
    assert!(asked < drained && drained < first_destroy, "{said}");
    assert!(
        said.contains("group web: down (4 domains destroyed)"),
        "{said}"
    );
}

#[test]
fn down_forgets_an_nv_domain_that_powered_off_after_draining() {
    let w = World::up();
    w.own(&[("web-r1-g4", 12, DomainRole::Replica)]);
    w.nv.st().powers_off = true;
    let down = std::fs::read_to_string(format!(
        "{}/tests/transcripts/down.xl",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    // web-nv powered off and vanished: after the replicas, xl no longer lists it
    let t = down.replace(
        "$ xl destroy web-nv\n",
        &list_v(&[("web-r0", 8), ("web-r1-g4", 12), ("web-r2", 10)]),
    );
    w.run_text(&t, |ctx| group::down(ctx, "web")).unwrap();
    let said = w.said();
    assert!(
        said.contains("web-nv: powered off after draining"),
        "{said}"
    );
    assert!(!said.contains("destroying web-nv"), "{said}");
    assert!(group::groups(&w.host).unwrap().is_empty());
    assert!(!w.dir.0.join("web").exists());
}

#[test]
fn down_waits_for_a_drain_at_most_the_timeout_then_destroys_anyway() {
    let mut w = World::up();
    w.timeout = Duration::from_millis(300);
    w.nv.st().drains_for_ever = true;
    w.own(&[("web-r1-g4", 12, DomainRole::Replica)]);
    let start = Instant::now();
    w.run("down.xl", |ctx| group::down(ctx, "web")).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert!(
        w.said()
            .contains("web-nv: still draining after 0.3s (--timeout); destroying it anyway"),
        "{}",
        w.said()
    );
    assert!(group::groups(&w.host).unwrap().is_empty());
}

#[test]
fn down_dry_run_lists_the_drain_and_destroys_and_changes_nothing() {
    let w = World::up();
    w.own(&[("web-r1-g4", 12, DomainRole::Replica)]);
    let list = &std::fs::read_to_string(format!(
        "{}/tests/transcripts/down.xl",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .lines()
    .take_while(|l| !l.starts_with("$ xl destroy"))
    .collect::<Vec<_>>()
    .join("\n");
    let plan = w
        .run_text(list, |ctx| group::down_plan(ctx, "web"))
        .unwrap();
    assert_eq!(
        plan.to_string(),
        "- web-r1-g4: destroy (after the NV domain drained)\n\
         - web-r2: destroy (after the NV domain drained)\n\
         - web-r0: destroy (after the NV domain drained)\n\
         - web-nv: drain first (clients' open connections may finish, up to domain-nv's drain_timeout_ms), then destroy\n"
    );
    assert_eq!(w.nv.st().drain_requests, 0, "a dry run asks nothing");
    assert_eq!(group::groups(&w.host).unwrap(), ["web"]);
    let none = Replay::new("inline", "", &w.dir.path(), w.nv.hook("web"));
    w.with(&none, |ctx| group::down(ctx, "nosuch")).unwrap();
    let plan = w
        .with(&none, |ctx| group::down_plan(ctx, "nosuch"))
        .unwrap();
    assert!(plan.steps.is_empty());
}

#[test]
fn down_keeps_the_record_when_xl_fails() {
    let w = World::up();
    let e = format!(
        "{:#}",
        w.run("down-fails.xl", |ctx| group::down(ctx, "web"))
            .unwrap_err()
    );
    assert!(
        e.contains("`xl destroy web-r2` failed (exit 1): libxl: error"),
        "{e}"
    );
    assert_eq!(group::groups(&w.host).unwrap(), ["web"]);
}

#[test]
fn replace_boots_new_waits_live_then_retires_old() {
    let w = World::up();
    let new = w
        .run("replace.xl", |ctx| {
            group::replace(
                ctx,
                "web",
                "r1",
                Some("/srv/nv/alpine/redis-7.2.img"),
                &StateFrom::Spec,
                Mode::Repair,
                Duration::ZERO,
            )
        })
        .unwrap();
    assert_eq!(new.name(), "r1-g1");
    // a link of its own (vifname r1-g1), addressed like every replica link
    assert_eq!(
        (
            new.link.replica.to_string(),
            new.link.nv.to_string(),
            new.mac.as_str()
        ),
        ("10.77.0.2".into(), "10.77.0.1".into(), "00:16:3e:4d:00:02")
    );
    let cfg = std::fs::read_to_string(w.dir.0.join("web/web-r1-g1.cfg")).unwrap();
    assert!(
        cfg.contains("vif = [ 'backend=web-nv,mac=00:16:3e:4d:00:02,ip=10.77.0.2,vifname=r1-g1' ]")
            && cfg.contains("target=/srv/nv/alpine/redis-7.2.img"),
        "{cfg}"
    );
    // old and new voted side by side, then the old one left the config
    let configs = w.nv.st().configs.clone();
    let side = &configs[configs.len() - 2];
    assert!(
        side.contains("name: r1\n") && side.contains("name: r1-g1\n"),
        "{side}"
    );
    assert_eq!(w.config_names(), ["r0", "r1-g1", "r2"]);
    let rec = group::load(&w.host, "web").unwrap();
    let names: Vec<String> = rec.instances.iter().map(|(i, _)| i.name()).collect();
    assert_eq!(names, ["r0", "r1-g1", "r2"]);
    assert!(rec.instances.iter().all(|(_, r)| *r == Role::Member));
}

/// A new instance on probation (domain-nv reports it `joining`: compared, not voting) is enough
/// for a repair: the old instance is retired; the new one becomes a member once domain-nv
/// promotes it.
#[test]
fn replace_retires_old_once_new_serves_on_probation() {
    let w = World::up();
    w.nv.st().joining.insert("r1-g1".into());
    let new = w
        .run("replace.xl", |ctx| {
            group::replace(
                ctx,
                "web",
                "r1",
                Some("/srv/nv/alpine/redis-7.2.img"),
                &StateFrom::Spec,
                Mode::Repair,
                Duration::ZERO,
            )
        })
        .unwrap();
    assert_eq!(new.name(), "r1-g1");
    assert_eq!(w.config_names(), ["r0", "r1-g1", "r2"]);
}

/// A rolling patch waits until the new instance passed probation (`live`): an instance still
/// joining stops the roll and the old one stays.
#[test]
fn patch_step_waits_for_probation() {
    let mut w = World::up();
    w.timeout = Duration::from_millis(100);
    w.nv.st().joining.insert("r1-g1".into());
    let e = format!(
        "{:#}",
        w.run("replace-fails.xl", |ctx| group::replace(
            ctx,
            "web",
            "r1",
            None,
            &StateFrom::Spec,
            Mode::Patch,
            Duration::ZERO
        ))
        .unwrap_err()
    );
    assert!(
        e.contains("replacing r1") && e.contains("waiting for r1-g1 to be live"),
        "{e}"
    );
    assert_eq!(w.config_names(), ["r0", "r1", "r2"]);
}

#[test]
fn replace_that_fails_keeps_the_old_replica() {
    let mut w = World::up();
    w.timeout = Duration::from_millis(100);
    w.nv.st().stuck.insert("r1-g1".into());
    let e = format!(
        "{:#}",
        w.run("replace-fails.xl", |ctx| group::replace(
            ctx,
            "web",
            "r1",
            None,
            &StateFrom::Spec,
            Mode::Repair,
            Duration::ZERO
        ))
        .unwrap_err()
    );
    assert!(
        e.contains("replacing r1") && e.contains("waiting for r1-g1 to be serving"),
        "{e}"
    );
    assert_eq!(w.config_names(), ["r0", "r1", "r2"]);
    let names: Vec<String> = group::load(&w.host, "web")
        .unwrap()
        .instances
        .iter()
        .map(|(i, _)| i.name())
        .collect();
    assert_eq!(names, ["r0", "r1", "r2"]);
    // the new instance reporting a fault also aborts, at once
    w.timeout = Duration::from_secs(10);
    w.nv.st().stuck.clear();
    w.nv.st().faulty_on_boot.insert("r1-g1".into());
    let t = Instant::now();
    let e = format!(
        "{:#}",
        w.run("replace-fails.xl", |ctx| group::replace(
            ctx,
            "web",
            "r1",
            None,
            &StateFrom::Spec,
            Mode::Repair,
            Duration::ZERO
        ))
        .unwrap_err()
    );
    assert!(
        e.contains(
            "fault while r1-g1 joined: r1-g1: value-mismatch on redis connection 3 offset 120"
        ),
        "{e}"
    );
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn patch_rolls_one_replica_at_a_time_and_is_rerunnable() {
    let w = World::up();
    let img = "/srv/nv/alpine/valkey-8.1.img";
    w.run("patch.xl", |ctx| {
        group::patch(ctx, "web", img, Duration::from_millis(30))
    })
    .unwrap();
    assert_eq!(w.config_names(), ["r0-g1", "r1-g1", "r2-g1"]);
    // never fewer than the full set minus none: every side-by-side config had 4 voters
    let configs = w.nv.st().configs.clone();
    let counts: Vec<usize> = configs
        .iter()
        .map(|c| c.matches("replica_address:").count())
        .collect();
    assert_eq!(counts, [3, 4, 3, 4, 3, 4, 3]);
    assert!(
        w.said()
            .contains("[2/3] r1: patching to /srv/nv/alpine/valkey-8.1.img"),
        "{}",
        w.said()
    );
    // again: every replica is on the image already; only the NV domain is looked up
    let again = list_v(&[
        ("web-nv", 7),
        ("web-r0-g1", 11),
        ("web-r1-g1", 12),
        ("web-r2-g1", 13),
    ]);
    let xl = Replay::new("inline", &again, &w.dir.path(), w.nv.hook("web"));
    w.with(&xl, |ctx| group::patch(ctx, "web", img, Duration::ZERO))
        .unwrap();
    xl.assert_done();
    assert!(
        w.said()
            .contains("[3/3] r2: already on /srv/nv/alpine/valkey-8.1.img"),
        "{}",
        w.said()
    );
}

#[test]
fn patch_refuses_to_go_below_quorum() {
    let w = World::up();
    {
        let mut st = w.nv.st();
        st.faulty.insert("r0".into(), vec![fault(1, "straggler")]);
        st.faulty
            .insert("r2".into(), vec![fault(2, "value-mismatch")]);
    }
    w.nv.publish();
    let xl = Replay::new(
        "inline",
        &list_v(&[("web-nv", 7), ("web-r0", 8), ("web-r1", 9), ("web-r2", 10)]),
        &w.dir.path(),
        w.nv.hook("web"),
    );
    let e = w
        .with(&xl, |ctx| {
            group::patch(ctx, "web", "/x.img", Duration::ZERO)
        })
        .unwrap_err()
        .to_string();
    xl.assert_done();
    assert!(
        e.contains("patch stopped before r0: only 1 replicas live, quorum is 2"),
        "{e}"
    );
}

#[test]
fn patch_stops_at_a_fault_while_old_and_new_vote_side_by_side() {
    let w = World::up();
    w.nv.st().faulty_on_boot.insert("r0-g1".into());
    let t = &[
        list_v(&[("web-nv", 7), ("web-r0", 8), ("web-r1", 9), ("web-r2", 10)]),
        "$ xl create -n {dir}/web/web-r0-g1.cfg\n".to_string(),
        list_v(&[("web-nv", 7), ("web-r0", 8), ("web-r1", 9), ("web-r2", 10)]),
        "$ xl create {dir}/web/web-r0-g1.cfg\n".to_string(),
        list_v(&[
            ("web-nv", 7),
            ("web-r0", 8),
            ("web-r1", 9),
            ("web-r2", 10),
            ("web-r0-g1", 11),
        ]),
        list_v(&[
            ("web-nv", 7),
            ("web-r0", 8),
            ("web-r1", 9),
            ("web-r2", 10),
            ("web-r0-g1", 11),
        ]),
        "$ xl destroy web-r0-g1\n".to_string(),
    ]
    .concat();
    let xl = Replay::new("inline", t, &w.dir.path(), w.nv.hook("web"));
    let e = w
        .with(&xl, |ctx| {
            group::patch(ctx, "web", "/x.img", Duration::from_secs(5))
        })
        .unwrap_err()
        .to_string();
    xl.assert_done();
    assert!(
        e.contains("patch stopped at r0") && e.contains("value-mismatch"),
        "{e}"
    );
    assert_eq!(w.config_names(), ["r0", "r1", "r2"]);
}

/// The `xl` transcript of a patch whose first step (r0 -> r0-g1) fails after the new instance
/// booted: the new domain is destroyed again.
fn first_patch_step_fails() -> String {
    [
        list_v(&[("web-nv", 7), ("web-r0", 8), ("web-r1", 9), ("web-r2", 10)]),
        "$ xl create -n {dir}/web/web-r0-g1.cfg\n".to_string(),
        list_v(&[("web-nv", 7), ("web-r0", 8), ("web-r1", 9), ("web-r2", 10)]),
        "$ xl create {dir}/web/web-r0-g1.cfg\n".to_string(),
        list_v(&[
            ("web-nv", 7),
            ("web-r0", 8),
            ("web-r1", 9),
            ("web-r2", 10),
            ("web-r0-g1", 11),
        ]),
        list_v(&[
            ("web-nv", 7),
            ("web-r0", 8),
            ("web-r1", 9),
            ("web-r2", 10),
            ("web-r0-g1", 11),
        ]),
        "$ xl destroy web-r0-g1\n".to_string(),
    ]
    .concat()
}

/// After a stopped patch step: the new instance is gone from domain-nv's config and the
/// record, the old one stays, and the group is at full strength.
fn assert_old_instances_stay(w: &World) {
    assert_eq!(w.config_names(), ["r0", "r1", "r2"]);
    let names: Vec<String> = group::load(&w.host, "web")
        .unwrap()
        .instances
        .iter()
        .map(|(i, _)| i.name())
        .collect();
    assert_eq!(names, ["r0", "r1", "r2"]);
    assert!(
        w.said()
            .contains("r0: removing web-r0-g1 again, web-r0 stays"),
        "{}",
        w.said()
    );
}

/// A new instance that stays `joining` (no client traffic, or it never agrees) stops the roll
/// when the wait times out (exit status 5), with a message that says what to do.
#[test]
fn patch_stops_when_the_new_instance_stays_joining() {
    let mut w = World::up();
    w.timeout = Duration::from_millis(100);
    w.nv.st().joining.insert("r0-g1".into());
    let xl = Replay::new(
        "inline",
        &first_patch_step_fails(),
        &w.dir.path(),
        w.nv.hook("web"),
    );
    let e = w
        .with(&xl, |ctx| {
            group::patch(ctx, "web", "/x.img", Duration::ZERO)
        })
        .unwrap_err();
    xl.assert_done();
    assert_eq!(Failure::of(&e), Some(Failure::Timeout));
    let m = e.to_string();
    for part in [
        "patch stopped at r0: replacing r0: r0-g1 did not pass probation: timed out after 0.1s \
         waiting for r0-g1 to be live (its probation passed)",
        "\n  domain-nv reports r0-g1 joining (on probation: 4101 bytes agreed with the quorum so \
         far, 2 open connections)",
        "\n  r0-g1 is removed again; r0 keeps serving, the group stays at full strength",
        "\n  to continue: send client traffic so r0-g1 can agree with the quorum (or raise \
         --timeout), and check that /x.img holds the service's state, then re-run \
         `nvctl patch web --image /x.img` (replicas already on it are skipped)",
    ] {
        assert!(m.contains(part), "{m}\n--- lacks ---\n{part}");
    }
    assert_old_instances_stay(&w);
}

/// A new instance that domain-nv reports `faulty` (e.g. a new version without the service's
/// state) stops the roll at once, with its fault in the message (exit status 1).
#[test]
fn patch_stops_when_the_new_instance_is_faulty() {
    let w = World::up();
    w.nv.st().faulty_on_boot.insert("r0-g1".into());
    let xl = Replay::new(
        "inline",
        &first_patch_step_fails(),
        &w.dir.path(),
        w.nv.hook("web"),
    );
    let t = Instant::now();
    let e = w
        .with(&xl, |ctx| {
            group::patch(ctx, "web", "/x.img", Duration::ZERO)
        })
        .unwrap_err();
    xl.assert_done();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(Failure::of(&e), None);
    let m = e.to_string();
    for part in [
        "patch stopped at r0: replacing r0: r0-g1 did not pass probation: fault while r0-g1 \
         joined: r0-g1: value-mismatch on redis connection 3 offset 120",
        "\n  domain-nv reports r0-g1 faulty (value-mismatch on redis connection 3 offset 120)",
        "\n  r0-g1 is removed again; r0 keeps serving, the group stays at full strength",
        "\n  to continue: check that /x.img holds the service's state and answers as the old \
         version does (a new version without the state never agrees), then re-run \
         `nvctl patch web --image /x.img`",
    ] {
        assert!(m.contains(part), "{m}\n--- lacks ---\n{part}");
    }
    assert_old_instances_stay(&w);
}

/// A watcher of group web with a short interval and the grace period `down_grace`.
fn watcher(down_grace: Duration) -> Watcher {
    Watcher::new(
        "web",
        WatchOptions {
            interval: Duration::from_millis(5),
            down_grace,
        },
    )
}

/// `list_v(rows)` with the xl state of domain `name` set to `state`.
fn list_with_state(rows: &[(&str, u32)], name: &str, state: &str) -> String {
    list_v(rows)
        .lines()
        .map(|l| {
            if l.starts_with(&format!("> {name} ")) {
                l.replacen("-b----", state, 1)
            } else {
                l.to_string()
            }
        })
        .map(|l| l + "\n")
        .collect()
}

/// The transcript of a repair of r1 by r1-g1 (id 11) in the running group, r1 shown as `state`.
fn repair_r1_transcript(state: &str) -> String {
    let all = [("web-nv", 7), ("web-r0", 8), ("web-r1", 9), ("web-r2", 10)];
    let with_new = [
        ("web-nv", 7),
        ("web-r0", 8),
        ("web-r1", 9),
        ("web-r2", 10),
        ("web-r1-g1", 11),
    ];
    [
        list_v(&all),
        list_with_state(&all, "web-r1", state),
        "$ xl create -n {dir}/web/web-r1-g1.cfg\n".into(),
        list_with_state(&all, "web-r1", state),
        "$ xl create {dir}/web/web-r1-g1.cfg\n".into(),
        list_with_state(&with_new, "web-r1", state),
        list_with_state(&with_new, "web-r1", state),
        "$ xl destroy web-r1\n".into(),
    ]
    .concat()
}

#[test]
fn watch_repairs_a_replica_down_past_the_grace_period() {
    let w = World::up();
    w.nv.st().booted.remove("r1"); // hung: domain-nv reports it down, xl shows it running
    w.nv.publish();
    let all = [("web-nv", 7), ("web-r0", 8), ("web-r1", 9), ("web-r2", 10)];
    let t = [list_v(&all), list_v(&all), repair_r1_transcript("-b----")].concat();
    let xl = Replay::new("inline", &t, &w.dir.path(), w.nv.hook("web"));
    let mut watch = watcher(Duration::from_millis(100));
    let first = w.with(&xl, |ctx| watch.pass(ctx)).unwrap();
    assert!(first.is_empty(), "repaired within the grace period");
    std::thread::sleep(Duration::from_millis(120));
    let done = w.with(&xl, |ctx| watch.pass(ctx)).unwrap();
    xl.assert_done();
    assert_eq!(done.iter().map(|i| i.name()).collect::<Vec<_>>(), ["r1-g1"]);
    assert!(
        w.said()
            .contains("r1: reported down past the grace period, replacing"),
        "{}",
        w.said()
    );
    assert_eq!(w.config_names(), ["r0", "r1-g1", "r2"]);
}

#[test]
fn watch_repairs_a_crashed_replica() {
    let w = World::up();
    let xl = Replay::new(
        "inline",
        &repair_r1_transcript("--c---"),
        &w.dir.path(),
        w.nv.hook("web"),
    );
    let done = w
        .with(&xl, |ctx| watcher(Duration::from_secs(30)).pass(ctx))
        .unwrap();
    xl.assert_done();
    assert_eq!(done.iter().map(|i| i.name()).collect::<Vec<_>>(), ["r1-g1"]);
    assert!(
        w.said().contains("r1: domain crashed, replacing"),
        "{}",
        w.said()
    );
    assert_eq!(w.config_names(), ["r0", "r1-g1", "r2"]);
}

#[test]
fn watch_repairs_the_other_members_when_one_repair_fails() {
    let w = World::up();
    w.nv.st()
        .faulty
        .insert("r1".into(), vec![fault(1, "flood")]);
    w.nv.publish();
    let rows = [("web-nv", 7), ("web-r1", 9), ("web-r2", 10)]; // web-r0 vanished
    let with_new = [
        ("web-nv", 7),
        ("web-r1", 9),
        ("web-r2", 10),
        ("web-r1-g1", 11),
    ];
    let t = [
        list_v(&rows),
        list_v(&rows),
        "$ xl create -n {dir}/web/web-r0-g1.cfg\n! xl: no space for r0-g1\n? 1\n".into(),
        "$ xl create -n {dir}/web/web-r1-g1.cfg\n".into(),
        list_v(&rows),
        "$ xl create {dir}/web/web-r1-g1.cfg\n".into(),
        list_v(&with_new),
        list_v(&with_new),
        "$ xl destroy web-r1\n".into(),
    ]
    .concat();
    let xl = Replay::new("inline", &t, &w.dir.path(), w.nv.hook("web"));
    let done = w
        .with(&xl, |ctx| watcher(Duration::from_secs(30)).pass(ctx))
        .unwrap();
    xl.assert_done();
    assert_eq!(done.iter().map(|i| i.name()).collect::<Vec<_>>(), ["r1-g1"]);
    let said = w.said();
    assert!(
        said.contains("r0: domain gone, replacing")
            && said.contains("r0: repair failed")
            && said.contains("r1: replaced by r1-g1"),
        "{said}"
    );
}

#[test]
fn watch_reports_once_per_change_when_auto_repair_is_off() {
    let w = World::new();
    let spec = SPEC.replace("auto-repair: true", "auto-repair: false");
    w.run("up-fresh.xl", |ctx| group::up(ctx, &spec)).unwrap();
    let all = [("web-nv", 7), ("web-r0", 8), ("web-r1", 9), ("web-r2", 10)];
    let crashed = list_with_state(&all, "web-r2", "--c---");
    let no_nv = list_v(&[("web-r0", 8), ("web-r1", 9), ("web-r2", 10)]);
    let t = [
        list_v(&all),
        crashed.clone(),
        list_v(&all),
        crashed,
        no_nv.clone(),
        no_nv,
    ]
    .concat();
    let xl = Replay::new("inline", &t, &w.dir.path(), w.nv.hook("web"));
    let mut watch = watcher(Duration::from_secs(30));
    for _ in 0..4 {
        let done = w.with(&xl, |ctx| watch.pass(ctx)).unwrap();
        assert!(done.is_empty());
    }
    xl.assert_done();
    let said = w.said();
    assert_eq!(
        said.matches("r2: domain crashed (auto-repair is off)")
            .count(),
        1,
        "{said}"
    );
    assert_eq!(
        said.matches("NV domain web-nv: domain gone (auto-repair is off)")
            .count(),
        1,
        "{said}"
    );
}

/// How a test writes the `xl list -v` text of rows (name, id).
type ListText = dyn Fn(&[(&str, u32)]) -> String;

/// The transcript of `up` bringing back group web around the NV domain row `nv` (None: it
/// is created as id 11) after its replicas were destroyed: they are created with ids from 12
/// (13 when the NV domain kept running), `list_nv` making the `xl list -v` text of the rows.
fn group_restart_transcript(nv: Option<u32>, list_nv: &ListText) -> String {
    let mut t = String::new();
    let mut rows: Vec<(&str, u32)> = nv.map(|id| ("web-nv", id)).into_iter().collect();
    t += &list_nv(&rows);
    if nv.is_none() {
        t += "$ xl create -n {dir}/web/web-nv.cfg\n";
    }
    for r in ["r0", "r1", "r2"] {
        t += &format!("$ xl create -n {{dir}}/web/web-{r}.cfg\n");
    }
    let mut next = 11;
    if nv.is_none() {
        t += "$ xl create {dir}/web/web-nv.cfg\n";
        rows.push(("web-nv", next));
        t += &list_nv(&rows);
        next += 1;
    } else {
        next = 13;
    }
    for r in ["web-r0", "web-r1", "web-r2"] {
        t += &format!("$ xl create {{dir}}/web/{r}.cfg\n");
        rows.push((r, next));
        t += &list_nv(&rows);
        next += 1;
    }
    t += &list_nv(&rows); // the NV domain's new domid
    t += &list_nv(&rows); // the members
    t
}

#[test]
fn watch_brings_the_group_back_around_a_vanished_nv_domain() {
    let w = World::up();
    let t = [
        list_v(&[("web-r0", 8), ("web-r1", 9), ("web-r2", 10)]),
        // the replicas' vifs were served by the vanished NV domain: they go, `up` recreates all
        "$ xl destroy web-r0\n$ xl destroy web-r1\n$ xl destroy web-r2\n".into(),
        group_restart_transcript(None, &|rows| list_v(rows)),
    ]
    .concat();
    let xl = Replay::new("inline", &t, &w.dir.path(), w.nv.hook("web"));
    let done = w
        .with(&xl, |ctx| watcher(Duration::from_secs(30)).pass(ctx))
        .unwrap();
    xl.assert_done();
    assert!(done.is_empty());
    let said = w.said();
    assert!(
        said.contains("NV domain web-nv: domain gone, restarting the group")
            && said.contains("NV domain web-nv: running (id 11) with its replicas"),
        "{said}"
    );
    assert_eq!(w.nv.st().home.as_deref(), Some("/local/domain/11"));
    assert_eq!(w.config_names(), ["r0", "r1", "r2"]);
    let owned = Owned::load(&w.dir.0, "web").unwrap();
    assert!(owned.owns(&uuid_of(11)) && !owned.owns(&uuid_of(7)) && !owned.owns(&uuid_of(8)));
    assert!(owned.owns(&uuid_of(12)) && owned.owns(&uuid_of(14)));
}

#[test]
fn watch_brings_the_group_back_around_a_crashed_nv_domain() {
    let w = World::up();
    let all = [("web-nv", 7), ("web-r0", 8), ("web-r1", 9), ("web-r2", 10)];
    let t = [
        list_with_state(&all, "web-nv", "--c---"),
        "$ xl destroy web-nv\n$ xl destroy web-r0\n$ xl destroy web-r1\n$ xl destroy web-r2\n"
            .into(),
        group_restart_transcript(None, &|rows| list_v(rows)),
    ]
    .concat();
    let xl = Replay::new("inline", &t, &w.dir.path(), w.nv.hook("web"));
    w.with(&xl, |ctx| watcher(Duration::from_secs(30)).pass(ctx))
        .unwrap();
    xl.assert_done();
    assert!(
        w.said()
            .contains("NV domain web-nv: domain crashed, restarting the group"),
        "{}",
        w.said()
    );
    assert_eq!(w.nv.st().home.as_deref(), Some("/local/domain/11"));
    assert_eq!(w.config_names(), ["r0", "r1", "r2"]);
}

#[test]
fn watch_brings_the_group_back_around_a_rebooted_nv_domain() {
    let w = World::up();
    // on_reboot=restart: the NV domain keeps its UUID, gets domid 12 and an empty xenstore home
    let rebooted = |rows: &[(&str, u32)]| list_v(rows).replacen(&uuid_of(12), &uuid_of(7), 1);
    let t = [
        rebooted(&[("web-nv", 12), ("web-r0", 8), ("web-r1", 9), ("web-r2", 10)]),
        "$ xl destroy web-r0\n$ xl destroy web-r1\n$ xl destroy web-r2\n".into(),
        group_restart_transcript(Some(12), &rebooted),
    ]
    .concat();
    let xl = Replay::new("inline", &t, &w.dir.path(), w.nv.hook("web"));
    w.with(&xl, |ctx| watcher(Duration::from_secs(30)).pass(ctx))
        .unwrap();
    xl.assert_done();
    assert!(
        w.said()
            .contains("NV domain web-nv: restarted without its config, restarting the group"),
        "{}",
        w.said()
    );
    assert_eq!(w.nv.st().home.as_deref(), Some("/local/domain/12"));
    assert_eq!(w.config_names(), ["r0", "r1", "r2"]);
}

#[test]
fn watch_holds_the_group_lock_only_during_a_pass() {
    let w = World::up();
    let lock_file = w.dir.0.join("web.lock");
    let take = || -> anyhow::Result<std::fs::File> {
        let f = std::fs::File::create(&lock_file)?;
        f.try_lock()?;
        Ok(f)
    };
    let all = [("web-nv", 7), ("web-r0", 8), ("web-r1", 9), ("web-r2", 10)];
    let t = [list_v(&all), list_v(&all), list_v(&all), list_v(&all)].concat();
    let xl = Replay::new("inline", &t, &w.dir.path(), w.nv.hook("web"));
    let mut watch = watcher(Duration::from_secs(30));
    let held_in_pass = std::cell::Cell::new(0);
    let mut lock = || {
        let f = take()?;
        // another nvctl cannot take it now
        assert!(take().is_err());
        held_in_pass.set(held_in_pass.get() + 1);
        Ok(f)
    };
    w.with(&xl, |ctx| watch.round(ctx, &mut lock)).unwrap();
    // between passes another command takes the lock (and runs); meanwhile a pass is skipped
    let other = take().expect("watch holds the group lock while idle");
    w.with(&xl, |ctx| watch.round(ctx, &mut lock)).unwrap();
    assert_eq!(held_in_pass.get(), 1);
    assert!(w.said().contains("pass skipped"), "{}", w.said());
    drop(other);
    w.with(&xl, |ctx| watch.round(ctx, &mut lock)).unwrap();
    assert_eq!(held_in_pass.get(), 2);
    xl.assert_done();
}

#[test]
fn repair_pass_replaces_a_faulty_replica_when_auto_repair_is_on() {
    let w = World::up();
    w.nv.st().faulty.insert(
        "r1".into(),
        vec![fault(1_790_000_000_100, "value-mismatch")],
    );
    w.nv.publish();
    let done = w
        .run("repair.xl", |ctx| watcher(Duration::ZERO).pass(ctx))
        .unwrap();
    assert_eq!(done.iter().map(|i| i.name()).collect::<Vec<_>>(), ["r1-g1"]);
    assert!(
        w.said().contains("r1: reported faulty, replacing"),
        "{}",
        w.said()
    );
    assert_eq!(w.config_names(), ["r0", "r1-g1", "r2"]);
}

#[test]
fn repair_pass_only_reports_when_auto_repair_is_off() {
    let w = World::new();
    let spec = SPEC.replace("auto-repair: true", "auto-repair: false");
    w.run("up-fresh.xl", |ctx| group::up(ctx, &spec)).unwrap();
    w.nv.st()
        .faulty
        .insert("r2".into(), vec![fault(1, "flood")]);
    w.nv.publish();
    let t = &[
        list_v(&[("web-nv", 7), ("web-r0", 8), ("web-r1", 9), ("web-r2", 10)]),
        list_v(&[("web-nv", 7), ("web-r0", 8), ("web-r1", 9)]),
    ]
    .concat();
    let xl = Replay::new("inline", t, &w.dir.path(), w.nv.hook("web"));
    let done = w
        .with(&xl, |ctx| watcher(Duration::ZERO).pass(ctx))
        .unwrap();
    xl.assert_done();
    assert!(done.is_empty());
    assert!(
        w.said().contains("r2: domain gone (auto-repair is off)"),
        "{}",
        w.said()
    );
}

#[test]
fn status_shows_domains_links_bytes_and_faults() {
    let w = World::up();
    w.nv.st().faulty.insert(
        "r1".into(),
        vec![
            fault(1_789_999_999_000, "straggler"),
            fault(1_790_000_000_100, "value-mismatch"),
        ],
    );
    w.nv.publish();
    let t = &list_v(&[("web-nv", 7), ("web-r0", 8), ("web-r1", 9)]);
    let xl = Replay::new("inline", t, &w.dir.path(), w.nv.hook("web"));
    let view = w.with(&xl, |ctx| group::status(ctx, "web")).unwrap();
    xl.assert_done();
    let table = group::format_table(std::slice::from_ref(&view));
    println!("{table}");
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row {name} in\n{table}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row("r0 "),
        ["r0", "web-r0", "8", "-b----", "live", "up", "2", "4098", "0"]
    );
    assert_eq!(
        row("r1 "),
        [
            "r1",
            "web-r1",
            "9",
            "-b----",
            "faulty",
            "up",
            "2",
            "4098",
            "2",
            "2026-09-21T14:13:20.100Z",
            "value-mismatch",
            "redis#3",
            "offset",
            "120"
        ]
    );
    assert_eq!(row("r2 ")[..4], ["r2", "web-r2", "-", "gone"]);
    assert!(table.ends_with("Recent faults (last 5 per replica; all with --json):\n  r1         2026-09-21T14:13:20.100Z value-mismatch redis#3 offset 120\n  r1         2026-09-21T14:13:19.000Z straggler redis#3 offset 120\n"), "{table}");
    assert!(
        table.lines().all(|l| l == l.trim_end()),
        "trailing blanks in\n{table}"
    );
    assert!(
        table.contains("Group web   NV domain web-nv (id 7 -b----, ready)")
            && table.contains("redis on 192.0.2.10:6379: 2 active, 17 total"),
        "{table}"
    );
    let json = group::format_json(&[view]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["group"].as_str(), Some("web"));
    assert_eq!(v[0]["instances"][1]["domain"]["id"].as_u64(), Some(9));
    assert_eq!(v[0]["instances"][2]["domain"], serde_json::Value::Null);
    assert_eq!(
        v[0]["status"]["replicas"][1]["faults"][1]["kind"].as_str(),
        Some("value-mismatch")
    );
}

/// The same lifecycle against the simulated xenstored of the `xen` crate: nvctl as dom0,
/// domain-nv as the NV domain with its own connection (so permissions and chunking are real).
mod sim {
    use super::*;
    use xen::sim::{SimHost, SimXen};
    use xen::xenstore::Xenstore;

    /// A sim host whose NV domain gets domid 7 (the transcripts' id), and the world on it.
    fn sim_world() -> (SimXen, World) {
        let host = SimHost::with_nv_domid(7).unwrap();
        let guest: Arc<dyn Store + Send + Sync> = Arc::new(host.nv_xenstore().unwrap());
        let SimHost { sim, dom0, .. } = host;
        let dom0: Arc<dyn Store + Send + Sync> = Arc::new(dom0);
        (sim, World::on(dom0, guest))
    }

    #[test]
    fn up_replace_down_on_sim_xenstored() {
        let (_sim, w) = sim_world();
        // a spec long enough that the domain-nv config is chunked
        let mut spec = SPEC.to_string();
        for i in 0..60 {
            spec.push_str(&format!(
                "# padding line {i} to make the spec longer than one xenstore payload\n"
            ));
        }
        w.run("up-fresh.xl", |ctx| group::up(ctx, &spec)).unwrap();
        assert_eq!(w.config_names(), ["r0", "r1", "r2"]);
        assert!(w
            .host
            .read("/tool/nvctl/groups/web/spec")
            .unwrap()
            .unwrap()
            .starts_with("#nvctl-chunked "));
        assert_eq!(
            read_blob(&w.host, "/tool/nvctl/groups/web/spec")
                .unwrap()
                .unwrap(),
            spec
        );
        w.run("replace.xl", |ctx| {
            group::replace(
                ctx,
                "web",
                "r1",
                Some("/srv/nv/alpine/redis-7.2.img"),
                &StateFrom::Spec,
                Mode::Repair,
                Duration::ZERO,
            )
        })
        .unwrap();
        assert_eq!(w.config_names(), ["r0", "r1-g1", "r2"]);
        let t = &list_v(&[
            ("web-nv", 7),
            ("web-r0", 8),
            ("web-r1-g1", 11),
            ("web-r2", 10),
        ]);
        let xl = Replay::new("inline", t, &w.dir.path(), w.nv.hook("web"));
        let view = w.with(&xl, |ctx| group::status(ctx, "web")).unwrap();
        let live: Vec<String> = view
            .status
            .unwrap()
            .replicas
            .iter()
            .map(|r| format!("{}={:?}", r.name, r.state))
            .collect();
        assert_eq!(live, ["r0=Live", "r1-g1=Live", "r2=Live"]);
        let t = &[
            list_v(&[("web-nv", 7)]),
            "$ xl destroy web-nv\n".to_string(),
        ]
        .concat();
        let xl = Replay::new("inline", t, &w.dir.path(), w.nv.hook("web"));
        w.with(&xl, |ctx| group::down(ctx, "web")).unwrap();
        xl.assert_done();
        assert!(group::groups(&w.host).unwrap().is_empty());
    }

    #[test]
    fn the_nv_domain_can_read_its_config_but_not_nvctls_records() {
        let host = SimHost::new().unwrap();
        let guest = host.nv_xenstore().unwrap();
        let SimHost {
            sim: _sim,
            dom0,
            nv,
        } = host;
        let path = format!("/local/domain/{nv}/data/domain-nv-config");
        let big: String = (0..400).map(|i| format!("# line {i}\n")).collect();
        toolstack_plugin::store::write_blob(&dom0, &path, &big).unwrap();
        assert_eq!(read_blob(&guest, &path).unwrap().unwrap(), big);
        dom0.write("/tool/nvctl/groups/web/spec", "secret").unwrap();
        assert!(Store::read(&guest, "/tool/nvctl/groups/web/spec").is_err());
        // absent nodes: None / empty / no error
        assert_eq!(Store::read(&dom0, "/nope").unwrap(), None);
        assert!(Store::directory(&dom0, "/nope").unwrap().is_empty());
        Store::rm(&dom0, "/nope").unwrap();
    }

    #[test]
    fn watch_wakes_on_a_change_by_another_domain_and_times_out_otherwise() {
        let host = SimHost::new().unwrap();
        let guest = host.nv_xenstore().unwrap();
        let SimHost {
            sim: _sim,
            dom0,
            nv,
        } = host;
        let base = format!("/local/domain/{nv}/data/domain-nv");
        let t = Instant::now();
        assert!(!Store::watch(&dom0, &base, Duration::from_millis(50)).unwrap());
        assert!(t.elapsed() >= Duration::from_millis(50));
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut i = 0;
                while !done.load(Ordering::SeqCst) {
                    Store::write(&guest, &format!("{base}/ready"), &i.to_string()).unwrap();
                    i += 1;
                    let _ = Xenstore::wait_watch_event(&guest, Duration::from_millis(2));
                }
            });
            assert!(Store::watch(&dom0, &base, Duration::from_secs(10)).unwrap());
            done.store(true, Ordering::SeqCst);
        });
    }
}

#[test]
fn command_line_images_follow_the_path_grammar_before_anything_runs() {
    let w = World::up();
    let evil = "/srv/a.img', 'target=/dev/sda";
    let xl = Replay::new("inline", "", &w.dir.path(), w.nv.hook("web"));
    let e = format!(
        "{:#}",
        w.with(&xl, |ctx| group::replace(
            ctx,
            "web",
            "r1",
            Some(evil),
            &StateFrom::Spec,
            Mode::Repair,
            Duration::ZERO
        ))
        .unwrap_err()
    );
    assert!(e.contains("--image") && e.contains("quote"), "{e}");
    let e = format!(
        "{:#}",
        w.with(&xl, |ctx| group::patch(
            ctx,
            "web",
            "relative.img",
            Duration::ZERO
        ))
        .unwrap_err()
    );
    assert!(e.contains("--image") && e.contains("absolute"), "{e}");
    xl.assert_done();
    assert_eq!(w.config_names(), ["r0", "r1", "r2"]);
}

/// The example spec with the NV domain renamed to web-nv2.
fn renamed_spec() -> String {
    let from = "  kernel: /var/lib/domain-nv/vmlinuz";
    assert!(SPEC.contains(from));
    SPEC.replacen(from, &format!("  name: web-nv2\n{from}"), 1)
}

#[test]
fn up_never_touches_a_domain_it_did_not_create() {
    // another group's domain (say group web-r1 of an older nvctl, replica g1) is named like a
    // replacement of web's r1: `up web` used to destroy it as a leftover
    let w = World::new();
    let dom0 = "> Domain-0                                     0  4096     2     r-----     812.5 00000000-0000-0000-0000-000000000000        -                -\n";
    let other = "> web-r1-g1                                   30   256     1     -b----       9.0 f0000000-0000-4000-8000-000000000030        -                -\n";
    let path = format!(
        "{}/tests/transcripts/up-fresh.xl",
        env!("CARGO_MANIFEST_DIR")
    );
    let t = std::fs::read_to_string(path)
        .unwrap()
        .replace(dom0, &format!("{dom0}{other}"));
    let xl = Replay::new("up-fresh + web-r1-g1", &t, &w.dir.path(), w.nv.hook("web"));
    w.with(&xl, |ctx| group::up(ctx, SPEC)).unwrap();
    xl.assert_done();
    assert!(!w.said().contains("left over"), "{}", w.said());
    assert_eq!(w.config_names(), ["r0", "r1", "r2"]);
}

#[test]
fn up_refuses_a_domain_of_the_groups_name_that_it_did_not_create() {
    let w = World::new();
    let xl = Replay::new(
        "inline",
        &list_v(&[("web-nv", 7)]),
        &w.dir.path(),
        w.nv.hook("web"),
    );
    let e = format!("{:#}", w.with(&xl, |ctx| group::up(ctx, SPEC)).unwrap_err());
    xl.assert_done();
    assert!(
        e.contains("domain web-nv (id 7") && e.contains("not created by nvctl"),
        "{e}"
    );
    assert!(group::groups(&w.host).unwrap().is_empty());
}

#[test]
fn up_refuses_a_group_name_that_collides_with_another_groups() {
    let w = World::new();
    w.host
        .write("/tool/nvctl/groups/web-r1/nv-domain", "web-r1-nv")
        .unwrap();
    let xl = Replay::new("inline", "", &w.dir.path(), w.nv.hook("web"));
    let e = format!("{:#}", w.with(&xl, |ctx| group::up(ctx, SPEC)).unwrap_err());
    xl.assert_done();
    assert!(
        e.contains("group name web collides with group web-r1"),
        "{e}"
    );
    assert_eq!(group::groups(&w.host).unwrap(), ["web-r1"]);
}

#[test]
fn down_after_a_rename_destroys_exactly_what_nvctl_created() {
    let w = World::up();
    // the recorded spec names another NV domain (as an older nvctl's `up` of an edited spec
    // left it): down still destroys the NV domain nvctl created
    toolstack_plugin::store::write_blob(&w.host, "/tool/nvctl/groups/web/spec", &renamed_spec())
        .unwrap();
    let t = [
        list_v(&[("web-nv", 7), ("web-r0", 8), ("web-r1", 9), ("web-r2", 10)]),
        "$ xl destroy web-r2\n$ xl destroy web-r1\n$ xl destroy web-r0\n$ xl destroy web-nv\n"
            .to_string(),
    ]
    .concat();
    w.run_text(&t, |ctx| group::down(ctx, "web")).unwrap();
    assert!(
        w.said().contains("group web: down (4 domains destroyed)"),
        "{}",
        w.said()
    );
    assert!(!w.dir.0.join("web").exists());
}

#[test]
fn up_refuses_to_rename_a_running_nv_domain() {
    let w = World::up();
    let t = list_v(&[("web-nv", 7), ("web-r0", 8), ("web-r1", 9), ("web-r2", 10)]);
    let e = format!(
        "{:#}",
        w.run_text(&t, |ctx| group::up(ctx, &renamed_spec()))
            .unwrap_err()
    );
    assert!(
        e.contains("runs as web-nv, the spec names it web-nv2"),
        "{e}"
    );
    assert_eq!(
        group::load(&w.host, "web").unwrap().spec.nv_name(),
        "web-nv"
    );
}

#[test]
fn a_config_xl_rejects_in_the_dry_run_creates_nothing() {
    let w = World::new();
    let t = [
        list_v(&[]),
        "$ xl create -n {dir}/web/web-nv.cfg\n! Parsing config from {dir}/web/web-nv.cfg\n! web-nv.cfg:9: config parsing error near `x': syntax error\n? 1\n".to_string(),
    ]
    .concat();
    let e = w.run_text(&t, |ctx| group::up(ctx, SPEC)).unwrap_err();
    assert_eq!(Failure::of(&e), Some(Failure::Xl));
    let e = format!("{e:#}");
    assert!(
        e.contains("xl rejects the config of web-nv") && e.contains("syntax error"),
        "{e}"
    );
    assert!(Owned::load(&w.dir.0, "web").unwrap().domains.is_empty());
}

#[test]
fn failures_carry_their_kind_for_the_exit_status() {
    let mut w = World::new();
    w.timeout = Duration::from_millis(100);
    w.nv.st().never_ready = true;
    let e = w.with(&w.replay("up-fresh.xl"), |ctx| group::up(ctx, SPEC));
    assert_eq!(Failure::of(&e.unwrap_err()), Some(Failure::Timeout));
    let none = Replay::new("inline", "", &w.dir.path(), w.nv.hook("web"));
    let e = w
        .with(&none, |ctx| group::status(ctx, "nosuch"))
        .unwrap_err();
    assert_eq!(Failure::of(&e), Some(Failure::NotFound));
    let e = w
        .with(&none, |ctx| group::up(ctx, "group: web\n"))
        .unwrap_err();
    assert_eq!(Failure::of(&e), Some(Failure::Invalid));
}

#[test]
fn up_lists_drift_it_cannot_change_live_and_converges_the_rest() {
    let w = World::up();
    w.said.lock().unwrap().clear();
    let changed = SPEC
        .replacen("    memory: 512", "    memory: 1024", 1)
        .replacen("straggler-timeout-ms: 2000", "straggler-timeout-ms: 500", 1);
    w.run("up-again.xl", |ctx| group::up(ctx, &changed))
        .unwrap();
    let said = w.said();
    assert!(
        said.contains("group web: 1 running domain(s) differ from the spec in settings up cannot change live:")
            && said.contains("  web-r0: memory: 512 -> 1024, runs with 512 MiB, the spec says 1024; needs `nvctl replace web r0`"),
        "{said}"
    );
    // the domain-nv setting converged live: the new config was handed over
    assert!(
        w.last_config().contains("straggler_timeout_ms: 500"),
        "{}",
        w.last_config()
    );
    // an unchanged spec lists no drift
    w.said.lock().unwrap().clear();
    w.run("up-again.xl", |ctx| group::up(ctx, SPEC)).unwrap();
    assert!(!w.said().contains("differ from the spec"), "{}", w.said());
}

#[test]
fn diff_shows_creation_drift_and_live_changes_without_changing_anything() {
    let w = World::new();
    let plan = w
        .run_text(
            "$ xl list -v\n> Name ID Mem VCPUs State Time(s) UUID\n",
            |ctx| group::diff(ctx, SPEC),
        )
        .unwrap();
    assert_eq!(
        plan.to_string(),
        "+ web-nv: NV domain, then hand it the domain-nv config\n+ web-r0: replica r0\n+ web-r1: replica r1\n+ web-r2: replica r2\n"
    );
    assert!(
        group::groups(&w.host).unwrap().is_empty(),
        "diff records nothing"
    );
    let w = World::up();
    let configs = w.nv.st().configs.len();
    let plan = w.run("up-again.xl", |ctx| group::diff(ctx, SPEC)).unwrap();
    assert!(plan.steps.is_empty(), "{plan}");
    let changed = SPEC
        .replacen("    memory: 384\n", "    memory: 384\n    cpus: 2-3\n", 1)
        .replacen("straggler-timeout-ms: 2000", "straggler-timeout-ms: 500", 1);
    let plan = w
        .run("up-again.xl", |ctx| group::diff(ctx, &changed))
        .unwrap();
    assert_eq!(
        plan.to_string(),
        "~ domain-nv config: changed: straggler_timeout_ms (handed live to web-nv)\n! web-r1: cpus: (unset) -> \"2-3\"; needs `nvctl replace web r1`\n"
    );
    assert_eq!(w.nv.st().configs.len(), configs, "diff hands over nothing");
    assert!(!w.last_config().contains("straggler_timeout_ms: 500"));
}

/// The 1-based line of the first line of `text` holding `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn up_checks_dom0_files_bridge_and_pci_devices_before_creating_anything() {
    let w = World::new();
    w.dom0.missing.lock().unwrap().extend(
        [
            "/var/lib/domain-nv/vmlinuz",
            "xenbr0",
            "/srv/nv/alpine/redis-7.0.img",
        ]
        .map(String::from),
    );
    let e = w
        .run_text(&list_v(&[]), |ctx| group::up(ctx, SPEC))
        .unwrap_err();
    assert_eq!(Failure::of(&e), Some(Failure::Invalid));
    let e = format!("{e:#}");
    for (line, field, what) in [
        (
            line_of(SPEC, "kernel: /var/lib/domain-nv/vmlinuz"),
            "nv-domain.kernel",
            "no file /var/lib/domain-nv/vmlinuz in Dom0",
        ),
        (
            line_of(SPEC, "bridge: xenbr0"),
            "nv-domain.external.bridge",
            "no bridge xenbr0 in Dom0",
        ),
        (
            line_of(SPEC, "image: /srv/nv/alpine/redis-7.0.img"),
            "replicas[1].image",
            "no file /srv/nv/alpine/redis-7.0.img in Dom0",
        ),
    ] {
        assert!(e.contains(&format!("line {line}: {field}: {what}")), "{e}");
    }
    assert_eq!(e.matches("in Dom0").count(), 3, "each reported once: {e}");
    assert!(Owned::load(&w.dir.0, "web").unwrap().domains.is_empty());
    // PCI devices of a passed-through external NIC
    let pci = SPEC
        .replace("    bridge: xenbr0", "    pci: [\"0000:03:00.0\"]")
        .replace("    mac: 00:16:3e:c0:00:0a\n", "")
        .replace("  memory: 256", "  type: pv\n  memory: 256");
    w.dom0.missing.lock().unwrap().clear();
    w.dom0.missing.lock().unwrap().push("0000:03:00.0".into());
    let e = w
        .run_text(&list_v(&[]), |ctx| group::up(ctx, &pci))
        .unwrap_err();
    assert_eq!(Failure::of(&e), Some(Failure::Invalid));
    assert!(
        format!("{e:#}").contains(&format!(
            "line {}: nv-domain.external.pci[0]: no PCI device 0000:03:00.0 in Dom0",
            line_of(&pci, "pci: [")
        )),
        "{e:#}"
    );
}

#[test]
fn replace_checks_the_new_image_in_dom0_before_booting_anything() {
    let w = World::up();
    w.dom0
        .missing
        .lock()
        .unwrap()
        .push("/srv/nv/alpine/redis-7.2.img".into());
    let e = w
        .run_text("", |ctx| {
            group::replace(
                ctx,
                "web",
                "r1",
                Some("/srv/nv/alpine/redis-7.2.img"),
                &StateFrom::Spec,
                Mode::Repair,
                Duration::ZERO,
            )
        })
        .unwrap_err();
    assert_eq!(Failure::of(&e), Some(Failure::Invalid));
    assert!(
        format!("{e:#}").contains("--image: no file /srv/nv/alpine/redis-7.2.img in Dom0"),
        "{e:#}"
    );
    let running = list_v(&[("web-nv", 7), ("web-r0", 8), ("web-r1", 9), ("web-r2", 10)]);
    let e = w
        .run_text(&running, |ctx| {
            group::patch(ctx, "web", "/srv/nv/alpine/redis-7.2.img", Duration::ZERO)
        })
        .unwrap_err();
    assert_eq!(Failure::of(&e), Some(Failure::Invalid), "{e:#}");
    assert_eq!(
        w.config_names(),
        ["r0", "r1", "r2"],
        "no instance joined the group"
    );
}

#[test]
fn up_destroys_nothing_when_dom0_lacks_what_it_would_create() {
    let w = World::up();
    // r2 leaves the spec (its domain would be destroyed), r3 joins with a kernel Dom0 lacks
    let r2 = SPEC.find("  - name: r2").unwrap();
    let end = SPEC.find("\nauto-repair").unwrap();
    let spec = format!(
        "{}  - name: r3\n    kernel: /srv/nv/missing/vmlinuz\n    image: /srv/nv/alpine/valkey-8.0.img\n    memory: 384\n{}",
        &SPEC[..r2],
        &SPEC[end..]
    );
    w.dom0
        .missing
        .lock()
        .unwrap()
        .push("/srv/nv/missing/vmlinuz".into());
    let running = list_v(&[("web-nv", 7), ("web-r0", 8), ("web-r1", 9), ("web-r2", 10)]);
    let e = w
        .run_text(&running, |ctx| group::up(ctx, &spec))
        .unwrap_err();
    assert_eq!(Failure::of(&e), Some(Failure::Invalid));
    assert!(
        format!("{e:#}").contains("replicas[2].kernel: no file /srv/nv/missing/vmlinuz in Dom0"),
        "{e:#}"
    );
    assert_eq!(
        Owned::load(&w.dir.0, "web").unwrap().domains.len(),
        4,
        "web-r2 still owned, nothing destroyed"
    );
    assert!(!w.said().contains("removing"), "{}", w.said());
}

// ---- state transfer by VM clone (`replace --clone-from`, spec `state: clone`) ----

/// The transcript of a clone of `source` (domid `sid`) as web-r1-g1, up to the restore (its
/// exit status `restore`), with the running domains `rows` before and after.
fn clone_transcript(source: &str, restore: i32) -> String {
    let before = [("web-nv", 7), ("web-r0", 8), ("web-r1", 9), ("web-r2", 10)];
    let mut after = before.to_vec();
    after.push(("web-r1-g1", 11));
    let mut t = list_v(&before);
    t.push_str("$ xl create -n {dir}/web/web-r1-g1.cfg\n");
    t.push_str(&list_v(&before));
    t.push_str(&format!(
        "$ xl save -c {source} {{dir}}/web/checkpoints/web-r1-g1.save\n"
    ));
    t.push_str("$ xl restore {dir}/web/web-r1-g1.cfg {dir}/web/checkpoints/web-r1-g1.save\n");
    if restore != 0 {
        t.push_str(&format!("! libxl: error: restore failed\n? {restore}\n"));
        t.push_str(&list_v(&before));
        return t;
    }
    t.push_str(&list_v(&after));
    t.push_str(&list_v(&after));
    t.push_str("$ xl destroy web-r1\n");
    t
}

fn checkpoints_left(w: &World) -> usize {
    std::fs::read_dir(w.dir.0.join("web/checkpoints"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn replace_clone_from_checkpoints_the_source_restores_the_copy_and_removes_the_file() {
    let w = World::up();
    let new = w
        .run_text(&clone_transcript("web-r2", 0), |ctx| {
            group::replace(
                ctx,
                "web",
                "r1",
                None,
                &StateFrom::CloneOf("r2".into()),
                Mode::Repair,
                Duration::ZERO,
            )
        })
        .unwrap();
    assert_eq!(new.name(), "r1-g1");
    // r2's settings (its memory image needs its kernel, memory, vcpus and disk), r1-g1's name
    // and link
    let cfg = std::fs::read_to_string(w.dir.0.join("web/web-r1-g1.cfg")).unwrap();
    for want in [
        "name = \"web-r1-g1\"",
        "memory = 384",
        "vcpus = 2",
        "target=/srv/nv/alpine/valkey-8.0.img",
        "vif = [ 'backend=web-nv,mac=00:16:3e:4d:00:02,ip=10.77.0.2,vifname=r1-g1' ]",
    ] {
        assert!(cfg.contains(want), "{want}\n{cfg}");
    }
    assert_eq!(checkpoints_left(&w), 0, "the checkpoint file is removed");
    assert_eq!(w.config_names(), ["r0", "r1-g1", "r2"]);
    let rec = group::load(&w.host, "web").unwrap();
    let (copy, _) = rec
        .instances
        .iter()
        .find(|(i, _)| i.name() == "r1-g1")
        .unwrap();
    assert_eq!(copy.image.as_deref(), Some("/srv/nv/alpine/valkey-8.0.img"));
    let owned = Owned::load(&w.dir.0, "web").unwrap();
    assert!(
        owned.owns(&uuid_of(11)),
        "the restored domain is owned by UUID"
    );
    assert!(w.said().contains("checkpointing web-r2"), "{}", w.said());
}

#[test]
fn a_clone_is_made_only_from_a_live_replica_and_a_refusal_changes_nothing() {
    let w = World::up();
    w.nv.st().faulty.insert(
        "r2".into(),
        vec![fault(1_790_000_000_100, "value-mismatch")],
    );
    w.nv.publish();
    let before = list_v(&[("web-nv", 7), ("web-r0", 8), ("web-r1", 9), ("web-r2", 10)]);
    let configs = w.nv.st().configs.len();
    let e = w
        .run_text(&before, |ctx| {
            group::replace(
                ctx,
                "web",
                "r1",
                None,
                &StateFrom::CloneOf("r2".into()),
                Mode::Repair,
                Duration::ZERO,
            )
        })
        .unwrap_err();
    assert_eq!(Failure::of(&e), Some(Failure::Invalid), "{e:#}");
    assert!(format!("{e:#}").contains("reports r2 faulty"), "{e:#}");
    // a new image cannot be cloned: refused before xl runs
    let e = w
        .run_text("", |ctx| {
            group::replace(
                ctx,
                "web",
                "r1",
                Some("/srv/nv/alpine/redis-7.2.img"),
                &StateFrom::CloneOf("r0".into()),
                Mode::Repair,
                Duration::ZERO,
            )
        })
        .unwrap_err();
    assert!(format!("{e:#}").contains("exclude each other"), "{e:#}");
    assert_eq!(w.nv.st().configs.len(), configs, "no config handed over");
    assert_eq!(w.config_names(), ["r0", "r1", "r2"]);
}

#[test]
fn state_clone_in_the_spec_copies_the_first_live_other_replica() {
    let w = World::new();
    let spec = format!("{SPEC}state: clone\n");
    w.run("up-fresh.xl", |ctx| group::up(ctx, &spec)).unwrap();
    let t = clone_transcript("web-r0", 0);
    let new = w
        .run_text(&t, |ctx| {
            group::replace(
                ctx,
                "web",
                "r1",
                None,
                &StateFrom::Spec,
                Mode::Repair,
                Duration::ZERO,
            )
        })
        .unwrap();
    assert_eq!(new.name(), "r1-g1");
    let cfg = std::fs::read_to_string(w.dir.0.join("web/web-r1-g1.cfg")).unwrap();
    assert!(cfg.contains("target=/srv/nv/debian/redis-7.2.img"), "{cfg}");
}

#[test]
fn a_failed_restore_removes_the_new_instance_and_the_checkpoint() {
    let w = World::up();
    let e = w
        .run_text(&clone_transcript("web-r2", 1), |ctx| {
            group::replace(
                ctx,
                "web",
                "r1",
                None,
                &StateFrom::CloneOf("r2".into()),
                Mode::Repair,
                Duration::ZERO,
            )
        })
        .unwrap_err();
    assert_eq!(Failure::of(&e), Some(Failure::Xl), "{e:#}");
    assert!(format!("{e:#}").contains("restore failed"), "{e:#}");
    assert_eq!(checkpoints_left(&w), 0);
    assert_eq!(w.config_names(), ["r0", "r1", "r2"]);
    let names: Vec<String> = group::load(&w.host, "web")
        .unwrap()
        .instances
        .iter()
        .map(|(i, _)| i.name())
        .collect();
    assert_eq!(names, ["r0", "r1", "r2"]);
}

#[test]
fn replace_dry_run_checks_and_lists_the_steps_but_changes_nothing() {
    let w = World::up();
    let before = list_v(&[("web-nv", 7), ("web-r0", 8), ("web-r1", 9), ("web-r2", 10)]);
    let t = format!("{before}$ xl create -n {{dir}}/web/web-r1-g1.cfg\n");
    let configs = w.nv.st().configs.len();
    let plan = w
        .run_text(&t, |ctx| {
            group::replace_plan(ctx, "web", "r1", None, &StateFrom::CloneOf("r2".into()))
        })
        .unwrap();
    let steps: Vec<(group::Action, &str)> = plan
        .steps
        .iter()
        .map(|s| (s.action, s.target.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            (group::Action::Create, "web-r1-g1"),
            (group::Action::Push, "domain-nv config"),
            (group::Action::Destroy, "web-r1"),
        ]
    );
    assert!(
        plan.steps[0].detail.contains("memory copy of web-r2")
            && plan.steps[0].detail.contains("checkpoints/web-r1-g1.save"),
        "{}",
        plan.steps[0].detail
    );
    assert_eq!(w.nv.st().configs.len(), configs, "no config handed over");
    assert_eq!(checkpoints_left(&w), 0);
    let names: Vec<String> = group::load(&w.host, "web")
        .unwrap()
        .instances
        .iter()
        .map(|(i, _)| i.name())
        .collect();
    assert_eq!(names, ["r0", "r1", "r2"]);
}

/// Unanimous: a new instance on probation would leave the group without a quorum for good (it
/// can never be promoted), so replace (and with it patch and auto-repair) refuses before xl runs.
#[test]
fn a_unanimous_group_gets_no_new_instance() {
    let w = World::new();
    let spec = SPEC.replacen("policy: majority", "policy: unanimous", 1);
    w.run("up-fresh.xl", |ctx| group::up(ctx, &spec)).unwrap();
    for state in [StateFrom::Spec, StateFrom::CloneOf("r2".into())] {
        let e = w
            .run_text("", |ctx| {
                group::replace(ctx, "web", "r1", None, &state, Mode::Repair, Duration::ZERO)
            })
            .unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("voted unanimously") && msg.contains("nvctl down web"),
            "{msg}"
        );
    }
    assert_eq!(w.config_names(), ["r0", "r1", "r2"]);
}
