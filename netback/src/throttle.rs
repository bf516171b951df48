//! Event throttling in the spirit of Xen's lateeoi (XSA-332): a guest that notifies without
//! giving work must cost bounded CPU.
//!
//! Linux netback classifies each interrupt as spurious or not and lets the event core delay the
//! EOI of spurious ones. Here a notification is spurious if the vif's rings had nothing for us
//! since the previous one was handled (work picked up meanwhile by a busy poll or a flush counts:
//! the guest did give work). [`EventThrottle`] says, after each handled notification, how long
//! the vif's port stays masked: not at all after work or after the first spurious event, then
//! 1 ms doubling up to [`MAX_EVENT_DELAY`] while events keep coming without work. A masked port
//! loses nothing: an event arriving meanwhile is raised again when it is unmasked.

use std::time::Duration;

/// The longest a port stays masked after spurious events.
pub const MAX_EVENT_DELAY: Duration = Duration::from_millis(100);

/// The spurious-event state of one vif's event channel.
#[derive(Clone, Debug, Default)]
pub struct EventThrottle {
    spurious: u32,
}

impl EventThrottle {
    /// No spurious events yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records how handling a notification went (`work`: the rings had something for us);
    /// returns how long to keep the port masked, `None` to unmask it now.
    pub fn after_event(&mut self, work: bool) -> Option<Duration> {
        if work {
            self.spurious = 0;
            return None;
        }
        // Capped well past the point where the delay reaches its maximum.
        self.spurious = (self.spurious + 1).min(32);
        if self.spurious < 2 {
            return None;
        }
        let ms = 1u64 << (self.spurious - 2).min(20);
        Some(Duration::from_millis(ms).min(MAX_EVENT_DELAY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_while_spurious_and_work_resets_it() {
        let mut t = EventThrottle::new();
        let ms = Duration::from_millis;
        let delays: Vec<Option<Duration>> = (0..10).map(|_| t.after_event(false)).collect();
        assert_eq!(
            delays,
            vec![
                None,
                Some(ms(1)),
                Some(ms(2)),
                Some(ms(4)),
                Some(ms(8)),
                Some(ms(16)),
                Some(ms(32)),
                Some(ms(64)),
                Some(MAX_EVENT_DELAY),
                Some(MAX_EVENT_DELAY)
            ]
        );
        assert!((0..1000).all(|_| t.after_event(false) == Some(MAX_EVENT_DELAY)));
        assert_eq!(t.after_event(true), None);
        assert_eq!(
            t.after_event(false),
            None,
            "one spurious event after work costs nothing"
        );
    }
}
