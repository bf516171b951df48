//! nvctl: the Dom0 admin CLI for domain-nv replica groups.
//!
//! Exit statuses: 0 success, 1 error (of no other kind), 2 usage error, 3 invalid spec or command-line value,
//! 4 xl failed, 5 a wait timed out, 6 no such group, replica or NV domain
//! ([`toolstack_plugin::failure`]).

#![forbid(unsafe_code)]

use anyhow::{bail, Context, Result};
use clap::{Args, CommandFactory, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toolstack_plugin::dom0::HostDom0;
use toolstack_plugin::failure::Failure;
use toolstack_plugin::group::{self, Ctx, Mode, StateFrom};
use toolstack_plugin::outcome::{Outcome, RecordingXl, Replaced};
use toolstack_plugin::printable::printable_lines;
use toolstack_plugin::reliability::{self, Component, Reliability};
use toolstack_plugin::render;
use toolstack_plugin::spec::{valid_name, GroupSpec};
use toolstack_plugin::xl::RealXl;
use xen::xenstore::Xenstore;

const EXAMPLES: &str = "\
Examples:
  nvctl render /etc/nvctl/web.yaml -o /tmp/web      # look at the xl and domain-nv configs
  nvctl up /etc/nvctl/web.yaml                      # create (or finish creating) the group
  nvctl status web                                  # per-replica state, links, bytes voted, faults
  nvctl replace web r1                              # fresh instance of r1, then retire the old one
  nvctl patch web --image /srv/img/web-1.2.img      # rolling patch, one replica at a time
  nvctl down web
  nvctl reliability --r-vm 0.9 --r-hv 0.99 -n 3     # replicas vs plain node, one VM, in-VM voting
  nvctl --json -q up /etc/nvctl/web.yaml            # for scripts: one JSON result object, no progress

Exit status: 0 success, 1 error (of no kind below), 2 usage error,
  3 invalid spec or command-line value (errors name the field, and the line in the spec),
  4 xl failed (its stderr is shown), 5 a wait timed out (--timeout),
  6 no such group, replica or NV domain.";

/// nvctl manages domain-nv replica groups on a Xen host: one NV (network/voting) driver domain
/// that votes on the outputs of N replica guests of a service.
#[derive(Parser)]
#[command(name = "nvctl", version, about, long_about = None, after_help = EXAMPLES, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Global {
    /// The xl binary.
    #[arg(long, global = true, default_value = "xl", value_name = "PROGRAM")]
    xl: String,
    /// xenstored's unix socket (default: /run/xenstored/socket if present, else /dev/xen/xenbus).
    #[arg(long, global = true, value_name = "PATH")]
    xenstore: Option<PathBuf>,
    /// Where nvctl keeps the xl configs it creates domains from (`DIR/<group>/<domain>.cfg`),
    /// the record of the domains it created (`DIR/<group>/domains`, by UUID) and its per-group
    /// lock files.
    #[arg(
        long,
        global = true,
        default_value = "/var/lib/nvctl",
        value_name = "DIR"
    )]
    state_dir: PathBuf,
    /// Where the files, bridge and PCI devices a config names are looked up before anything is
    /// created: `DIR/<path>`, `DIR/sys/class/net/<bridge>`, `DIR/sys/bus/pci/devices/<bdf>`
    /// (for running nvctl on a copy of Dom0's tree; the paths in configs stay as in the spec).
    #[arg(long, global = true, default_value = "/", value_name = "DIR")]
    dom0_root: PathBuf,
    /// Bound of every wait (NV domain ready, replica live, NV domain drained), seconds.
    #[arg(long, global = true, default_value_t = 120.0, value_name = "SECONDS", value_parser = positive_secs)]
    timeout: f64,
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Quiet: no progress lines and no summary of what was done (errors still go to stderr;
    /// `status` and `reliability` still print their report).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Print the result as JSON on stdout: `status` its groups, `reliability` its report, every
    /// other command one result object (`command`, `ok`, `group`, `created`, `destroyed`,
    /// `error` = {`kind`, `exit_status`, `message`} or null), also when it fails.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Write the xl configs and the domain-nv config of a group spec into a directory.
    #[command(
        after_help = "Writes <nv-domain>.cfg, <group>-<replica>.cfg for every replica and domain-nv.yaml.\n\n\
Example:\n  nvctl render xl-configs/example-group.yaml -o /tmp/web && xl create -n /tmp/web/web-nv.cfg"
    )]
    Render {
        /// The group spec (YAML).
        spec: PathBuf,
        /// Output directory (created if missing).
        #[arg(short, long, default_value = ".", value_name = "DIR")]
        output: PathBuf,
    },
    /// Create a group, or finish or converge a half-created one (idempotent).
    #[command(after_help = "Creates the NV domain, writes the domain-nv config to\n\
