//! An authoritative DNS replica for the labs: Debian's nsd serving one small zone over UDP.
//!
//! The zone `example.test` has an A RRset of four records at `www` (so that a server that
//! rotates RRsets, nsd's `round-robin: yes`, answers the same question in different orders),
//! a TXT record and the zone's own SOA and NS. [`zone`] writes it, optionally with one record
//! changed (a corrupted replica).

use std::path::Path;

use anyhow::Result;

/// The zone every DNS replica serves.
pub const ZONE: &str = "example.test";
/// The name with a rotated A RRset.
pub const ROTATED_NAME: &str = "www.example.test";
/// The addresses of [`ROTATED_NAME`], in zone file order.
pub const ROTATED_ADDRS: [&str; 4] = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"];
/// A name with one A record.
pub const MAIL_NAME: &str = "mail.example.test";
/// Its address in the correct zone.
pub const MAIL_ADDR: &str = "192.0.2.25";
/// Its address in a corrupted zone.
pub const MAIL_ADDR_CORRUPTED: &str = "192.0.2.66";

/// The zone file's text; `corrupted` changes the address of [`MAIL_NAME`].
pub fn zone(corrupted: bool) -> String {
    let mail = if corrupted {
        MAIL_ADDR_CORRUPTED
    } else {
        MAIL_ADDR
    };
    let mut z = format!(
        "$ORIGIN {ZONE}.\n$TTL 300\n\
         @ IN SOA ns1 hostmaster 2026010101 3600 600 86400 300\n\
         @ IN NS ns1\n\
         ns1 IN A 192.0.2.53\n\
         mail IN A {mail}\n\
         txt IN TXT \"voted by domain-nv\"\n"
    );
    for a in ROTATED_ADDRS {
        z.push_str(&format!("www IN A {a}\n"));
    }
    z
}

/// Writes nsd's config and the zone into `dir` and returns the config's path. nsd runs in the
/// foreground, as root, one server process, without a database or remote control, and without
/// response rate limiting: behind domain-nv every client comes from domain-nv's address, so
/// RRL (on by default, 200 answers a second per source) would truncate or drop answers, and
/// at different moments on different replicas (which then disagree).
pub fn write_nsd(dir: &Path, round_robin: bool) -> Result<std::path::PathBuf> {
    let zonefile = dir.join("example.test.zone");
    if !zonefile.exists() {
        std::fs::write(&zonefile, zone(false))?;
    }
    let conf = dir.join("nsd.conf");
    std::fs::write(
        &conf,
        format!(
            "server:\n  ip-address: 0.0.0.0\n  port: 53\n  username: \"\"\n  chroot: \"\"\n  \
             server-count: 1\n  database: \"\"\n  zonelistfile: \"{d}/zone.list\"\n  \
             xfrdfile: \"{d}/xfrd.state\"\n  pidfile: \"{d}/nsd.pid\"\n  logfile: \"{d}/nsd.log\"\n  \
             round-robin: {rr}\n  verbosity: 1\n  rrl-ratelimit: 0\n\
             remote-control:\n  control-enable: no\n\
             zone:\n  name: {ZONE}\n  zonefile: \"{z}\"\n",
            d = dir.display(),
            z = zonefile.display(),
            rr = if round_robin { "yes" } else { "no" },
        ),
    )?;
    Ok(conf)
}

/// A `dig` command line asking `server` for the A records of `name`, short output (one address
/// a line, in the answer's order), no cookie (each server would send its own), one try of 2 s.
pub fn dig(server: &str, name: &str) -> Vec<String> {
    let at = format!("@{server}");
    [
        "dig",
        "+short",
        "+nocookie",
        "+tries=1",
        "+timeout=2",
        &at,
        name,
        "A",
    ]
    .map(str::to_owned)
    .to_vec()
}
