//! Tests of [`RespReplies`](super::RespReplies).

use super::*;
use proptest::prelude::*;

/// Feeds `stream` in pieces cut at `cuts` after expecting `rules`.
fn run(rules: &[ReplyRule], stream: &[u8], cuts: &[usize]) -> Result<ReplyOutput, ReplyError> {
    let mut framer = RespReplies::new();
    for rule in rules {
        framer.expect(*rule);
    }
    let mut out = ReplyOutput::default();
    let mut from = 0;
    for &cut in cuts.iter().chain([&stream.len()]) {
        let cut = cut.clamp(from, stream.len());
        framer.feed(&stream[from..cut], &mut out)?;
        from = cut;
    }
    Ok(out)
}

fn bulk(s: &[u8]) -> Vec<u8> {
    [format!("${}\r\n", s.len()).as_bytes(), s, b"\r\n"].concat()
}

fn array(items: &[Vec<u8>]) -> Vec<u8> {
    [format!("*{}\r\n", items.len()).into_bytes(), items.concat()].concat()
}

#[test]
fn exact_replies_pass_through_and_are_counted() {
    let stream = b"+OK\r\n$3\r\nabc\r\n*2\r\n:1\r\n*1\r\n$-1\r\n%1\r\n+k\r\n_\r\n";
    let out = run(&[ReplyRule::Exact; 4], stream, &[1, 7, 20]).unwrap();
    assert_eq!(out.compare, stream);
    assert_eq!(out.replies_done, 4);
    assert!(out.masked.is_empty());
}

#[test]
fn pushes_and_unexpected_values_answer_no_request() {
    let stream = b">2\r\n+message\r\n+x\r\n|1\r\n+ttl\r\n:3\r\n+OK\r\n:5\r\n";
    let out = run(&[ReplyRule::Unordered], stream, &[]).unwrap();
    assert_eq!(out.compare, stream);
    assert_eq!(
        out.replies_done, 1,
        "the attributed +OK answers; :5 is unexpected"
    );
    assert_eq!(out.masked.len(), 1);
    assert_eq!(out.masked[0].at, 18);
}

#[test]
fn an_unordered_listing_compares_as_a_multiset() {
    let a = array(&[bulk(b"x"), bulk(b"yy"), bulk(b"z")]);
    let b = array(&[bulk(b"z"), bulk(b"x"), bulk(b"yy")]);
    let c = array(&[bulk(b"z"), bulk(b"x"), bulk(b"yz")]);
    let rules = [ReplyRule::Exact, ReplyRule::Unordered, ReplyRule::Exact];
    let stream = |set: &[u8]| [&b"+OK\r\n"[..], set, b":1\r\n"].concat();
    let (oa, ob) = (
        run(&rules, &stream(&a), &[9]).unwrap(),
        run(&rules, &stream(&b), &[]).unwrap(),
    );
    assert_eq!(oa.compare, ob.compare);
    assert_eq!(oa.compare.len(), stream(&a).len());
    assert_eq!(
        ob.masked,
        vec![Masked {
            at: 5,
            real: b.clone()
        }]
    );
    assert_eq!(ob.replies_done, 3);
    assert_ne!(run(&rules, &stream(&c), &[]).unwrap().compare, oa.compare);
}

#[test]
fn pairs_stay_together() {
    let h1 = array(&[bulk(b"a"), bulk(b"1"), bulk(b"b"), bulk(b"2")]);
    let h2 = array(&[bulk(b"b"), bulk(b"2"), bulk(b"a"), bulk(b"1")]);
    let swapped = array(&[bulk(b"a"), bulk(b"2"), bulk(b"b"), bulk(b"1")]);
    let form = |h: &[u8], rule| run(&[rule], h, &[]).unwrap().compare;
    assert_eq!(
        form(&h1, ReplyRule::UnorderedPairs),
        form(&h2, ReplyRule::UnorderedPairs)
    );
    assert_ne!(
        form(&h1, ReplyRule::UnorderedPairs),
        form(&swapped, ReplyRule::UnorderedPairs)
    );
    assert_eq!(
        form(&h1, ReplyRule::Unordered),
        form(&swapped, ReplyRule::Unordered)
    );
}

#[test]
fn a_reply_over_the_hold_bound_is_compared_exactly() {
    let big = vec![b'v'; HOLD_MAX];
    let set = array(&[bulk(&big), bulk(b"a")]);
    let out = run(&[ReplyRule::Unordered], &set, &[100]).unwrap();
    assert_eq!(out.compare, set);
    assert!(out.masked.is_empty());
    assert_eq!(out.replies_done, 1);
}

