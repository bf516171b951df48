//! What an nvctl command did, for automation (`--json`): one [`Outcome`] object printed on
//! stdout when the command ends, success or not, serialized with serde.
//!
//! ```text
//! {"command": "up", "ok": true, "group": "web", "created": ["web-nv", "web-r0"], "destroyed": [],
//!  "error": null}
//! {"command": "down", "ok": false, "group": "web", "created": [], "destroyed": ["web-r1"],
//!  "error": {"kind": "xl", "exit_status": 4, "message": "`xl destroy web-r0` failed ..."}}
//! ```
//! `created` and `destroyed` are the domains this run created or destroyed with `xl`, in order,
//! recorded by [`RecordingXl`] around the real runner, so they are right also when a command
//! stops half-way. Command-specific fields (`files`, `replaced`, `image`) appear only on the
//! commands they belong to. The exit status is that of the error ([`Failure::exit_code`]), as
//! without `--json`.

use crate::failure::Failure;
use crate::xl::{XlOutput, XlRunner};
use anyhow::Result;
use serde::Serialize;
use std::cell::RefCell;
use std::path::Path;

/// The result of one nvctl command.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Outcome {
    /// The subcommand (`up`, `down`, ...).
    pub command: &'static str,
    /// True if the command succeeded (then `error` is null).
    pub ok: bool,
    /// The group it worked on, if it names one.
    pub group: Option<String>,
    /// Domains this run created (`xl create`), in order.
    pub created: Vec<String>,
    /// Domains this run destroyed (`xl destroy`), in order.
    pub destroyed: Vec<String>,
    /// `render`: the files written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<String>>,
    /// `replace`: the replica and the domain that now serves it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced: Option<Replaced>,
    /// `patch`: the image rolled over the group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `diff`, `up --dry-run`: the steps of the plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Vec<crate::group::Step>>,
    /// Why it failed (null on success).
    pub error: Option<ErrorReport>,
}

impl Outcome {
    /// A successful, so far empty, outcome of `command` on `group`.
    pub fn new(command: &'static str, group: Option<&str>) -> Outcome {
        Outcome {
            command,
            ok: true,
            group: group.map(str::to_string),
            ..Outcome::default()
        }
    }

    /// Record the failure `e` (`ok` becomes false).
    pub fn fail(&mut self, e: &anyhow::Error) {
        self.ok = false;
        self.error = Some(ErrorReport::of(e));
    }

    /// Take over what `xl` recorded: the domains created and destroyed.
    pub fn record(&mut self, xl: &RecordingXl) {
        self.created = xl.created.borrow().clone();
        self.destroyed = xl.destroyed.borrow().clone();
    }

    /// The object as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("an Outcome always serializes")
    }
}

/// `replace`: which replica got which new domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replaced {
    /// The replica (as in the spec).
    pub replica: String,
    /// The domain of the instance that now serves it.
    pub by: String,
}

/// An error as automation sees it: its kind, exit status and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorReport {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The process exit status that goes with it.
    pub exit_status: i32,
    /// The message, as printed on stderr (the whole context chain).
    pub message: String,
}

impl ErrorReport {
    /// The report of `e`: its [`Failure`] kind (or [`ErrorKind::Other`]) and message.
    pub fn of(e: &anyhow::Error) -> ErrorReport {
        let failure = Failure::of(e);
        ErrorReport {
            kind: failure.map_or(ErrorKind::Other, ErrorKind::from),
            exit_status: failure.map_or(1, Failure::exit_code),
            message: format!("{e:#}"),
        }
    }
}

/// The kind of an error, as the word `error.kind` in the JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// An invalid spec or command-line value (exit 3).
    Invalid,
    /// `xl` failed or could not be run (exit 4).
    Xl,
    /// A wait timed out (exit 5).
    Timeout,
    /// No such group, replica or NV domain (exit 6).
    NotFound,
    /// Any other error (exit 1).
    Other,
}

