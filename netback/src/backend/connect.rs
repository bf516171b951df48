//! Connecting a vif: the frontend's keys read and checked, its rings mapped, its event channel
//! bound.

use std::time::Instant;

use xen::{EventChannel, GrantTable};

use super::xenbus::as_text;
use super::{Key, Netback};
use crate::credit::{parse_rate, Credit};
use crate::offload::GuestOffload;
use crate::ring::{RxBackRing, TxBackRing};
use crate::rules::Violation;
use crate::vif::Rings;

/// Parses a decimal xenstore value strictly (digits only, no sign, no overflow).
fn parse_num<T: std::str::FromStr>(key: &str, v: Option<Vec<u8>>) -> Result<T, Violation> {
    let bad = |reason: &str| Violation::Xenstore {
        key: key.to_string(),
        reason: reason.to_string(),
    };
    let v = v.ok_or_else(|| bad("missing"))?;
    let s = std::str::from_utf8(&v)
        .map_err(|_| bad("not UTF-8"))?
        .trim_end_matches('\0');
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("not a decimal number"));
    }
    s.parse().map_err(|_| bad("out of range"))
}

impl<G: GrantTable, E: EventChannel> Netback<G, E> {
    /// Reads the frontend's keys, maps the rings, binds the event channel.
    pub(super) fn connect(&mut self, key: Key, now: Instant) -> Result<(), Violation> {
        let (domid, _) = key;
        let xs = &self.xs;
        let vif = self.vifs.get_mut(&key).expect("exists");
        let fe = vif
            .frontend_path
            .clone()
            .ok_or_else(|| Violation::Xenstore {
                key: "frontend".into(),
                reason: "no valid frontend path".into(),
            })?;
        let read = |k: &str| {
            xs.try_read(&format!("{fe}/{k}"))
                .map_err(|e| Violation::Xenstore {
                    key: k.to_string(),
                    reason: e.to_string(),
                })
        };
        let tx_ref: u32 = parse_num("tx-ring-ref", read("tx-ring-ref")?)?;
        let rx_ref: u32 = parse_num("rx-ring-ref", read("rx-ring-ref")?)?;
        let remote_port: u32 = parse_num("event-channel", read("event-channel")?)?;
        let flag = |k: &str| -> Result<bool, Violation> {
            match read(k)? {
                None => Ok(false),
                v => Ok(parse_num::<u8>(k, v)? != 0),
            }
        };
        if !flag("request-rx-copy")? {
            return Err(Violation::Xenstore {
                key: "request-rx-copy".into(),
                reason: "rx-flip is not supported".into(),
            });
        }
        if !flag("feature-rx-notify")? {
            return Err(Violation::Xenstore {
                key: "feature-rx-notify".into(),
                reason: "mandatory".into(),
            });
        }
        if let Some(v) = read("multi-queue-num-queues")? {
            if parse_num::<u32>("multi-queue-num-queues", Some(v))? != 1 {
                return Err(Violation::Xenstore {
                    key: "multi-queue-num-queues".into(),
                    reason: "not offered".into(),
                });
            }
        }
        let sg = flag("feature-sg")?;
        // What the guest takes on RX (Linux `read_xenbus_vif_flags`): partial IPv4 checksums
        // unless it opted out, IPv6 ones if it opted in; GSO needs scatter-gather and them.
        let csum_v4 = !flag("feature-no-csum-offload")?;
        let csum_v6 = flag("feature-ipv6-csum-offload")?;
        let offload = GuestOffload {
            csum_v4,
            csum_v6,
            gso_v4: sg && csum_v4 && flag("feature-gso-tcpv4")?,
            gso_v6: sg && csum_v6 && flag("feature-gso-tcpv6")?,
        };
        // The toolstack's rate limit (`<bytes>,<usec>`), read at connect as Linux does.
        let credit = match as_text(
            xs.try_read(&format!("{}/rate", vif.backend_path))
                .ok()
                .flatten(),
        ) {
            None => Credit::unlimited(now),
            Some(r) => match parse_rate(&r) {
                Some((bytes, interval)) => {
                    log::info!(
                        "netback: {}: rate limit {bytes} bytes per {interval:?}",
                        vif.name
                    );
                    Credit::new(bytes, interval, now)
                }
                None => {
                    log::warn!(
                        "netback: {}: cannot parse rate {r:?}; traffic unlimited",
                        vif.name
                    );
                    Credit::unlimited(now)
                }
            },
        };
        let mtu = match read("mtu")? {
            None => 1500,
            v => parse_num::<usize>("mtu", v)?,
        };
        if !(68..=65535 - crate::wire::ETH_HLEN).contains(&mtu) {
            return Err(Violation::Xenstore {
                key: "mtu".into(),
                reason: format!("{mtu} out of range"),
            });
        }
        // Without scatter-gather a frame must fit one page; Linux netfront caps its MTU the same way.
        let mtu = if sg { mtu } else { mtu.min(1500) };
        let map = |gref: u32, what: &'static str| {
            self.gt
                .map(domid, &[gref], true)
                .map_err(|e| Violation::GrantOp {
                    op: what,
                    reason: e.to_string(),
                })
        };
        let tx_map = map(tx_ref, "map tx ring")?;
        let rx_map = map(rx_ref, "map rx ring")?;
        let ring_err = |e: crate::ring::RingError| match e {
            crate::ring::RingError::Overflow { prod, cons, .. } => {
                Violation::RingIndex { prod, cons }
            }
            e => Violation::GrantOp {
                op: "attach ring",
                reason: e.to_string(),
            },
        };
        let tx = TxBackRing::attach(tx_map).map_err(ring_err)?;
        let rx = RxBackRing::attach(rx_map).map_err(ring_err)?;
        let port =
            self.ev
                .bind_interdomain(domid, remote_port)
                .map_err(|e| Violation::GrantOp {
                    op: "bind event channel",
                    reason: e.to_string(),
                })?;
        vif.attach(Rings { tx, rx, port }, sg, mtu, offload, credit, now);
        self.ports.insert(port, key);
        log::info!("netback: {}: connected (tx {tx_ref}, rx {rx_ref}, port {remote_port}->{port}, sg {sg}, mtu {mtu}, {offload:?})", vif.name);
        Ok(())
    }
}
