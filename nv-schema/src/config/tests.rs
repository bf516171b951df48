//! Tests of parsing, validation and the YAML round trip.

use super::*;

const GOOD: &str = "\
policy: majority
straggler_timeout_ms: 500
external:
  link: { kind: tap, name: ext0, netns: nv-client }
  address: 10.77.0.1/24
services:
  - name: redis
    listen: 6379
    replica_port: 6379
replicas:
  - name: r0
    link: { kind: tap, name: r0, netns: nv-r0 }
    address: 10.77.1.1/24
    replica_address: 10.77.1.2
  - name: r1
    link: { kind: tap, name: r1, netns: nv-r1 }
    address: 10.77.2.1/24
    replica_address: 10.77.2.2
  - name: r2
    link: { kind: vif, name: r2 }
    address: 10.77.3.1/24
    replica_address: 10.77.3.2
";

fn error_for(from: &str, to: &str) -> ConfigError {
    assert!(GOOD.contains(from), "{from}");
    Config::from_yaml(&GOOD.replacen(from, to, 1)).unwrap_err()
}

#[test]
fn good_config_parses_with_defaults() {
    let c = Config::from_yaml(GOOD).unwrap();
    assert_eq!(c.replicas.len(), 3);
    assert_eq!(c.buffer_limit, 1 << 20);
    assert_eq!(c.straggler_timeout_ms, 500);
    assert_eq!(c.replicas[2].link, LinkConfig::Vif { name: "r2".into() });
    assert_eq!(
        c.replicas[0].link,
        LinkConfig::Tap {
            name: "r0".into(),
            netns: Some("nv-r0".into()),
            offload: true
        }
    );
}

#[test]
fn tap_offload_can_be_switched_off_per_link() {
    let c = Config::from_yaml(&GOOD.replace(
        "name: r1, netns: nv-r1",
        "name: r1, netns: nv-r1, offload: false",
    ))
    .unwrap();
    assert!(matches!(
        c.replicas[0].link,
        LinkConfig::Tap { offload: true, .. }
    ));
    assert!(matches!(
        c.replicas[1].link,
        LinkConfig::Tap { offload: false, .. }
    ));
}

#[test]
fn raw_links_offload_by_default_and_can_switch_it_off() {
    let raw = |link: &str| {
        Config::from_yaml(&GOOD.replace("{ kind: tap, name: ext0, netns: nv-client }", link))
            .unwrap()
            .external
            .link
    };
    assert_eq!(
        raw("{ kind: raw, interface: eth0 }"),
        LinkConfig::Raw {
            interface: "eth0".into(),
            netns: None,
            offload: true
        }
    );
    assert_eq!(
        raw("{ kind: raw, interface: eth0, netns: nv-x, offload: false }"),
        LinkConfig::Raw {
            interface: "eth0".into(),
            netns: Some("nv-x".into()),
            offload: false
        }
    );
    let err = Config::from_yaml(&GOOD.replace(
        "{ kind: tap, name: ext0, netns: nv-client }",
        "{ kind: raw, interface: eth0, offload: maybe }",
    ))
    .unwrap_err();
    assert!(
        err.to_string().contains("`external` (line 4)") && err.to_string().contains("boolean"),
        "{err}"
    );
}

