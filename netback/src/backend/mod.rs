//! [`Netback`]: discovers vifs in xenstore, runs their handshakes, and drives their datapaths
//! from the appliance's main loop.
//!
//! The owner polls two fds ([`Netback::evtchn_fd`], [`Netback::xenstore_fd`]) and calls
//! [`Netback::handle_xenstore_events`], [`Netback::handle_evtchn`] and, after its stack ran,
//! [`Netback::flush`]. Time is a parameter of every call.
//!
//! One file per concern: this one holds [`Netback`] and its accessors; `xenbus` discovers
//! devices and runs their handshakes from xenstore watch events, `connect` reads a frontend's
//! keys and maps its rings, `events` services fired event channels and the vifs' datapaths,
//! `flush` delivers what the stack transmitted, `round` does a round's ring work for many vifs
//! with one grant-copy call.

mod connect;
mod events;
mod flush;
mod round;
mod xenbus;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Instant;

use xen::xenstore::Xenstore;
use xen::{DomId, EventChannel, GrantTable, Port};

use crate::store::Store;
use crate::vif::Vif;
use xenbus::TOKEN_BACKEND;

/// Vifs whose handshake is stepped per [`Netback::handle_xenstore_events`] call (bounded
/// xenstore work per round on the datapath thread).
pub const XS_STEPS_PER_ROUND: usize = 8;

/// The feature keys written (in one transaction, with `state=InitWait`) for every vif. With
/// `feature-gso-tcpv4`/`-tcpv6` a Linux netfront turns TSO on and sends TCP segments of up to
/// 64 KiB with a GSO extra.
pub const FEATURES: &[(&str, &str)] = &[
    ("feature-rx-copy", "1"),
    ("feature-rx-flip", "0"),
    ("feature-sg", "1"),
    ("feature-ipv6-csum-offload", "1"),
    ("feature-gso-tcpv4", "1"),
    ("feature-gso-tcpv6", "1"),
];

type Key = (DomId, u32);

/// What the datapath rounds cost in system calls, over all vifs: a round is one
/// [`Netback::handle_evtchn`] or [`Netback::flush`] with ring work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundStats {
    /// Rounds that had ring work.
    pub rounds: u64,
    /// `GrantTable::copy` calls (one per round with anything to copy).
    pub copy_calls: u64,
    /// Segments in those calls.
    pub copy_segments: u64,
    /// Event-channel notifications sent.
    pub notifies: u64,
    /// Event-channel ports unmasked.
    pub unmasks: u64,
}

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
    /// Vifs whose guest is to be notified at the end of the round (by `flush`).
    notify_due: Vec<Key>,
    hotplug_agent: bool,
    stats_logged: Option<flush::Logged>,
    rounds: RoundStats,
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
            notify_due: Vec::new(),
            hotplug_agent: false,
            stats_logged: None,
            rounds: RoundStats::default(),
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

    /// What the datapath rounds cost so far, over all vifs.
    pub fn round_stats(&self) -> RoundStats {
        self.rounds
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

    /// Whether some vif has work left over from its budget (datapath or handshake steps, or a
    /// notification `flush` has not sent yet): poll again without blocking.
    pub fn has_pending_work(&self) -> bool {
        !self.busy.is_empty()
            || !self.xs_dirty.is_empty()
            || self.rescan_due
            || !self.notify_due.is_empty()
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
}
