//! Event-channel servicing: fired ports and vifs with leftover work or returned credit get one
//! datapath budget each (guest TX, then RX, all in one round: [`super::round`]); ports that
//! notify without work stay masked a while.

use std::time::Instant;

use xen::{EventChannel, GrantTable, Port};

use super::{Key, Netback};
use crate::rules::Violation;
use crate::vif::Work;

impl<G: GrantTable, E: EventChannel> Netback<G, E> {
    /// Handles fired event channels and vifs with leftover work: guest TX into the stack queues,
    /// queued frames into the guests' RX buffers. At most one budget per vif per call. A vif's
    /// own failure (e.g. a xenstore write of its teardown) is logged and does not stop the
    /// others; an error is returned only if the event channel itself fails.
    pub fn handle_evtchn(&mut self, now: Instant) -> xen::Result<()> {
        // An owner that did not call `flush` since the last round still notifies its guests.
        self.send_notifications();
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
        // Each vif's failure stays its own: the others of this round are still served.
        self.serve_round(&todo, true, now);
        for key in todo {
            if let Some(&(_, port)) = notified.iter().find(|(k, _)| *k == key) {
                self.after_event(key, port, now);
            }
        }
        Ok(())
    }

    /// Notifies each guest whose rings asked for it this round, once (guest TX answered in
    /// `handle_evtchn` and RX filled in `flush` make one notification, not two).
    pub(super) fn send_notifications(&mut self) {
        for key in std::mem::take(&mut self.notify_due) {
            let Some(vif) = self.vifs.get_mut(&key) else {
                continue;
            };
            let Some(port) = vif.rings.as_ref().map(|r| r.port) else {
                continue;
            };
            vif.count_notify();
            self.rounds.notifies += 1;
            if let Err(e) = self.ev.notify(port) {
                log::warn!("netback: {}: notify port {port}: {e}", vif.name);
            }
        }
    }

    fn unmask(&mut self, port: Port) {
        self.rounds.unmasks += 1;
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

    /// [`Netback::finish`], its error (a xenstore write of a teardown) logged: one vif's failure
    /// does not stop the others of the round.
    pub(super) fn finish_logged(
        &mut self,
        key: Key,
        r: Result<(Work, Work), Violation>,
        now: Instant,
    ) {
        if let Err(e) = self.finish(key, r, now) {
            log::warn!("netback: vif{}.{}: {e}", key.0, key.1);
        }
    }

    pub(super) fn finish(
        &mut self,
        key: Key,
        r: Result<(Work, Work), Violation>,
        now: Instant,
    ) -> xen::Result<()> {
        match r {
            Ok((a, b)) => {
                let vif = self.vifs.get_mut(&key).expect("exists");
                if vif.rings.is_some() {
                    // Sent once per round, by `flush` (RING_PUSH_*_AND_CHECK_NOTIFY asked).
                    if (a.notify || b.notify) && !self.notify_due.contains(&key) {
                        self.notify_due.push(key);
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
