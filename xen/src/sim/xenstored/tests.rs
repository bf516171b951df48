//! The store on its own: messages in, messages out, no sockets.

use super::store::{Outgoing, Store};
use crate::xs_wire::{join_strings, Message, MsgType};
use crate::XsErrno;

fn msg(ty: MsgType, req_id: u32, parts: &[&str]) -> Message {
    Message::new(ty, req_id, 0, join_strings(parts))
}

fn to(conn: u64, ty: MsgType, req_id: u32, parts: &[&str]) -> Outgoing {
    Outgoing {
        conn,
        msg: msg(ty, req_id, parts),
    }
}

#[test]
fn a_write_fires_the_watch_before_its_reply_and_errors_are_named() {
    let mut st = Store::new();
    assert_eq!(
        st.request(2, 0, &msg(MsgType::Watch, 1, &["/w", "tok"])),
        [
            to(2, MsgType::Watch, 1, &["OK"]),
            to(2, MsgType::WatchEvent, 0, &["/w", "tok"]),
        ]
    );
    let mut write = msg(MsgType::Write, 7, &["/w/a"]);
    write.payload.extend_from_slice(b"v");
    assert_eq!(
        st.request(1, 0, &write),
        [
            to(2, MsgType::WatchEvent, 0, &["/w/a", "tok"]),
            to(1, MsgType::Write, 7, &["OK"]),
        ]
    );
    let read = st.request(1, 0, &msg(MsgType::Read, 8, &["/w/a"]));
    assert_eq!(read[0].msg.payload, b"v");
    assert_eq!(
        st.request(1, 0, &msg(MsgType::Read, 9, &["/nope"])),
        [to(1, MsgType::Error, 9, &[XsErrno::Enoent.as_str()])]
    );
    assert_eq!(
        st.request(1, 0, &msg(MsgType::Introduce, 10, &["1"])),
        [to(1, MsgType::Error, 10, &[XsErrno::Enosys.as_str()])]
    );
}

#[test]
fn domains_come_with_a_home_and_fire_the_special_watches() {
    let mut st = Store::new();
    st.request(1, 0, &msg(MsgType::Watch, 1, &["@introduceDomain", "i"]));
    st.request(1, 0, &msg(MsgType::Watch, 2, &["@releaseDomain", "r"]));
    assert_eq!(
        st.introduce_domain(3),
        [to(1, MsgType::WatchEvent, 0, &["@introduceDomain", "i"])]
    );
    let name = st.request(5, 3, &msg(MsgType::Read, 1, &["name"]));
    assert_eq!(name[0].msg.payload, b"sim3");
    assert_eq!(
        st.release_domain(3),
        [to(1, MsgType::WatchEvent, 0, &["@releaseDomain", "r"])]
    );
    assert_eq!(
        st.request(1, 0, &msg(MsgType::Read, 3, &["/local/domain/3"])),
        [to(1, MsgType::Error, 3, &[XsErrno::Enoent.as_str()])]
    );
}
