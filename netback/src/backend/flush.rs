//! RX flush: after the stack transmitted, queued frames go to the guests; the vifs' counters are
//! logged now and then.

use std::time::Instant;

use xen::{EventChannel, GrantTable};

use super::{Key, Netback};

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
            log::info!("netback: {name}: {}", crate::vif::StatsLine(st));
        }
        self.stats_logged = Some((now, cur));
    }
}