/local/domain/<nv-domid>/data/domain-nv-config, waits for the NV domain to report ready, creates\n\
the replicas and waits until domain-nv reports every replica live. Running it again converges:\n\
existing domains are kept, missing ones are created, leftovers of an interrupted replace removed.\n\
Every config first passes `xl create -n`; only domains nvctl created (recorded by UUID in\n\
--state-dir) are kept or destroyed: a domain of one of the group's names that nvctl did not\n\
create, or a group name that collides with another group's, stops it before any change.\n\
The domain-nv config is handed over on every run, so its settings (service.*, the external\n\
address) converge live. Settings of a running domain that differ from the spec (its xl config,\n\
or the memory and vcpus `xl list` reports) cannot change live: up lists them at the end, each\n\
with the `nvctl replace` (or, for the NV domain, `down` and `up`) that applies it, and still\n\
exits 0. `--dry-run` prints the plan (as `nvctl diff`) and changes nothing.\n\n\
Examples:\n  nvctl up /etc/nvctl/web.yaml\n  nvctl up --dry-run /etc/nvctl/web.yaml")]
    Up {
        /// The group spec (YAML).
        spec: PathBuf,
        /// Print what up would create, change or destroy, and the drift it would leave to
        /// `replace`; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show what `up` would create, change or destroy, and how the running group drifts from a spec.
    #[command(
        after_help = "One line per step: `+` create a domain, `-` destroy one (or forget its record),\n\
`~` hand domain-nv a changed config (live), `!` drift up cannot change live, with the command\n\
that applies it. Drift is the xl config a running domain was created from against the one the\n\
spec renders, key by key, and the memory and vcpus `xl list -v` reports against the spec's.\n\
Changes nothing; exit status 0 whether or not there are differences.\n\n\
Example:\n  nvctl diff web /etc/nvctl/web.yaml"
    )]
    Diff {
        /// Group name (must be the spec's `group`).
        group: String,
        /// The group spec (YAML).
        spec: PathBuf,
    },
    /// Drain a group's NV domain, destroy its replicas and NV domain and forget the group.
    #[command(after_help = "First asks the NV domain to drain (writes `drain` to\n\