#[test]
fn each_mistake_names_its_field_and_line() {
    let cases: &[(&str, &str, &str, usize)] = &[
        (
            "address: 10.77.1.1/24",
            "address: 10.77.1.300/24",
            "replicas[0].address",
            13,
        ),
        (
            "replica_address: 10.77.2.2",
            "replica_adress: 10.77.2.2",
            "replicas[1]",
            18,
        ),
        ("policy: majority", "policy: plurality", "policy", 1),
        ("listen: 6379", "listen: 70000", "services[0].listen", 8),
        ("listen: 6379", "listen: 0", "services[0].listen", 8),
        (
            "kind: tap, name: ext0",
            "kind: tun, name: ext0",
            "external.link.kind",
            4,
        ),
        (
            "replica_address: 10.77.3.2",
            "replica_address: 10.77.9.2",
            "replicas[2].replica_address",
            22,
        ),
        ("  - name: r1", "  - name: r0", "replicas[1].name", 15),
        (
            "straggler_timeout_ms: 500",
            "straggler_timeout_ms: 0",
            "straggler_timeout_ms",
            2,
        ),
        (
            "straggler_timeout_ms: 500",
            "straggler_timeout_ms: soon",
            "straggler_timeout_ms",
            2,
        ),
        (
            "{ kind: vif, name: r2 }",
            "{ kind: tap, name: r1, netns: nv-r1 }",
            "replicas[2].link",
            20,
        ),
        (
            "name: r2 }",
            "name: this-name-is-too-long }",
            "replicas[2].link.name",
            20,
        ),
        (
            "policy: majority",
            "policy: primary-backup\nprimary: r7",
            "primary",
            2,
        ),
        (
            "policy: majority",
            "policy: majority\nprimary: r0",
            "primary",
            2,
        ),
        (
            "straggler_timeout_ms: 500",
            "straggler_timeout_ms: 500\nmtu: 100",
            "mtu",
            3,
        ),
        (
            "straggler_timeout_ms: 500",
            "straggler_timeout_ms: 500\nprobation: { connections: 0 }",
            "probation.connections",
            3,
        ),
        (
            "straggler_timeout_ms: 500",
            "straggler_timeout_ms: 500\ndrain_timeout_ms: 3600001",
            "drain_timeout_ms",
            3,
        ),
        (
            "straggler_timeout_ms: 500",
            "straggler_timeout_ms: 500\nmax_connections: 4\nmax_connections_per_client: 5",
            "max_connections_per_client",
            4,
        ),
        (
            "straggler_timeout_ms: 500",
            "straggler_timeout_ms: 500\nclient_timeout_ms: 86400001",
            "client_timeout_ms",
            3,
        ),
        (
            "straggler_timeout_ms: 500",
            "straggler_timeout_ms: 500\nreplica_timeout_ms: 86400001",
            "replica_timeout_ms",
            3,
        ),
        (
            "straggler_timeout_ms: 500",
            "straggler_timeout_ms: 500\nmemory_budget_mb: 1048577",
            "memory_budget_mb",
            3,
        ),
        (
            "replica_port: 6379",
            "replica_port: 6379\n    protocol: smtp",
            "services[0].protocol",
            10,
        ),
        (
            "replica_port: 6379",
            "replica_port: 6379\n    ordering: random",
            "services[0].ordering",
            10,
        ),
        (
            "replica_port: 6379",
            "replica_port: 6379\n    protocol: redis\n    ordering: serial",
            "services[0].ordering",
            11,
        ),
        (
            "replica_port: 6379",
            "replica_port: 6379\n    mask_headers: [ETag]",
            "services[0].mask_headers",
            10,
        ),
        (
            "replica_port: 6379",
            "replica_port: 6379\n    protocol: http\n    mask_headers: [ETag, Content-Length]",
            "services[0].mask_headers",
            11,
        ),
        (
            "replica_port: 6379",
            "replica_port: 6379\n    protocol: http\n    mask_headers: [\"E Tag\"]",
            "services[0].mask_headers",
            11,
        ),
    ];
    for (from, to, field, line) in cases {
        let e = error_for(from, to);
        assert_eq!(&e.field, field, "{to}: {e}");
        assert_eq!(e.line, Some(*line), "{to}: {e}");
        assert!(e.to_string().contains(field), "{e}");
    }
}

#[test]
fn majority_needs_three_replicas() {
    let two = GOOD.split("  - name: r2").next().unwrap();
    let e = Config::from_yaml(two).unwrap_err();
    assert_eq!(e.field, "policy");
    assert!(e.message.contains("unanimous"), "{e}");
    assert!(Config::from_yaml(&two.replace("policy: majority", "policy: unanimous")).is_ok());
}

#[test]
fn probation_has_defaults_and_is_written_only_when_set() {
    let c = Config::from_yaml(GOOD).unwrap();
    assert_eq!(c.probation, Probation::default());
    assert_eq!(
        (c.probation.connections, c.probation.bytes),
        (DEFAULT_PROBATION_CONNECTIONS, DEFAULT_PROBATION_BYTES)
    );
    assert!(!c.to_yaml().contains("probation"));
    let text = GOOD.replace(
        "straggler_timeout_ms: 500",
        "straggler_timeout_ms: 500\nprobation: { connections: 5 }",
    );
    let c = Config::from_yaml(&text).unwrap();
    assert_eq!(c.probation.connections, 5);
    assert_eq!(c.probation.bytes, DEFAULT_PROBATION_BYTES);
    assert_eq!(Config::from_yaml(&c.to_yaml()).unwrap(), c);
    let e = Config::from_yaml(&text.replace("connections: 5", "connections: 5, days: 1"));
    assert!(e.is_err());
}

