//! The nvctl binary end to end on the simulated xenstored of the `xen` crate: a shell-script
//! `xl` keeping a domain table in a file, and a fake domain-nv (a thread with the NV domain's
//! own xenstore connection) that reads its config and publishes its status.

use nv_schema::config::Config;
use nv_schema::status::{LinkState, ReplicaHealth, ReplicaStatus, Status, SCHEMA_VERSION, XS_BASE};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use toolstack_plugin::store::{read_blob, Store};
use xen::sim::SimHost;

/// A fake `xl`: domains are lines "<name> <id>" in `<state>/domains`, ids count up from 1; the
/// UUID of domain `id` is `5e1f0000-0000-4000-8000-<id, 12 digits>`.
const FAKE_XL: &str = r#"#!/bin/sh
state="@STATE@"
touch "$state/domains"
if [ -e "$state/fail" ]; then echo "libxl: error: injected failure" >&2; exit 1; fi
case "$1" in
list)
  [ "$2" = -v ] || { echo "fake xl: nvctl runs xl list -v" >&2; exit 1; }
  printf 'Name                                        ID   Mem VCPUs\tState\tTime(s)   UUID                            Reason-Code\tSecurity Label\n'
  printf 'Domain-0                                     0  4096     2     r-----      10.0 00000000-0000-0000-0000-000000000000        -                -\n'
  while read -r n id; do printf '%-40s %5s   256     1     -b----       0.1 5e1f0000-0000-4000-8000-%012d        -                -\n' "$n" "$id" "$id"; done < "$state/domains"
  ;;
create)
  if [ "$2" = -n ]; then
    echo "Parsing config from $3" >&2
    grep -q '^name = ' "$3" || { echo "fake xl: no name in $3" >&2; exit 1; }
    exit 0
  fi
  name=$(sed -n 's/^name = "\(.*\)"$/\1/p' "$2")
  echo "Parsing config from $2" >&2
  if grep -q "^$name " "$state/domains"; then echo "libxl: error: domain $name already exists" >&2; exit 1; fi
  id=$(cat "$state/next" 2>/dev/null || echo 1)
  echo $((id + 1)) > "$state/next"
  echo "$name $id" >> "$state/domains"
  ;;
domid)
  id=$(awk -v n="$2" '$1 == n { print $2 }' "$state/domains")
  if [ -z "$id" ]; then echo "Can't get domid of domain name '$2', maybe this domain does not exist." >&2; exit 1; fi
  echo "$id"
  ;;
destroy)
  if ! grep -q "^$2 " "$state/domains"; then echo "Can't get domid of domain name '$2', maybe this domain does not exist." >&2; exit 1; fi
  grep -v "^$2 " "$state/domains" > "$state/domains.new"; mv "$state/domains.new" "$state/domains"
  ;;
*) echo "fake xl: unsupported: $*" >&2; exit 1 ;;
esac
"#;