/local/domain/<nv-domid>/data/domain-nv-control): domain-nv stops accepting, lets open client\n\
connections finish for up to its drain_timeout_ms and powers off, as on SIGTERM. down waits for\n\
that up to --timeout; past it, it says so and goes on. Then it destroys exactly the domains\n\
nvctl recorded (by UUID) as created for the group and that still run, so also a half-created\n\
group and an NV domain renamed in the spec since. A group nvctl knows nothing of is already\n\
down: that is reported, exit status 0. `--dry-run` prints what down would do and changes nothing.\n\n\
Examples:\n  nvctl down web\n  nvctl down --dry-run web")]
    Down {
        /// Group name.
        group: String,
        /// Print what down would drain and destroy; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show per-replica domain state, link state, connections, bytes voted and faults.
    #[command(
        after_help = "Domain state comes from `xl list`, the rest from what domain-nv publishes under\n\
/local/domain/<nv-domid>/data/domain-nv. A `*` marks an instance still joining (replace/patch).\n\n\
Examples:\n  nvctl status\n  nvctl status web --json | jq '.[0].status.replicas'"
    )]
    Status {
        /// Group name (default: every group).
        group: Option<String>,
    },
    /// Replace one replica: boot (or clone) a new instance, wait until it serves, retire the old one.
    #[command(
        after_help = "The new instance (<replica>-g<N>) gets a private link of its own (addressed like every\n\
replica link) and votes next to the old one until domain-nv reports it serving (live, or joining\n\
on probation); then the old one is removed from the voting set and destroyed. On failure the new\n\
instance is removed and the old one stays.\n\n\
State: by default (spec `state: fresh`) the new instance boots from its image, empty. With\n\
--clone-from R2 (or spec `state: clone`: the first live member of another replica) it is a\n\
memory copy of R2's live instance: `xl save -c` writes a checkpoint of it (it keeps running) to\n\
<state-dir>/<group>/checkpoints/<domain>.save, `xl restore` starts the copy under the new name,\n\
with its own UUID, on the new instance's link; the file is removed afterwards. The copy's open\n\
TCP connections are reset by domain-nv; it joins on probation and becomes live once it agreed.\n\
A request the group answers while the replace runs may be missing in the copy: it then\n\
disagrees on probation and is excluded, never trusted (run the replace again).\n\n\
Examples:\n  nvctl replace web r1\n  nvctl replace web r1 --clone-from r2\n  \
nvctl replace web r1 --clone-from r2 --dry-run\n  nvctl replace web r1 --image /srv/img/web-1.2.img"
    )]
    Replace {
        /// Group name.
        group: String,
        /// Replica name (as in the spec).
        replica: String,
        /// Root disk image of the new instance (default: the old instance's); boots it fresh.
        #[arg(long, value_name = "PATH", conflicts_with = "clone_from")]
        image: Option<String>,
        /// Make the new instance a memory copy of this replica's live instance.
        #[arg(long, value_name = "REPLICA", conflicts_with = "fresh")]
        clone_from: Option<String>,
        /// Boot the new instance fresh from its image, also if the spec says `state: clone`.
        #[arg(long)]
        fresh: bool,
        /// Check everything (Dom0, `xl create -n`, the clone's source) and print the steps;
        /// change nothing.
        #[arg(short = 'n', long)]
        dry_run: bool,
    },
    /// Roll a new disk image over every replica, one at a time, never below quorum.
    #[command(
        after_help = "For each replica: check that a quorum is live, boot an instance on the new image next\n\
to the old one, let both vote side by side for --soak seconds, stop at the first fault, retire\n\
the old one. Replicas already on the image are skipped, so a stopped patch can be re-run.\n\n\
Example:\n  nvctl patch web --image /srv/img/web-1.2.img --soak 60"
    )]
    Patch {
        /// Group name.
        group: String,
        /// The new root disk image.
        #[arg(long, value_name = "PATH", required = true)]
        image: String,
        /// How long old and new vote side by side before the old one is retired, seconds.
        #[arg(long, default_value_t = 30.0, value_name = "SECONDS", value_parser = secs)]
        soak: f64,
    },
    /// Watch a group and replace replicas reported faulty (if the spec says `auto-repair: true`).
    #[command(
        after_help = "Runs until interrupted. Re-checks whenever domain-nv's status changes and at least\n\
every --interval seconds. With `auto-repair: false` faulty replicas are only reported.\n\
It holds the group's lock only during a pass: `replace`, `patch` and `down` run between passes.\n\n\
Example:\n  nvctl watch web"
    )]
    Watch {
        /// Group name.
        group: String,
        /// Longest pause between two checks, seconds.
        #[arg(long, default_value_t = 5.0, value_name = "SECONDS", value_parser = positive_secs)]
        interval: f64,
        /// How long a replica may be reported `down` before it is repaired, seconds.
        #[arg(long, default_value_t = 30.0, value_name = "SECONDS", value_parser = secs)]
        down_grace: f64,
    },
    /// Reliability of n replicas behind an NV domain versus a plain node, one VM and in-VM
    /// voting (seed 002, with voting policies).
    #[command(
        after_help = "R_sys of the plain node is R_node*R_vm; of one VM on Xen R_node*R_hv*R_dom0*R_vm; of n\n\
replicas behind the NV domain R_node*R_hv*R_dom0*R_nv*P_n, with P_n the probability that enough\n\
replicas are correct: 1-(1-R_vm)^n (1-out-of-n, the seed), sum_{k>=n/2+1} C(n,k)R_vm^k(1-R_vm)^(n-k)\n\
(majority) or R_vm^n (unanimous); of the seed's in-VM voting R_node*R_hv*R_dom0*P_n(R_f*R_vm).\n\
Prints, per policy, condition (A) R_hv >= R_vm/(P_n*R_dom0*R_nv), the conditions for moving the\n\
voter into the NV domain (against one VM: R_nv >= R_vm/P_n; against in-VM voting:\n\
R_nv >= P_n(R_f*R_vm)/P_n(R_vm)), and every n <= 99 for which each holds (majority voting is\n\
not monotone in n). \"Holds\" means more reliable beyond a bound of the rounding error.\n\
Each component is given as a reliability (--r-*, in (0, 1]) or as a failure rate per hour\n\
(--lambda-*) over --mission-hours: R = exp(-lambda*t). Omitted optional terms are 1.\n\n\
Examples:\n  nvctl reliability --r-vm 0.9 --r-hv 0.99 -n 3\n  \
nvctl reliability --lambda-vm 1e-4 --lambda-hv 1e-6 --lambda-nv 1e-5 --mission-hours 1000 --json"
    )]
    Reliability(ReliabilityArgs),
    /// Print a shell completion script for nvctl.
    #[command(
        after_help = "Examples:\n  nvctl completions bash > /usr/share/bash-completion/completions/nvctl\n  \
nvctl completions zsh > /usr/share/zsh/site-functions/_nvctl\n  \
nvctl completions fish > /usr/share/fish/vendor_completions.d/nvctl.fish\n\n\
`make install` installs all three."
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print nvctl's man page (roff, section 8).
    #[command(after_help = "Example:\n  nvctl man > nvctl.8 && man -l nvctl.8\n\n\