#[test]
fn drain_timeout_has_a_default_and_is_written_only_when_set() {
    let c = Config::from_yaml(GOOD).unwrap();
    assert_eq!(c.drain_timeout_ms, DEFAULT_DRAIN_TIMEOUT_MS);
    assert!(!c.to_yaml().contains("drain_timeout_ms"));
    let text = GOOD.replace(
        "straggler_timeout_ms: 500",
        "straggler_timeout_ms: 500\ndrain_timeout_ms: 0",
    );
    let c = Config::from_yaml(&text).unwrap();
    assert_eq!(c.drain_timeout_ms, 0);
    assert_eq!(Config::from_yaml(&c.to_yaml()).unwrap(), c);
}

#[test]
fn limits_default_to_none_and_are_written_only_when_set() {
    let c = Config::from_yaml(GOOD).unwrap();
    assert_eq!(
        (
            c.max_connections,
            c.max_connections_per_client,
            c.client_timeout_ms,
            c.replica_timeout_ms
        ),
        (0, 0, 0, 0)
    );
    let yaml = c.to_yaml();
    assert!(!yaml.contains("max_connections") && !yaml.contains("client_timeout"));
    assert!(!yaml.contains("replica_timeout"));
    let text = GOOD.replace(
        "straggler_timeout_ms: 500",
        "straggler_timeout_ms: 500\nmax_connections_per_client: 4\nclient_timeout_ms: 2000\n\
         replica_timeout_ms: 3000",
    );
    let c = Config::from_yaml(&text).unwrap();
    assert_eq!(
        (
            c.max_connections_per_client,
            c.client_timeout_ms,
            c.replica_timeout_ms
        ),
        (4, 2000, 3000)
    );
    assert_eq!(Config::from_yaml(&c.to_yaml()).unwrap(), c);
}

#[test]
fn memory_budget_has_a_default_and_is_written_only_when_set() {
    let c = Config::from_yaml(GOOD).unwrap();
    assert_eq!(c.memory_budget_mb, DEFAULT_MEMORY_BUDGET_MB);
    assert!(!c.to_yaml().contains("memory_budget_mb"));
    for mb in [0, 64] {
        let text = GOOD.replace(
            "straggler_timeout_ms: 500",
            &format!("straggler_timeout_ms: 500\nmemory_budget_mb: {mb}"),
        );
        let c = Config::from_yaml(&text).unwrap();
        assert_eq!(c.memory_budget_mb, mb);
        assert!(c.to_yaml().contains("memory_budget_mb"));
        assert_eq!(Config::from_yaml(&c.to_yaml()).unwrap(), c);
    }
}

#[test]
fn missing_section_is_named() {
    let e = Config::from_yaml("policy: majority\n").unwrap_err();
    assert!(e.message.contains("missing field `external`"), "{e}");
}

#[test]
fn written_yaml_reads_back_to_the_same_config() {
    let mut c = Config::from_yaml(GOOD).unwrap();
    c.status_file = Some("/run/domain-nv/status: \"x\".json".into());
    c.external.gateway = Some(Ipv4Addr::new(10, 77, 0, 254));
    let text = c.to_yaml();
    assert_eq!(Config::from_yaml(&text).unwrap(), c, "{text}");
    assert!(!text.contains("null"), "{text}");
}

#[test]
fn policy_words_are_the_yaml_words() {
    for p in [
        PolicyName::Majority,
        PolicyName::Unanimous,
        PolicyName::PrimaryBackup,
    ] {
        assert_eq!(p.as_str().parse::<PolicyName>(), Ok(p));
        assert_eq!(serde_yaml::to_string(&p).unwrap().trim(), p.as_str());
    }
    assert!("plurality".parse::<PolicyName>().is_err());
}

#[test]
fn udp_services_take_transport_protocol_and_datagram_bounds() {
    let text = GOOD.replace(
        "    replica_port: 6379\n",
        "    replica_port: 6379\n  - { name: dns, listen: 53, replica_port: 53, transport: udp, protocol: dns }\n  - { name: dns-tcp, listen: 53, replica_port: 53 }\n",
    );
    let c = Config::from_yaml(&text).unwrap();
    assert_eq!(c.services[0].transport, Transport::Tcp);
    assert_eq!(c.services[0].protocol, Protocol::Bytes);
    assert_eq!(
        (c.services[1].transport, c.services[1].protocol),
        (Transport::Udp, Protocol::Dns)
    );
    assert_eq!(c.datagram, DatagramLimits::default());
    let yaml = c.to_yaml();
    assert!(!yaml.contains("datagram") && yaml.matches("transport").count() == 1);
    assert_eq!(Config::from_yaml(&yaml).unwrap(), c);
    let bounded = text.replace(
        "straggler_timeout_ms: 500",
        "straggler_timeout_ms: 500\ndatagram: { pending: 100, pending_per_client: 10 }",
    );
    let c = Config::from_yaml(&bounded).unwrap();
    assert_eq!(
        (c.datagram.pending, c.datagram.pending_per_client),
        (100, 10)
    );
    assert_eq!(Config::from_yaml(&c.to_yaml()).unwrap(), c);
}

