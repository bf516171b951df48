//! Spec validation: every error names the field and, where it can be found, the line.

use toolstack_plugin::spec::{GroupSpec, SpecError};

const GOOD: &str = include_str!("../../xl-configs/example-group.yaml");

fn errors(text: &str) -> Vec<SpecError> {
    GroupSpec::parse(text)
        .expect_err("the spec should be rejected")
        .0
}

/// The single error of `text`, checked for field, line and a piece of the message.
fn one(text: &str, field: &str, line: Option<usize>, msg: &str) {
    let e = errors(text);
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!((e[0].field.as_str(), e[0].line), (field, line), "{}", e[0]);
    assert!(
        e[0].message.contains(msg),
        "{:?} does not contain {msg:?}",
        e[0].message
    );
}

/// 1-based line of the first line of GOOD containing `needle`.
fn line_of(needle: &str) -> usize {
    GOOD.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not in the example"))
        + 1
}

fn edit(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from} not in the example");
    GOOD.replacen(from, to, 1)
}

#[test]
fn the_example_spec_is_valid() {
    let spec = GroupSpec::parse(GOOD).unwrap();
    assert_eq!(
        (
            spec.group.as_str(),
            spec.nv_name().as_str(),
            spec.replicas.len()
        ),
        ("web", "web-nv", 3)
    );
    assert!(spec.auto_repair);
}

#[test]
fn serde_errors_carry_field_and_line() {
    one(
        &edit(
            "    memory: 384\n  - name: r2",
            "    memory: lots\n  - name: r2",
        ),
        "replicas[1].memory",
        Some(line_of("- name: r2") - 1),
        "invalid type",
    );
    one(
        &edit("  vcpus: 2\n  external:", "  vcpu: 2\n  external:"),
        "nv-domain",
        Some(line_of("vcpus: 2")),
        "unknown field `vcpu`",
    );
    one(
        &edit("  policy: majority ", "  policy: plurality "),
        "service.policy",
        Some(line_of("policy: majority")),
        "unknown variant `plurality`",
    );
    // a missing field is reported at its mapping
    let e = errors(&edit(
        "    kernel: /srv/nv/alpine/vmlinuz\n    image: /srv/nv/alpine/redis",
        "    image: /srv/nv/alpine/redis",
    ));
    assert_eq!(
        (e[0].field.as_str(), e[0].line),
        ("replicas[1]", Some(line_of("- name: r1"))),
        "{}",
        e[0]
    );
    assert!(e[0].message.contains("missing field `kernel`"), "{}", e[0]);
    // broken YAML
    let e = errors("group: [web\n");
    assert!(e[0].line.is_some(), "{}", e[0]);
}

#[test]
fn semantic_errors_name_field_and_line() {
    one(
        &edit("group: web", "group: we b"),
        "group",
        Some(line_of("group: web")),
        "invalid name",
    );
    // every replica link is addressed the same: a replica's own address is an unknown key
    one(
        &edit(
            "    memory: 384\n  - name: r2",
            "    memory: 384\n    address: 10.77.2.2/24\n  - name: r2",
        ),
        "replicas[1]",
        Some(line_of("- name: r2")),
        "unknown field `address`",
    );
    one(
        &edit("  address: 10.77.0.2/24 ", "  address: 10.77.0.2 "),
        "replica-link.address",
        Some(line_of("10.77.0.2/24")),
        "bad address",
    );
    one(
        &edit("  address: 10.77.0.2/24 ", "  address: 192.0.2.77/24 "),
        "replica-link.address",
        Some(line_of("10.77.0.2/24")),
        "external subnet",
    );
    one(
        &edit(
            "  address: 10.77.0.2/24 ",
            "  nv-address: 10.77.4.1\n  address: 10.77.0.2/24 ",
        ),
        "replica-link.nv-address",
        Some(line_of("10.77.0.2/24")),
        "not another host address",
    );
    one(
        &edit("  mac: 00:16:3e:4d:00:02", "  mac: 00:16:3e:c0:00:0a"),
        "replica-link.mac",
        Some(line_of("mac: 00:16:3e:4d:00:02")),
        "also nv-domain.external.mac",
    );
    one(
        &edit("  mac: 00:16:3e:4d:00:02", "  mac: 01:00:5e:00:00:01"),
        "replica-link.mac",
        Some(line_of("mac: 00:16:3e:4d:00:02")),
        "unicast",
    );
    one(
        &edit("  - name: r1", "  - name: r0"),
        "replicas[1].name",
        Some(line_of("- name: r1")),
        "duplicate name",
    );
    one(
        &edit("  - name: r1", "  - name: r1-g2"),
        "replicas[1].name",
        Some(line_of("- name: r1")),
        "replacements",
    );
    one(
        &edit("    memory: 512", "    memory: 0"),
        "replicas[0].memory",
        Some(line_of("memory: 512")),
        "> 0",
    );
    one(
        &edit("    vcpus: 2\n\nauto-repair", "    vcpus: 0\n\nauto-repair"),
        "replicas[2].vcpus",
        Some(line_of("auto-repair:") - 2),
        "> 0",
    );
    one(
        &edit("      listen: 6379 ", "      listen: 0 "),
        "service.ports[0].listen",
        Some(line_of("listen: 6379")),
        "> 0",
    );
    one(
        &edit("  buffer-limit: 1048576", "  buffer-limit: 100"),
        "service.buffer-limit",
        Some(line_of("buffer-limit")),
        "minimum 4096",
    );
    one(
        &edit("  status-file: /run", "  status-file: run"),
        "service.status-file",
        Some(line_of("status-file")),
        "absolute",
    );
    one(
        &edit("    gateway: 192.0.2.1", "    gateway: 10.0.0.1"),
        "nv-domain.external.gateway",
        Some(line_of("gateway:")),
        "not another host",
    );
    let e = errors(&edit(
        "    bridge: xenbr0 ",
        "    pci: [\"0000:03:00.0\"]\n    bridge: xenbr0 ",
    ));
    assert_eq!(
        (e[0].field.as_str(), e[0].line),
        (
            "nv-domain.external.bridge",
            Some(line_of("bridge: xenbr0") + 1)
        ),
        "{}",
        e[0]
    );
    assert!(
        e[0].message.contains("exclude") && e[1].field == "nv-domain.external.pci",
        "{e:?}"
    );
    one(
        &edit("  policy: majority ", "  policy: primary-backup "),
        "service.primary",
        Some(line_of("service:")),
        "required",
    );
    one(
        &edit("  policy: majority ", "  policy: majority\n  primary: r0 "),
        "service.primary",
        Some(line_of("policy: majority") + 1),
        "only allowed",
    );
}