`make install` installs it as $(PREFIX)/share/man/man8/nvctl.8.")]
    Man,
}

impl Command {
    /// The subcommand's name, as in the result object.
    fn name(&self) -> &'static str {
        match self {
            Command::Render { .. } => "render",
            Command::Up { .. } => "up",
            Command::Diff { .. } => "diff",
            Command::Down { .. } => "down",
            Command::Status { .. } => "status",
            Command::Replace { .. } => "replace",
            Command::Patch { .. } => "patch",
            Command::Watch { .. } => "watch",
            Command::Reliability(_) => "reliability",
            Command::Completions { .. } => "completions",
            Command::Man => "man",
        }
    }

    /// The group named on the command line, if any.
    fn group(&self) -> Option<&str> {
        match self {
            Command::Down { group, .. }
            | Command::Diff { group, .. }
            | Command::Replace { group, .. }
            | Command::Patch { group, .. }
            | Command::Watch { group, .. } => Some(group),
            Command::Status { group } => group.as_deref(),
            _ => None,
        }
    }

    /// True if the command's own output is its result (so `--json` prints no result object
    /// on success).
    fn prints_own_result(&self) -> bool {
        matches!(
            self,
            Command::Status { .. }
                | Command::Reliability(_)
                | Command::Completions { .. }
                | Command::Man
        )
    }
}

