//! Property tests of the HTTP framers: segmentation never matters, hostile bytes never panic or
//! grow memory, masks hide only `Date` (and configured) values.

use proptest::prelude::*;

use super::wire::MAX_HEAD;
use super::*;
use crate::protocol::{ReplyFramer, ReplyOutput, ReplyRule, RequestEvent, RequestFramer};

/// One well-formed request.
fn request() -> impl Strategy<Value = Vec<u8>> {
    let method = prop::sample::select(vec!["GET", "HEAD", "POST", "PUT", "DELETE", "FROB"]);
    let body = prop_oneof![
        Just(None),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| Some(vec![b])),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 1..20), 0..4).prop_map(Some),
    ];
    (method, "(/[a-c.%]{0,3}){1,3}", body, any::<bool>()).prop_map(|(method, path, body, lf)| {
        let eol = if lf { "\n" } else { "\r\n" };
        let mut out = format!("{method} {path} HTTP/1.1{eol}Host: h{eol}").into_bytes();
        match body {
            None => out.extend_from_slice(eol.as_bytes()),
            Some(chunks) if chunks.len() == 1 => {
                out.extend(format!("Content-Length: {}{eol}{eol}", chunks[0].len()).bytes());
                out.extend_from_slice(&chunks[0]);
            }
            Some(chunks) => {
                out.extend(format!("Transfer-Encoding: chunked{eol}{eol}").bytes());
                for chunk in chunks {
                    out.extend(format!("{:x};e=1{eol}", chunk.len()).bytes());
                    out.extend_from_slice(&chunk);
                    out.extend_from_slice(eol.as_bytes());
                }
                out.extend(format!("0{eol}{eol}").bytes());
            }
        }
        out
    })
}

/// A date in the three formats of RFC 9110 section 5.6.7: IMF-fixdate (the only one a server
/// may send), RFC 850 and asctime.
fn dates() -> impl Strategy<Value = [String; 3]> {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const LONG_DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    (
        0..7usize,
        1..29u8,
        0..12usize,
        1990..2100u16,
        0..24u8,
        0..60u8,
        0..60u8,
    )
        .prop_map(|(wd, d, mo, y, h, mi, s)| {
            let (day, long, month, time) = (
                DAYS[wd],
                LONG_DAYS[wd],
                MONTHS[mo],
                format!("{h:02}:{mi:02}:{s:02}"),
            );
            [
                format!("{day}, {d:02} {month} {y} {time} GMT"),
                format!("{long}, {d:02}-{month}-{:02} {time} GMT", y % 100),
                format!("{day} {month} {d:>2} {time} {y}"),
            ]
        })
}

/// An IMF-fixdate.
fn date() -> impl Strategy<Value = String> {
    dates().prop_map(|[imf, _, _]| imf)
}

/// One response as a function of its `Date` and `ETag` values, with the rule of its request.
#[derive(Debug, Clone)]
struct Response {
    interim: bool,
    status: u16,
    rule: ReplyRule,
    chunked: bool,
    body: Vec<u8>,
}

