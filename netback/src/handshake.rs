//! The xenbus handshake of one vif as a pure state machine: observed xenstore values in, actions
//! out. [`crate::backend`] reads the values and carries out the actions.
//!
//! It follows Linux `xen-netback/xenbus.c`: features and InitWait when the device appears;
//! connect when the frontend is Initialised or Connected (Linux netfront skips Initialised);
//! Connected held back until `hotplug-status` is `connected` if that key exists; teardown on
//! frontend Closing/Closed (also before connecting) or `online=0`; back to InitWait when a
//! closed frontend reinitialises (guest reboot).

use crate::wire::XenbusState;

/// What the backend sees in xenstore for one vif.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// The backend directory still exists.
    pub present: bool,
    /// The backend `online` key (`None` if absent or not 0/1).
    pub online: Option<bool>,
    /// The frontend's `state` (`None` if absent or unparsable).
    pub frontend: Option<XenbusState>,
    /// The backend `hotplug-status` key (`None` if absent).
    pub hotplug_status: Option<String>,
}

/// An action for the xenstore/datapath layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write the feature keys and `state=InitWait` in one transaction.
    Announce,
    /// Read the frontend's ring refs and event channel, map the rings, bind the event channel.
    /// On failure, call [`Handshake::disable`].
    Connect,
    /// Unmap the rings and unbind the event channel.
    Disconnect,
    /// Write the backend `state`.
    SetState(XenbusState),
    /// Forget the vif (the device was removed or went offline and closed).
    Remove,
}

/// Where the backend is in the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Device seen, nothing written yet.
    New,
    /// Features written, waiting for the frontend.
    InitWait,
    /// Rings connected, `state=Connected` held until `hotplug-status=connected`.
    HotplugWait,
    /// Connected.
    Connected,
    /// Closing (frontend closing, device going offline, or the vif was disabled).
    Closing,
    /// Closed.
    Closed,
    /// Removed; the vif is to be dropped.
    Removed,
}

/// The handshake state machine of one vif.
#[derive(Debug)]
pub struct Handshake {
    phase: Phase,
}

impl Default for Handshake {
    fn default() -> Self {
        Self::new()
    }
}

