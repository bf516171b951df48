//! `nv-lab-dnsd`: the UDP service of the Xen lab's replicas (scripts/xenlab), a tiny
//! authoritative DNS responder answering A questions from a fixed table, the same bytes on
//! every replica with the same table ([`nv_testbed::lab_dns`]). Built static (musl) and put
//! into the replica image by `scripts/xenlab/mk-guests.sh`; Debian's busybox has no `dnsd`.
//!
//! usage: `nv-lab-dnsd [--port N] NAME=ADDR...` (default port 53). Runs in the foreground and
//! prints one line once it is listening.
#![forbid(unsafe_code)]

use std::net::{Ipv4Addr, UdpSocket};

use anyhow::{bail, Context, Result};
use nv_testbed::lab_dns::{answer, Records};

fn main() -> Result<()> {
    let mut port = 53u16;
    let mut words = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => {
                let v = args.next().context("--port needs a value")?;
                port = v.parse().with_context(|| format!("--port {v:?}"))?;
            }
            "-h" | "--help" => {
                println!("usage: nv-lab-dnsd [--port N] NAME=ADDR...");
                return Ok(());
            }
            _ => words.push(a),
        }
    }
    if words.is_empty() {
        bail!("no records (usage: nv-lab-dnsd [--port N] NAME=ADDR...)");
    }
    let records = Records::parse(words.iter().map(String::as_str)).map_err(anyhow::Error::msg)?;
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))
        .with_context(|| format!("binding UDP port {port}"))?;
    println!(
        "nv-lab-dnsd: answering {} name(s) on UDP port {port}",
        words.len()
    );
    let mut buf = [0u8; 4096];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e) => {
                eprintln!("nv-lab-dnsd: receive: {e}");
                continue;
            }
        };
        if let Some(reply) = answer(&buf[..n], &records) {
            if let Err(e) = socket.send_to(&reply, peer) {
                eprintln!("nv-lab-dnsd: answer to {peer}: {e}");
            }
        }
    }
}
