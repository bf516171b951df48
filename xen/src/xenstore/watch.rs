//! Watches: the queue of watch events the reader thread fills (mirrored by an eventfd, so the
//! client's fd is readable exactly while events are queued), and the calls that register
//! watches and take their events.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::eventfd::EventFd;

use super::{WatchEvent, Xenstore, NO_TX};
use crate::xs_wire::{self, MsgType};
use crate::{Error, Result};

/// Watch events received and not yet taken, plus the eventfd that mirrors "queue non-empty".
pub(super) struct WatchQueue {
    pub(super) state: Mutex<QueueState>,
    pub(super) cond: Condvar,
    pub(super) ready: EventFd,
}

pub(super) struct QueueState {
    pub(super) events: VecDeque<WatchEvent>,
    /// Set once the connection is gone (why), so waiters stop waiting.
    pub(super) dead: Option<String>,
}

impl WatchQueue {
    pub(super) fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn push(&self, ev: WatchEvent) {
        let mut st = self.lock();
        st.events.push_back(ev);
        // An eventfd counter only fails to add at u64::MAX - 1, far beyond any queue length.
        let _ = self.ready.write(1);
        self.cond.notify_all();
    }

    pub(super) fn set_dead(&self, why: String) {
        let mut st = self.lock();
        st.dead.get_or_insert(why);
        self.cond.notify_all();
    }

    pub(super) fn pop(&self, st: &mut QueueState) -> Option<WatchEvent> {
        let ev = st.events.pop_front();
        if ev.is_some() && st.events.is_empty() {
            // Drain the counter (nonblocking) so the fd stops being readable.
            let _ = self.ready.read();
        }
        ev
    }
}

impl Xenstore {
    /// away, then on every change.
    pub fn watch(&self, path: &str, token: &str) -> Result<()> {
        self.expect_ok(MsgType::Watch, NO_TX, xs_wire::join_strings(&[path, token]))
    }

    /// Removes a watch registered with the same path and token.
    pub fn unwatch(&self, path: &str, token: &str) -> Result<()> {
        self.expect_ok(
            MsgType::Unwatch,
            NO_TX,
            xs_wire::join_strings(&[path, token]),
        )
    }

    /// Takes the oldest queued watch event, if any (never blocks).
    pub fn try_next_watch_event(&self) -> Result<Option<WatchEvent>> {
        let mut st = self.watches.lock();
        match self.watches.pop(&mut st) {
            Some(ev) => Ok(Some(ev)),
            None => match &st.dead {
                Some(why) => Err(Error::Protocol(why.clone())),
                None => Ok(None),
            },
        }
    }

    /// Waits up to `timeout` for a watch event; `Ok(None)` if none came.
    pub fn wait_watch_event(&self, timeout: Duration) -> Result<Option<WatchEvent>> {
        let deadline = Instant::now() + timeout;
        let mut st = self.watches.lock();
        loop {
            if let Some(ev) = self.watches.pop(&mut st) {
                return Ok(Some(ev));
            }
            if let Some(why) = &st.dead {
                return Err(Error::Protocol(why.clone()));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            st = self
                .watches
                .cond
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}
