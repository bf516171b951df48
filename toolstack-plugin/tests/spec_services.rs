//! The per-port `transport`, `protocol` and `mask-headers` keys of a spec: domain-nv's rules,
//! every error with the port's field and line.

use nv_schema::config::{Protocol, Transport};
use toolstack_plugin::spec::{GroupSpec, SpecError};

const GOOD: &str = include_str!("../../xl-configs/example-group.yaml");
/// The example's only port, to which the tests add keys.
const PORT: &str = "      replica-port: 6379         # on every replica\n";

/// The example with `keys` (YAML lines at the port's indentation) added to its port.
fn with_port_keys(keys: &str) -> String {
    assert!(GOOD.contains(PORT), "the example's port changed");
    GOOD.replacen(PORT, &format!("{PORT}{keys}"), 1)
}

fn errors(text: &str) -> Vec<SpecError> {
    GroupSpec::parse(text)
        .expect_err("the spec should be rejected")
        .0
}

/// 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not in the spec"))
        + 1
}

/// The single error of the example with `keys` added to its port is on `field`, on the line of
/// `needle`, and its message contains `msg`.
fn rejects(keys: &str, field: &str, needle: &str, msg: &str) {
    let text = with_port_keys(keys);
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!(
        (e[0].field.as_str(), e[0].line),
        (field, Some(line_of(&text, needle))),
        "{}",
        e[0]
    );
    assert!(
        e[0].message.contains(msg),
        "{:?} does not contain {msg:?}",
        e[0].message
    );
}

#[test]
fn ports_default_to_tcp_bytes_and_take_the_new_keys() {
    let port = &GroupSpec::parse(GOOD).unwrap().service.ports[0];
    assert_eq!(
        (port.transport, port.protocol, port.mask_headers.len()),
        (Transport::Tcp, Protocol::Bytes, 0)
    );
    let spec = GroupSpec::parse(&with_port_keys(
        "      protocol: http\n      mask-headers: [ETag]\n",
    ))
    .unwrap();
    let port = &spec.service.ports[0];
    assert_eq!(
        (port.transport, port.protocol, port.mask_headers.clone()),
        (Transport::Tcp, Protocol::Http, vec!["ETag".to_string()])
    );
    let spec = GroupSpec::parse(&with_port_keys(
        "      transport: udp\n      protocol: dns\n",
    ))
    .unwrap();
    assert_eq!(spec.service.ports[0].transport, Transport::Udp);
}

#[test]
fn unknown_words_are_serde_errors_with_field_and_line() {
    rejects(
        "      transport: sctp\n",
        "service.ports[0].transport",
        "transport: sctp",
        "unknown variant",
    );
    rejects(
        "      protocol: ftp\n",
        "service.ports[0].protocol",
        "protocol: ftp",
        "unknown variant",
    );
    rejects(
        "      mask-headers: ETag\n",
        "service.ports[0].mask-headers",
        "mask-headers: ETag",
        "sequence",
    );
}

#[test]
fn protocols_need_their_transport() {
    rejects(
        "      protocol: dns\n",
        "service.ports[0].protocol",
        "protocol: dns",
        "needs `transport: udp`",
    );
    rejects(
        "      transport: udp\n      protocol: redis\n",
        "service.ports[0].protocol",
        "protocol: redis",
        "needs `transport: tcp`",
    );
    rejects(
        "      transport: udp\n      protocol: http\n",
        "service.ports[0].protocol",
        "protocol: http",
        "needs `transport: tcp`",
    );
}

#[test]
fn masked_headers_are_for_http_and_never_framing() {
    rejects(
        "      protocol: redis\n      mask-headers: [ETag]\n",
        "service.ports[0].mask-headers",
        "mask-headers",
        "only for `protocol: http`",
    );
    rejects(
        "      protocol: http\n      mask-headers: [ETag, Content-Length]\n",
        "service.ports[0].mask-headers",
        "mask-headers",
        "frames the message body",
    );
    rejects(
        "      protocol: http\n      mask-headers: [\"E Tag\"]\n",
        "service.ports[0].mask-headers",
        "mask-headers",
        "not an HTTP header name",
    );
}

#[test]
fn a_listen_port_is_unique_per_transport() {
    let two =
        |second: &str| with_port_keys(&format!("    - name: dns\n      listen: 6379\n{second}"));
    // the same number on UDP beside TCP is another port
    GroupSpec::parse(&two("      transport: udp\n")).unwrap();
    let text = two("");
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!(e[0].field, "service.ports[1].listen");
    assert!(
        e[0].message
            .contains("tcp port 6379 is also service.ports[0]"),
        "{}",
        e[0]
    );
    let text =
        two("      transport: udp\n    - name: dns2\n      listen: 6379\n      transport: udp\n");
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!(e[0].field, "service.ports[2].listen");
    assert!(
        e[0].message
            .contains("udp port 6379 is also service.ports[1]"),
        "{}",
        e[0]
    );
}
