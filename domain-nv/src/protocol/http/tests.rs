//! Unit tests of the two HTTP framers on hand-written streams.

use super::*;
use crate::protocol::{
    Access, Masked, ReplyError, ReplyFramer, ReplyOutput, ReplyRule, RequestEvent, RequestFramer,
};

fn requests(stream: &[u8]) -> Vec<RequestEvent> {
    let mut events = Vec::new();
    HttpRequests::new().feed(stream, &mut events);
    events
}

fn begin(at: u64, access: Access, reply: ReplyRule) -> RequestEvent {
    RequestEvent::Begin { at, access, reply }
}

fn end(at: u64) -> RequestEvent {
    RequestEvent::End { at }
}

fn read(path: &str) -> Access {
    Access::Read(vec![path.as_bytes().to_vec()])
}

fn write(path: &str) -> Access {
    Access::Write(vec![path.as_bytes().to_vec()])
}

#[test]
fn pipelined_requests_with_bodies() {
    let get = b"GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n";
    let post = b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
    let put = b"PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\n";
    let head = b"HEAD / HTTP/1.0\r\n\r\n";
    let stream = [&get[..], post, put, head].concat();
    let (a, b, c) = (
        get.len() as u64,
        (get.len() + post.len()) as u64,
        (stream.len() - head.len()) as u64,
    );
    assert_eq!(
        requests(&stream),
        [
            begin(0, read("/a/b"), ReplyRule::Exact),
            end(a),
            begin(a, write("/a"), ReplyRule::Exact),
            end(b),
            begin(b, write("/c"), ReplyRule::Exact),
            end(c),
            begin(c, read("/"), ReplyRule::NoBody),
            end(stream.len() as u64),
        ]
    );
}

#[test]
fn a_request_begins_before_its_body_arrives() {
    let mut framer = HttpRequests::new();
    let mut events = Vec::new();
    framer.feed(
        b"PUT /big HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n",
        &mut events,
    );
    assert_eq!(events, [begin(0, write("/big"), ReplyRule::Exact)]);
    framer.feed(&[b'x'; 999_999], &mut events);
    assert_eq!(events.len(), 1);
    framer.feed(b"x", &mut events);
    assert_eq!(events[1], end(46 + 1_000_000));
}

#[test]
fn methods_map_to_access() {
    let access =
        |method: &str| match &requests(format!("{method} /p HTTP/1.1\r\n\r\n").as_bytes())[0] {
            RequestEvent::Begin { access, .. } => access.clone(),
            other => panic!("{other:?}"),
        };
    for m in ["GET", "HEAD", "OPTIONS", "TRACE", "PROPFIND"] {
        assert_eq!(access(m), read("/p"), "{m}");
    }
    for m in [
        "POST",
        "PUT",
        "DELETE",
        "PATCH",
        "MKCOL",
        "PROPPATCH",
        "LOCK",
        "UNLOCK",
    ] {
        assert_eq!(access(m), write("/p"), "{m}");
    }
    for m in ["COPY", "MOVE", "get", "FROB", "CONNECT"] {
        assert_eq!(access(m), Access::All, "{m}");
    }
    assert_eq!(
        requests(b"OPTIONS * HTTP/1.1\r\n\r\n")[0],
        begin(0, read("*"), ReplyRule::Exact)
    );
}

#[test]
fn resource_keys_merge_spellings_of_one_path() {
    let key = |t: &str| resource_key(t.as_bytes()).map(|k| String::from_utf8(k).unwrap());
    for (target, want) in [
        ("/", "/"),
        ("/a/b/", "/a/b"),
        ("//a///b?q=1#f", "/a/b"),
        ("/a/./b/../c", "/a/c"),
        ("/../../a", "/a"),
        ("/%61%2Fb/%2e%2e/c", "/a/c"),
        ("/%zz%4", "/%zz%4"),
        ("http://host:80/x/y?z", "/x/y"),
        ("HTTPS://host", "/"),
        ("http://host?q", "/"),
    ] {
        assert_eq!(key(target).as_deref(), Some(want), "{target}");
    }
    assert_eq!(key("host:443"), None);
}