/// The inputs of `nvctl reliability`: per component a reliability or a failure rate.
#[derive(Args)]
#[command(next_help_heading = "Model inputs")]
struct ReliabilityArgs {
    /// Reliability of one replica (guest OS + service) over the mission, in (0, 1].
    #[arg(long, value_name = "R", value_parser = probability, required_unless_present = "lambda_vm", conflicts_with = "lambda_vm")]
    r_vm: Option<f64>,
    /// Failure rate of one replica, per hour (instead of --r-vm).
    #[arg(long, value_name = "PER_HOUR", value_parser = rate, requires = "mission_hours")]
    lambda_vm: Option<f64>,
    /// Reliability of the hypervisor, in (0, 1].
    #[arg(long, value_name = "R", value_parser = probability, required_unless_present = "lambda_hv", conflicts_with = "lambda_hv")]
    r_hv: Option<f64>,
    /// Failure rate of the hypervisor, per hour (instead of --r-hv).
    #[arg(long, value_name = "PER_HOUR", value_parser = rate, requires = "mission_hours")]
    lambda_hv: Option<f64>,
    /// Reliability of the hardware, in (0, 1] (default 1).
    #[arg(long, value_name = "R", value_parser = probability, conflicts_with = "lambda_node")]
    r_node: Option<f64>,
    /// Failure rate of the hardware, per hour (instead of --r-node).
    #[arg(long, value_name = "PER_HOUR", value_parser = rate, requires = "mission_hours")]
    lambda_node: Option<f64>,
    /// Reliability of the NV domain (network stack and voter), in (0, 1] (default 1).
    #[arg(long, value_name = "R", value_parser = probability, conflicts_with = "lambda_nv")]
    r_nv: Option<f64>,
    /// Failure rate of the NV domain, per hour (instead of --r-nv).
    #[arg(long, value_name = "PER_HOUR", value_parser = rate, requires = "mission_hours")]
    lambda_nv: Option<f64>,
    /// Reliability of Dom0 (its crash takes the host down), in (0, 1] (default 1).
    #[arg(long, value_name = "R", value_parser = probability, conflicts_with = "lambda_dom0")]
    r_dom0: Option<f64>,
    /// Failure rate of Dom0, per hour (instead of --r-dom0).
    #[arg(long, value_name = "PER_HOUR", value_parser = rate, requires = "mission_hours")]
    lambda_dom0: Option<f64>,
    /// Reliability of the voting function run inside each replica, for the comparison with
    /// the seed's in-VM voting (the seed's R_f), in (0, 1] (default 1).
    #[arg(long, value_name = "R", value_parser = probability, conflicts_with = "lambda_voter_in_vm")]
    r_voter_in_vm: Option<f64>,
    /// Failure rate of the voting function inside a replica, per hour (instead of
    /// --r-voter-in-vm).
    #[arg(long, value_name = "PER_HOUR", value_parser = rate, requires = "mission_hours")]
    lambda_voter_in_vm: Option<f64>,
    /// Mission time the failure rates apply to, hours.
    #[arg(long, value_name = "HOURS", value_parser = hours)]
    mission_hours: Option<f64>,
    /// Number of replicas.
    #[arg(short, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=i64::from(reliability::MAX_N)))]
    n: u32,
}

impl ReliabilityArgs {
    /// The model's inputs; the value parsers checked every range but `exp(-lambda*t) = 0`.
    fn inputs(&self) -> Result<reliability::Inputs, String> {
        let hours = self.mission_hours;
        let rates = [
            self.lambda_vm,
            self.lambda_hv,
            self.lambda_node,
            self.lambda_nv,
            self.lambda_dom0,
            self.lambda_voter_in_vm,
        ];
        if hours.is_some() && rates.iter().all(Option::is_none) {
            return Err(
                "--mission-hours applies to failure rates: give at least one --lambda-*".into(),
            );
        }
        let component = |r: Option<f64>, lambda: Option<f64>| {
            match (r, lambda, hours) {
                (_, Some(l), Some(h)) => Component::rate(l, h),
                (Some(r), _, _) => Component::given(r),
                _ => Ok(Component::perfect()),
            }
            .map_err(|e| e.to_string())
        };
        Ok(reliability::Inputs {
            vm: component(self.r_vm, self.lambda_vm)?,
            hv: component(self.r_hv, self.lambda_hv)?,
            node: component(self.r_node, self.lambda_node)?,
            nv: component(self.r_nv, self.lambda_nv)?,
            dom0: component(self.r_dom0, self.lambda_dom0)?,
            voter_in_vm: component(self.r_voter_in_vm, self.lambda_voter_in_vm)?,
            n: self.n,
            mission_hours: hours,
        })
    }
}

