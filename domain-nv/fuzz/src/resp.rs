//! The checks of the redis (RESP) framers.

use domain_nv::protocol::redis::{RespReplies, RespRequests, HOLD_MAX, LINE_MAX};
use domain_nv::protocol::{ReplyFramer, ReplyOutput, ReplyRule, RequestEvent, RequestFramer};

/// Feeds `data[2..]` to both redis framers, whole and cut where `data[0]` says, the reply framer
/// expecting the rules `data[1]` spells (two bits a reply): they must never panic, frame the
/// same either way, and keep their invariants (requests: Begin and End alternate and tile the
/// stream; replies: one comparison byte per byte taken, at most one reply and one line held
/// back, comparison bytes equal to the real ones outside masked records).
pub fn check_resp(data: &[u8]) {
    let [seed, rules, stream @ ..] = data else {
        return;
    };
    let cut = usize::from(*seed) * stream.len() / 255;
    let (first, second) = stream.split_at(cut);

    let mut whole = Vec::new();
    RespRequests::new().feed(stream, &mut whole);
    let mut framer = RespRequests::new();
    let mut pieces = Vec::new();
    framer.feed(first, &mut pieces);
    framer.feed(second, &mut pieces);
    assert_eq!(whole, pieces);
    let mut next = 0;
    for (i, event) in whole.iter().enumerate() {
        match *event {
            RequestEvent::Begin { at, .. } => assert!(i % 2 == 0 && at == next),
            RequestEvent::End { at } => {
                assert!(i % 2 == 1 && at > next && at <= stream.len() as u64);
                next = at;
            }
        }
    }

    let rules: Vec<ReplyRule> = (0..4)
        .map(|i| match (rules >> (2 * i)) & 3 {
            0 | 3 => ReplyRule::Exact,
            1 => ReplyRule::Unordered,
            _ => ReplyRule::UnorderedPairs,
        })
        .collect();
    let feed = |pieces: &[&[u8]]| {
        let mut framer = RespReplies::new();
        rules.iter().for_each(|rule| framer.expect(*rule));
        let mut out = ReplyOutput::default();
        let mut taken = 0;
        for piece in pieces {
            if framer.feed(piece, &mut out).is_err() {
                return (out, None);
            }
            taken += piece.len();
        }
        (out, Some(taken))
    };
    let (out, taken) = feed(&[stream]);
    let (split, split_taken) = feed(&[first, second]);
    assert_eq!(taken.is_some(), split_taken.is_some());
    if taken.is_none() {
        return;
    }
    assert_eq!(out, split);
    assert!(out.replies_done <= rules.len());
    assert!(stream.len() - out.compare.len() <= HOLD_MAX + LINE_MAX);
    let mut real = out.compare.clone();
    for masked in &out.masked {
        let at = masked.at as usize;
        assert_eq!(masked.real.len(), real[at..at + masked.real.len()].len());
        real[at..at + masked.real.len()].copy_from_slice(&masked.real);
    }
    assert_eq!(real, stream[..real.len()]);
}