#[test]
fn group_level_rules() {
    // majority needs three replicas: drop r2
    let two = GOOD[..GOOD.find("  - name: r2").unwrap()].to_string();
    one(
        &two,
        "service.policy",
        Some(line_of("policy: majority")),
        "at least 3 replicas",
    );
    // with unanimous two are fine
    GroupSpec::parse(&two.replacen("policy: majority", "policy: unanimous", 1)).unwrap();
    // PCI passthrough needs a PV NV domain
    let pci = edit("    bridge: xenbr0 ", "    pci: [\"0000:03:00.0\"] ").replacen(
        "    mac: 00:16:3e:c0:00:0a\n",
        "",
        1,
    );
    one(
        &pci,
        "nv-domain.external.pci",
        Some(line_of("bridge: xenbr0")),
        "type: pv",
    );
    GroupSpec::parse(&pci.replacen("  memory: 256", "  type: pv\n  memory: 256", 1)).unwrap();
    // several errors are all reported
    let e =
        errors(&edit("    memory: 512", "    memory: 0").replacen("group: web", "group: \"\"", 1));
    let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["group", "replicas[0].memory"]);
}

#[test]
fn flow_style_specs_get_the_nearest_line() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/pb-pci.yaml"
    ))
    .unwrap();
    GroupSpec::parse(&text).unwrap();
    let bad = text.replacen(
        "memory: 256, cpus: \"3,5-6\"",
        "memory: 0, cpus: \"3,5-6\"",
        1,
    );
    let e = errors(&bad);
    let line = text.lines().position(|l| l.contains("name: b,")).unwrap() + 1;
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!(
        (e[0].field.as_str(), e[0].line),
        ("replicas[1].memory", Some(line)),
        "{}",
        e[0]
    );
}

