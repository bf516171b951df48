//! Test doubles shared by the lifecycle tests: [`Replay`], an `xl` that replays a recorded
//! transcript and fails on any command it does not expect, and [`FakeNv`], a stand-in for
//! domain-nv that reacts to its config in xenstore by publishing a status (nv-schema status schema).

use anyhow::Result;
use nv_schema::config::Config;
use nv_schema::status::{
    FaultRecord, LinkState, ReplicaHealth, ReplicaStatus, ServiceStatus, Status, SCHEMA_VERSION,
    XS_BASE,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use toolstack_plugin::store::{read_blob, Store};
use toolstack_plugin::xl::{XlOutput, XlRunner};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One recorded `xl` invocation and what it printed.
#[derive(Debug, Clone)]
struct Step {
    /// Line of the `$` in the transcript file.
    line: usize,
    /// `xl ARGS...`, with the state directory written as `{dir}`.
    command: String,
    out: XlOutput,
}

/// Called after each replayed command with its arguments (state directory not substituted).
pub type Hook = Box<dyn Fn(&[&str]) + Send + Sync>;

/// An `xl` replaying a transcript. Format, one item per line:
/// `$ xl ARGS` a command (`{dir}` stands for the state directory); then its output:
/// `> text` a stdout line, `! text` a stderr line, `? N` its exit code (default 0);
/// `#` comments and blank lines are ignored.
pub struct Replay {
    name: String,
    steps: Vec<Step>,
    next: Mutex<usize>,
    dir: String,
    hook: Hook,
}

impl Replay {
    /// Parse transcript `text` (called `name` in messages).
    pub fn new(name: &str, text: &str, dir: &str, hook: Hook) -> Replay {
        let mut steps: Vec<Step> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let l = raw.trim_end();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (tag, rest) = l.split_at(1);
            let rest = rest.strip_prefix(' ').unwrap_or(rest);
            if tag == "$" {
                steps.push(Step {
                    line: i + 1,
                    command: rest.to_string(),
                    out: XlOutput {
                        code: 0,
                        stdout: String::new(),
                        stderr: String::new(),
                    },
                });
                continue;
            }
            let s = steps
                .last_mut()
                .unwrap_or_else(|| panic!("{name}:{}: output before the first command", i + 1));
            match tag {
                ">" => s.out.stdout.push_str(&format!("{rest}\n")),
                "!" => s.out.stderr.push_str(&format!("{rest}\n")),
                "?" => {
                    s.out.code = rest
                        .parse()
                        .unwrap_or_else(|_| panic!("{name}:{}: bad exit code", i + 1))
                }
                _ => panic!("{name}:{}: unknown line {l:?}", i + 1),
            }
        }
        Replay {
            name: name.to_string(),
            steps,
            next: Mutex::new(0),
            dir: dir.to_string(),
            hook,
        }
    }

    /// Load `tests/transcripts/<name>`.
    pub fn load(name: &str, dir: &str, hook: Hook) -> Replay {
        let path = format!("{}/tests/transcripts/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        Replay::new(name, &text, dir, hook)
    }

    /// Panic unless every recorded command was run.
    pub fn assert_done(&self) {
        let n = *lock(&self.next);
        if let Some(s) = self.steps.get(n) {
            panic!(
                "{}:{}: nvctl never ran `{}` ({} of {} commands replayed)",
                self.name,
                s.line,
                s.command,
                n,
                self.steps.len()
            );
        }
    }
}

impl XlRunner for Replay {
    fn run(&self, args: &[&str]) -> Result<XlOutput> {
        let got = format!("xl {}", args.join(" ")).replace(&self.dir, "{dir}");
        let step = {
            let mut n = lock(&self.next);
            let Some(s) = self.steps.get(*n) else {
                panic!(
                    "{}: unexpected `{got}` after the end of the transcript",
                    self.name
                )
            };
            assert_eq!(
                got, s.command,
                "{}:{}: nvctl ran `{got}`, the transcript expects `{}`",
                self.name, s.line, s.command
            );
            *n += 1;
            s.clone()
        };
        if let ("create", Some(cfg)) = (args[0], args.last()) {
            assert!(
                std::path::Path::new(cfg).is_file(),
                "xl create of a missing file {cfg}"
            );
        }
        (self.hook)(args);
        Ok(step.out)
    }
}

/// What the fake domain-nv knows and does.
#[derive(Default)]
pub struct NvState {
    /// Report `ready` once a config was read (false: never ready).
    pub never_ready: bool,
    /// Its xenstore home, once a config was written there.
    pub home: Option<String>,
    /// Every config read, in order.
    pub configs: Vec<String>,
    /// Replica names of the last config.
    pub replicas: Vec<String>,
    /// Instances whose domain exists (from `xl create` / `xl destroy`).
    pub booted: BTreeSet<String>,
    /// Instances that never become live.
    pub stuck: BTreeSet<String>,
    /// Instances that serve on probation (`joining`) instead of live.
    pub joining: BTreeSet<String>,
    /// Instances reported faulty, with their faults.
    pub faulty: BTreeMap<String, Vec<FaultRecord>>,
    /// Instances to report faulty (with one fault) as soon as they boot.
    pub faulty_on_boot: BTreeSet<String>,
    /// Drain requests read from its control node.
    pub drain_requests: usize,
    /// Stays `draining` for ever once asked to drain (else it is drained at once: not ready).
    pub drains_for_ever: bool,
    /// Asked to drain: it reports `draining`, or no longer `ready` once drained.
    pub draining: bool,
    /// Once drained, powers its domain off, which then disappears with its xenstore home (as
    /// with `on_poweroff = "destroy"`).
    pub powers_off: bool,
}

/// A stand-in for domain-nv: reads its config with its own xenstore connection and publishes
/// its status with it. A replica is `live` once in the config and booted, `faulty` if told so.
pub struct FakeNv {
    store: Arc<dyn Store + Send + Sync>,
    /// Its state; tests change it, then call [`FakeNv::publish`].
    pub state: Mutex<NvState>,
}

/// A fault record for tests.
pub fn fault(time_ms: u64, kind: &str) -> FaultRecord {
    FaultRecord {
        time_ms,
        kind: kind.into(),
        service: "redis".into(),
        connection: 3,
        detail: "offset 120".into(),
    }
}

impl FakeNv {
    /// domain-nv talking to xenstore through `store`.
    pub fn new(store: Arc<dyn Store + Send + Sync>) -> Arc<FakeNv> {
        Arc::new(FakeNv {
            store,
            state: Mutex::new(NvState::default()),
        })
    }

    /// Lock the state.
    pub fn st(&self) -> MutexGuard<'_, NvState> {
        lock(&self.state)
    }

    /// React to a write of its config node `path`.
    pub fn config_written(&self, path: &str) {
        let Some(home) = path.strip_suffix("/data/domain-nv-config") else {
            return;
        };
        let Ok(Some(text)) = read_blob(&*self.store, path) else {
            return;
        }; // chunks still coming
        let cfg = Config::from_yaml(&text)
            .unwrap_or_else(|e| panic!("domain-nv cannot parse its config: {e}\n{text}"));
        {
            let mut st = self.st();
            st.home = Some(home.to_string());
            st.configs.push(text);
            st.replicas = cfg.replicas.into_iter().map(|r| r.name).collect();
        }
        self.publish();
    }

    /// React to a write of `value` to its control node `path`: `drain` drains it (at once, or
    /// never if told so).
    pub fn control_written(&self, path: &str, value: &str) {
        if !path.ends_with("/data/domain-nv-control") || value != "drain" {
            return;
        }
        let powers_off = {
            let mut st = self.st();
            st.drain_requests += 1;
            st.draining = true;
            st.powers_off && !st.drains_for_ever
        };
        match path.strip_suffix("/data/domain-nv-control") {
            Some(home) if powers_off => {
                self.st().home = None;
                self.store.rm(home).unwrap();
            }
            _ => self.publish(),
        }
    }

    /// The domain of instance `inst` was created.
    pub fn boot(&self, inst: &str) {
        {
            let mut st = self.st();
            st.booted.insert(inst.to_string());
            if st.faulty_on_boot.contains(inst) {
                st.faulty.insert(
                    inst.to_string(),
                    vec![fault(1_790_000_000_500, "value-mismatch")],
                );
            }
        }
        self.publish();
    }

    /// The domain of instance `inst` was destroyed.
    pub fn shutdown(&self, inst: &str) {
        self.st().booted.remove(inst);
        self.publish();
    }

    /// The status it would publish now.
    pub fn status(&self) -> Status {
        let st = self.st();
        let replicas = st
            .replicas
            .iter()
            .map(|n| {
                let booted = st.booted.contains(n);
                let faults = st.faulty.get(n).cloned().unwrap_or_default();
                let state = match () {
                    _ if !faults.is_empty() => ReplicaHealth::Faulty,
                    _ if booted && st.joining.contains(n) => ReplicaHealth::Joining,
                    _ if booted && !st.stuck.contains(n) => ReplicaHealth::Live,
                    _ if booted => ReplicaHealth::Starting,
                    _ => ReplicaHealth::Down,
                };
                let up = booted && state != ReplicaHealth::Down;
                ReplicaStatus {
                    name: n.clone(),
                    state,
                    link: if up { LinkState::Up } else { LinkState::Down },
                    connections: u64::from(up) * 2,
                    bytes_voted: if up { 4096 + n.len() as u64 } else { 0 },
                    faults,
                    overloaded: 0,
                }
            })
            .collect();
        Status {
            version: SCHEMA_VERSION,
            ready: !st.never_ready && !st.draining,
            draining: st.draining && st.drains_for_ever,
            updated_ms: 1_790_000_000_000,
            services: vec![ServiceStatus {
                name: "redis".into(),
                listen: "192.0.2.10:6379".into(),
                active: 2,
                total: 17,
                no_quorum: 0,
                refused_limit: 0,
                timed_out: 0,
                refused_memory: 0,
                masked: 0,
                datagrams: None,
            }],
            replicas,
            vifs: Vec::new(),
            links: Vec::new(),
        }
    }

    /// Write the current status to xenstore (replacing the previous one). domain-nv does this in
    /// one transaction; `Store` has none, so the `version` key, which a reader looks at first
    /// and without which it sees no status, goes last: no reader sees half a status.
    pub fn publish(&self) {
        let Some(home) = self.st().home.clone() else {
            return;
        };
        self.store.rm(&format!("{home}/{XS_BASE}")).unwrap();
        let version = format!("{XS_BASE}/version");
        let (last, rest): (Vec<_>, Vec<_>) = self
            .status()
            .to_xenstore()
            .into_iter()
            .partition(|(k, _)| *k == version);
        for (k, v) in rest.into_iter().chain(last) {
            self.store.write(&format!("{home}/{k}"), &v).unwrap();
        }
    }

    /// An xl hook that tells this fake about created (or restored) and destroyed replica
    /// domains of `group`, and writes the file of an `xl save -c`.
    pub fn hook(self: &Arc<Self>, group: &str) -> Hook {
        let me = Arc::clone(self);
        let prefix = format!("{group}-");
        Box::new(move |args: &[&str]| {
            // `xl save -c` writes its checkpoint file, as xl does
            if let ["save", "-c", _, file] = args {
                std::fs::write(file, b"checkpoint").unwrap();
            }
            let domain = match args {
                ["create", file] | ["restore", file, _] => std::path::Path::new(file)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned()),
                ["destroy", d] => Some(d.to_string()),
                _ => None,
            };
            if let Some(inst) = domain.as_deref().and_then(|d| d.strip_prefix(&prefix)) {
                if args[0] != "destroy" {
                    me.boot(inst)
                } else {
                    me.shutdown(inst)
                }
            }
        })
    }
}