/// A reliability in (0, 1].
fn probability(s: &str) -> Result<f64, String> {
    let v = s
        .parse::<f64>()
        .map_err(|_| format!("{s:?} is not a number"))?;
    Reliability::new(v).map_err(|e| e.to_string())?;
    Ok(v)
}

/// A failure rate per hour: finite, >= 0.
fn rate(s: &str) -> Result<f64, String> {
    let v = s
        .parse::<f64>()
        .map_err(|_| format!("{s:?} is not a number"))?;
    Reliability::from_rate(v, 0.0).map_err(|e| e.to_string())?;
    Ok(v)
}

/// A mission time in hours: finite, >= 0.
fn hours(s: &str) -> Result<f64, String> {
    let v = s
        .parse::<f64>()
        .map_err(|_| format!("{s:?} is not a number"))?;
    Reliability::from_rate(0.0, v).map_err(|e| e.to_string())?;
    Ok(v)
}

fn secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=86400.0 * 365.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds")),
    }
}

fn positive_secs(s: &str) -> Result<f64, String> {
    secs(s).and_then(|v| {
        if v > 0.0 {
            Ok(v)
        } else {
            Err("must be > 0".into())
        }
    })
}

fn read_spec(path: &Path) -> Result<(String, GroupSpec)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let spec = GroupSpec::parse(&text).map_err(|errs| {
        let lines: Vec<String> = errs
            .0
            .iter()
            .map(|e| format!("{}: {e}", path.display()))
            .collect();
        Failure::Invalid.error(format!("invalid spec:\n{}", lines.join("\n")))
    })?;
    Ok((text, spec))
}

fn render_cmd(spec: &Path, output: &Path, outcome: &mut Outcome) -> Result<()> {
    let (_, spec) = read_spec(spec)?;
    outcome.group = Some(spec.group.clone());
    std::fs::create_dir_all(output).with_context(|| format!("creating {}", output.display()))?;
    let files = outcome.files.insert(Vec::new());
    for (name, text) in render::render_all(&spec)? {
        let p = output.join(name);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
        files.push(p.display().to_string());
    }
    Ok(())
}

/// Take `<state-dir>/<group>.lock` exclusively for the life of the returned file, so two nvctl
/// never change one group at once.
fn lock_group(state_dir: &Path, group: &str) -> Result<std::fs::File> {
    if !valid_name(group) {
        bail!("{group:?} is not a group name");
    }
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    let p = state_dir.join(format!("{group}.lock"));
    let f = std::fs::File::create(&p).with_context(|| format!("creating {}", p.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another nvctl is working on group {group} ({} is locked)",
            p.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", p.display()))
        }
    }
}