#[test]
fn values_reaching_xl_configs_follow_their_own_grammar() {
    // a bridge with a comma would add `script=` (a hotplug script run as root in Dom0)
    one(
        &edit("bridge: xenbr0", "bridge: \"xenbr0,script=/tmp/x\""),
        "nv-domain.external.bridge",
        Some(line_of("bridge: xenbr0")),
        "interface name",
    );
    one(
        &edit("bridge: xenbr0", "bridge: a-bridge-name-too-long"),
        "nv-domain.external.bridge",
        Some(line_of("bridge: xenbr0")),
        "interface name",
    );
    // an image with a quote and a comma would add a second disk
    one(
        &edit(
            "image: /srv/nv/debian/redis-7.2.img",
            "image: \"/srv/a.img', 'target=/dev/sda\"",
        ),
        "replicas[0].image",
        Some(line_of("image: /srv/nv/debian/redis-7.2.img")),
        "quote",
    );
    for (bad, why) in [
        ("relative/redis.img", "absolute"),
        ("/srv/../etc/shadow", ".."),
        ("/srv/a,b.img", "comma"),
        ("/srv/a=b.img", "="),
        ("/srv/a\\\\b.img", "backslash"),
        ("/srv/a\\nb.img", "control"),
        ("/srv/\\\"a.img", "quote"),
    ] {
        one(
            &edit(
                "image: /srv/nv/debian/redis-7.2.img",
                &format!("image: \"{bad}\""),
            ),
            "replicas[0].image",
            Some(line_of("image: /srv/nv/debian/redis-7.2.img")),
            why,
        );
    }
    one(
        &edit(
            "kernel: /var/lib/domain-nv/vmlinuz",
            "kernel: \"/var/lib/domain-nv/vmlinuz\\nmemory = 9999\"",
        ),
        "nv-domain.kernel",
        Some(line_of("kernel: /var/lib/domain-nv/vmlinuz")),
        "control",
    );
    one(
        &edit(
            "initramfs: /srv/nv/debian/initrd.img",
            "initramfs: srv/initrd.img",
        ),
        "replicas[0].initramfs",
        Some(line_of("initramfs: /srv/nv/debian/initrd.img")),
        "absolute",
    );
    one(
        &edit("mac: 00:16:3e:c0:00:0a", "mac: 00:00:00:00:00:00"),
        "nv-domain.external.mac",
        Some(line_of("mac: 00:16:3e:c0:00:0a")),
        "zero",
    );
    one(
        &edit("  mac: 00:16:3e:4d:00:02", "  mac: 00:00:00:00:00:00"),
        "replica-link.mac",
        Some(line_of("mac: 00:16:3e:4d:00:02")),
        "zero",
    );
    one(
        &edit("    memory: 512", "    memory: 99999999"),
        "replicas[0].memory",
        Some(line_of("    memory: 512")),
        "at most",
    );
    one(
        &edit("  vcpus: 2", "  vcpus: 100000"),
        "nv-domain.vcpus",
        Some(line_of("  vcpus: 2")),
        "at most",
    );
    one(
        &edit(
            "extra: console=hvc0 root=/dev/xvda ro\n    memory: 512",
            "extra: \"console=hvc0\\nroot=/dev/xvda\"\n    memory: 512",
        ),
        "replicas[0].extra",
        Some(line_of("extra: console=hvc0 root=/dev/xvda ro")),
        "control",
    );
    one(
        &edit(
            "extra: console=hvc0 root=/dev/xvda ro\n    memory: 512",
            "extra: 'console=hvc0 \"quoted\"'\n    memory: 512",
        ),
        "replicas[0].extra",
        Some(line_of("extra: console=hvc0 root=/dev/xvda ro")),
        "quote",
    );
    // the NV domain must not be named like a later replacement of a replica
    one(
        &edit(
            "  kernel: /var/lib/domain-nv/vmlinuz",
            "  name: web-r1-g2\n  kernel: /var/lib/domain-nv/vmlinuz",
        ),
        "nv-domain.name",
        Some(line_of("kernel: /var/lib/domain-nv/vmlinuz")),
        "replacement",
    );
    // the PV command line holds 1023 bytes, the `ip=` nvctl appends included
    let long = "x".repeat(1000);
    one(
        &edit(
            "extra: console=hvc0 root=/dev/xvda ro\n    memory: 512",
            &format!("extra: {long}\n    memory: 512"),
        ),
        "replicas[0].extra",
        Some(line_of("extra: console=hvc0 root=/dev/xvda ro")),
        "command line",
    );
    let long = "x".repeat(1024);
    one(
        &edit(
            "  initramfs: /var/lib/domain-nv/initramfs.cpio.gz",
            &format!("  initramfs: /var/lib/domain-nv/initramfs.cpio.gz\n  extra: {long}"),
        ),
        "nv-domain.extra",
        Some(line_of("initramfs: /var/lib/domain-nv/initramfs.cpio.gz") + 1),
        "command line",
    );
}

