//! Tests of [`RespRequests`](super::RespRequests).

use super::*;
use proptest::prelude::*;

fn frame(bytes: &[u8]) -> Vec<RequestEvent> {
    let mut framer = RespRequests::new();
    let mut events = Vec::new();
    framer.feed(bytes, &mut events);
    events
}

fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn begin(at: u64, access: Access, reply: ReplyRule) -> RequestEvent {
    RequestEvent::Begin { at, access, reply }
}

fn key(k: &str) -> Vec<u8> {
    k.as_bytes().to_vec()
}

#[test]
fn pipelined_requests_tile_the_stream() {
    let set = command(&[b"SET", b"a", b"1"]);
    let get = command(&[b"get", b"b"]);
    let stream = [&set[..], b"PING\r\n", &get].concat();
    let (s, p) = (set.len() as u64, set.len() as u64 + 6);
    assert_eq!(
        frame(&stream),
        vec![
            begin(0, Access::Write(vec![key("a")]), ReplyRule::Exact),
            RequestEvent::End { at: s },
            begin(s, Access::Nothing, ReplyRule::Exact),
            RequestEvent::End { at: p },
            begin(p, Access::Read(vec![key("b")]), ReplyRule::Exact),
            RequestEvent::End {
                at: stream.len() as u64
            },
        ]
    );
}

#[test]
fn empty_requests_belong_to_the_next_one() {
    let stream = b"\r\n*0\r\n*-1\r\n  \nsmembers \"s 1\"\r\n";
    assert_eq!(
        frame(stream),
        vec![
            begin(0, Access::Read(vec![key("s 1")]), ReplyRule::Unordered),
            RequestEvent::End {
                at: stream.len() as u64
            },
        ]
    );
}

#[test]
fn a_large_value_streams_after_the_request_begins() {
    let value = vec![b'v'; 1 << 20];
    let set = command(&[b"SET", b"k", &value]);
    let mut framer = RespRequests::new();
    let mut events = Vec::new();
    framer.feed(&set[..40], &mut events);
    assert_eq!(
        events,
        vec![begin(0, Access::Write(vec![key("k")]), ReplyRule::Exact)]
    );
    framer.feed(&set[40..], &mut events);
    assert_eq!(
        events[1],
        RequestEvent::End {
            at: set.len() as u64
        }
    );
}

#[test]
fn a_request_unclassified_after_64_kib_is_all() {
    let big = vec![b'v'; 100_000];
    let mset = command(&[b"MSET", b"k1", &big, b"k2", b"v"]);
    let events = frame(&mset);
    assert_eq!(events[0], begin(0, Access::All, ReplyRule::Exact));
    assert_eq!(
        events[1],
        RequestEvent::End {
            at: mset.len() as u64
        }
    );
}

#[test]
fn every_request_begins_within_its_bound() {
    let big = vec![b'v'; 100_000];
    let long_key = vec![b'k'; 10_000];
    let many_keys: Vec<&[u8]> = std::iter::once(&b"DEL"[..])
        .chain([&long_key[..]; 3])
        .collect();
    let long_inline = [&b"GET "[..], &[b'k'; INLINE_MAX], b"\r\n"].concat();
    for stream in [
        command(&[b"MSET", b"k1", &big, b"k2", b"v"]),
        command(&many_keys),
        long_inline,
        b"\r\n".repeat(BEGIN_WITHIN),
        b"*0\r\n".repeat(BEGIN_WITHIN / 4),
    ] {
        let mut framer = RespRequests::new();
        let mut events = Vec::new();
        framer.feed(&stream[..BEGIN_WITHIN.min(stream.len())], &mut events);
        assert!(
            matches!(events.first(), Some(RequestEvent::Begin { .. })),
            "{}",
            stream.len()
        );
    }
}

#[test]
fn transactions_are_all_up_to_exec() {
    let stream = [
        command(&[b"MULTI"]),
        command(&[b"INCR", b"a"]),
        command(&[b"EXEC"]),
        command(&[b"INCR", b"a"]),
    ]
    .concat();
    let accesses: Vec<Access> = frame(&stream)
        .into_iter()
        .filter_map(|e| match e {
            RequestEvent::Begin { access, .. } => Some(access),
            RequestEvent::End { .. } => None,
        })
        .collect();
    let write_a = Access::Write(vec![key("a")]);
    assert_eq!(
        accesses,
        vec![Access::All, Access::All, Access::All, write_a]
    );
}

