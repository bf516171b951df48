//! A hostile or broken xenstored: crafted bytes through a fake server socket give errors,
//! never panics, and watch events mixed into replies are queued.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;
use std::time::Duration;

use proptest::prelude::*;
use xen::xenstore::{WatchEvent, Xenstore};
use xen::xs_wire::{Header, Message, MsgType, HEADER_LEN};
use xen::{Error, XsErrno};

/// Reads one request from the fake server's end; returns its header.
fn read_request(s: &mut UnixStream) -> Header {
    let mut h = [0u8; HEADER_LEN];
    s.read_exact(&mut h).unwrap();
    let hdr = Header::decode(&h).unwrap();
    let mut payload = vec![0u8; hdr.len as usize];
    s.read_exact(&mut payload).unwrap();
    hdr
}

/// A client whose server answers its first request with `answer(request header)`, then
/// closes the connection if `close`, else keeps it open until the client goes away.
fn fake(
    answer: impl FnOnce(&Header) -> Vec<u8> + Send + 'static,
    close: bool,
) -> (Xenstore, JoinHandle<()>) {
    let (client, mut server) = UnixStream::pair().unwrap();
    let h = std::thread::spawn(move || {
        let hdr = read_request(&mut server);
        let _ = server.write_all(&answer(&hdr));
        if !close {
            // Wait for the client to hang up (read returns 0 or fails).
            let mut sink = [0u8; 64];
            while matches!(server.read(&mut sink), Ok(n) if n > 0) {}
        }
    });
    let mut xs = Xenstore::from_fd(OwnedFd::from(client)).unwrap();
    xs.set_reply_timeout(Duration::from_secs(5));
    (xs, h)
}

fn msg(ty: MsgType, req: &Header, payload: &[u8]) -> Vec<u8> {
    Message::new(ty, req.req_id, req.tx_id, payload.to_vec())
        .encode()
        .unwrap()
}

fn raw(ty: u32, req_id: u32, len: u32, body: &[u8]) -> Vec<u8> {
    let mut v = Header {
        ty,
        req_id,
        tx_id: 0,
        len,
    }
    .encode()
    .to_vec();
    v.extend_from_slice(body);
    v
}

fn protocol_error(r: xen::Result<impl std::fmt::Debug>) -> String {
    match r {
        Err(Error::Protocol(why)) => why,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[test]
fn truncated_header_then_close() {
    let (xs, h) = fake(|_| vec![2, 0, 0], true);
    let why = protocol_error(xs.read("/a"));
    assert!(why.contains("truncated"), "{why}");
    // The connection is dead for good: later calls fail fast, watch waits too.
    assert!(matches!(xs.read("/a"), Err(Error::Protocol(_))));
    assert!(xs.wait_watch_event(Duration::from_secs(5)).is_err());
    h.join().unwrap();
}

#[test]
fn truncated_payload_then_close() {
    let (xs, h) = fake(|r| raw(MsgType::Read as u32, r.req_id, 10, b"abc"), true);
    assert!(protocol_error(xs.read("/a")).contains("truncated"));
    h.join().unwrap();
}

#[test]
fn oversized_length_is_rejected_without_waiting_for_the_bytes() {
    let (xs, h) = fake(|r| raw(MsgType::Read as u32, r.req_id, 1 << 30, b""), false);
    assert!(protocol_error(xs.read("/a")).contains("above"));
    drop(xs);
    h.join().unwrap();
}

#[test]
fn unknown_message_type() {
    let (xs, h) = fake(|r| raw(99, r.req_id, 0, b""), false);
    assert!(protocol_error(xs.read("/a")).contains("unknown message type"));
    drop(xs);
    h.join().unwrap();
}

#[test]
fn reply_of_the_wrong_type_or_shape() {
    let (xs, h) = fake(|r| msg(MsgType::Read, r, b"value"), false);
    protocol_error(xs.write("/a", "v"));
    drop(xs);
    h.join().unwrap();

    let (xs, h) = fake(|r| msg(MsgType::Directory, r, b"a\0b"), false);
    protocol_error(xs.directory("/a"));
    drop(xs);
    h.join().unwrap();

    let (xs, h) = fake(|r| msg(MsgType::GetPerms, r, b"q7\0"), false);
    protocol_error(xs.get_perms("/a"));
    drop(xs);
    h.join().unwrap();

    let (xs, h) = fake(|r| msg(MsgType::TransactionStart, r, b"abc\0"), false);
    assert!(xs.transaction(|_| Ok(())).is_err());
    drop(xs);
    h.join().unwrap();

    let (xs, h) = fake(|r| msg(MsgType::Error, r, b"\xff\xfe\0"), false);
    protocol_error(xs.read("/a"));
    drop(xs);
    h.join().unwrap();
}

#[test]
fn malformed_watch_event_fails_the_connection() {
    let (xs, h) = fake(
        |_| {
            Message::new(MsgType::WatchEvent, 0, 0, b"/only-path\0".to_vec())
                .encode()
                .unwrap()
        },
        false,
    );
    protocol_error(xs.read("/a"));
    assert!(xs.try_next_watch_event().is_err());
    drop(xs);
    h.join().unwrap();
}

#[test]
fn events_before_the_reply_are_queued() {
    let (xs, h) = fake(
        |r| {
            let mut v = Vec::new();
            for i in 0..3 {
                let p = format!("/w/{i}\0tok\0");
                v.extend(
                    Message::new(MsgType::WatchEvent, 0, 0, p.into_bytes())
                        .encode()
                        .unwrap(),
                );
            }
            v.extend(msg(MsgType::Read, r, b"val"));
            v
        },
        false,
    );
    assert_eq!(xs.read("/a").unwrap(), b"val");
    for i in 0..3 {
        let want = WatchEvent {
            path: format!("/w/{i}"),
            token: "tok".into(),
        };
        assert_eq!(xs.try_next_watch_event().unwrap(), Some(want));
    }
    assert_eq!(xs.try_next_watch_event().unwrap(), None);
    drop(xs);
    h.join().unwrap();
}

#[test]
fn silent_server_times_out() {
    let (mut xs, h) = fake(|_| Vec::new(), false);
    xs.set_reply_timeout(Duration::from_millis(100));
    assert!(matches!(xs.read("/a"), Err(Error::Timeout)));
    drop(xs);
    h.join().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Whatever the server sends (here: a header with any type and length, then random bytes,
    /// then a hang-up), the client returns a value or an error and does not panic.
    #[test]
    fn random_replies_never_panic(ty in 0u32..24, len in 0u32..64,
                                  body in proptest::collection::vec(any::<u8>(), 0..64)) {
        let (xs, h) = fake(move |r| raw(ty, r.req_id, len, &body), true);
        let _ = xs.directory("/a");
        let _ = xs.try_next_watch_event();
        drop(xs);
        h.join().unwrap();
    }
}

#[test]
fn error_names_outside_the_table_are_unknown_and_known_ones_are_variants() {
    let (xs, h) = fake(|r| msg(MsgType::Error, r, b"EWEIRD\0"), false);
    let err = xs.read("/a").unwrap_err();
    assert!(matches!(err, Error::Xenstore(XsErrno::Unknown)), "{err}");
    drop(xs);
    h.join().unwrap();
    let (xs, h) = fake(|r| msg(MsgType::Error, r, b"EAGAIN\0"), false);
    let err = xs.write("/a", "v").unwrap_err();
    assert_eq!(err.xenstore_errno(), Some(XsErrno::Eagain));
    assert!(!err.is_enoent());
    drop(xs);
    h.join().unwrap();
}
