//! Linux's quick-ACK rule for a receiver that delays its ACKs.
//!
//! A delayed ACK saves a segment when the ACK can ride on data going the other way, but it
//! stalls a peer that waits for the ACK before sending more: a sender under Nagle's algorithm
//! holds a small segment back until everything sent is acknowledged, and a sender in slow
//! start grows its window only as ACKs arrive. Linux (`net/ipv4/tcp_input.c`) ACKs at once in
//! "quick-ACK mode" and delays otherwise; this is the same rule:
//!
//! - **A young connection** (`tcp_incr_quickack`, called by `tcp_event_data_recv`): the
//!   first data segment, and the first one after an idle spell longer than the RTO, give
//!   `window / (2 * MSS)` quick ACKs (at least 2), at most `max` (Linux: `TCP_MAX_QUICKACKS`,
//!   16). Each ACK of new data sent, on its own or on data, uses one (`tcp_dec_quickack_mode`).
//! - **A small segment** (`tcp_measure_rcv_mss` sets `ICSK_ACK_PUSHED`, `tcp_cleanup_rbuf`
//!   then ACKs): a data segment shorter than the largest one seen so far (at most the MSS)
//!   is what a sender sends last before it waits, so it is ACKed at once. Linux ACKs it when
//!   the application empties the receive queue; smoltcp sends nothing from `recv`, so this
//!   ACKs when the segment arrives.
//! - **Neither while interactive** (`inet_csk_in_pingpong_mode`): once this side sends data
//!   within the ACK delay of the last data received (`tcp_event_data_sent`, Linux's threshold
//!   of 1), the connection takes turns (request, response) and the ACK waits to ride on the
//!   answer. A delayed ACK that had to go out on its own ends that mode
//!   (`tcp_delack_timer_handler`).
//! - **More than one full-sized segment**, interactive or not (`__tcp_ack_snd_check`: more
//!   than `rcv_mss` received and not yet acknowledged): a segment longer than the MSS (a
//!   sender's TSO/GSO segment delivered whole, or one coalesced by GRO/LRO) carries at least
//!   two full-sized segments, and RFC 5681 (4.2) asks for an ACK of at least every second one.
//!   Without this a lone 64 KiB segment (a sender limited by its congestion window after a
//!   loss) would wait the whole ACK delay. A second segment arriving while an ACK waits is
//!   ACKed at once by the socket itself.
//!
//! Out-of-order segments and segments that fill a hole are ACKed at once regardless (RFC 5681;
//! the socket does that itself).

use crate::time::{Duration, Instant};

/// Linux's initial estimate of the peer's segment size (`TCP_MSS_DEFAULT`).
const INITIAL_RCV_MSS: usize = 536;

/// The quick-ACK state of one connection: off (`max == 0`) unless set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct QuickAck {
    /// Most quick ACKs a young connection gets; 0 turns the rule off.
    max: u8,
    /// Quick ACKs left (Linux: `icsk_ack.quick`).
    left: u8,
    /// This side answers within the ACK delay (Linux: pingpong mode).
    interactive: bool,
    /// When the last data segment arrived (Linux: `icsk_ack.lrcvtime`).
    last_data: Option<Instant>,
    /// The largest data segment received so far, at most the MSS (Linux: `rcv_mss`).
    rcv_mss: usize,
}

impl QuickAck {
    /// The rule with up to `max` quick ACKs for a young connection; 0 = off.
    pub(super) const fn new(max: u8) -> Self {
        QuickAck {
            max,
            left: 0,
            interactive: false,
            last_data: None,
            rcv_mss: INITIAL_RCV_MSS,
        }
    }

    /// Most quick ACKs a young connection gets (0: the rule is off).
    pub(super) fn max(&self) -> u8 {
        self.max
    }

    /// Forgets the connection (a new one starts young), keeping `max`.
    pub(super) fn reset(&mut self) {
        *self = QuickAck::new(self.max);
    }

    /// A data segment of `len` octets arrived at `now` on a connection whose MSS is `mss`,
    /// whose receive window is `window` and whose RTO is `rto`. True: ACK it at once.
    pub(super) fn on_data(
        &mut self,
        now: Instant,
        len: usize,
        mss: usize,
        window: usize,
        rto: Duration,
    ) -> bool {
        if self.max == 0 || len == 0 {
            return false;
        }
        let idle = self.last_data.is_none_or(|t| now - t > rto);
        if idle {
            let fits = u8::try_from(window / (2 * mss.max(1))).unwrap_or(u8::MAX);
            let quick = if fits == 0 { 2 } else { fits }.min(self.max);
            self.left = self.left.max(quick);
        }
        self.last_data = Some(now);
        self.rcv_mss = self.rcv_mss.min(mss);
        let small = len < self.rcv_mss;
        if len > self.rcv_mss {
            self.rcv_mss = len.min(mss);
        }
        let more_than_one_segment = len > mss;
        more_than_one_segment || (!self.interactive && (self.left > 0 || small))
    }

    /// An ACK of new data went out, on its own or on data.
    pub(super) fn on_ack_sent(&mut self) {
        self.left = self.left.saturating_sub(1);
    }

    /// Data went out at `now`; `ack_delay` is how long an ACK may wait. An answer within
    /// it makes the connection interactive.
    pub(super) fn on_data_sent(&mut self, now: Instant, ack_delay: Duration) {
        if self.last_data.is_some_and(|t| now - t < ack_delay) {
            self.interactive = true;
        }
    }

    /// A delayed ACK waited its full delay: the connection is not taking turns.
    pub(super) fn on_delayed_ack_expired(&mut self) {
        self.interactive = false;
    }
}

