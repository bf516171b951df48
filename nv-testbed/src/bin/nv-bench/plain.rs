//! The namespaces of the variants without domain-nv: (a) the client and the server on one veth,
//! (b) the same with a HAProxy namespace (TCP mode) between them.

use anyhow::Result;
use nv_testbed::Lab;

use crate::measure::Settings;

/// The namespaces of (a) or (b): a client, optionally HAProxy (proxying ports 80 and 6379), and
/// one server with no service started yet.
pub struct PlainLab {
    /// The lab owning the namespaces and HAProxy.
    pub lab: Lab,
    /// The client's namespace.
    pub client: String,
    /// The server's namespace.
    pub server: String,
    /// The address the client dials: HAProxy's or the server's.
    pub target: &'static str,
}

/// Builds the namespaces of (a) (`proxy` false) or (b), named `<prefix>-…`.
pub fn plain_lab(prefix: &str, proxy: bool, set: &Settings) -> Result<PlainLab> {
    let mut lab = Lab::new(prefix)?;
    let c = lab.add_netns_plain("c")?;
    let s = lab.add_netns_plain("s")?;
    let target = if proxy {
        let p = lab.add_netns_plain("p")?;
        lab.add_veth(&c, "v0", "10.78.1.2/24", &p, "v1", "10.78.1.1/24")?;
        lab.add_veth(&p, "v2", "10.78.2.1/24", &s, "v3", "10.78.2.2/24")?;
        let cfg = lab.dir().join("haproxy.cfg");
        std::fs::write(
            &cfg,
            "global\n  maxconn 4096\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
             listen http\n  bind 10.78.1.1:80\n  server s 10.78.2.2:80\n\
             listen redis\n  bind 10.78.1.1:6379\n  server s 10.78.2.2:6379\n",
        )?;
        let cfg = cfg.to_string_lossy().into_owned();
        lab.spawn("haproxy", Some(&p), &["haproxy", "-db", "-f", &cfg])?;
        "10.78.1.1"
    } else {
        lab.add_veth(&c, "v0", "10.78.2.1/24", &s, "v3", "10.78.2.2/24")?;
        "10.78.2.2"
    };
    if set.mtu != 1500 {
        let mtu = set.mtu.to_string();
        let links: &[(&str, &str)] = if proxy {
            &[("c", "v0"), ("p", "v1"), ("p", "v2"), ("s", "v3")]
        } else {
            &[("c", "v0"), ("s", "v3")]
        };
        for (ns, ifname) in links {
            let ns = format!("{prefix}-{ns}");
            nv_testbed::run(&["ip", "-n", &ns, "link", "set", ifname, "mtu", &mtu])?;
        }
    }
    Ok(PlainLab {
        lab,
        client: c,
        server: s,
        target,
    })
}