impl Handshake {
    /// A handshake for a newly seen device.
    pub fn new() -> Self {
        Handshake { phase: Phase::New }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether the rings are (or should be) connected.
    pub fn connected(&self) -> bool {
        matches!(self.phase, Phase::HotplugWait | Phase::Connected)
    }

    fn hotplug_ok(obs: &Observed) -> bool {
        obs.hotplug_status
            .as_deref()
            .is_none_or(|s| s.trim_end_matches('\0') == "connected")
    }

    /// Advances on new observations; returns the actions to carry out, in order.
    pub fn step(&mut self, obs: &Observed) -> Vec<Action> {
        use XenbusState as S;
        let mut out = Vec::new();
        if !obs.present {
            if self.connected() {
                out.push(Action::Disconnect);
            }
            if self.phase != Phase::Removed {
                out.push(Action::Remove);
            }
            self.phase = Phase::Removed;
            return out;
        }
        let offline = obs.online == Some(false);
        let fe = obs.frontend;
        let fe_gone = matches!(fe, None | Some(S::Closed) | Some(S::Unknown));
        // Each phase may lead to the next within one step (e.g. a frontend already Connected).
        for _ in 0..4 {
            let before = self.phase;
            match self.phase {
                Phase::New => {
                    if offline {
                        out.push(Action::Remove);
                        self.phase = Phase::Removed;
                    } else {
                        out.push(Action::Announce);
                        self.phase = Phase::InitWait;
                    }
                }
                Phase::InitWait => {
                    if offline || fe == Some(S::Closed) {
                        out.push(Action::SetState(S::Closed));
                        self.phase = Phase::Closed;
                    } else if fe == Some(S::Closing) {
                        // The frontend gave up before connecting: follow it (Linux netfront
                        // waits for the backend's Closing before it closes).
                        out.push(Action::SetState(S::Closing));
                        self.phase = Phase::Closing;
                    } else if matches!(fe, Some(S::Initialised) | Some(S::Connected)) {
                        out.push(Action::Connect);
                        self.phase = Phase::HotplugWait;
                    }
                }
                Phase::HotplugWait | Phase::Connected => {
                    if offline || fe == Some(S::Closing) {
                        out.push(Action::Disconnect);
                        out.push(Action::SetState(S::Closing));
                        self.phase = Phase::Closing;
                    } else if fe_gone {
                        out.push(Action::Disconnect);
                        out.push(Action::SetState(S::Closed));
                        self.phase = Phase::Closed;
                    } else if self.phase == Phase::HotplugWait && Self::hotplug_ok(obs) {
                        out.push(Action::SetState(S::Connected));
                        self.phase = Phase::Connected;
                    }
                }
                Phase::Closing => {
                    if fe_gone {
                        out.push(Action::SetState(S::Closed));
                        self.phase = Phase::Closed;
                    }
                }
                Phase::Closed => {
                    if offline {
                        out.push(Action::Remove);
                        self.phase = Phase::Removed;
                    } else if matches!(fe, Some(S::Initialising) | Some(S::InitWait)) {
                        log::info!("frontend reinitialising: prepare for reconnect");
                        out.push(Action::SetState(S::InitWait));
                        self.phase = Phase::InitWait;
                    }
                }
                Phase::Removed => {}
            }
            if self.phase == before {
                break;
            }
        }
        out
    }

    /// Disables the vif (rogue frontend, or a failed Connect): disconnect and go to Closing.
    pub fn disable(&mut self) -> Vec<Action> {
        match self.phase {
            Phase::Removed | Phase::Closed | Phase::Closing => Vec::new(),
            _ => {
                self.phase = Phase::Closing;
                vec![Action::Disconnect, Action::SetState(XenbusState::Closing)]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use XenbusState as S;

    fn obs(fe: Option<S>) -> Observed {
        Observed {
            present: true,
            online: Some(true),
            frontend: fe,
            hotplug_status: None,
        }
    }

    #[test]
    fn linux_netfront_skips_initialised_and_connects() {
        let mut h = Handshake::new();
        assert_eq!(h.step(&obs(Some(S::Initialising))), vec![Action::Announce]);
        assert_eq!(h.step(&obs(Some(S::Initialising))), vec![]);
        assert_eq!(
            h.step(&obs(Some(S::Connected))),
            vec![Action::Connect, Action::SetState(S::Connected)]
        );
        assert_eq!(h.phase(), Phase::Connected);
        assert_eq!(h.step(&obs(Some(S::Connected))), vec![]);
    }

    #[test]
    fn connected_is_held_until_hotplug_status_connected() {
        let mut h = Handshake::new();
        let mut o = obs(Some(S::Initialised));
        o.hotplug_status = Some(String::new());
        assert_eq!(h.step(&o), vec![Action::Announce, Action::Connect]);
        assert_eq!(h.phase(), Phase::HotplugWait);
        assert_eq!(h.step(&o), vec![]);
        o.hotplug_status = Some("connected".into());
        assert_eq!(h.step(&o), vec![Action::SetState(S::Connected)]);
    }

    #[test]
    fn teardown_and_reconnect_after_guest_reboot() {
        let mut h = Handshake::new();
        h.step(&obs(Some(S::Connected)));
        assert_eq!(
            h.step(&obs(Some(S::Closing))),
            vec![Action::Disconnect, Action::SetState(S::Closing)]
        );
        assert_eq!(
            h.step(&obs(Some(S::Closed))),
            vec![Action::SetState(S::Closed)]
        );
        assert_eq!(
            h.step(&obs(Some(S::Initialising))),
            vec![Action::SetState(S::InitWait)]
        );
        assert_eq!(
            h.step(&obs(Some(S::Connected))),
            vec![Action::Connect, Action::SetState(S::Connected)]
        );
        // A frontend that vanishes while connected.
        assert_eq!(
            h.step(&obs(None)),
            vec![Action::Disconnect, Action::SetState(S::Closed)]
        );
    }

    /// Issue 16, defect 4: a frontend going Closing (or Closed) while the backend waits in
    /// InitWait is followed, as Linux netback's `frontend_changed` does.
    #[test]
    fn frontend_closing_during_initwait_is_followed() {
        let mut h = Handshake::new();
        assert_eq!(h.step(&obs(Some(S::Initialising))), vec![Action::Announce]);
        assert_eq!(
            h.step(&obs(Some(S::Closing))),
            vec![Action::SetState(S::Closing)]
        );
        assert_eq!(
            h.step(&obs(Some(S::Closed))),
            vec![Action::SetState(S::Closed)]
        );
        assert_eq!(
            h.step(&obs(Some(S::Initialising))),
            vec![Action::SetState(S::InitWait)]
        );
        let mut h = Handshake::new();
        h.step(&obs(Some(S::Initialising)));
        assert_eq!(
            h.step(&obs(Some(S::Closed))),
            vec![Action::SetState(S::Closed)]
        );
        // No frontend state yet (not written, or the path not yet known) is not a close.
        let mut h = Handshake::new();
        assert_eq!(h.step(&obs(None)), vec![Action::Announce]);
        assert_eq!(h.step(&obs(None)), vec![]);
    }

    #[test]
    fn offline_device_closes_and_is_removed() {
        let mut h = Handshake::new();
        h.step(&obs(Some(S::Connected)));
        let mut o = obs(Some(S::Connected));
        o.online = Some(false);
        assert_eq!(
            h.step(&o),
            vec![Action::Disconnect, Action::SetState(S::Closing)]
        );
        o.frontend = Some(S::Closed);
        assert_eq!(
            h.step(&o),
            vec![Action::SetState(S::Closed), Action::Remove]
        );
        assert_eq!(h.phase(), Phase::Removed);
        let mut h2 = Handshake::new();
        h2.step(&obs(Some(S::Initialising)));
        assert_eq!(h2.step(&Observed::default()), vec![Action::Remove]);
    }

    #[test]
    fn disable_goes_to_closing_once() {
        let mut h = Handshake::new();
        h.step(&obs(Some(S::Connected)));
        assert_eq!(
            h.disable(),
            vec![Action::Disconnect, Action::SetState(S::Closing)]
        );
        assert_eq!(h.disable(), vec![]);
        assert_eq!(h.step(&obs(Some(S::Connected))), vec![]);
        assert_eq!(
            h.step(&obs(Some(S::Closed))),
            vec![Action::SetState(S::Closed)]
        );
    }
}