#[test]
fn unframeable_input_becomes_one_request_for_all() {
    let ok = b"GET / HTTP/1.1\r\n\r\n";
    let all_from = |at: usize| begin(at as u64, Access::All, ReplyRule::Exact);
    for bad in [
        &b"GET / HTTP/2.0\r\n\r\n"[..],
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nframes",
        b"CONNECT host:443 HTTP/1.1\r\n\r\ntunnel",
    ] {
        let stream = [&ok[..], bad, ok].concat();
        let events = requests(&stream);
        assert_eq!(
            events[2..],
            [all_from(ok.len())],
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let broken_chunk = b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc";
    let events = requests(broken_chunk);
    let bad_at = broken_chunk.len() - 1;
    assert_eq!(events[1..], [end(bad_at as u64), all_from(bad_at)]);
}

#[test]
fn a_head_without_end_is_bounded() {
    let mut framer = HttpRequests::new();
    let mut events = Vec::new();
    framer.feed(b"GET / HTTP/1.1\r\n", &mut events);
    for _ in 0..1000 {
        framer.feed(
            b"X-Filler: 0123456789012345678901234567890123456789\r\n",
            &mut events,
        );
    }
    assert_eq!(events, [begin(0, Access::All, ReplyRule::Exact)]);
}

#[test]
fn blank_lines_between_requests_belong_to_the_next() {
    let stream = b"GET /a HTTP/1.1\r\n\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
    let events = requests(stream);
    assert_eq!(events[2], begin(19, read("/b"), ReplyRule::Exact));
    assert_eq!(events[3], end(stream.len() as u64));
}

fn replies(masks: &[&str], rules: &[ReplyRule], stream: &[u8]) -> Result<ReplyOutput, ReplyError> {
    let names: Vec<String> = masks.iter().map(|s| s.to_string()).collect();
    let mut framer = HttpReplies::new(HeaderMasks::new(&names).unwrap());
    rules.iter().for_each(|&r| framer.expect(r));
    let mut out = ReplyOutput::default();
    framer.feed(stream, &mut out).map(|()| out)
}

const NGINX_A: &[u8] =
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 29 Nov 2026 17:59:59 GMT\r\n\
Content-Type: text/html\r\nContent-Length: 5\r\nLast-Modified: Sun, 29 Nov 2026 17:00:00 GMT\r\n\
ETag: \"692b2700-5\"\r\n\r\nhello";

#[test]
fn date_is_masked_and_handed_back() {
    let b = String::from_utf8(NGINX_A.to_vec())
        .unwrap()
        .replace("17:59:59", "18:00:00");
    let (a, b) = (
        replies(&[], &[ReplyRule::Exact], NGINX_A).unwrap(),
        replies(&[], &[ReplyRule::Exact], b.as_bytes()).unwrap(),
    );
    assert_eq!(a.compare, b.compare);
    assert_eq!(a.compare.len(), NGINX_A.len());
    assert_eq!((a.replies_done, b.replies_done), (1, 1));
    let at = NGINX_A.windows(5).position(|w| w == b"Sun, ").unwrap();
    assert_eq!(
        a.masked,
        [Masked {
            at: at as u64,
            real: b"Sun, 29 Nov 2026 17:59:59 GMT".to_vec()
        }]
    );
    assert_eq!(b.masked[0].real, b"Sun, 29 Nov 2026 18:00:00 GMT");
}

#[test]
fn a_date_in_another_format_is_caught() {
    let rfc850 = String::from_utf8(NGINX_A.to_vec()).unwrap().replace(
        "Sun, 29 Nov 2026 17:59:59 GMT\r\nContent-Type",
        "Sunday, 29-Nov-26 17:59:59 GMT\r\nContent-Type",
    );
    let a = replies(&[], &[ReplyRule::Exact], NGINX_A).unwrap();
    let b = replies(&[], &[ReplyRule::Exact], rfc850.as_bytes()).unwrap();
    assert_ne!(a.compare, b.compare);
    assert!(b.masked.is_empty());
}

#[test]
fn configured_headers_are_masked_by_shape() {
    let other = String::from_utf8(NGINX_A.to_vec())
        .unwrap()
        .replace("17:00:00", "17:03:20")
        .replace("692b2700", "692b27c8");
    let masks = ["etag", "last-modified"];
    let a = replies(&masks, &[ReplyRule::Exact], NGINX_A).unwrap();
    let b = replies(&masks, &[ReplyRule::Exact], other.as_bytes()).unwrap();
    assert_eq!(a.compare, b.compare);
    assert_eq!(a.masked.len(), 3);
    assert_ne!(
        replies(&[], &[ReplyRule::Exact], other.as_bytes())
            .unwrap()
            .compare,
        a.compare
    );
}

#[test]
fn interim_responses_do_not_end_a_reply() {
    let stream = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n\
HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
    let out = replies(&[], &[ReplyRule::Exact], stream).unwrap();
    assert_eq!((out.replies_done, out.compare.len()), (1, stream.len()));
    let interim_only = replies(&[], &[ReplyRule::Exact], &stream[..25]).unwrap();
    assert_eq!(
        (interim_only.replies_done, interim_only.compare.len()),
        (0, 25)
    );
}

#[test]
fn bodiless_responses() {
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
    let no_content =
        b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n";
    let stream = [&head[..], no_content].concat();
    let rules = [ReplyRule::NoBody, ReplyRule::Exact, ReplyRule::Exact];
    assert_eq!(replies(&[], &rules, &stream).unwrap().replies_done, 3);
}

#[test]
fn chunked_and_until_close_bodies() {
    let chunked =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab\r\n\r\n0\r\nX: 1\r\n\r\n";
    let close = b"HTTP/1.0 200 OK\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
    let stream = [&chunked[..], close].concat();
    let out = replies(&[], &[ReplyRule::Exact; 3], &stream).unwrap();
    assert_eq!((out.replies_done, out.compare), (1, stream));
}

#[test]
fn switching_protocols_ends_http() {
    let stream = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello";
    let out = replies(&[], &[ReplyRule::Exact], stream).unwrap();
    assert_eq!((out.replies_done, out.compare.len()), (1, stream.len()));
}

#[test]
fn an_unrequested_response_completes_no_reply() {
    let stream = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let out = replies(&[], &[], stream).unwrap();
    assert_eq!((out.replies_done, out.compare.len()), (0, stream.len()));
}

#[test]
fn bad_replies_are_errors_that_stay() {
    let mut framer = HttpReplies::new(HeaderMasks::default());
    framer.expect(ReplyRule::Exact);
    let mut out = ReplyOutput::default();
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let bad = b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\n";
    let e = framer.feed(&[&ok[..], bad].concat(), &mut out).unwrap_err();
    assert_eq!(
        (e.offset, e.reason),
        (ok.len() as u64 + 33, "Content-Length differs")
    );
    assert_eq!(out.compare, ok);
    assert_eq!(framer.feed(b"HTTP/1.1 200 OK\r\n\r\n", &mut out), Err(e));
    for garbage in [
        &b"hello\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ] {
        assert!(replies(&[], &[ReplyRule::Exact], garbage).is_err());
    }
}