impl Response {
    fn bytes(&self, date: &str, etag: u32) -> Vec<u8> {
        let mut out = Vec::new();
        if self.interim {
            out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let status = self.status;
        out.extend(
            format!("HTTP/1.1 {status} X\r\nDate: {date}\r\nETag: \"{etag:08x}\"\r\n").bytes(),
        );
        let bodiless = self.rule == ReplyRule::NoBody || status == 204 || status == 304;
        if self.chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            if !bodiless {
                for chunk in self.body.chunks(7) {
                    out.extend(format!("{:X}\r\n", chunk.len()).bytes());
                    out.extend_from_slice(chunk);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\nSum: 1\r\n\r\n");
            }
        } else {
            out.extend(format!("Content-Length: {}\r\n\r\n", self.body.len()).bytes());
            if !bodiless {
                out.extend_from_slice(&self.body);
            }
        }
        out
    }
}

fn response() -> impl Strategy<Value = Response> {
    let status = prop::sample::select(vec![200u16, 204, 304, 404]);
    let rule = prop_oneof![Just(ReplyRule::Exact), Just(ReplyRule::NoBody)];
    let body = prop::collection::vec(any::<u8>(), 0..30);
    (any::<bool>(), status, rule, any::<bool>(), body).prop_map(
        |(interim, status, rule, chunked, body)| Response {
            interim,
            status,
            rule,
            chunked,
            body,
        },
    )
}

/// Feeds `stream` to a request framer in pieces cut at `cuts`.
fn frame_requests(stream: &[u8], cuts: &[usize]) -> Vec<RequestEvent> {
    let mut framer = HttpRequests::new();
    let mut events = Vec::new();
    pieces(stream, cuts).for_each(|piece| framer.feed(piece, &mut events));
    events
}

/// Feeds `stream` to a reply framer expecting `rules`, in pieces cut at `cuts`.
fn frame_replies(rules: &[ReplyRule], stream: &[u8], cuts: &[usize]) -> Result<ReplyOutput, ()> {
    let masks = HeaderMasks::new(&["etag".to_string()]).unwrap();
    let mut framer = HttpReplies::new(masks);
    rules.iter().for_each(|&rule| framer.expect(rule));
    let mut out = ReplyOutput::default();
    for piece in pieces(stream, cuts) {
        framer.feed(piece, &mut out).map_err(|_| ())?;
    }
    Ok(out)
}

fn pieces<'a>(stream: &'a [u8], cuts: &[usize]) -> impl Iterator<Item = &'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c % (stream.len() + 1)).collect();
    cuts.push(0);
    cuts.push(stream.len());
    cuts.sort_unstable();
    (0..cuts.len() - 1).map(move |i| &stream[cuts[i]..cuts[i + 1]])
}

/// Events alternate Begin and End, each Begin where the previous request ended.
fn well_formed(events: &[RequestEvent], len: usize) -> bool {
    let mut next = 0;
    events.iter().enumerate().all(|(i, event)| match *event {
        RequestEvent::Begin { at, .. } => i % 2 == 0 && at == next,
        RequestEvent::End { at } => {
            next = at;
            i % 2 == 1 && at as usize <= len
        }
    })
}