#[test]
fn what_does_not_frame_is_one_endless_all_request() {
    let get = command(&[b"GET", b"a"]);
    let mut bad = command(&[b"SET", b"a", b"v"]);
    let last = bad.len() - 2;
    bad[last] = b'x';
    let n = get.len() as u64;
    assert_eq!(
        frame(&[&get[..], &bad, &get].concat()),
        vec![
            begin(0, Access::Read(vec![key("a")]), ReplyRule::Exact),
            RequestEvent::End { at: n },
            begin(n, Access::Write(vec![key("a")]), ReplyRule::Exact),
            RequestEvent::End {
                at: n + last as u64
            },
            begin(n + last as u64, Access::All, ReplyRule::Exact),
        ]
    );
    let mut bad_key = get.clone();
    bad_key[get.len() - 2] = b'x';
    assert_eq!(
        frame(&bad_key),
        vec![begin(0, Access::All, ReplyRule::Exact)]
    );
    for bad in [
        &b"*1\r\n+PING\r\n"[..],
        b"*1\r\n$-1\r\n",
        b"*x\r\n",
        b"GET \"a\r\n",
        b"*1\n",
    ] {
        assert_eq!(
            frame(bad),
            vec![begin(0, Access::All, ReplyRule::Exact)],
            "{bad:?}"
        );
    }
    let long_inline = vec![b'a'; INLINE_MAX + 1];
    assert_eq!(
        frame(&long_inline),
        vec![begin(0, Access::All, ReplyRule::Exact)]
    );
}

#[test]
fn pub_sub_makes_the_rest_one_endless_request() {
    let stream = [command(&[b"SUBSCRIBE", b"ch"]), command(&[b"GET", b"a"])].concat();
    assert_eq!(
        frame(&stream),
        vec![begin(0, Access::All, ReplyRule::Exact)]
    );
}

#[test]
fn inline_arguments_split_like_redis() {
    let split = |s: &[u8]| split_inline(s).map(|v| v.into_iter().collect::<Vec<_>>());
    let args = |list: &[&[u8]]| Some(list.iter().map(|a| a.to_vec()).collect::<Vec<_>>());
    assert_eq!(split(b"  set  a b "), args(&[b"set", b"a", b"b"]));
    assert_eq!(
        split(b"set \"a b\" 'c\\'d'"),
        args(&[b"set", b"a b", b"c'd"])
    );
    assert_eq!(split(b"x \"\\x41\\n\\z\""), args(&[b"x", b"A\nz"]));
    assert_eq!(split(b"x\x0by"), args(&[b"x\x0by"]));
    assert_eq!(split(b"a\"b c\""), args(&[b"ab c"]));
    assert_eq!(split(b""), args(&[]));
    for bad in [&b"\"a"[..], b"'a", b"\"a\"b", b"'a'b"] {
        assert_eq!(split(bad), None, "{bad:?}");
    }
}

/// A pipeline of well-formed commands, inline ones and blanks among them.
fn pipeline() -> impl Strategy<Value = Vec<u8>> {
    let name = prop::sample::select(vec![
        "GET",
        "SET",
        "MSET",
        "DEL",
        "PING",
        "SMEMBERS",
        "ZUNIONSTORE",
        "MULTI",
        "EXEC",
        "FLUSHALL",
        "OBJECT",
        "COMMAND",
        "HGETALL",
        "NOSUCH",
    ]);
    let arg = prop::collection::vec(any::<u8>(), 0..12);
    let request = (name, prop::collection::vec(arg, 0..6), 0..4u8);
    prop::collection::vec(request, 1..8).prop_map(|requests| {
        let mut out = Vec::new();
        for (name, args, form) in requests {
            let mut all: Vec<&[u8]> = vec![name.as_bytes()];
            all.extend(args.iter().map(|a| &a[..]));
            match form {
                0 => out.extend_from_slice(b"*0\r\n"),
                1 => out.extend_from_slice(format!("{name} a b\r\n").as_bytes()),
                _ => out.extend_from_slice(&command(&all)),
            }
        }
        out
    })
}

proptest! {
    #[test]
    fn any_segmentation_gives_the_same_events(stream in pipeline(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6)) {
        let whole = frame(&stream);
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        cuts.sort_unstable();
        let mut framer = RespRequests::new();
        let mut events = Vec::new();
        let mut from = 0;
        for cut in cuts.into_iter().chain([stream.len()]) {
            framer.feed(&stream[from..cut], &mut events);
            from = cut;
        }
        prop_assert_eq!(&events, &whole);
        // A pipeline of whole requests ends with a request's end.
        let ends = whole.iter().filter(|e| matches!(e, RequestEvent::End { .. })).count();
        let begins = whole.len() - ends;
        prop_assert!(begins == ends || begins == ends + 1);
    }

    #[test]
    fn arbitrary_bytes_give_well_formed_events(stream in prop::collection::vec(any::<u8>(), 0..400)) {
        let events = frame(&stream);
        let mut open = false;
        let mut last = 0;
        for event in &events {
            match event {
                RequestEvent::Begin { at, .. } => {
                    prop_assert!(!open && *at == last);
                    open = true;
                }
                RequestEvent::End { at } => {
                    prop_assert!(open && *at > last && *at <= stream.len() as u64);
                    open = false;
                    last = *at;
                }
            }
        }
    }
}
