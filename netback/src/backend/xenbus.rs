//! Xenbus: discovering devices below the backend directory, attributing watch events to them,
//! and running each vif's handshake (observations read from xenstore, actions written back).

use std::time::Instant;

use xen::xenstore::WatchEvent;
use xen::{DomId, EventChannel, GrantTable};

use super::{Key, Netback, FEATURES, XS_STEPS_PER_ROUND};
use crate::handshake::{Action, Observed};
use crate::store::Store;
use crate::vif::Vif;
use crate::wire::XenbusState;

pub(super) const TOKEN_BACKEND: &str = "netback:backend";

/// The prefix of the per-device frontend `state` watch tokens
/// (`netback:frontend:<domid>/<handle>`).
const TOKEN_FRONTEND: &str = "netback:frontend:";

/// The watch token of a device's frontend `state`.
fn frontend_token((domid, handle): Key) -> String {
    format!("{TOKEN_FRONTEND}{domid}/{handle}")
}

pub(super) fn as_text(v: Option<Vec<u8>>) -> Option<String> {
    v.map(|b| {
        String::from_utf8_lossy(&b)
            .trim_end_matches('\0')
            .to_string()
    })
}

/// The entries of a xenstore directory; none if it does not exist.
fn directory_or_empty(xs: &Store, path: &str) -> xen::Result<Vec<String>> {
    xs.directory(path).or_else(|e| {
        if e.is_enoent() {
            Ok(Vec::new())
        } else {
            Err(e)
        }
    })
}

impl<G: GrantTable, E: EventChannel> Netback<G, E> {
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
        for fe in directory_or_empty(&self.xs, &self.base)? {
            let Ok(domid) = fe.parse::<DomId>() else {
                log::warn!("netback: ignoring backend entry {fe:?}: not a domain id");
                continue;
            };
            let path = format!("{}/{fe}", self.base);
            for h in directory_or_empty(&self.xs, &path)? {
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

    pub(super) fn run(&mut self, key: Key, actions: Vec<Action>, now: Instant) -> xen::Result<()> {
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
                    self.notify_due.retain(|k| *k != key);
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
}
