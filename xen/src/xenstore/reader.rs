//! The reader thread: frames messages from the connection; replies go to the request in
//! flight, watch events to the [`WatchQueue`].

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;

use crossbeam::channel::Sender;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::EventFd;

use super::watch::WatchQueue;
use super::WatchEvent;
use crate::xs_wire::{self, Message, MsgType};

/// What the reader thread hands to the request in flight.
pub(super) type ReplyMsg = std::result::Result<Message, String>;

/// The receiving side: frames messages from the connection and routes them.
pub(super) fn reader_loop(
    mut conn: File,
    replies: &Sender<ReplyMsg>,
    watches: &WatchQueue,
    stop: &EventFd,
) {
    let why = match read_messages(&mut conn, replies, watches, stop) {
        Ok(()) => return,
        Err(why) => why,
    };
    log::debug!("xenstore reader stops: {why}");
    watches.set_dead(why.clone());
    let _ = replies.send(Err(why));
}

/// Returns `Ok(())` when asked to stop, `Err(reason)` when the connection broke.
fn read_messages(
    conn: &mut File,
    replies: &Sender<ReplyMsg>,
    watches: &WatchQueue,
    stop: &EventFd,
) -> std::result::Result<(), String> {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; xs_wire::HEADER_LEN + xs_wire::PAYLOAD_MAX];
    loop {
        let mut fds = [
            PollFd::new(conn.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("poll: {e}")),
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            return Ok(());
        }
        let n = match conn.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Err("connection closed by xenstored".into()),
            Ok(0) => {
                return Err(format!(
                    "truncated message: connection closed after {} bytes",
                    buf.len()
                ))
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("read: {e}")),
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut used_total = 0;
        while let Some((msg, used)) =
            Message::parse_stream(&buf[used_total..]).map_err(|e| e.to_string())?
        {
            used_total += used;
            if msg.ty == MsgType::WatchEvent {
                let (path, token) =
                    xs_wire::watch_event_payload(&msg.payload).map_err(|e| e.to_string())?;
                watches.push(WatchEvent { path, token });
            } else if replies.send(Ok(msg)).is_err() {
                return Ok(());
            }
        }
        buf.drain(..used_total);
    }
}