#[cfg(test)]
mod test {
    use super::*;

    const MSS: usize = 1460;
    const WINDOW: usize = 65535;
    const RTO: Duration = Duration::from_millis(200);
    const DELAY: Duration = Duration::from_millis(10);

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms as i64)
    }

    #[test]
    fn off_never_acks_at_once() {
        let mut q = QuickAck::new(0);
        assert!(!q.on_data(at(0), 10, MSS, WINDOW, RTO));
        assert!(!q.on_data(at(1), MSS, MSS, WINDOW, RTO));
    }

    #[test]
    fn young_connection_gets_max_quick_acks_then_delays() {
        let mut q = QuickAck::new(16);
        for i in 0..16 {
            assert!(q.on_data(at(i), MSS, MSS, WINDOW, RTO), "segment {i}");
            q.on_ack_sent();
        }
        assert!(!q.on_data(at(16), MSS, MSS, WINDOW, RTO));
    }

    #[test]
    fn quick_acks_are_bounded_by_the_window_and_at_least_two() {
        // 65535 / (2 * 1460) = 22, more than max: max wins
        let mut q = QuickAck::new(30);
        let quick = (0..30)
            .take_while(|&i| {
                let now = q.on_data(at(i), MSS, MSS, WINDOW, RTO);
                q.on_ack_sent();
                now
            })
            .count();
        assert_eq!(quick, WINDOW / (2 * MSS));
        // a window smaller than two segments still gives two
        let mut q = QuickAck::new(16);
        for i in 0..2 {
            assert!(q.on_data(at(i), MSS, MSS, 1000, RTO));
            q.on_ack_sent();
        }
        assert!(!q.on_data(at(2), MSS, MSS, 1000, RTO));
    }

    #[test]
    fn an_answer_within_the_delay_makes_it_interactive_until_a_delayed_ack_expires() {
        let mut q = QuickAck::new(16);
        assert!(q.on_data(at(0), 100, MSS, WINDOW, RTO));
        q.on_ack_sent();
        q.on_data_sent(at(1), DELAY);
        // the next request, small and with quick ACKs left, waits for the answer
        assert!(!q.on_data(at(2), 100, MSS, WINDOW, RTO));
        q.on_delayed_ack_expired();
        assert!(q.on_data(at(20), 100, MSS, WINDOW, RTO));
    }

    #[test]
    fn an_answer_after_the_delay_is_not_interactive() {
        let mut q = QuickAck::new(16);
        assert!(q.on_data(at(0), 100, MSS, WINDOW, RTO));
        q.on_data_sent(at(10), DELAY);
        assert!(q.on_data(at(11), 100, MSS, WINDOW, RTO));
    }

    #[test]
    fn data_sent_before_any_received_is_not_an_answer() {
        let mut q = QuickAck::new(16);
        q.on_data_sent(at(0), DELAY);
        assert!(q.on_data(at(1), 100, MSS, WINDOW, RTO));
    }

    #[test]
    fn a_small_segment_is_acked_at_once_once_quick_acks_are_spent() {
        let mut q = QuickAck::new(2);
        for i in 0..2 {
            assert!(q.on_data(at(i), MSS, MSS, WINDOW, RTO));
            q.on_ack_sent();
        }
        assert!(
            !q.on_data(at(2), MSS, MSS, WINDOW, RTO),
            "full-sized: delayed"
        );
        assert!(q.on_data(at(3), 300, MSS, WINDOW, RTO), "small: at once");
    }

    #[test]
    fn segment_size_is_learned_from_the_largest_segment() {
        let mut q = QuickAck::new(1);
        assert!(q.on_data(at(0), 1448, MSS, WINDOW, RTO));
        q.on_ack_sent();
        // segments of 1448 (timestamps on) are full-sized, not small
        assert!(!q.on_data(at(1), 1448, MSS, WINDOW, RTO));
        // a coalesced segment larger than the MSS does not raise the bar above it (and is
        // ACKed at once: it carries more than one full-sized segment)
        assert!(q.on_data(at(2), 20000, MSS, WINDOW, RTO));
        assert!(!q.on_data(at(3), MSS, MSS, WINDOW, RTO));
        assert!(q.on_data(at(4), MSS - 1, MSS, WINDOW, RTO));
    }

    #[test]
    fn a_segment_longer_than_the_mss_is_acked_at_once_even_while_interactive() {
        let mut q = QuickAck::new(1);
        assert!(q.on_data(at(0), MSS, MSS, WINDOW, RTO));
        q.on_ack_sent();
        q.on_data_sent(at(1), DELAY);
        // quick ACKs spent and taking turns: a full-sized segment waits ...
        assert!(!q.on_data(at(2), MSS, MSS, WINDOW, RTO));
        // ... a 64 KiB one (TSO, GRO) does not
        assert!(q.on_data(at(3), 65000, MSS, WINDOW, RTO));
    }

    #[test]
    fn an_idle_spell_longer_than_the_rto_makes_it_young_again() {
        let mut q = QuickAck::new(1);
        assert!(q.on_data(at(0), MSS, MSS, WINDOW, RTO));
        q.on_ack_sent();
        assert!(!q.on_data(at(100), MSS, MSS, WINDOW, RTO));
        assert!(q.on_data(at(400), MSS, MSS, WINDOW, RTO));
    }

    #[test]
    fn reset_keeps_max_and_forgets_the_rest() {
        let mut q = QuickAck::new(4);
        q.on_data(at(0), 100, MSS, WINDOW, RTO);
        q.on_data_sent(at(1), DELAY);
        q.reset();
        assert_eq!(q, QuickAck::new(4));
        assert_eq!(q.max(), 4);
    }
}
