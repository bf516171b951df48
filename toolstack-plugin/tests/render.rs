//! Golden-file tests of `nvctl render` and checks that the domain-nv config it writes is read by
//! domain-nv's own parser ([`nv_schema::config::Config::from_yaml`]) to the intended values.
//! Regenerate the goldens with `UPDATE_GOLDEN=1 cargo test -p toolstack-plugin`.

use nv_schema::config::{Config, LinkConfig, PolicyName};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
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
        ("services", golden_dir().join("services.yaml")),
        ("xenlab-solo", root.join("../xl-configs/xenlab-solo.yaml")),
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
        let files = render::render_all(&parse(&spec_path)).unwrap();
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
        assert_eq!(
            render::render_all(&spec).unwrap(),
            render::render_all(&spec).unwrap()
        );
    }
}

/// The rendered domain-nv config of a spec's initial instances, read by domain-nv's parser.
fn rendered_config(spec: &GroupSpec, instances: &[Instance]) -> Config {
    let text = render::nv_config(spec, instances).unwrap();
    Config::from_yaml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn domain_nv_config_has_the_documented_format() {
    let spec = parse(&specs()[0].1);
    let cfg = rendered_config(&spec, &render::initial_instances(&spec));
    assert_eq!(cfg.policy, PolicyName::Majority);
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
        LinkConfig::Raw {
            interface: "eth0".into(),
            netns: None,
            offload: true
        }
    );
    assert_eq!(
        (cfg.external.address.to_string(), cfg.external.gateway),
        (
            "192.0.2.10/24".to_string(),
            Some(Ipv4Addr::new(192, 0, 2, 1))
        )
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
    let reps: Vec<(&str, &LinkConfig, String, String)> = cfg
        .replicas
        .iter()
        .map(|r| {
            (
                r.name.as_str(),
                &r.link,
                r.address.to_string(),
                r.replica_address.to_string(),
            )
        })
        .collect();
    let vif = |n: &str| LinkConfig::Vif { name: n.into() };
    let s = |t: &str| t.to_string();
    assert_eq!(
        reps,
        vec![
            ("r0", &vif("r0"), s("10.77.0.1/24"), s("10.77.0.2")),
            ("r1", &vif("r1"), s("10.77.0.1/24"), s("10.77.0.2")),
            ("r2", &vif("r2"), s("10.77.0.1/24"), s("10.77.0.2")),
        ]
    );
    // primary-backup names the current instance of the primary
    let pb = parse(&specs()[1].1);
    let mut inst = render::initial_instances(&pb);
    inst[1] = Instance {
        generation: 3,
        ..inst[1].clone()
    };
    let cfg = rendered_config(&pb, &inst);
    assert_eq!(
        (cfg.policy, cfg.primary.as_deref()),
        (PolicyName::PrimaryBackup, Some("b-g3"))
    );
    assert_eq!(
        cfg.external.link,
        LinkConfig::Raw {
            interface: "enp0s3".into(),
            netns: None,
            offload: true
        }
    );
    assert_eq!(cfg.replicas[1].name, "b-g3");
    assert_eq!(cfg.services[1].replica_port, 8080);
    assert!(cfg.status_file.is_none() && cfg.external.gateway.is_none());
}

#[test]
fn golden_configs_read_as_the_rendered_values() {
    for (name, spec_path) in specs() {
        let spec = parse(&spec_path);
        let golden = golden_dir().join(name).join(render::NV_CONFIG_FILE);
        let text = std::fs::read_to_string(&golden).unwrap();
        let from_golden =
            Config::from_yaml(&text).unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
        let rendered = render::domain_nv_config(&spec, &render::initial_instances(&spec)).unwrap();
        assert_eq!(from_golden, rendered, "{}", golden.display());
    }
}

/// The lab's spec, through `nvctl render`, into domain-nv's parser: the same values come out,
/// and they are the lab's.
#[test]
fn lab_config_round_trips_through_domain_nv_parser() {
    let spec = parse(&specs()[2].1);
    let instances = render::initial_instances(&spec);
    let value = render::domain_nv_config(&spec, &instances).unwrap();
    let files = render::render_all(&spec).unwrap();
    let (_, text) = files
        .iter()
        .find(|(f, _)| f == render::NV_CONFIG_FILE)
        .unwrap();
    assert_eq!(Config::from_yaml(text).unwrap(), value, "{text}");
    assert_eq!(rendered_config(&spec, &instances), value);
    assert_eq!(value.policy, PolicyName::Majority);
    assert_eq!(
        (value.straggler_timeout_ms, value.connect_timeout_ms),
        (60000, 5000)
    );
    assert_eq!(value.external.address.to_string(), "192.168.77.10/24");
    let names: Vec<&str> = value.replicas.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["r0", "r1", "r2"]);
    assert!(value.replicas.iter().all(|r| r.link
        == LinkConfig::Vif {
            name: r.name.clone()
        }));
    // longer than one xenstore message or not, the hand-off carries it unchanged
    let pieces = nv_schema::handoff::split_chunks(text);
    assert_eq!(Config::from_yaml(&pieces.concat()).unwrap(), value);
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

/// The lab's one-replica group (the baseline checks): primary-backup of r0 and a backup that
/// boots the faulty image, on an external address of its own beside the main group's.
#[test]
fn lab_solo_config_is_a_primary_with_one_backup() {
    let (name, path) = &specs()[4];
    assert_eq!(*name, "xenlab-solo");
    let spec = parse(path);
    let cfg = rendered_config(&spec, &render::initial_instances(&spec));
    assert_eq!(
        (cfg.policy, cfg.primary.as_deref()),
        (PolicyName::PrimaryBackup, Some("r0"))
    );
    let names: Vec<&str> = cfg.replicas.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["r0", "r1"]);
    assert_eq!(cfg.external.address.to_string(), "192.168.77.11/24");
    let files = render::render_all(&spec).unwrap();
    let r1 = files.iter().find(|(f, _)| f == "solo-r1.cfg").unwrap();
    assert!(r1.1.contains("/lab/replica-faulty-initrd.gz"), "{}", r1.1);
}

#[test]
fn port_transport_protocol_and_masks_reach_the_domain_nv_config() {
    use nv_schema::config::{Protocol, Transport};
    let (name, path) = &specs()[3];
    assert_eq!(*name, "services");
    let spec = parse(path);
    let cfg = rendered_config(&spec, &render::initial_instances(&spec));
    let got: Vec<(&str, u16, Transport, Protocol, Vec<&str>)> = cfg
        .services
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.listen,
                s.transport,
                s.protocol,
                s.mask_headers.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "web",
                80,
                Transport::Tcp,
                Protocol::Http,
                vec!["ETag", "Last-Modified"]
            ),
            ("kv", 6379, Transport::Tcp, Protocol::Redis, vec![]),
            ("dns", 53, Transport::Udp, Protocol::Dns, vec![]),
            ("dns-tcp", 53, Transport::Tcp, Protocol::Bytes, vec![]),
        ]
    );
    // a spec without the keys renders TCP bytes services, the keys left out of the YAML
    let plain = render::nv_config(&parse(&specs()[0].1), &[]).unwrap();
    for key in ["transport", "protocol", "mask_headers"] {
        assert!(!plain.contains(key), "{key} in\n{plain}");
    }
}
