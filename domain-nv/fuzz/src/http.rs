//! The HTTP framers' checks.

use domain_nv::protocol::http::{HeaderMasks, HttpReplies, HttpRequests};
use domain_nv::protocol::{ReplyFramer, ReplyOutput, ReplyRule, RequestEvent, RequestFramer};

/// The most bytes a reply framer may hold back (one response head, its documented bound).
const MAX_HELD: usize = 64 * 1024;

/// Feeds `data[1..]` to both HTTP framers, whole and cut where `data[0]` says: they must never
/// panic, frame the same either way, and keep their invariants (requests: Begin and End
/// alternate and tile the stream; replies: one comparison byte per byte taken, at most one head
/// held back, masked records that hold the real bytes).
pub fn check_http(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let cut = usize::from(seed) * stream.len() / 255;
    let (first, second) = stream.split_at(cut);

    let mut whole = Vec::new();
    HttpRequests::new().feed(stream, &mut whole);
    let mut framer = HttpRequests::new();
    let mut pieces = Vec::new();
    framer.feed(first, &mut pieces);
    framer.feed(second, &mut pieces);
    assert_eq!(whole, pieces);
    let mut next = 0;
    for (i, event) in whole.iter().enumerate() {
        match *event {
            RequestEvent::Begin { at, .. } => assert!(i % 2 == 0 && at == next),
            RequestEvent::End { at } => {
                assert!(i % 2 == 1 && at as usize <= stream.len());
                next = at;
            }
        }
    }

    let rules: Vec<ReplyRule> = (0..8)
        .map(|bit| {
            if seed >> bit & 1 == 1 {
                ReplyRule::NoBody
            } else {
                ReplyRule::Exact
            }
        })
        .collect();
    let replies = |parts: &[&[u8]]| {
        let masks = HeaderMasks::new(&["etag".to_string()]).expect("a valid mask list");
        let mut framer = HttpReplies::new(masks);
        rules.iter().for_each(|&rule| framer.expect(rule));
        let mut out = ReplyOutput::default();
        let result = parts
            .iter()
            .try_for_each(|part| framer.feed(part, &mut out));
        (result, out)
    };
    let (whole_result, whole) = replies(&[stream]);
    let (pieces_result, pieces) = replies(&[first, second]);
    assert_eq!(whole_result, pieces_result);
    if whole_result.is_ok() {
        assert_eq!(whole, pieces);
        assert!(whole.compare.len() <= stream.len());
        assert!(stream.len() - whole.compare.len() <= MAX_HELD);
        assert!(whole.replies_done <= rules.len());
        for m in &whole.masked {
            let at = m.at as usize;
            assert_eq!(&stream[at..at + m.real.len()], &m.real[..]);
        }
    }
}