#[test]
fn bad_transport_combinations_name_their_field_and_line() {
    let with = |svc: &str| {
        GOOD.replace(
            "    replica_port: 6379\n",
            &format!("    replica_port: 6379\n{svc}\n"),
        )
    };
    let cases: &[(String, &str, usize, &str)] = &[
        (
            with("  - { name: dns, listen: 53, replica_port: 53, protocol: dns }"),
            "services[1].protocol",
            10,
            "transport: udp",
        ),
        (
            with("  - { name: dns, listen: 53, replica_port: 53, transport: sctp }"),
            "services[1].transport",
            10,
            "unknown variant",
        ),
        (
            with(
                "  - { name: dns, listen: 53, replica_port: 53, transport: udp, protocol: http2 }",
            ),
            "services[1].protocol",
            10,
            "unknown variant",
        ),
        (
            with("  - { name: r2, listen: 6379, replica_port: 6379 }"),
            "services[1].listen",
            10,
            "tcp port 6379 is already used",
        ),
        (
            GOOD.replace(
                "straggler_timeout_ms: 500",
                "straggler_timeout_ms: 500\ndatagram: { pending: 10, pending_per_client: 11 }",
            ),
            "datagram.pending_per_client",
            3,
            "outside 1..=10",
        ),
        (
            GOOD.replace(
                "straggler_timeout_ms: 500",
                "straggler_timeout_ms: 500\ndatagram: { pending: 0 }",
            ),
            "datagram.pending",
            3,
            "outside",
        ),
    ];
    for (text, field, line, words) in cases {
        let e = Config::from_yaml(text).unwrap_err();
        assert_eq!(&e.field, field, "{e}");
        assert_eq!(e.line, Some(*line), "{e}");
        assert!(e.message.contains(words), "{e}");
    }
}

#[test]
fn protocol_and_ordering_default_to_bytes_and_none_and_are_written_only_when_set() {
    let c = Config::from_yaml(GOOD).unwrap();
    assert_eq!(
        (c.services[0].protocol, c.services[0].ordering),
        (Protocol::Bytes, InputOrdering::None)
    );
    let yaml = c.to_yaml();
    assert!(
        !yaml.contains("protocol") && !yaml.contains("ordering"),
        "{yaml}"
    );
    for (text, protocol, ordering) in [
        ("protocol: redis", Protocol::Redis, InputOrdering::None),
        ("protocol: http", Protocol::Http, InputOrdering::None),
        ("ordering: serial", Protocol::Bytes, InputOrdering::Serial),
        (
            "protocol: bytes\n    ordering: serial",
            Protocol::Bytes,
            InputOrdering::Serial,
        ),
        (
            "protocol: http\n    mask_headers: [ETag, last-modified]",
            Protocol::Http,
            InputOrdering::None,
        ),
    ] {
        let yaml = GOOD.replace(
            "replica_port: 6379",
            &format!("replica_port: 6379\n    {text}"),
        );
        let c = Config::from_yaml(&yaml).unwrap();
        assert_eq!(
            (c.services[0].protocol, c.services[0].ordering),
            (protocol, ordering),
            "{text}"
        );
        assert_eq!(Config::from_yaml(&c.to_yaml()).unwrap(), c);
    }
}

/// Every replica link may present the same addressing (nvctl renders it so on Xen, for clones):
/// each link is its own network, only the link itself must differ.
#[test]
fn replica_links_may_share_their_addresses() {
    let same = GOOD
        .replace("10.77.2.1/24", "10.77.1.1/24")
        .replace("10.77.3.1/24", "10.77.1.1/24")
        .replace("10.77.2.2", "10.77.1.2")
        .replace("10.77.3.2", "10.77.1.2");
    let c = Config::from_yaml(&same).unwrap();
    assert!(c
        .replicas
        .iter()
        .all(|r| r.replica_address == c.replicas[0].replica_address));
    let e = Config::from_yaml(&same.replace("name: r1, netns: nv-r1", "name: r0, netns: nv-r0"))
        .unwrap_err();
    assert!(
        e.to_string().contains("the same link is already used"),
        "{e}"
    );
}
