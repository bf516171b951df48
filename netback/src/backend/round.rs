//! One round of datapath work over many vifs: each vif's guest TX and RX is taken off its rings
//! first, then everything is copied in one grant-copy call (one `gntdev` ioctl per
//! [`xen::COPY_BATCH_MAX`] segments), then each vif answers its rings and is notified at most once.

use std::time::Instant;

use xen::{CopySegment, EventChannel, GrantStatus, GrantTable};

use super::{Key, Netback};
use crate::vif::{RxBatch, Step, TxBatch, Work};

/// One vif's work in a round, between taking it off the rings and answering.
struct Pending {
    key: Key,
    tx: Step<TxBatch>,
    rx: Step<RxBatch>,
    /// This vif's segments in the round's copy: TX `start..mid`, RX `mid..end`.
    span: (usize, usize, usize),
}

impl<G: GrantTable, E: EventChannel> Netback<G, E> {
    /// Serves the vifs `keys` (guest TX too if `tx`, guest RX always) with one grant-copy call
    /// for all of them. A vif's violation disables that vif only; the others are still served.
    pub(super) fn serve_round(&mut self, keys: &[Key], tx: bool, now: Instant) {
        let mut round: Vec<Pending> = Vec::new();
        for &key in keys {
            let Some(vif) = self.vifs.get_mut(&key) else {
                continue;
            };
            vif.set_now(now);
            let taken = if tx {
                vif.take_tx()
            } else {
                Ok(Step::Done(Work::default()))
            };
            match taken.and_then(|t| vif.take_rx(now).map(|r| (t, r))) {
                Ok((tx, rx)) => round.push(Pending {
                    key,
                    tx,
                    rx,
                    span: (0, 0, 0),
                }),
                Err(v) => self.finish_logged(key, Err(v), now),
            }
        }
        if !round.is_empty() {
            self.rounds.rounds += 1;
        }
        let mut segs: Vec<CopySegment<'_>> = Vec::new();
        for p in round.iter_mut() {
            let start = segs.len();
            if let Step::Copy(b) = &mut p.tx {
                b.push_segments(&mut segs);
            }
            let mid = segs.len();
            if let Step::Copy(b) = &mut p.rx {
                b.push_segments(&mut segs);
            }
            p.span = (start, mid, segs.len());
        }
        if !segs.is_empty() {
            self.rounds.copy_calls += 1;
            self.rounds.copy_segments += segs.len() as u64;
        }
        let mut status: Vec<GrantStatus> = Vec::new();
        let copied = segs.is_empty() || {
            match self.gt.copy(&mut segs, &mut status) {
                Ok(()) => status.len() == segs.len(),
                Err(e) => {
                    log::warn!("netback: grant copy of {} segments failed: {e}", segs.len());
                    false
                }
            }
        };
        drop(segs);
        for p in round {
            let Pending { key, tx, rx, span } = p;
            let (start, mid, end) = span;
            let part = |a: usize, b: usize| copied.then(|| &status[a..b]);
            let vif = self.vifs.get_mut(&key).expect("served this round");
            if end > start {
                vif.count_copy(end - start);
            }
            let t = match tx {
                Step::Done(w) => Ok(w),
                Step::Copy(b) => vif.complete_tx(b, part(start, mid)),
            };
            let r = match rx {
                Step::Done(w) => Ok(w),
                Step::Copy(b) => vif.complete_rx(b, part(mid, end)),
            };
            self.finish_logged(key, t.and_then(|t| r.map(|r| (t, r))), now);
        }
    }
}