fn domains(state: &Path) -> Vec<String> {
    std::fs::read_to_string(state.join("domains"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect()
}

/// domain-nv for domain `nv`: publish a status for the replicas of its config; a replica is
/// live when its domain exists in the fake xl's table.
fn fake_domain_nv(xs: &xen::xenstore::Xenstore, nv: u16, state: &Path, stop: &AtomicBool) {
    let home = format!("/local/domain/{nv}");
    let cfg_path = format!("{home}/data/domain-nv-config");
    let mut last = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        if let Ok(Some(text)) = read_blob(xs, &cfg_path) {
            let cfg = Config::from_yaml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            let running = domains(state);
            let replicas: Vec<ReplicaStatus> = cfg
                .replicas
                .into_iter()
                .map(|r| {
                    let name = r.name;
                    let up = running.contains(&format!("web-{name}"));
                    ReplicaStatus {
                        state: if up {
                            ReplicaHealth::Live
                        } else {
                            ReplicaHealth::Starting
                        },
                        link: if up { LinkState::Up } else { LinkState::Down },
                        connections: 0,
                        bytes_voted: 0,
                        faults: vec![],
                        overloaded: 0,
                        name,
                    }
                })
                .collect();
            // `nvctl down` asks for a drain; with no connections open it is over at once
            let drained = matches!(
                xs.try_read(&format!("{home}/data/domain-nv-control")),
                Ok(Some(v)) if v == b"drain"
            );
            let st = Status {
                version: SCHEMA_VERSION,
                ready: !drained,
                draining: false,
                updated_ms: 1,
                services: vec![],
                replicas,
                vifs: Vec::new(),
                links: Vec::new(),
            };
            if last.as_ref() != Some(&st) {
                // In one transaction, as domain-nv publishes (`xenhost::publish_status`).
                let pairs = st.to_xenstore();
                xs.transaction(|t| {
                    if t.try_read(&format!("{home}/{XS_BASE}"))?.is_some() {
                        t.rm(&format!("{home}/{XS_BASE}"))?;
                    }
                    for (k, v) in &pairs {
                        t.write(&format!("{home}/{k}"), v)?;
                    }
                    Ok(())
                })
                .unwrap();
                last = Some(st);
            }
        }
        Store::watch(xs, &cfg_path, Duration::from_millis(20)).unwrap();
    }
}

struct Env {
    dir: PathBuf,
    /// Dom0's tree for nvctl's checks (`--dom0-root`): the spec's files and the bridge.
    root: PathBuf,
    xl: String,
    socket: String,
}

impl Env {
    fn nvctl(&self, args: &[&str]) -> Output {
        let state = self.dir.join("nvctl").to_string_lossy().into_owned();
        let root = self.root.to_string_lossy().into_owned();
        let mut all = vec![
            "--xl",
            &self.xl,
            "--xenstore",
            &self.socket,
            "--state-dir",
            &state,
            "--dom0-root",
            &root,
            "--timeout",
            "20",
        ];
        all.extend_from_slice(args);
        Command::new(env!("CARGO_BIN_EXE_nvctl"))
            .args(&all)
            .output()
            .unwrap()
    }
}

impl Env {
    /// Create the (empty) file at the absolute `path` in Dom0's tree.
    fn dom0_file(&self, path: &str) {
        let p = self.root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "").unwrap();
    }

    /// Start nvctl in the background, its stderr going to `log`.
    fn spawn_nvctl(&self, args: &[&str], log: &Path) -> std::process::Child {
        let state = self.dir.join("nvctl").to_string_lossy().into_owned();
        Command::new(env!("CARGO_BIN_EXE_nvctl"))
            .args(["--xl", &self.xl, "--xenstore", &self.socket])
            .args(["--state-dir", &state, "--timeout", "20"])
            .arg("--dom0-root")
            .arg(&self.root)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap()
    }
}

fn ok(out: &Output) -> String {
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "stdout:\n{o}\nstderr:\n{e}");
    format!("{o}{e}")
}