/// Run `f` with a lifecycle context: the real xl and a xenstore connection; what xl created and
/// destroyed goes to `outcome`, also when `f` fails.
fn with_ctx<T>(g: &Global, outcome: &mut Outcome, f: impl FnOnce(&Ctx) -> Result<T>) -> Result<T> {
    let store = match &g.xenstore {
        Some(p) => Xenstore::connect_unix(p)
            .with_context(|| format!("connecting to xenstored at {}", p.display()))?,
        None => Xenstore::open().context("connecting to xenstore (are you root in Dom0?)")?,
    };
    let real = RealXl {
        program: g.xl.clone(),
    };
    let xl = RecordingXl::new(&real);
    let quiet = g.quiet;
    let progress = |s: &str| {
        if !quiet {
            eprintln!("{}", printable_lines(s))
        }
    };
    let dom0 = HostDom0 {
        root: g.dom0_root.clone(),
    };
    let ctx = Ctx {
        xl: &xl,
        store: &store,
        dom0: &dom0,
        dir: g.state_dir.clone(),
        timeout: Duration::from_secs_f64(g.timeout),
        poll: Duration::from_secs(1),
        report_every: Duration::from_secs(5),
        progress: &progress,
    };
    let result = f(&ctx);
    outcome.record(&xl);
    result
}

/// A plan (`diff`, `up --dry-run`): in the result object with `--json`, else as text.
fn show_plan(g: &Global, outcome: &mut Outcome, plan: group::Plan) {
    if g.json {
        outcome.plan = Some(plan.steps);
    } else {
        print!("{plan}");
    }
}

