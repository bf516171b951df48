//! The nvctl binary: help, exit codes, render, reliability, error reporting.

use std::path::PathBuf;
use std::process::{Command, Output};

fn nvctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nvctl"))
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn manifest(p: &str) -> String {
    format!("{}/{p}", env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nvctl-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn help_of_every_command_has_examples() {
    let out = nvctl(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let top = text(&out.stdout);
    for c in [
        "render",
        "up",
        "down",
        "status",
        "replace",
        "patch",
        "watch",
        "reliability",
    ] {
        assert!(top.contains(&format!("  {c} ")), "{c} missing in\n{top}");
        let out = nvctl(&[c, "--help"]);
        assert_eq!(out.status.code(), Some(0), "{c}");
        let h = text(&out.stdout);
        assert!(
            h.contains("Usage: nvctl ") && h.contains("Example"),
            "{c}:\n{h}"
        );
    }
    assert!(top.contains("Exit status: 0 success, 1 error"), "{top}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["bogus"][..],
        &["patch", "web"],
        &["reliability", "--r-vm", "2", "--r-hv", "0.9"],
        &["reliability", "--r-vm", "0", "--r-hv", "0.9"],
        &["reliability", "--lambda-vm", "1e-4", "--r-hv", "0.9"],
        &[
            "reliability",
            "--r-vm",
            "0.9",
            "--r-hv",
            "0.9",
            "--mission-hours",
            "10",
        ],
        &[
            "reliability",
            "--r-vm",
            "0.9",
            "--lambda-vm",
            "1e-4",
            "--r-hv",
            "0.9",
            "--mission-hours",
            "10",
        ],
        &[
            "reliability",
            "--lambda-vm",
            "1",
            "--r-hv",
            "0.9",
            "--mission-hours",
            "1e4",
        ],
        &["reliability", "--r-vm", "0.9", "--r-hv", "0.9", "-n", "0"],
        &["up"],
        &["--timeout", "0", "status"],
        // a clone runs its source's disk and state: no new image, no --fresh with it
        &[
            "replace",
            "web",
            "r1",
            "--clone-from",
            "r2",
            "--image",
            "/i.img",
        ],
        &["replace", "web", "r1", "--clone-from", "r2", "--fresh"],
    ] {
        let out = nvctl(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn render_writes_the_golden_files() {
    let dir = scratch("render");
    let out = nvctl(&[
        "render",
        &manifest("../xl-configs/example-group.yaml"),
        "-o",
        &dir.to_string_lossy(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let golden = PathBuf::from(manifest("tests/golden/example-group"));
    let mut n = 0;
    for e in std::fs::read_dir(&golden).unwrap() {
        let name = e.unwrap().file_name();
        assert_eq!(
            std::fs::read_to_string(dir.join(&name)).unwrap(),
            std::fs::read_to_string(golden.join(&name)).unwrap(),
            "{name:?}"
        );
        n += 1;
    }
    assert_eq!(text(&out.stdout).lines().count(), n);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn invalid_specs_exit_3_naming_file_line_and_field() {
    let dir = scratch("bad");
    let spec = std::fs::read_to_string(manifest("../xl-configs/example-group.yaml"))
        .unwrap()
        .replacen("    memory: 512", "    memory: 0", 1);
    let line = spec.lines().position(|l| l == "    memory: 0").unwrap() + 1;
    let p = dir.join("bad.yaml");
    std::fs::write(&p, spec).unwrap();
    let out = nvctl(&["render", &p.to_string_lossy(), "-o", &dir.to_string_lossy()]);
    // an invalid spec has its own exit status (3), a missing file is a plain error (1)
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "bad.yaml: line {line}: replicas[0].memory: must be > 0 MiB"
        )),
        "{err}"
    );
    assert!(!dir.join("web-nv.cfg").exists());
    let out = nvctl(&["render", "/nonexistent/spec.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("reading /nonexistent/spec.yaml"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn reliability_prints_both_models_and_the_condition() {
    let out = nvctl(&["reliability", "--r-vm", "0.9", "--r-hv", "0.99", "-n", "3"]);
    assert_eq!(out.status.code(), Some(0));
    let r = text(&out.stdout);
    assert!(
        r.contains("= 0.900000") && r.contains("= 0.989010") && r.contains("= 0.962280"),
        "{r}"
    );
    assert!(r.contains("R_hv >= 0.925926: holds"), "{r}");
}

#[test]
fn reliability_input_errors_say_what_is_wrong() {
    let out = nvctl(&["reliability", "--r-vm", "0", "--r-hv", "0.9"]);
    assert!(
        text(&out.stderr).contains("reliability 0 is not in (0, 1]"),
        "{}",
        text(&out.stderr)
    );
    let out = nvctl(&[
        "reliability",
        "--lambda-vm",
        "1",
        "--r-hv",
        "0.9",
        "--mission-hours",
        "1e4",
    ]);
    assert!(
        text(&out.stderr).contains("the component surely fails within the mission"),
        "{}",
        text(&out.stderr)
    );
    let out = nvctl(&[
        "reliability",
        "--r-vm",
        "0.9",
        "--r-hv",
        "0.9",
        "--mission-hours",
        "1",
    ]);
    assert!(
        text(&out.stderr).contains("--mission-hours applies to failure rates"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn reliability_takes_failure_rates_and_prints_json() {
    // lambda_vm 1e-4/h over 1000 h: R_vm = e^-0.1 = 0.904837; R_hv 0.99, R_nv 0.999, n = 3
    let out = nvctl(&[
        "reliability",
        "--lambda-vm",
        "1e-4",
        "--mission-hours",
        "1000",
        "--r-hv",
        "0.99",
        "--r-nv",
        "0.999",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        (v["plain_node"].as_f64().unwrap() - 0.904_837_418).abs() < 1e-9,
        "{v}"
    );
    assert_eq!(v["inputs"]["vm"]["failure_rate_per_hour"], 1e-4);
    assert_eq!(v["inputs"]["mission_hours"], 1000.0);
    assert_eq!(v["inputs"]["nv"]["reliability"], 0.999);
    let policies = v["policies"].as_array().unwrap();
    let names: Vec<&str> = policies
        .iter()
        .map(|p| p["policy"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["any", "majority", "unanimous"]);
    let m = &policies[1];
    assert_eq!(m["needed"], 2);
    assert_eq!(m["vs_plain_node"]["verdict"], "better");
    assert_eq!(m["vs_plain_node"]["least_n"], 3);
    assert_eq!(m["vs_plain_node"]["holds_for_n"][0], 3);
    for key in ["margin", "bound", "threshold"] {
        assert!(m["vs_one_vm"][key].is_f64(), "{key}: {m}");
    }
    assert_eq!(
        policies[2]["vs_plain_node"]["least_n"],
        serde_json::Value::Null
    );
}

#[test]
fn lifecycle_commands_fail_with_1_without_xenstore() {
    let out = nvctl(&["--xenstore", "/nonexistent/socket", "status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .starts_with("nvctl: error: connecting to xenstored at /nonexistent/socket"),
        "{}",
        text(&out.stderr)
    );
    let dir = scratch("lock");
    let out = nvctl(&["--state-dir", &dir.to_string_lossy(), "down", "../etc"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("\"../etc\" is not a group name"),
        "{}",
        text(&out.stderr)
    );
    // a second nvctl on a locked group gives up at once
    let lock = std::fs::File::create(dir.join("web.lock")).unwrap();
    lock.lock().unwrap();
    let out = nvctl(&[
        "--state-dir",
        &dir.to_string_lossy(),
        "--xenstore",
        "/nonexistent/socket",
        "down",
        "web",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("another nvctl is working on group web"),
        "{}",
        text(&out.stderr)
    );
    drop(lock);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn help_documents_the_exit_statuses() {
    let out = nvctl(&["--help"]);
    let help = text(&out.stdout);
    for line in [
        "0 success",
        "1 error",
        "2 usage error",
        "3 invalid spec or command-line value",
        "4 xl failed (its stderr is shown)",
        "5 a wait timed out",
        "6 no such group, replica or NV domain",
    ] {
        assert!(help.contains(line), "{line:?} missing in\n{help}");
    }
}

#[test]
fn render_json_lists_the_files_and_quiet_prints_nothing() {
    let dir = scratch("render-json");
    let spec = manifest("../xl-configs/example-group.yaml");
    let out = nvctl(&["--json", "render", &spec, "-o", &dir.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((&v["command"], &v["ok"]), (&"render".into(), &true.into()));
    assert_eq!(
        (&v["group"], &v["error"]),
        (&"web".into(), &serde_json::Value::Null)
    );
    assert_eq!(
        (&v["created"], &v["destroyed"]),
        (&serde_json::json!([]), &serde_json::json!([]))
    );
    let files: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(files.len(), 5, "{v}");
    assert!(
        files.iter().all(|f| std::path::Path::new(f).is_file()),
        "{files:?}"
    );
    assert!(files.contains(&dir.join("domain-nv.yaml").to_string_lossy().as_ref()));
    let out = nvctl(&["render", &spec, "-o", &dir.to_string_lossy(), "-q"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        (text(&out.stdout), text(&out.stderr)),
        (String::new(), String::new())
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn json_errors_have_kind_and_keep_the_exit_status() {
    let dir = scratch("bad-json");
    let p = dir.join("bad.yaml");
    std::fs::write(&p, "group: web\nnv-domain: {}\n").unwrap();
    let out = nvctl(&[
        "--json",
        "-q",
        "render",
        &p.to_string_lossy(),
        "-o",
        &dir.to_string_lossy(),
    ]);
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((&v["command"], &v["ok"]), (&"render".into(), &false.into()));
    assert_eq!(
        (&v["error"]["kind"], &v["error"]["exit_status"]),
        (&"invalid".into(), &3.into())
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid spec"),
        "{v}"
    );
    assert!(
        text(&out.stderr).starts_with("nvctl: error: invalid spec"),
        "errors still on stderr"
    );
    // a failure of no kind: exit 1, kind "other"; the group is the one on the command line
    let out = nvctl(&[
        "--json",
        "--xenstore",
        "/nonexistent/socket",
        "status",
        "web",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&v["command"], &v["group"]),
        (&"status".into(), &"web".into())
    );
    assert_eq!(
        (&v["error"]["kind"], &v["error"]["exit_status"]),
        (&"other".into(), &1.into())
    );
    // --json is global: it goes before or after the subcommand, and -q with -v is a usage error
    let out = nvctl(&["--json", "reliability", "--r-vm", "0.9", "--r-hv", "0.99"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["policies"].is_array(), "{v}");
    assert_eq!(nvctl(&["-q", "-v", "status"]).status.code(), Some(2));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn completions_know_every_subcommand_and_option() {
    for shell in ["bash", "zsh", "fish"] {
        let out = nvctl(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for word in [
            "render",
            "up",
            "down",
            "status",
            "replace",
            "patch",
            "watch",
            "reliability",
            "completions",
            "man",
            "state-dir",
            "json",
            "quiet",
            "r-vm",
            "soak",
        ] {
            assert!(script.contains(word), "{shell}: {word} missing");
        }
    }
    assert!(text(&nvctl(&["completions", "bash"]).stdout).contains("complete -F _nvctl"));
    assert!(text(&nvctl(&["completions", "zsh"]).stdout).starts_with("#compdef nvctl"));
    assert_eq!(nvctl(&["completions", "tcsh"]).status.code(), Some(2));
}

#[test]
fn man_page_renders() {
    let out = nvctl(&["man"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let roff = text(&out.stdout);
    assert!(roff.contains(".TH nvctl 8"), "{roff}");
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH OPTIONS", ".SH SUBCOMMANDS"] {
        assert!(roff.contains(section), "{section} missing");
    }
    let page = scratch("man").join("nvctl.8");
    std::fs::write(&page, &roff).unwrap();
    // with man(1) installed, the page must also render to text that names the commands
    match Command::new("man")
        .args(["-l", &page.to_string_lossy()])
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
    {
        Ok(out) if out.status.success() => {
            let page = text(&out.stdout);
            for word in [
                "NAME",
                "SYNOPSIS",
                "nvctl-reliability",
                "--state-dir",
                "--json",
            ] {
                assert!(page.contains(word), "{word} missing in\n{page}");
            }
        }
        other => eprintln!("man -l not available ({other:?}); checked the roff header only"),
    }
    std::fs::remove_dir_all(page.parent().unwrap()).unwrap();
}
