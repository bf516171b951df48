//! The redis protocol (RESP2 and RESP3, redis 7.0 as in Debian 12): [`RespRequests`] frames and
//! classifies a client's requests, [`RespReplies`] frames a replica's replies and masks the
//! order of unordered listings.
//!
//! ORDERING (the conflict relation, from the command table in `commands.rs`):
//! - a command that only reads keys is [`Access::Read`] of them, one that writes keys
//!   [`Access::Write`] of them, with the keys found where redis's key specs say (first/last/step
//!   positions, or `numkeys` for `ZUNIONSTORE`, `LMPOP`, `SINTERCARD`, ...);
//! - keys are compared by name, whatever the database (`SELECT`): keys of two databases may be
//!   taken to conflict, never the reverse (`MOVE` and `COPY ... DB` touch the same name in the
//!   other database; `SWAPDB` and `FLUSHDB` are [`Access::All`]);
//! - connection-local commands (`PING`, `ECHO`, `SELECT`, `HELLO`, `AUTH`, `COMMAND ...`,
//!   `CLIENT SETNAME`, ...) are [`Access::Nothing`];
//! - everything else is [`Access::All`]: unknown commands, admin commands, whole-keyspace reads
//!   (`KEYS`, `SCAN`, `DBSIZE`), scripts and functions, blocking commands, `MULTI` and every
//!   command up to its `EXEC`/`DISCARD` (so a transaction is ordered against everything), and a
//!   request with a key over 4 KiB, over 256 keys, or not classified within its first 16 KiB;
//! - pub/sub (`SUBSCRIBE`, ...), `MONITOR`, `SYNC`/`PSYNC` and `CLIENT REPLY`, after which
//!   replies no longer answer requests one to one, make the rest of the connection one
//!   [`Access::All`] request that never ends, as does a stream redis would not frame the way
//!   [`RespRequests`] does.
//!
//! MASKING (the reply rules; everything else is compared byte for byte):
//! - [`ReplyRule::Unordered`] (`SMEMBERS`, `SINTER`, `SUNION`, `SDIFF`, `HKEYS`, `HVALS`,
//!   `KEYS`, `COMMAND`, `COMMAND INFO`, `COMMAND LIST`, `FUNCTION LIST`, `MODULE LIST`,
//!   `PUBSUB CHANNELS`, `PUBSUB SHARDCHANNELS`): the
//!   reply compares as a multiset of its elements, at every level of nesting (a nested map as a
//!   multiset of its pairs);
//! - [`ReplyRule::UnorderedPairs`] (`HGETALL`, `CONFIG GET`, `COMMAND DOCS`): the same, with the
//!   reply's top-level flat array read as key-value pairs, each pair kept together;
//! - the comparison form is the reply with its elements (pairs) sorted by their bytes, the same
//!   length as the reply; the real reply is handed back as one [`Masked`] record. A reply is held
//!   until complete for this, up to 1 MiB: a longer one is compared byte for byte.
//! - Not masked: `SCAN`, `SSCAN`, `HSCAN`, `ZSCAN` (their cursors follow each replica's hash
//!   table, so no mask could make a scan over several calls agree), random picks (`SPOP`,
//!   `SRANDMEMBER`, `HRANDFIELD`, `RANDOMKEY`), and the members of nested RESP2 maps inside an
//!   unordered reply (`COMMAND DOCS`' per-command docs) compare as elements, not pairs.
//!
//! ADDING A RULE: a command's class (and its key positions, as `COMMAND INFO` gives them) is
//! one entry of `TABLE` in `commands.rs`, its reply rule one entry of `UNORDERED`; the test
//! `the_command_table_agrees_with_redis_command_info` checks both against a real redis-server
//! (a new unordered reply that redis does not tag `nondeterministic_output_order` is named
//! there too). A new masking form is a [`ReplyRule`] handled in `canon.rs`.
//!
//! [`ReplyRule`]: crate::protocol::ReplyRule
//! [`Access::Read`]: crate::protocol::Access::Read
//! [`Access::Write`]: crate::protocol::Access::Write
//! [`Access::Nothing`]: crate::protocol::Access::Nothing
//! [`Access::All`]: crate::protocol::Access::All
//! [`ReplyRule::Unordered`]: crate::protocol::ReplyRule::Unordered
//! [`ReplyRule::UnorderedPairs`]: crate::protocol::ReplyRule::UnorderedPairs
//! [`Masked`]: crate::protocol::Masked

mod canon;
mod classify;
mod commands;
mod reply;
mod request;
mod wire;

#[cfg(test)]
mod real_redis_tests;

pub use reply::{RespReplies, DEPTH_MAX, HOLD_MAX, LINE_MAX};
pub use request::{RespRequests, BEGIN_WITHIN};