impl From<Failure> for ErrorKind {
    fn from(f: Failure) -> ErrorKind {
        match f {
            Failure::Invalid => ErrorKind::Invalid,
            Failure::Xl => ErrorKind::Xl,
            Failure::Timeout => ErrorKind::Timeout,
            Failure::NotFound => ErrorKind::NotFound,
        }
    }
}

/// An [`XlRunner`] around another that records the domains it successfully created
/// (`xl create CFG` and `xl restore CFG CHECKPOINT`, named by the config file `<domain>.cfg`;
/// not dry runs) and destroyed.
pub struct RecordingXl<'a> {
    inner: &'a dyn XlRunner,
    created: RefCell<Vec<String>>,
    destroyed: RefCell<Vec<String>>,
}

impl<'a> RecordingXl<'a> {
    /// Record what `inner` creates and destroys.
    pub fn new(inner: &'a dyn XlRunner) -> RecordingXl<'a> {
        RecordingXl {
            inner,
            created: RefCell::default(),
            destroyed: RefCell::default(),
        }
    }
}

impl XlRunner for RecordingXl<'_> {
    fn run(&self, args: &[&str]) -> Result<XlOutput> {
        let out = self.inner.run(args)?;
        if out.code == 0 {
            match args {
                ["create", cfg] | ["restore", cfg, _] => {
                    if let Some(name) = Path::new(cfg).file_stem() {
                        self.created
                            .borrow_mut()
                            .push(name.to_string_lossy().into_owned());
                    }
                }
                ["destroy", domain] => self.destroyed.borrow_mut().push(domain.to_string()),
                _ => {}
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Succeeds on everything but `destroy bad`.
    struct Fake;

    impl XlRunner for Fake {
        fn run(&self, args: &[&str]) -> Result<XlOutput> {
            Ok(XlOutput {
                code: i32::from(args == ["destroy", "bad"]),
                stdout: String::new(),
                stderr: String::new(),
            })
        }
    }

    #[test]
    fn records_creations_and_destructions_but_not_dry_runs_or_failures() {
        let xl = RecordingXl::new(&Fake);
        for args in [
            &["create", "-n", "/s/web/web-r0.cfg"][..],
            &["create", "/s/web/web-nv.cfg"],
            &["list", "-v"],
            &["save", "-c", "web-r2", "/s/web/checkpoints/web-r1-g1.save"],
            &[
                "restore",
                "/s/web/web-r1-g1.cfg",
                "/s/web/checkpoints/web-r1-g1.save",
            ],
            &["destroy", "bad"],
            &["destroy", "web-r1"],
        ] {
            xl.run(args).unwrap();
        }
        let mut o = Outcome::new("up", Some("web"));
        o.record(&xl);
        assert_eq!(
            (o.created, o.destroyed),
            (
                vec!["web-nv".into(), "web-r1-g1".into()],
                vec!["web-r1".into()]
            )
        );
    }

    #[test]
    fn errors_have_kind_status_and_the_whole_message() {
        let e = anyhow::Context::context(
            Err::<(), _>(Failure::NotFound.error("no group web")),
            "down",
        )
        .unwrap_err();
        let mut o = Outcome::new("down", Some("web"));
        o.fail(&e);
        let v: serde_json::Value = serde_json::from_str(&o.to_json()).unwrap();
        assert_eq!(v["ok"], false);
        assert_eq!(v["error"]["kind"], "not_found");
        assert_eq!(v["error"]["exit_status"], 6);
        assert_eq!(v["error"]["message"], "down: no group web");
        assert!(v.get("files").is_none() && v["created"].as_array().unwrap().is_empty());
        o.fail(&anyhow::anyhow!("plain"));
        assert_eq!(
            (o.error.as_ref().unwrap().kind, o.error.unwrap().exit_status),
            (ErrorKind::Other, 1)
        );
    }
}