#[test]
fn isolation_and_operation_keys_follow_their_grammars() {
    one(
        &edit("    memory: 512", "    memory: 512\n    cpus: 3-1"),
        "replicas[0].cpus",
        Some(line_of("    memory: 512") + 1),
        "backwards",
    );
    one(
        &edit("  vcpus: 2", "  vcpus: 2\n  cpus: \"0,all\""),
        "nv-domain.cpus",
        Some(line_of("  vcpus: 2") + 1),
        "CPU list",
    );
    one(
        &edit(
            "    memory: 512",
            "    memory: 512\n    seclabel: \"a:b:c,d\"",
        ),
        "replicas[0].seclabel",
        Some(line_of("    memory: 512") + 1),
        "security label",
    );
    one(
        &edit("  vcpus: 2", "  vcpus: 2\n  seclabel: domU_t"),
        "nv-domain.seclabel",
        Some(line_of("  vcpus: 2") + 1),
        "security label",
    );
    one(
        &edit(
            "    memory: 512",
            "    memory: 512\n    rate: \"10Mb/s,script=x\"",
        ),
        "replicas[0].rate",
        Some(line_of("    memory: 512") + 1),
        "vif rate",
    );
    one(
        &edit(
            "    mac: 00:16:3e:c0:00:0a",
            "    mac: 00:16:3e:c0:00:0a\n    rate: 10Mbit",
        ),
        "nv-domain.external.rate",
        Some(line_of("mac: 00:16:3e:c0:00:0a") + 1),
        "vif rate",
    );
    let ok = edit("    memory: 512", "    memory: 512\n    rate: 10Mb/s@20ms\n    cpus: 0-1\n    seclabel: system_u:system_r:domU_t");
    let spec = GroupSpec::parse(&ok).unwrap();
    assert_eq!(spec.replicas[0].cpus.as_deref(), Some("0-1"));
}

#[test]
fn isolated_replicas_need_disjoint_cpus() {
    let pinned = edit("    memory: 512", "    memory: 512\n    cpus: 2-3")
        .replacen("    memory: 384\n", "    memory: 384\n    cpus: \"4\"\n", 1)
        .replacen("    vcpus: 2\n", "    vcpus: 2\n    cpus: 5-6\n", 1);
    let isolated = pinned.replace("auto-repair: true", "auto-repair: true\nisolate-cpus: true");
    assert!(GroupSpec::parse(&isolated).unwrap().isolate_cpus);
    let line_r2 = isolated.lines().position(|l| l == "    cpus: 5-6").unwrap() + 1;
    one(
        &isolated.replace("    cpus: 5-6", "    cpus: 1-3"),
        "replicas[2].cpus",
        Some(line_r2),
        "shares CPU 2 with replicas[0]",
    );
    // without the flag, shared CPUs are allowed
    assert!(GroupSpec::parse(&pinned.replace("    cpus: 5-6", "    cpus: 1-3")).is_ok());
    // with it, every replica must be pinned
    let unpinned = isolated.replace("    cpus: \"4\"\n", "");
    let e = errors(&unpinned);
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!(e[0].field, "replicas[1].cpus");
    assert!(e[0].message.contains("required"), "{}", e[0]);
    let line_r1 = unpinned
        .lines()
        .position(|l| l.contains("name: r1"))
        .unwrap()
        + 1;
    assert_eq!(e[0].line, Some(line_r1));
}

#[test]
fn xl_extra_keys_are_allowed_ones_with_values_by_their_grammars() {
    let at = |key: &str, value: &str| {
        edit(
            "    memory: 512",
            &format!("    memory: 512\n    xl-extra:\n      {key}: {value}"),
        )
    };
    let line = line_of("    memory: 512") + 2;
    for (key, value, msg) in [
        ("cpu_weight", "0", "not an integer in 1..=65535"),
        ("cpu_weight", "\"256\"", "not an integer"),
        ("cap", "12801", "not an integer in 0..=12800"),
        ("on_crash", "reboot", "is not one of destroy, restart"),
        (
            "on_reboot",
            "\"destroy\\\"\\nvif = [ 'script=x' ]\"",
            "is not one of",
        ),
        ("tsc_mode", "fast", "is not one of default"),
        ("localtime", "2", "not true or false"),
        ("maxmem", "256", "less than `memory` (512 MiB)"),
        // keys nvctl renders itself, and keys naming devices, scripts or files
        ("kernel", "/boot/x", "not an xl key nvctl passes through"),
        ("vif", "x", "not an xl key nvctl passes through"),
        ("disk", "x", "not an xl key nvctl passes through"),
        ("bootloader", "pygrub", "not an xl key nvctl passes through"),
        ("device_model_override", "/bin/sh", "not an xl key"),
    ] {
        one(
            &at(key, value),
            &format!("replicas[0].xl-extra.{key}"),
            Some(line),
            msg,
        );
    }
    one(
        &edit(
            "  vcpus: 2",
            "  vcpus: 2\n  xl-extra: { on_poweroff: preserve, tsc_mode: 3 }",
        ),
        "nv-domain.xl-extra.tsc_mode",
        Some(line_of("  vcpus: 2") + 1),
        "is not one of",
    );
    let ok = at(
        "cpu_weight",
        "512\n      on_crash: destroy\n      localtime: true\n      maxmem: 1024\n      rtc_timeoffset: -3600",
    );
    let spec = GroupSpec::parse(&ok).unwrap();
    assert_eq!(spec.replicas[0].xl_extra.len(), 5);
}
