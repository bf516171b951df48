//! `nv-lab-dnsd`, the Xen lab replicas' UDP service, answering a real DNS client (Debian's
//! `dig`) on a loopback port: known names get their address, unknown ones NXDOMAIN.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};

/// The responder, killed when dropped.
struct Dnsd(Child);

impl Drop for Dnsd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the responder on a free loopback port with `records`; returns it once it listens.
fn start(records: &[&str]) -> (Dnsd, u16) {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nv-lab-dnsd"))
        .arg("--port")
        .arg(port.to_string())
        .args(records)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // its first line says it is listening; EOF (it exited) bounds the wait
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let dnsd = Dnsd(child);
    assert!(line.contains("answering"), "nv-lab-dnsd said {line:?}");
    (dnsd, port)
}

/// `dig` of `name` (type A) at the responder, with `opts`; its standard output.
fn dig(port: u16, name: &str, opts: &[&str]) -> String {
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+time=2", "+tries=2"])
        .arg(name)
        .args(opts)
        .output()
        .expect("dig (dnsutils, scripts/install-deps.sh)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn dig_gets_the_table_s_answers() {
    let (_dnsd, port) = start(&["www.lab.test=192.0.2.80", "mail.lab.test=192.0.2.25"]);
    assert_eq!(dig(port, "www.lab.test", &["+short"]).trim(), "192.0.2.80");
    assert_eq!(dig(port, "MAIL.lab.test", &["+short"]).trim(), "192.0.2.25");
    let full = dig(port, "nope.lab.test", &[]);
    assert!(full.contains("status: NXDOMAIN"), "{full}");
    let aaaa = dig(port, "www.lab.test", &["AAAA"]);
    assert!(
        aaaa.contains("status: NOERROR") && aaaa.contains("ANSWER: 0"),
        "{aaaa}"
    );
}

#[test]
fn a_bad_table_is_refused_with_its_word() {
    let out = Command::new(env!("CARGO_BIN_EXE_nv-lab-dnsd"))
        .args(["--port", "1", "www.lab.test=300.1.1.1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("not an IPv4 address"),
        "{err}"
    );
}
