//! The checks shared by the libFuzzer target and the stable driver.

use xen::xs_wire::{self, Message, MsgType, Reply};

/// Request types whose replies are interpreted differently.
const REQUESTS: [MsgType; 6] = [
    MsgType::Read,
    MsgType::Directory,
    MsgType::GetPerms,
    MsgType::Write,
    MsgType::TransactionStart,
    MsgType::GetDomainPath,
];

/// Feeds `data` to every xs_wire parser: it must return errors, never panic, and what it
/// accepts must be consistent (lengths within the buffer, re-encoding round-trips).
pub fn check_reply(data: &[u8]) {
    for req in REQUESTS {
        if let Ok((reply, used)) = xs_wire::parse_reply(data, req) {
            assert!(used >= xs_wire::HEADER_LEN && used <= data.len());
            if let Reply::List(items) = &reply {
                assert!(items.iter().all(|s| !s.contains('\0')));
            }
        }
    }
    // A stream of messages: parse until the buffer is used up or an error.
    let mut rest = data;
    while let Ok(Some((msg, used))) = Message::parse_stream(rest) {
        assert!(used <= rest.len());
        let again = msg.encode().expect("a parsed message re-encodes");
        assert_eq!(&again[..], &rest[..used]);
        let _ = xs_wire::watch_event_payload(&msg.payload);
        let _ = xs_wire::string_list(&msg.payload);
        rest = &rest[used..];
    }
}
