//! [`Netback`]: discovers vifs in xenstore, runs their handshakes, and drives their datapaths
//! from the appliance's main loop.
//!
//! The owner polls two fds ([`Netback::evtchn_fd`], [`Netback::xenstore_fd`]) and calls
//! [`Netback::handle_xenstore_events`], [`Netback::handle_evtchn`] and, after its stack ran,
//! [`Netback::flush`]. Time is a parameter of every call.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Instant;

use xen::xenstore::{WatchEvent, Xenstore};
use xen::{DomId, EventChannel, GrantTable, Port};

use crate::credit::{parse_rate, Credit};
use crate::handshake::{Action, Observed};
use crate::ring::{RxBackRing, TxBackRing};
use crate::rules::Violation;
use crate::store::Store;
use crate::vif::{Rings, Vif, Work};
use crate::wire::XenbusState;

const TOKEN_BACKEND: &str = "netback:backend";
/// The prefix of the per-device frontend `state` watch tokens
/// (`netback:frontend:<domid>/<handle>`).
const TOKEN_FRONTEND: &str = "netback:frontend:";

/// Vifs whose handshake is stepped per [`Netback::handle_xenstore_events`] call (bounded
/// xenstore work per round on the datapath thread).
pub const XS_STEPS_PER_ROUND: usize = 8;

/// The watch token of a device's frontend `state`.
fn frontend_token((domid, handle): Key) -> String {
    format!("{TOKEN_FRONTEND}{domid}/{handle}")
}

/// The feature keys written (in one transaction, with `state=InitWait`) for every vif.
pub const FEATURES: &[(&str, &str)] = &[
    ("feature-rx-copy", "1"),
    ("feature-rx-flip", "0"),
    ("feature-sg", "1"),
    ("feature-ipv6-csum-offload", "1"),
];

type Key = (DomId, u32);

/// The backend for all vifs served by this (driver) domain.
pub struct Netback<G: GrantTable, E: EventChannel> {
    xs: Store,
    gt: G,
    ev: E,
    base: String,
    vifs: BTreeMap<Key, Vif<G::Mapping>>,
    ports: HashMap<Port, Key>,
    busy: Vec<Key>,
    /// Vifs whose handshake is to be stepped (their xenstore keys changed), oldest first.
    xs_dirty: VecDeque<Key>,
    /// The device list itself changed (or an event named a device not yet known).
    rescan_due: bool,
    /// Rate-limited vifs and when their credit returns.
    timers: Vec<(Instant, Key)>,
    /// Ports kept masked after notifications without work, and when to unmask them.
    masked: Vec<(Instant, Port)>,
    pending: Vec<Port>,
    hotplug_agent: bool,
    stats_logged: Option<(Instant, Vec<(Key, crate::vif::VifStats)>)>,
}

/// How often [`Netback::flush`] logs the counters of the vifs whose counters changed.
const STATS_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

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

fn as_text(v: Option<Vec<u8>>) -> Option<String> {
    v.map(|b| {
        String::from_utf8_lossy(&b)
            .trim_end_matches('\0')
            .to_string()
    })
}

impl<G: GrantTable, E: EventChannel> Netback<G, E> {
    /// A backend for driver domain `domid`, watching `/local/domain/<domid>/backend/vif`.
    pub fn new(xs: Xenstore, gt: G, ev: E, domid: DomId) -> xen::Result<Self> {
        let xs = Store::new(xs);
        let base = format!("{}/backend/vif", xs.get_domain_path(domid)?);
        xs.watch(&base, TOKEN_BACKEND)?;
        Ok(Netback {
            xs,
            gt,
            ev,
            base,
            vifs: BTreeMap::new(),
            ports: HashMap::new(),
            busy: Vec::new(),
            xs_dirty: VecDeque::new(),
            rescan_due: true,
            timers: Vec::new(),
            masked: Vec::new(),
            pending: Vec::new(),
            hotplug_agent: false,
            stats_logged: None,
        })
    }

    /// Makes this backend its domain's hotplug agent. For a backend in a driver domain libxl
    /// writes an empty `hotplug-status` and leaves it to the driver domain (normally `xl devd`
    /// running the vif script) to set it to `connected`; `Connected` is held until then. A
    /// user-space vif has no script to run, so with this on, netback writes
    /// `hotplug-status=connected` itself once a vif's rings are connected, and removes the
    /// backend directory of a vif the toolstack took offline once it is closed. Off by default.
    pub fn set_hotplug_agent(&mut self, on: bool) {
        self.hotplug_agent = on;
    }

