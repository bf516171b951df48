//! Running `xl`: the [`XlRunner`] trait, the real runner, and helpers for the few `xl` commands
//! nvctl uses (`list -v`, `create -n`, `create`, `destroy`). Tests replay recorded transcripts
//! through the trait. A failing `xl` is a [`Failure::Xl`].

use crate::failure::Failure;
use anyhow::Result;
use std::collections::BTreeMap;

/// What one `xl` invocation returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XlOutput {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `xl` with arguments.
pub trait XlRunner {
    /// Run `xl ARGS...` and collect its output (an Err only if it could not be run at all).
    fn run(&self, args: &[&str]) -> Result<XlOutput>;
}

/// Run `xl`, failing with its stderr if it exits non-zero.
pub fn xl_ok(xl: &dyn XlRunner, args: &[&str]) -> Result<String> {
    let out = xl.run(args)?;
    if out.code != 0 {
        return Err(Failure::Xl.error(format!(
            "`xl {}` failed (exit {}): {}",
            args.join(" "),
            out.code,
            out.stderr.trim()
        )));
    }
    Ok(out.stdout)
}

/// One row of `xl list -v` (serialized as `{"id", "mem", "state"}` in `nvctl status --json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Domain {
    /// Domain id.
    pub id: u32,
    /// Memory, MiB.
    pub mem: u64,
    /// Virtual CPUs (the 4th column; not part of `nvctl status --json`).
    #[serde(skip)]
    pub vcpus: u32,
    /// State flags as xl prints them (`r-----`, `-b----`, ...).
    pub state: String,
    /// UUID (the 7th column of `xl list -v`; "" if xl printed none).
    #[serde(skip)]
    pub uuid: String,
}

/// Parse `xl list` or `xl list -v` output into name → row.
pub fn parse_list(text: &str) -> BTreeMap<String, Domain> {
    let mut m = BTreeMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 5 {
            if let (Ok(id), Ok(mem)) = (f[1].parse(), f[2].parse()) {
                m.insert(
                    f[0].to_string(),
                    Domain {
                        id,
                        mem,
                        vcpus: f[3].parse().unwrap_or(0),
                        state: f[4].to_string(),
                        uuid: f
                            .get(6)
                            .filter(|u| is_uuid(u))
                            .map(|u| u.to_string())
                            .unwrap_or_default(),
                    },
                );
            }
        }
    }
    m
}

/// True if `s` looks like a UUID (`8-4-4-4-12` hex digits).
fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// `xl list -v` (every domain with its UUID), parsed.
pub fn list(xl: &dyn XlRunner) -> Result<BTreeMap<String, Domain>> {
    Ok(parse_list(&xl_ok(xl, &["list", "-v"])?))
}

/// The real runner: spawns `program` (normally `xl`).
pub struct RealXl {
    /// The xl binary to run.
    pub program: String,
}

impl XlRunner for RealXl {
    fn run(&self, args: &[&str]) -> Result<XlOutput> {
        let prog = &self.program;
        log::debug!("running {prog} {}", args.join(" "));
        let out = std::process::Command::new(prog)
            .args(args)
            .output()
            .map_err(|e| Failure::Xl.error(format!("cannot run {prog}: {e}")))?;
        Ok(XlOutput {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_xl_list() {
        let text = "Name                                        ID   Mem VCPUs\tState\tTime(s)\nDomain-0                                     0  4096     2     r-----      12.0\nweb-nv                                       3   256     1     -b----       0.4\n";
        let m = parse_list(text);
        assert_eq!(
            m["web-nv"],
            Domain {
                id: 3,
                mem: 256,
                vcpus: 1,
                state: "-b----".into(),
                uuid: String::new(),
            }
        );
        assert_eq!(m.len(), 2);
        // xl 4.17's `xl list -v`: UUID, reason code and security label follow
        let text = "Name                                        ID   Mem VCPUs\tState\tTime(s)   UUID                            Reason-Code\tSecurity Label\nDomain-0                                     0  4096     2     r-----      12.0 00000000-0000-0000-0000-000000000000        -                -\nweb-nv                                       3   256     1     -b----       0.4 5e1f0000-0000-4000-8000-000000000003        -                -\n";
        let m = parse_list(text);
        assert_eq!(
            (m["web-nv"].id, m["web-nv"].uuid.as_str()),
            (3, "5e1f0000-0000-4000-8000-000000000003")
        );
    }

    struct Canned(XlOutput);

    impl XlRunner for Canned {
        fn run(&self, _: &[&str]) -> Result<XlOutput> {
            Ok(self.0.clone())
        }
    }

    #[test]
    fn failures_carry_stderr_and_missing_domains_are_none() {
        let xl = Canned(XlOutput {
            code: 1,
            stdout: String::new(),
            stderr: "libxl: error: boom\n".into(),
        });
        let e = xl_ok(&xl, &["destroy", "x"]).unwrap_err().to_string();
        assert!(
            e.contains("libxl: error: boom")
                && e.contains("`xl destroy x`")
                && e.contains("exit 1"),
            "{e}"
        );
    }
}
