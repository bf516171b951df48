//! RX flush: after the stack transmitted, queued frames go to the guests; the vifs' counters are
//! logged now and then.

use std::time::Instant;

use xen::{EventChannel, GrantTable};

use super::{Key, Netback};

/// The counters as last logged, and when.
pub(super) struct Logged {
    at: Instant,
    vifs: Vec<(Key, crate::vif::VifStats)>,
    rounds: super::RoundStats,
}

/// How often [`Netback::flush`] logs the counters of the vifs whose counters changed.
const STATS_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

impl<G: GrantTable, E: EventChannel> Netback<G, E> {
    /// Delivers queued frames to the guests (call after the stack transmitted), expires old
    /// ones, and notifies each guest whose rings asked for it in this round once.
    pub fn flush(&mut self, now: Instant) -> xen::Result<()> {
        let keys: Vec<Key> = self
            .vifs
            .iter()
            .filter(|(_, v)| v.is_connected())
            .map(|(k, _)| *k)
            .collect();
        self.serve_round(&keys, false, now);
        self.send_notifications();
        self.log_stats(now);
        Ok(())
    }

    /// Every STATS_LOG_INTERVAL: one info line per vif whose counters changed, and one for the
    /// rounds if they did.
    fn log_stats(&mut self, now: Instant) {
        if self
            .stats_logged
            .as_ref()
            .is_some_and(|l| now < l.at + STATS_LOG_INTERVAL)
        {
            return;
        }
        let (prev, prev_rounds) = self
            .stats_logged
            .take()
            .map(|l| (l.vifs, l.rounds))
            .unwrap_or_default();
        let cur: Vec<(Key, crate::vif::VifStats)> =
            self.vifs.iter().map(|(k, v)| (*k, v.stats())).collect();
        for (key, st) in &cur {
            if prev.iter().any(|(k, p)| k == key && p == st) {
                continue;
            }
            let name = self.vifs[key].name();
            log::info!("netback: {name}: {}", crate::vif::StatsLine(st));
        }
        let r = self.rounds;
        if r != prev_rounds {
            log::info!(
                "netback: {} rounds: {} grant-copy calls ({:.1} segments each), {} notifications, {} unmasks",
                r.rounds,
                r.copy_calls,
                r.copy_segments as f64 / r.copy_calls.max(1) as f64,
                r.notifies,
                r.unmasks
            );
        }
        self.stats_logged = Some(Logged {
            at: now,
            vifs: cur,
            rounds: r,
        });
    }
}