/// Run the command; what it did goes to `outcome` (printed with `--json`), progress to stderr.
fn run(cli: &Cli, outcome: &mut Outcome) -> Result<()> {
    let g = &cli.global;
    // the one-line summaries of what was done, for people (not with -q or --json)
    let say = |s: String| {
        if !g.quiet && !g.json {
            println!("{s}")
        }
    };
    match &cli.command {
        Command::Render { spec, output } => {
            render_cmd(spec, output, outcome)?;
            outcome.files.iter().flatten().for_each(|f| say(f.clone()));
            Ok(())
        }
        Command::Reliability(args) => {
            let report = args
                .inputs()
                .and_then(|i| reliability::evaluate(&i).map_err(|e| e.to_string()))
                .unwrap_or_else(|e| {
                    // an input error, like those of the value parsers: a usage error (exit 2)
                    ReliabilityArgs::augment_args(clap::Command::new("nvctl reliability"))
                        .error(clap::error::ErrorKind::ValueValidation, e)
                        .exit()
                });
            if g.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", reliability::format_text(&report));
            }
            Ok(())
        }
        Command::Up {
            spec,
            dry_run: true,
        } => {
            let (text, parsed) = read_spec(spec)?;
            outcome.group = Some(parsed.group.clone());
            let plan = with_ctx(g, outcome, |ctx| group::diff(ctx, &text))?;
            show_plan(g, outcome, plan);
            Ok(())
        }
        Command::Up {
            spec,
            dry_run: false,
        } => {
            let (text, parsed) = read_spec(spec)?;
            outcome.group = Some(parsed.group.clone());
            let _lock = lock_group(&g.state_dir, &parsed.group)?;
            with_ctx(g, outcome, |ctx| group::up(ctx, &text))
        }
        Command::Diff { group, spec } => {
            let (text, parsed) = read_spec(spec)?;
            if parsed.group != *group {
                return Err(Failure::Invalid.error(format!(
                    "{} is the spec of group {}, not {group}",
                    spec.display(),
                    parsed.group
                )));
            }
            let plan = with_ctx(g, outcome, |ctx| group::diff(ctx, &text))?;
            show_plan(g, outcome, plan);
            Ok(())
        }
        Command::Down {
            group,
            dry_run: true,
        } => {
            let plan = with_ctx(g, outcome, |ctx| group::down_plan(ctx, group))?;
            if plan.steps.is_empty() && !g.json {
                println!("group {group}: not found, nothing to do");
            } else {
                show_plan(g, outcome, plan);
            }
            Ok(())
        }
        Command::Down {
            group,
            dry_run: false,
        } => {
            let _lock = lock_group(&g.state_dir, group)?;
            with_ctx(g, outcome, |ctx| group::down(ctx, group))
        }
        Command::Status { group } => with_ctx(g, outcome, |ctx| {
            let names = match group {
                Some(g) => vec![g.clone()],
                None => group::groups(ctx.store)?,
            };
            let views = names
                .iter()
                .map(|n| group::status(ctx, n))
                .collect::<Result<Vec<_>>>()?;
            if g.json {
                println!("{}", group::format_json(&views));
            } else if views.is_empty() {
                println!("no groups (create one with `nvctl up SPEC`)");
            } else {
                print!("{}", group::format_table(&views));
            }
            Ok(())
        }),
        Command::Replace {
            group,
            replica,
            image,
            clone_from,
            fresh,
            dry_run,
        } => {
            let state = match (clone_from, fresh) {
                (Some(from), _) => StateFrom::CloneOf(from.clone()),
                (None, true) => StateFrom::Fresh,
                (None, false) => StateFrom::Spec,
            };
            if *dry_run {
                let plan = with_ctx(g, outcome, |ctx| {
                    group::replace_plan(ctx, group, replica, image.as_deref(), &state)
                })?;
                show_plan(g, outcome, plan);
                return Ok(());
            }
            let _lock = lock_group(&g.state_dir, group)?;
            let new = with_ctx(g, outcome, |ctx| {
                group::replace(
                    ctx,
                    group,
                    replica,
                    image.as_deref(),
                    &state,
                    Mode::Repair,
                    Duration::ZERO,
                )
            })?;
            let by = new.domain(group);
            say(format!("{replica}: now served by {by}"));
            outcome.replaced = Some(Replaced {
                replica: replica.clone(),
                by,
            });
            Ok(())
        }
        Command::Patch { group, image, soak } => {
            outcome.image = Some(image.clone());
            let _lock = lock_group(&g.state_dir, group)?;
            with_ctx(g, outcome, |ctx| {
                group::patch(ctx, group, image, Duration::from_secs_f64(*soak))
            })
        }
        Command::Watch {
            group,
            interval,
            down_grace,
        } => {
            let opts = group::WatchOptions {
                interval: Duration::from_secs_f64(*interval),
                down_grace: Duration::from_secs_f64(*down_grace),
            };
            // the lock is taken for each pass only, so other commands run between passes
            with_ctx(g, outcome, |ctx| {
                group::watch(ctx, group, opts, || lock_group(&g.state_dir, group))
            })
        }
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "nvctl", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            let man = clap_mangen::Man::new(Cli::command()).section("8");
            man.render(&mut std::io::stdout())
                .context("writing the man page")
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let level = match (cli.global.quiet, cli.global.verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        _ => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    let mut outcome = Outcome::new(cli.command.name(), cli.command.group());
    let result = run(&cli, &mut outcome);
    if let Err(e) = &result {
        eprintln!("nvctl: error: {}", printable_lines(&format!("{e:#}")));
        outcome.fail(e);
    }
    if cli.global.json && (result.is_err() || !cli.command.prints_own_result()) {
        println!("{}", outcome.to_json());
    }
    if let Err(e) = &result {
        std::process::exit(Failure::of(e).map_or(1, Failure::exit_code));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent_and_every_subcommand_is_documented() {
        Cli::command().debug_assert();
        for sc in Cli::command().get_subcommands() {
            assert!(sc.get_about().is_some(), "{} has no about", sc.get_name());
            assert!(
                sc.get_after_help()
                    .is_some_and(|h| h.to_string().contains("xample")),
                "{} has no example",
                sc.get_name()
            );
            for a in sc.get_arguments() {
                assert!(
                    a.get_help().is_some(),
                    "{} {} has no help",
                    sc.get_name(),
                    a.get_id()
                );
            }
        }
    }

    #[test]
    fn usage_errors_are_clap_errors() {
        assert!(
            Cli::try_parse_from(["nvctl", "reliability", "--r-vm", "1.5", "--r-hv", "0.9"])
                .is_err()
        );
        assert!(Cli::try_parse_from(["nvctl", "patch", "web"]).is_err());
        assert!(Cli::try_parse_from(["nvctl", "status", "web", "--json"]).is_ok());
    }
}