/// Run `test` with a fresh environment: the simulated xenstored, the fake `xl` (its state
/// directory is the second argument) and a fake domain-nv, and the example spec's path.
fn with_env(name: &str, test: impl Fn(&Env, &Path, &str)) {
    let dir = std::env::temp_dir().join(format!("nvctl-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let state = dir.join("xl");
    std::fs::create_dir_all(&state).unwrap();
    let xl = dir.join("xl.sh");
    std::fs::write(&xl, FAKE_XL.replace("@STATE@", &state.to_string_lossy())).unwrap();
    std::fs::set_permissions(&xl, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let host = SimHost::new().unwrap();
    let nv = host.nv;
    assert_eq!(nv, 1, "the fake xl gives the first domain id 1");
    let guest = host.nv_xenstore().unwrap();
    let env = Env {
        root: dir.join("dom0"),
        dir: dir.clone(),
        xl: xl.to_string_lossy().into_owned(),
        socket: host.sim.xenstore_socket(0).to_string_lossy().into_owned(),
    };
    let spec = format!(
        "{}/../xl-configs/example-group.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    // the files the spec names and its bridge exist in Dom0's tree
    for l in std::fs::read_to_string(&spec).unwrap().lines() {
        let l = l.trim_start_matches([' ', '-']);
        for key in ["kernel: ", "initramfs: ", "image: "] {
            if let Some(p) = l.strip_prefix(key) {
                env.dom0_file(p.split_whitespace().next().unwrap());
            }
        }
    }
    std::fs::create_dir_all(env.root.join("sys/class/net/xenbr0")).unwrap();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| fake_domain_nv(&guest, nv, &state, &stop));
        let run = || test(&env, &state, &spec);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run));
        stop.store(true, Ordering::SeqCst);
        if let Err(p) = result {
            std::panic::resume_unwind(p);
        }
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn up_status_replace_down_through_the_binary() {
    with_env("lifecycle", |env, state, spec| {
        let plan = ok(&env.nvctl(&["up", "--dry-run", spec]));
        assert!(
            plan.contains("+ web-nv: NV domain") && plan.contains("+ web-r2: replica r2"),
            "{plan}"
        );
        assert!(domains(state).is_empty(), "a dry run creates nothing");
        let other_bridge = env.dir.join("xenbr9.yaml");
        let text = std::fs::read_to_string(spec).unwrap();
        std::fs::write(
            &other_bridge,
            text.replace("bridge: xenbr0", "bridge: xenbr9"),
        )
        .unwrap();
        let out = env.nvctl(&["up", &other_bridge.to_string_lossy()]);
        assert_eq!(out.status.code(), Some(3), "a bridge Dom0 lacks");
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("nv-domain.external.bridge: no bridge xenbr9 in Dom0"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(domains(state).is_empty(), "nothing created");
        let out = ok(&env.nvctl(&["up", spec]));
        assert!(
            out.contains("NV domain web-nv: created (id 1)")
                && out.contains("group web: up, 3 replicas live"),
            "{out}"
        );
        assert_eq!(domains(state), ["web-nv", "web-r0", "web-r1", "web-r2"]);
        let again = ok(&env.nvctl(&["up", spec]));
        assert!(
            again.contains("[3/3] replica web-r2: already running (id 4)"),
            "{again}"
        );
        // drift: a spec pinning r1 to CPUs it was not created with needs a replace
        let pinned = env.dir.join("pinned.yaml");
        let text = std::fs::read_to_string(spec).unwrap();
        let text = text.replacen("    memory: 384\n", "    memory: 384\n    cpus: 2-3\n", 1);
        std::fs::write(&pinned, text).unwrap();
        let pinned = pinned.to_string_lossy().into_owned();
        let diff = ok(&env.nvctl(&["diff", "web", &pinned]));
        assert!(
            diff.contains("! web-r1: cpus: (unset) -> \"2-3\""),
            "{diff}"
        );
        assert!(diff.contains("nvctl replace web r1"), "{diff}");
        assert_eq!(env.nvctl(&["diff", "db", &pinned]).status.code(), Some(3));
        let json = ok(&env.nvctl(&["--json", "diff", "web", &pinned]));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["command"], "diff", "{json}");
        assert!(
            v["plan"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["action"] == "replace" && s["target"] == "web-r1"),
            "{json}"
        );
        let table = ok(&env.nvctl(&["status"]));
        assert!(
            table.contains("Group web   NV domain web-nv (id 1 -b----, ready)"),
            "{table}"
        );
        assert_eq!(
            table.lines().filter(|l| l.contains(" live ")).count(),
            3,
            "{table}"
        );
        let json = ok(&env.nvctl(&["status", "web", "--json"]));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            v[0]["status"]["replicas"][2]["state"].as_str(),
            Some("live"),
            "{json}"
        );
        // `watch` holds the group lock only during a pass: `replace` runs while it watches
        // (retried should it start just as a pass holds the lock)
        let watch_log = env.dir.join("watch.log");
        let mut watch = env.spawn_nvctl(&["watch", "web", "--interval", "0.2"], &watch_log);
        std::thread::sleep(Duration::from_millis(500));
        let mut out = env.nvctl(&["replace", "web", "r1"]);
        for _ in 0..20 {
            if !String::from_utf8_lossy(&out.stderr).contains("another nvctl is working") {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            out = env.nvctl(&["replace", "web", "r1"]);
        }
        let _ = watch.kill();
        let _ = watch.wait();
        let log = std::fs::read_to_string(&watch_log).unwrap();
        assert!(!log.contains("failed"), "{log}");
        let out = ok(&out);
        assert!(out.contains("r1: now served by web-r1-g1"), "{out}");
        assert_eq!(domains(state), ["web-nv", "web-r0", "web-r2", "web-r1-g1"]);
        let out = ok(&env.nvctl(&["down", "--dry-run", "web"]));
        assert!(out.contains("- web-nv: drain first"), "{out}");
        assert_eq!(
            out.lines().filter(|l| l.starts_with("- ")).count(),
            4,
            "{out}"
        );
        let v = result(&env.nvctl(&["--json", "down", "--dry-run", "web"]), 0);
        assert_eq!(v["plan"].as_array().map(Vec::len), Some(4), "{v}");
        assert_eq!(domains(state), ["web-nv", "web-r0", "web-r2", "web-r1-g1"]);
        let out = env.nvctl(&["down", "web"]);
        let progress = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(progress.contains("web-nv: drained"), "{progress}");
        let out = ok(&out);
        assert!(
            out.contains("group web: down (4 domains destroyed)"),
            "{out}"
        );
        assert!(domains(state).is_empty());
        // each kind of failure has its own exit status
        let code = |args: &[&str]| env.nvctl(args).status.code();
        assert_eq!(code(&["status", "web"]), Some(6), "no such group");
        assert_eq!(
            code(&["replace", "web", "r0", "--image", "relative.img"]),
            Some(3),
            "invalid --image"
        );
        std::fs::write(state.join("fail"), "").unwrap();
        assert_eq!(code(&["status"]), Some(0), "no groups, no xl needed");
        let out = env.nvctl(&["up", spec]);
        assert_eq!(out.status.code(), Some(4), "xl failed");
        assert!(String::from_utf8_lossy(&out.stderr).contains("injected failure"));
        std::fs::remove_file(state.join("fail")).unwrap();
        // down is idempotent: the group is gone already
        let out = env.nvctl(&["down", "web"]);
        assert_eq!(out.status.code(), Some(0));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("group web: not found, nothing to do")
        );
    });
}

/// The result object `--json` prints on stdout (the command's exit status is checked too).
fn result(out: &Output, status: i32) -> serde_json::Value {
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(
        out.status.code(),
        Some(status),
        "stdout:\n{o}\nstderr:\n{e}"
    );
    serde_json::from_str(&o).unwrap_or_else(|err| panic!("{err}: not JSON:\n{o}"))
}

#[test]
fn json_results_and_quiet_runs_for_automation() {
    with_env("automation", |env, state, spec| {
        let v = result(&env.nvctl(&["--json", "up", spec]), 0);
        assert_eq!(
            (&v["command"], &v["ok"], &v["group"]),
            (&"up".into(), &true.into(), &"web".into())
        );
        assert_eq!(
            v["created"],
            serde_json::json!(["web-nv", "web-r0", "web-r1", "web-r2"])
        );
        assert_eq!(
            (&v["destroyed"], &v["error"]),
            (&serde_json::json!([]), &serde_json::Value::Null)
        );
        // -q: nothing at all on success, on stdout or stderr
        let out = env.nvctl(&["-q", "up", spec]);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(
            (out.stdout.as_slice(), out.stderr.as_slice()),
            (&b""[..], &b""[..])
        );
        let v = result(&env.nvctl(&["replace", "web", "r1", "--json"]), 0);
        assert_eq!(
            v["replaced"],
            serde_json::json!({"replica": "r1", "by": "web-r1-g1"})
        );
        assert_eq!(
            (&v["created"], &v["destroyed"]),
            (
                &serde_json::json!(["web-r1-g1"]),
                &serde_json::json!(["web-r1"])
            )
        );
        let image = state.join("web-1.2.img");
        let image = image.to_string_lossy();
        // a new image that is not in Dom0: invalid, and nothing booted
        let v = result(
            &env.nvctl(&["--json", "-q", "patch", "web", "--image", &image]),
            3,
        );
        assert_eq!(v["error"]["kind"], "invalid", "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("--image: no file {image} in Dom0")),
            "{v}"
        );
        assert_eq!(v["created"], serde_json::json!([]), "{v}");
        env.dom0_file(&image);
        let v = result(
            &env.nvctl(&[
                "--json", "-q", "patch", "web", "--image", &image, "--soak", "0",
            ]),
            0,
        );
        assert_eq!(
            (&v["command"], &v["group"], &v["image"]),
            (&"patch".into(), &"web".into(), &image.as_ref().into())
        );
        assert_eq!(v["created"].as_array().map(Vec::len), Some(3), "{v}");
        assert_eq!(
            v["destroyed"],
            serde_json::json!(["web-r0", "web-r1-g1", "web-r2"])
        );
        // errors: the kind and the exit status, which stays that of the failure
        let v = result(&env.nvctl(&["--json", "replace", "web", "r9"]), 6);
        assert_eq!(
            (&v["ok"], &v["error"]["kind"], &v["error"]["exit_status"]),
            (&false.into(), &"not_found".into(), &6.into())
        );
        assert!(
            v["error"]["message"].as_str().unwrap().contains("r9"),
            "{v}"
        );
        std::fs::write(state.join("fail"), "").unwrap();
        let out = env.nvctl(&["--json", "down", "web"]);
        let v = result(&out, 4);
        assert_eq!(v["error"]["kind"], "xl");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("injected failure"),
            "errors still on stderr"
        );
        std::fs::remove_file(state.join("fail")).unwrap();
        let v = result(&env.nvctl(&["--json", "-q", "down", "web"]), 0);
        assert_eq!(v["destroyed"].as_array().map(Vec::len), Some(4), "{v}");
        assert!(domains(state).is_empty());
        let v = result(&env.nvctl(&["--json", "down", "web"]), 0);
        assert_eq!(
            (&v["ok"], &v["destroyed"]),
            (&true.into(), &serde_json::json!([]))
        );
        let v = result(&env.nvctl(&["--json", "status", "web"]), 6);
        assert_eq!(
            (&v["command"], &v["error"]["kind"]),
            (&"status".into(), &"not_found".into())
        );
    });
}