    /// The event-channel fd: readable when a vif's guest notified us.
    pub fn evtchn_fd(&self) -> BorrowedFd<'_> {
        self.ev.as_fd()
    }

    /// The xenstore fd: readable when watch events are queued.
    pub fn xenstore_fd(&self) -> BorrowedFd<'_> {
        self.xs.as_fd()
    }

    /// Xenstore requests sent so far (a transaction counts two), to measure the xenstore work
    /// that events cost.
    pub fn xenstore_requests(&self) -> u64 {
        self.xs.requests()
    }

    /// The grant table (for statistics such as `copy_calls`).
    pub fn grant_table(&self) -> &G {
        &self.gt
    }

    /// All vifs, in (domid, handle) order.
    pub fn vifs(&self) -> impl Iterator<Item = &Vif<G::Mapping>> {
        self.vifs.values()
    }

    /// All vifs, mutable (e.g. to run a smoltcp `Interface` on each).
    pub fn vifs_mut(&mut self) -> impl Iterator<Item = &mut Vif<G::Mapping>> {
        self.vifs.values_mut()
    }

    /// The vif named `vif<domid>.<handle>`.
    pub fn vif_mut(&mut self, name: &str) -> Option<&mut Vif<G::Mapping>> {
        self.vifs.values_mut().find(|v| v.name == name)
    }

    /// The vif of guest `domid`, device `handle`.
    pub fn vif_by_handle(&mut self, domid: DomId, handle: u32) -> Option<&mut Vif<G::Mapping>> {
        self.vifs.get_mut(&(domid, handle))
    }

    /// Whether some vif has work left over from its budget (datapath or handshake steps): poll
    /// again without blocking.
    pub fn has_pending_work(&self) -> bool {
        !self.busy.is_empty() || !self.xs_dirty.is_empty() || self.rescan_due
    }

    /// The earliest time a vif needs servicing without an event (a rate-limited vif's credit
    /// returns, a throttled port is unmasked); the owner polls with a timeout no later than this.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers
            .iter()
            .map(|(t, _)| *t)
            .chain(self.masked.iter().map(|(t, _)| *t))
            .min()
    }

    /// Drains queued watch events and advances the handshakes of the vifs they concern: each
    /// event is attributed to its device (the backend watch by path, a frontend's `state` watch
    /// by its token), so one guest's xenstore writes cost work for its own vif only. At most
    /// [`XS_STEPS_PER_ROUND`] vifs are stepped per call; the rest wait for the next call
    /// ([`Netback::has_pending_work`]).
    pub fn handle_xenstore_events(&mut self, now: Instant) -> xen::Result<()> {
        while let Some(ev) = self.xs.try_next_watch_event()? {
            match self.device_of(&ev) {
                Some(key) if self.vifs.contains_key(&key) => self.mark(key),
                // A device we do not know yet, or the device list itself changed.
                _ => self.rescan_due = true,
            }
        }
        if std::mem::take(&mut self.rescan_due) {
            self.rescan(now)?;
        }
        for _ in 0..XS_STEPS_PER_ROUND {
            let Some(key) = self.xs_dirty.pop_front() else {
                break;
            };
            // One vif's xenstore trouble must not stop the others; it is retried on its next event.
            if let Err(e) = self.step(key, now) {
                log::warn!("netback: vif{}.{}: {e}", key.0, key.1);
            }
        }
        Ok(())
    }

    /// The device a watch event concerns; `None` for the device list itself (or a path that
    /// names no device).
    fn device_of(&self, ev: &WatchEvent) -> Option<Key> {
        let rest = if ev.token == TOKEN_BACKEND {
            ev.path.strip_prefix(&self.base)?.strip_prefix('/')?
        } else {
            ev.token.strip_prefix(TOKEN_FRONTEND)?
        };
        let mut parts = rest.split('/');
        let domid = parts.next()?.parse().ok()?;
        let handle = parts.next()?.parse().ok()?;
        Some((domid, handle))
    }

    /// Queues a vif's handshake step (once, in arrival order).
    fn mark(&mut self, key: Key) {
        if !self.xs_dirty.contains(&key) {
            self.xs_dirty.push_back(key);
        }
    }

    /// Re-reads the backend directory: adds the devices that appeared and queues the handshake
    /// steps of those that appeared or vanished.
    pub fn rescan(&mut self, now: Instant) -> xen::Result<()> {
        let mut seen = Vec::new();
        for fe in self.xs.directory(&self.base).or_else(|e| {
            if e.is_enoent() {
                Ok(Vec::new())
            } else {
                Err(e)
            }
        })? {
            let Ok(domid) = fe.parse::<DomId>() else {
                log::warn!("netback: ignoring backend entry {fe:?}: not a domain id");
                continue;
            };
            let path = format!("{}/{fe}", self.base);
            let handles = self.xs.directory(&path).or_else(|e| {
                if e.is_enoent() {
                    Ok(Vec::new())
                } else {
                    Err(e)
                }
            })?;
            for h in handles {
                let Ok(handle) = h.parse::<u32>() else {
                    log::warn!("netback: ignoring backend entry {path}/{h:?}: not a handle");
                    continue;
                };
                let key = (domid, handle);
                seen.push(key);
                if self.vifs.contains_key(&key) {
                    continue;
                }
                let be = format!("{path}/{h}");
                log::info!("netback: new device {be}");
                let mut vif = Vif::new(domid, handle, be.clone(), now);
                // The toolstack's `vifname` (xl: vif=['vifname=...']) names the link.
                if let Ok(Some(name)) = self.xs.try_read(&format!("{be}/vifname")) {
                    let name = String::from_utf8_lossy(&name).trim().to_owned();
                    if !name.is_empty()
                        && name.len() <= 64
                        && name.chars().all(|c| c.is_ascii_graphic())
                    {
                        vif.set_name(name);
                    }
                }
                self.vifs.insert(key, vif);
                self.mark(key);
            }
        }
        let vanished: Vec<Key> = self
            .vifs
            .keys()
            .filter(|k| !seen.contains(k))
            .copied()
            .collect();
        for key in vanished {
            self.mark(key);
        }
        Ok(())
    }

    fn observe(&mut self, key: Key) -> xen::Result<Observed> {
        let xs = &self.xs;
        let vif = self.vifs.get_mut(&key).expect("caller checked");
        let be = vif.backend_path.clone();
        if xs.try_read(&be)?.is_none() {
            return Ok(Observed::default());
        }
        let online = match as_text(xs.try_read(&format!("{be}/online"))?).as_deref() {
            Some("1") => Some(true),
            Some("0") => Some(false),
            _ => None,
        };
        if vif.frontend_path.is_none() {
            // Rule 10: the frontend path must be the one for this domain and handle.
            let expected = format!("/local/domain/{}/device/vif/{}", key.0, key.1);
            let fe = as_text(xs.try_read(&format!("{be}/frontend"))?);
            let fe_id = as_text(xs.try_read(&format!("{be}/frontend-id"))?);
            match (fe, fe_id) {
                (Some(fe), Some(id)) if fe == expected && id == key.0.to_string() => {
                    xs.watch(&format!("{fe}/state"), &frontend_token(key))?;
                    vif.frontend_path = Some(fe);
                }
                (None, _) | (_, None) => {}
                (fe, id) => {
                    log::error!("netback: {be}: frontend {fe:?} / frontend-id {id:?} do not match; ignoring");
                }
            }
        }
        let frontend = match &vif.frontend_path {
            // Unreadable (e.g. the frontend revoked our access) counts as gone: rule 10.
            Some(fe) => as_text(xs.try_read(&format!("{fe}/state")).ok().flatten())
                .and_then(|s| XenbusState::parse(&s)),
            None => None,
        };
        let hotplug_status = as_text(xs.try_read(&format!("{be}/hotplug-status"))?);
        Ok(Observed {
            present: true,
            online,
            frontend,
            hotplug_status,
        })
    }

    fn step(&mut self, key: Key, now: Instant) -> xen::Result<()> {
        if !self.vifs.contains_key(&key) {
            return Ok(());
        }
        let obs = self.observe(key)?;
        let actions = self
            .vifs
            .get_mut(&key)
            .expect("exists")
            .handshake
            .step(&obs);
        self.run(key, actions, now)
    }

    fn run(&mut self, key: Key, actions: Vec<Action>, now: Instant) -> xen::Result<()> {
        let mut queue: std::collections::VecDeque<Action> = actions.into();
        while let Some(a) = queue.pop_front() {
            let Some(vif) = self.vifs.get_mut(&key) else {
                return Ok(());
            };
            let be = vif.backend_path.clone();
            match a {
                Action::Announce => {
                    self.xs.transaction(|t| {
                        for (k, v) in FEATURES {
                            t.write(&format!("{be}/{k}"), v)?;
                        }
                        t.write(&format!("{be}/state"), XenbusState::InitWait.as_str())
                    })?;
                }
                Action::SetState(s) => {
                    log::info!("netback: {}: backend state {s:?}", vif.name);
                    self.xs.write(&format!("{be}/state"), s.as_str())?;
                }
                Action::Connect => {
                    if let Err(v) = self.connect(key, now) {
                        let vif = self.vifs.get_mut(&key).expect("exists");
                        vif.disable(v);
                        queue = vif.handshake.disable().into();
                    } else if self.hotplug_agent {
                        // The write's watch event steps the handshake on to Connected.
                        let key_path = format!("{be}/hotplug-status");
                        if as_text(self.xs.try_read(&key_path)?).is_some_and(|s| s != "connected") {
                            log::info!("netback: {}: hotplug-status connected (netback is the hotplug agent)", self.vifs[&key].name);
                            self.xs.write(&key_path, "connected")?;
                        }
                    }
                }
                Action::Disconnect => {
                    if let Some(port) = vif.disconnect() {
                        self.ports.remove(&port);
                        if let Err(e) = self.ev.unbind(port) {
                            log::warn!("netback: {}: unbind port {port}: {e}", vif.name);
                        }
                    }
                    self.busy.retain(|k| *k != key);
                    self.timers.retain(|(_, k)| *k != key);
                    self.masked.retain(|(_, p)| self.ports.contains_key(p));
                }
                Action::Remove => {
                    if let Some(fe) = &vif.frontend_path {
                        let _ = self
                            .xs
                            .unwatch(&format!("{fe}/state"), &frontend_token(key));
                    }
                    log::info!("netback: {}: removed", vif.name);
                    self.vifs.remove(&key);
                    if self.hotplug_agent {
                        // As `xl devd` does in a driver domain: libxl leaves an offline backend's
                        // directory to the backend domain. Left there, it would be found again
                        // as a new device at every rescan.
                        if let Err(e) = self.xs.rm(&be) {
                            if !e.is_enoent() {
                                log::warn!("netback: removing {be}: {e}");
                            }
                        }
                        let parent = format!("{}/{}", self.base, key.0);
                        if self.xs.directory(&parent).is_ok_and(|v| v.is_empty()) {
                            let _ = self.xs.rm(&parent);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads the frontend's keys, maps the rings, binds the event channel.
    fn connect(&mut self, key: Key, now: Instant) -> Result<(), Violation> {
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
        vif.attach(Rings { tx, rx, port }, sg, mtu, credit, now);
        self.ports.insert(port, key);
        log::info!("netback: {}: connected (tx {tx_ref}, rx {rx_ref}, port {remote_port}->{port}, sg {sg}, mtu {mtu})", vif.name);
        Ok(())
    }

    /// Handles fired event channels and vifs with leftover work: guest TX into the stack queues,
    /// queued frames into the guests' RX buffers. At most one budget per vif per call. A vif's
    /// own failure (e.g. a xenstore write of its teardown) is logged and does not stop the
    /// others; an error is returned only if the event channel itself fails.
    pub fn handle_evtchn(&mut self, now: Instant) -> xen::Result<()> {
        self.pending.clear();
        self.ev.pending(&mut self.pending)?;
        let mut todo: Vec<Key> = std::mem::take(&mut self.busy);
        // Rate-limited vifs whose credit has returned.
        self.timers.retain(|&(t, key)| {
            if t > now {
                return true;
            }
            if !todo.contains(&key) {
                todo.push(key);
            }
            false
        });
        // Ports held masked after notifications without work, whose delay is over.
        let mut due = Vec::new();
        self.masked.retain(|&(t, port)| {
            if t > now {
                return true;
            }
            due.push(port);
            false
        });
        for port in due {
            self.unmask(port);
        }
        let mut notified: Vec<(Key, Port)> = Vec::new();
        for i in 0..self.pending.len() {
            let port = self.pending[i];
            match self.ports.get(&port) {
                Some(&key) => {
                    if let Some(v) = self.vifs.get_mut(&key) {
                        v.count_event();
                    }
                    notified.push((key, port));
                    if !todo.contains(&key) {
                        todo.push(key);
                    }
                }
                None => self.unmask(port),
            }
        }
        for key in todo {
            // Each vif's failure stays its own: the others of this round are still served.
            if let Err(e) = self.service(key, now) {
                log::warn!("netback: vif{}.{}: {e}", key.0, key.1);
            }
            if let Some(&(_, port)) = notified.iter().find(|(k, _)| *k == key) {
                self.after_event(key, port, now);
            }
        }
        Ok(())
    }

    fn unmask(&mut self, port: Port) {
        if let Err(e) = self.ev.unmask(port) {
            log::warn!("netback: unmask port {port}: {e}");
        }
    }

    /// Unmasks a notified vif's port, or keeps it masked for a while if notifications keep
    /// coming without work (rule 9, XSA-332: [`crate::throttle`]).
    fn after_event(&mut self, key: Key, port: Port, now: Instant) {
        if self.ports.get(&port) != Some(&key) {
            return; // the vif was disconnected meanwhile: its port is unbound
        }
        let Some(vif) = self.vifs.get_mut(&key) else {
            return;
        };
        let work = vif.take_progress();
        match vif.throttle.after_event(work) {
            None => self.unmask(port),
            Some(delay) => self.masked.push((now + delay, port)),
        }
    }

    /// Delivers queued frames to the guests (call after the stack transmitted) and expires old ones.
    pub fn flush(&mut self, now: Instant) -> xen::Result<()> {
        let keys: Vec<Key> = self
            .vifs
            .iter()
            .filter(|(_, v)| v.is_connected())
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            let r = self
                .vifs
                .get_mut(&key)
                .expect("exists")
                .process_rx(&self.gt, now);
            if let Err(e) = self.finish(key, r.map(|w| (w, Work::default())), now) {
                log::warn!("netback: vif{}.{}: {e}", key.0, key.1);
            }
        }
        self.log_stats(now);
        Ok(())
    }

    /// Every STATS_LOG_INTERVAL: one info line per vif whose counters changed.
    fn log_stats(&mut self, now: Instant) {
        if self
            .stats_logged
            .as_ref()
            .is_some_and(|(t, _)| now < *t + STATS_LOG_INTERVAL)
        {
            return;
        }
        let prev = self.stats_logged.take().map(|(_, v)| v).unwrap_or_default();
        let cur: Vec<(Key, crate::vif::VifStats)> =
            self.vifs.iter().map(|(k, v)| (*k, v.stats())).collect();
        for (key, st) in &cur {
            if prev.iter().any(|(k, p)| k == key && p == st) {
                continue;
            }
            let name = self.vifs[key].name();
            log::info!(
                "netback: {name}: from guest {} frames {} bytes {} errors {} dropped; to guest {} frames {} bytes {} dropped; {} copy calls",
                st.tx_frames, st.tx_bytes, st.tx_errors, st.tx_dropped, st.rx_frames, st.rx_bytes, st.rx_dropped, st.copy_calls
            );
        }
        self.stats_logged = Some((now, cur));
    }

    fn service(&mut self, key: Key, now: Instant) -> xen::Result<()> {
        let Some(vif) = self.vifs.get_mut(&key) else {
            return Ok(());
        };
        vif.set_now(now);
        let r = vif
            .process_tx(&self.gt)
            .and_then(|t| vif.process_rx(&self.gt, now).map(|r| (t, r)));
        self.finish(key, r, now)
    }

    fn finish(
        &mut self,
        key: Key,
        r: Result<(Work, Work), Violation>,
        now: Instant,
    ) -> xen::Result<()> {
        match r {
            Ok((a, b)) => {
                let vif = self.vifs.get_mut(&key).expect("exists");
                if let Some(rings) = &vif.rings {
                    if a.notify || b.notify {
                        if let Err(e) = self.ev.notify(rings.port) {
                            log::warn!("netback: {}: notify port {}: {e}", vif.name, rings.port);
                        }
                    }
                    if (a.more || b.more) && !self.busy.contains(&key) {
                        self.busy.push(key);
                    }
                    if let Some(t) = a.wake_at {
                        self.timers.retain(|(_, k)| *k != key);
                        self.timers.push((t, key));
                    }
                }
                Ok(())
            }
            Err(v) => {
                let vif = self.vifs.get_mut(&key).expect("exists");
                vif.disable(v);
                let actions = vif.handshake.disable();
                self.run(key, actions, now)
            }
        }
    }
}