#[test]
fn what_is_not_resp_is_an_error() {
    let deep = "*1\r\n".repeat(DEPTH_MAX + 1);
    for (bad, offset) in [
        (&b"+OK\r\n@x\r\n"[..], 5),
        (b"$3\r\nabcd\r\n", 7),
        (b"+a\rb\r\n", 0),
        (b"*2\r\n:x\r\n", 4),
        (deep.as_bytes(), 4 * (DEPTH_MAX as u64 + 1)),
    ] {
        let err = run(&[ReplyRule::Exact], bad, &[]).unwrap_err();
        assert_eq!(err.offset, offset, "{bad:?}: {err}");
    }
    let long = vec![b'+'; LINE_MAX + 1];
    assert!(run(&[], &long, &[]).is_err());
    let mut framer = RespReplies::new();
    let mut out = ReplyOutput::default();
    let first = framer.feed(b"+OK\r\r\n", &mut out).unwrap_err();
    assert_eq!(
        framer.feed(b"+OK\r\n", &mut out),
        Err(first),
        "a failed stream stays failed"
    );
}

/// A RESP value, at most `depth` aggregates deep.
fn value(depth: u32) -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..6).prop_map(|b| bulk(&b)),
        any::<i16>().prop_map(|n| format!(":{n}\r\n").into_bytes()),
        Just(b"+OK\r\n".to_vec()),
        Just(b"_\r\n".to_vec()),
    ];
    leaf.prop_recursive(depth, 24, 4, |inner| {
        (
            prop::collection::vec(inner, 0..4),
            prop::sample::select(vec!['*', '~', '%', '>']),
        )
            .prop_map(|(items, kind)| {
                let count = if kind == '%' {
                    items.len() / 2
                } else {
                    items.len()
                };
                let items = &items[..if kind == '%' { count * 2 } else { count }];
                [format!("{kind}{count}\r\n").into_bytes(), items.concat()].concat()
            })
    })
}

fn rule() -> impl Strategy<Value = ReplyRule> {
    prop::sample::select(vec![
        ReplyRule::Exact,
        ReplyRule::Unordered,
        ReplyRule::UnorderedPairs,
    ])
}

proptest! {
    #[test]
    fn any_segmentation_gives_the_same_output(
        replies in prop::collection::vec((value(3), rule()), 1..6),
        cuts in prop::collection::vec(0usize..400, 0..6),
    ) {
        let rules: Vec<ReplyRule> = replies.iter().map(|r| r.1).collect();
        let stream: Vec<u8> = replies.iter().flat_map(|r| r.0.clone()).collect();
        let whole = run(&rules, &stream, &[]).unwrap();
        let mut cuts = cuts;
        cuts.sort_unstable();
        prop_assert_eq!(&run(&rules, &stream, &cuts).unwrap(), &whole);
        prop_assert_eq!(whole.compare.len(), stream.len());
        let masked_real: usize = whole.masked.iter().map(|m| m.real.len()).sum();
        prop_assert!(masked_real <= stream.len());
    }

    #[test]
    fn masked_comparison_is_equal_iff_the_multisets_are(
        a in prop::collection::vec(prop::collection::vec(0u8..3, 0..3), 0..6),
        b in prop::collection::vec(prop::collection::vec(0u8..3, 0..3), 0..6),
        pairs in any::<bool>(),
    ) {
        let (rule, unit) = if pairs { (ReplyRule::UnorderedPairs, 2) } else { (ReplyRule::Unordered, 1) };
        let form = |items: &[Vec<u8>]| {
            let items = &items[..items.len() / unit * unit];
            let reply = array(&items.iter().map(|i| bulk(i)).collect::<Vec<_>>());
            let mut units: Vec<&[Vec<u8>]> = items.chunks(unit).collect();
            units.sort();
            (run(&[rule], &reply, &[]).unwrap().compare, units.concat())
        };
        let ((fa, sa), (fb, sb)) = (form(&a), form(&b));
        prop_assert_eq!(fa == fb, sa == sb);
    }

    #[test]
    fn a_changed_byte_is_always_caught(
        replies in prop::collection::vec((value(2), rule()), 1..5),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let rules: Vec<ReplyRule> = replies.iter().map(|r| r.1).collect();
        let stream: Vec<u8> = replies.iter().flat_map(|r| r.0.clone()).collect();
        let good = run(&rules, &stream, &[]).unwrap();
        let mut bad = stream.clone();
        bad[at.index(stream.len())] ^= xor;
        if let Ok(out) = run(&rules, &bad, &[]) {
            prop_assert_ne!(out.compare, good.compare);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        stream in prop::collection::vec(any::<u8>(), 0..300),
        rules in prop::collection::vec(rule(), 0..4),
        cuts in prop::collection::vec(0usize..300, 0..4),
    ) {
        let mut cuts = cuts;
        cuts.sort_unstable();
        if let Ok(out) = run(&rules, &stream, &cuts) {
            prop_assert!(out.compare.len() <= stream.len());
            prop_assert!(out.replies_done <= rules.len());
        }
    }
}