/// Dom0's xenstore as nvctl sees it, with domain-nv's reaction to config writes.
pub struct Host {
    /// Dom0's connection.
    pub dom0: Arc<dyn Store + Send + Sync>,
    /// The fake domain-nv.
    pub nv: Arc<FakeNv>,
}

impl Store for Host {
    fn read(&self, path: &str) -> Result<Option<String>> {
        self.dom0.read(path)
    }
    fn write(&self, path: &str, value: &str) -> Result<()> {
        self.dom0.write(path, value)?;
        self.nv.config_written(path);
        self.nv.control_written(path, value);
        Ok(())
    }
    fn directory(&self, path: &str) -> Result<Vec<String>> {
        self.dom0.directory(path)
    }
    fn rm(&self, path: &str) -> Result<()> {
        self.dom0.rm(path)
    }
    fn watch(&self, path: &str, timeout: Duration) -> Result<bool> {
        self.dom0.watch(path, timeout)
    }
}

/// The UUID the transcripts give the domain with id `id` (Domain-0's is all zero).
pub fn uuid_of(id: u32) -> String {
    if id == 0 {
        "00000000-0000-0000-0000-000000000000".into()
    } else {
        format!("5e1f0000-0000-4000-8000-{id:012}")
    }
}

/// A transcript step `xl list -v` showing Domain-0 and the domains `rows` (name, id), each with
/// the UUID [`uuid_of`] its id.
pub fn list_v(rows: &[(&str, u32)]) -> String {
    let mut t = "$ xl list -v\n> Name                                        ID   Mem VCPUs\tState\tTime(s)   UUID                            Reason-Code\tSecurity Label\n".to_string();
    for (name, id) in [("Domain-0", 0)].iter().chain(rows) {
        t.push_str(&format!(
            "> {name:<40} {id:>5}   256     1     -b----       1.0 {}        -                -\n",
            uuid_of(*id)
        ));
    }
    t
}
