//! Golden-file tests of `nvctl render` and a check that the domain-nv config has exactly the
//! documented format. Regenerate the goldens with `UPDATE_GOLDEN=1 cargo test -p toolstack-plugin`.

use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use toolstack_plugin::render::{self, Instance};
use toolstack_plugin::spec::GroupSpec;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// The golden specs: (golden subdirectory, spec file).
fn specs() -> Vec<(&'static str, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    vec![
        (
            "example-group",
            root.join("../xl-configs/example-group.yaml"),
        ),
        ("pb-pci", golden_dir().join("pb-pci.yaml")),
        ("xenlab-group", root.join("../xl-configs/xenlab-group.yaml")),
    ]
}

fn parse(path: &Path) -> GroupSpec {
    let text = std::fs::read_to_string(path).unwrap();
    GroupSpec::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn rendering_matches_goldens() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut mismatches = Vec::new();
    for (name, spec_path) in specs() {
        let files = render::render_all(&parse(&spec_path));
        let dir = golden_dir().join(name);
        if update {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
        }
        let expected: BTreeSet<String> = files.iter().map(|(f, _)| f.clone()).collect();
        let present: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
                    dir.display()
                )
            })
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        if !update && present != expected {
            mismatches.push(format!(
                "{name}: golden files {present:?}, rendered {expected:?}"
            ));
        }
        for (file, text) in &files {
            let p = dir.join(file);
            if update {
                std::fs::write(&p, text).unwrap();
                continue;
            }
            match std::fs::read_to_string(&p) {
                Ok(golden) if golden == *text => {}
                Ok(golden) => mismatches.push(format!(
                    "{}: differs from the golden\n--- golden\n{golden}--- rendered\n{text}",
                    p.display()
                )),
                Err(e) => mismatches.push(format!("{}: {e}", p.display())),
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{}\n(run with UPDATE_GOLDEN=1 to accept the new output)",
        mismatches.join("\n")
    );
}

#[test]
fn rendering_is_stable() {
    for (_, p) in specs() {
        let spec = parse(&p);
        assert_eq!(render::render_all(&spec), render::render_all(&spec));
    }
}

// The domain-nv config format of the issue, field by field; unknown fields are errors, so an
// extra or misspelt key in the rendered config fails the test.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct NvConfig {
    policy: String,
    primary: Option<String>,
    straggler_timeout_ms: u64,
    buffer_limit: u64,
    connect_timeout_ms: u64,
    status_file: Option<String>,
    external: External,
    services: Vec<Svc>,
    replicas: Vec<Rep>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct External {
    link: Link,
    address: String,
    gateway: Option<String>,
}

#[derive(Deserialize, Debug, PartialEq)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
enum Link {
    Tap { name: String, netns: Option<String> },
    Raw { interface: String },
    Vif { name: String },
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Svc {
    name: String,
    listen: u16,
    replica_port: u16,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Rep {
    name: String,
    link: Link,
    address: String,
    replica_address: String,
}

#[test]
fn domain_nv_config_has_the_documented_format() {
    let spec = parse(&specs()[0].1);
    let cfg: NvConfig =
        serde_yaml::from_str(&render::nv_config(&spec, &render::initial_instances(&spec))).unwrap();
    assert_eq!(cfg.policy, "majority");
    assert_eq!(cfg.primary, None);
    assert_eq!(
        (
            cfg.straggler_timeout_ms,
            cfg.connect_timeout_ms,
            cfg.buffer_limit
        ),
        (2000, 2000, 1 << 20)
    );
    assert_eq!(
        cfg.status_file.as_deref(),
        Some("/run/domain-nv/status.json")
    );
    assert_eq!(
        cfg.external.link,
        Link::Raw {
            interface: "eth0".into()
        }
    );
    assert_eq!(
        (
            cfg.external.address.as_str(),
            cfg.external.gateway.as_deref()
        ),
        ("192.0.2.10/24", Some("192.0.2.1"))
    );
    assert_eq!(cfg.services.len(), 1);
    assert_eq!(
        (
            cfg.services[0].name.as_str(),
            cfg.services[0].listen,
            cfg.services[0].replica_port
        ),
        ("redis", 6379, 6379)
    );
    let reps: Vec<(&str, &Link, &str, &str)> = cfg
        .replicas
        .iter()
        .map(|r| {
            (
                r.name.as_str(),
                &r.link,
                r.address.as_str(),
                r.replica_address.as_str(),
            )
        })
        .collect();
    let vif = |n: &str| Link::Vif { name: n.into() };
    assert_eq!(
        reps,
        vec![
            ("r0", &vif("r0"), "10.77.1.1/24", "10.77.1.2"),
            ("r1", &vif("r1"), "10.77.2.1/24", "10.77.2.2"),
            ("r2", &vif("r2"), "10.77.3.254/24", "10.77.3.2"),
        ]
    );
    // primary-backup names the current instance of the primary
    let pb = parse(&specs()[1].1);
    let mut inst = render::initial_instances(&pb);
    inst[1] = Instance {
        generation: 3,
        ..inst[1].clone()
    };
    let cfg: NvConfig = serde_yaml::from_str(&render::nv_config(&pb, &inst)).unwrap();
    assert_eq!(
        (cfg.policy.as_str(), cfg.primary.as_deref()),
        ("primary-backup", Some("b-g3"))
    );
    assert_eq!(
        cfg.external.link,
        Link::Raw {
            interface: "enp0s3".into()
        }
    );
    assert_eq!(cfg.replicas[1].name, "b-g3");
    assert_eq!(cfg.services[1].replica_port, 8080);
    assert!(cfg.status_file.is_none() && cfg.external.gateway.is_none());
}

#[test]
fn readme_shows_the_current_goldens_and_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let spec = std::fs::read_to_string(root.join("../xl-configs/example-group.yaml")).unwrap();
    assert!(
        readme.contains(spec.trim_end()),
        "README.md does not show xl-configs/example-group.yaml"
    );
    for f in ["web-nv.cfg", "web-r0.cfg", "domain-nv.yaml"] {
        let g = std::fs::read_to_string(golden_dir().join("example-group").join(f)).unwrap();
        assert!(
            readme.contains(g.trim_end()),
            "README.md does not show the current golden {f}"
        );
    }
}