proptest! {
    #[test]
    fn request_events_do_not_depend_on_segmentation(
        requests in prop::collection::vec(request(), 1..6),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let stream = requests.concat();
        let whole = frame_requests(&stream, &[]);
        prop_assert_eq!(frame_requests(&stream, &cuts), whole.clone());
        prop_assert_eq!(whole.len(), 2 * requests.len());
        prop_assert!(well_formed(&whole, stream.len()));
        prop_assert_eq!(whole.last(), Some(&RequestEvent::End { at: stream.len() as u64 }));
    }

    #[test]
    fn hostile_client_bytes_frame_sanely(
        requests in prop::collection::vec(request(), 0..4),
        noise in prop::collection::vec(any::<u8>(), 0..300),
        flips in prop::collection::vec((any::<usize>(), 1..=255u8), 0..4),
        cuts in prop::collection::vec(any::<usize>(), 0..4),
    ) {
        let mut stream = [requests.concat(), noise].concat();
        for (at, x) in flips {
            if !stream.is_empty() {
                let at = at % stream.len();
                stream[at] ^= x;
            }
        }
        let events = frame_requests(&stream, &cuts);
        prop_assert!(well_formed(&events, stream.len()));
    }

    #[test]
    fn reply_output_does_not_depend_on_segmentation(
        responses in prop::collection::vec((response(), date(), any::<u32>()), 1..5),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let rules: Vec<ReplyRule> = responses.iter().map(|(r, _, _)| r.rule).collect();
        let stream: Vec<u8> = responses.iter().flat_map(|(r, d, e)| r.bytes(d, *e)).collect();
        let whole = frame_replies(&rules, &stream, &[]).unwrap();
        prop_assert_eq!(whole.compare.len(), stream.len());
        prop_assert_eq!(whole.replies_done, responses.len());
        prop_assert_eq!(whole.masked.len(), 2 * responses.len());
        prop_assert_eq!(frame_replies(&rules, &stream, &cuts).unwrap(), whole);
    }

    #[test]
    fn only_masked_values_may_differ(
        responses in prop::collection::vec((response(), date(), date(), any::<u32>(), any::<u32>()), 1..4),
        flip in (any::<usize>(), 1..=255u8),
    ) {
        let rules: Vec<ReplyRule> = responses.iter().map(|r| r.0.rule).collect();
        let a: Vec<u8> = responses.iter().flat_map(|(r, d, _, e, _)| r.bytes(d, *e)).collect();
        let b: Vec<u8> = responses.iter().flat_map(|(r, _, d, _, e)| r.bytes(d, *e)).collect();
        let out_a = frame_replies(&rules, &a, &[]).unwrap();
        prop_assert_eq!(&frame_replies(&rules, &b, &[]).unwrap().compare, &out_a.compare);
        // One byte changed outside every masked value is seen (or the stream stops framing).
        let masked = |at: usize| out_a.masked.iter().any(|m| (m.at as usize..m.at as usize + m.real.len()).contains(&at));
        let outside: Vec<usize> = (0..a.len()).filter(|&at| !masked(at)).collect();
        let mut changed = a.clone();
        changed[outside[flip.0 % outside.len()]] ^= flip.1;
        if let Ok(out) = frame_replies(&rules, &changed, &[]) {
            prop_assert_ne!(out.compare, out_a.compare);
        }
    }

    #[test]
    fn hostile_reply_bytes_frame_sanely(
        responses in prop::collection::vec((response(), date(), any::<u32>()), 0..3),
        noise in prop::collection::vec(any::<u8>(), 0..300),
        flips in prop::collection::vec((any::<usize>(), 1..=255u8), 0..4),
        rules in prop::collection::vec(prop_oneof![Just(ReplyRule::Exact), Just(ReplyRule::NoBody)], 0..4),
        cuts in prop::collection::vec(any::<usize>(), 0..4),
    ) {
        let mut stream: Vec<u8> = responses.iter().flat_map(|(r, d, e)| r.bytes(d, *e)).collect();
        stream.extend(noise);
        for (at, x) in flips {
            if !stream.is_empty() {
                let at = at % stream.len();
                stream[at] ^= x;
            }
        }
        if let Ok(out) = frame_replies(&rules, &stream, &cuts) {
            prop_assert!(out.compare.len() <= stream.len());
            prop_assert!(stream.len() - out.compare.len() <= MAX_HEAD);
            prop_assert!(out.replies_done <= rules.len());
            for m in &out.masked {
                let at = m.at as usize;
                prop_assert_eq!(&stream[at..at + m.real.len()], &m.real[..]);
            }
        }
    }

    #[test]
    fn a_date_in_an_obsolete_format_is_caught(
        response in response(),
        dates in dates(),
        obsolete in 1..3usize,
        etag in any::<u32>(),
    ) {
        let rules = [response.rule];
        let imf = frame_replies(&rules, &response.bytes(&dates[0], etag), &[]).unwrap();
        let other = frame_replies(&rules, &response.bytes(&dates[obsolete], etag), &[]).unwrap();
        prop_assert_ne!(imf.compare, other.compare);
        prop_assert_eq!(other.masked.len(), 1);
    }
}

#[test]
fn a_megabyte_of_unended_reply_head_is_an_error() {
    let mut framer = HttpReplies::new(HeaderMasks::default());
    framer.expect(ReplyRule::Exact);
    let mut out = ReplyOutput::default();
    framer.feed(b"HTTP/1.1 200 OK\r\n", &mut out).unwrap();
    let line = b"X-Filler: 0123456789012345678901234567890123456789\r\n";
    let fed = (0..20_000)
        .map(|_| framer.feed(line, &mut out))
        .take_while(Result::is_ok)
        .count();
    assert!(fed * line.len() <= MAX_HEAD, "{fed} lines accepted");
    assert!(out.compare.is_empty());
}
